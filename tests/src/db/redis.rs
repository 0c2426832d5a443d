//! A Redis pod's contents seen from the host with `redis-cli`: keys of every common type to fill
//! (strings, hashes, lists, sets, sorted sets), and every key's type and value digest to compare
//! key by key after a restore.

use std::collections::BTreeMap;

use super::host;

/// The pod template.
pub const TEMPLATE: &str = "db/redis-pod.yaml";
/// Host tools the pods, the ActionSets and this client run.
pub const TOOLS: &[&str] = &["redis-server", "redis-cli", "bash", "tar"];

/// Writes `ARGV[1]` string keys of 200 hex characters (little for RDB's LZF to squeeze), a tenth as many hashes, and 100 each of lists,
/// sets and sorted sets.
const LOAD: &str = r#"
local n = tonumber(ARGV[1])
for i = 1, n do
  local v = redis.sha1hex(tostring(i))
  for j = 1, 4 do v = v .. redis.sha1hex(i .. '/' .. j) end
  redis.call('SET', 'user:' .. i, v)
end
for i = 1, math.floor(n / 10) do
  redis.call('HSET', 'profile:' .. i, 'name', 'user-' .. i, 'age', i % 90, 'city', 'c' .. (i % 17), 'score', i * 3, 'bio', redis.sha1hex('bio' .. i))
end
for i = 1, 100 do
  for j = 1, 50 do redis.call('RPUSH', 'events:' .. i, 'event-' .. i .. '-' .. j) end
  for j = 1, 20 do redis.call('SADD', 'tags:' .. i, 'tag-' .. ((i * j) % 37)) end
  for j = 1, 20 do redis.call('ZADD', 'board:' .. i, (i * j) % 101, 'member-' .. j) end
end
return n
"#;

/// Every key followed by `<type>:<sha1 of its value>` (hash fields and set members sorted).
const DIGESTS: &str = r#"
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k).ok
  local v = ''
  if t == 'string' then
    v = redis.call('GET', k)
  elseif t == 'hash' then
    local f = redis.call('HGETALL', k)
    local kv = {}
    for i = 1, #f, 2 do kv[#kv + 1] = f[i] .. '=' .. f[i + 1] end
    table.sort(kv)
    v = table.concat(kv, '\n')
  elseif t == 'list' then
    v = table.concat(redis.call('LRANGE', k, 0, -1), '\n')
  elseif t == 'set' then
    local m = redis.call('SMEMBERS', k)
    table.sort(m)
    v = table.concat(m, '\n')
  elseif t == 'zset' then
    v = table.concat(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), '\n')
  end
  out[#out + 1] = k
  out[#out + 1] = t .. ':' .. redis.sha1hex(v)
end
return out
"#;

/// `redis-cli` against one server.
#[derive(Debug, Clone)]
pub struct Redis {
    pub port: u16,
    pub password: String,
}

impl Redis {
    /// Runs one command and returns the raw output.
    pub async fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let mut full = vec!["-h", "127.0.0.1", "-p", &port, "--raw"];
        full.extend_from_slice(args);
        let out = host::run(
            "redis-cli",
            &full,
            &[("REDISCLI_AUTH", &self.password)],
            None,
        )
        .await?;
        if out.starts_with("ERR") || out.starts_with("NOAUTH") || out.starts_with("WRONGPASS") {
            anyhow::bail!("redis-cli {} failed: {}", args.join(" "), out.trim());
        }
        Ok(out)
    }

    /// Fills the database with `strings` string keys and the other types (see [`LOAD`]).
    pub async fn load(&self, strings: u64) -> anyhow::Result<()> {
        self.command(&["EVAL", LOAD, "0", &strings.to_string()])
            .await?;
        Ok(())
    }

    /// Changes made after the backup (a restore must not have them).
    pub async fn write_after_backup(&self) -> anyhow::Result<()> {
        self.command(&["SET", "written-after-the-backup", "1"])
            .await?;
        self.command(&["DEL", "user:1"]).await?;
        Ok(())
    }

    /// Every key with its type and value digest.
    pub async fn digests(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let out = self.command(&["EVAL", DIGESTS, "0"]).await?;
        let lines: Vec<&str> = out.lines().collect();
        if !lines.len().is_multiple_of(2) {
            anyhow::bail!(
                "odd number of lines ({}) from the digest script",
                lines.len()
            );
        }
        Ok(lines
            .chunks(2)
            .map(|pair| (pair[0].to_string(), pair[1].to_string()))
            .collect())
    }
}

/// The keys that differ between two digest maps, one line each (empty when equal), at most
/// `limit` lines plus a count of the rest.
pub fn differences(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => out.push(format!("{key}: missing")),
            Some(got) if got != want => out.push(format!("{key}: expected {want}, found {got}")),
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(format!("{key}: unexpected"));
    }
    if out.len() > limit {
        let rest = out.len() - limit;
        out.truncate(limit);
        out.push(format!("... and {rest} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_missing_changed_and_unexpected_keys() {
        let expected = BTreeMap::from([
            ("a".to_string(), "string:1".to_string()),
            ("b".to_string(), "string:2".to_string()),
        ]);
        let actual = BTreeMap::from([
            ("b".to_string(), "string:3".to_string()),
            ("c".to_string(), "list:4".to_string()),
        ]);
        assert_eq!(
            differences(&expected, &actual, 10),
            vec![
                "a: missing".to_string(),
                "b: expected string:2, found string:3".to_string(),
                "c: unexpected".to_string()
            ]
        );
        assert_eq!(differences(&expected, &expected, 10), Vec::<String>::new());
        assert_eq!(differences(&expected, &actual, 1).len(), 2);
    }
}
