//! The KubeBlocks compatibility suite: every `datasafed` invocation found in
//! apecloud/kubeblocks-addons' scripts and ActionSets (and the rendered ones of
//! ../shared/kubeblocks/), listed with its source in
//! `tests/data/kubeblocks-datasafed-invocations.tsv`, run against Cairn's datasafed through the
//! node agent's real storage socket and in direct mode:
//!
//! - every command line (the variables the scripts fill in bound to sample values) is
//!   accepted: no usage error, whatever the repository holds;
//! - the invocations whose output the scripts parse are run with the script's own pipeline
//!   (jq, awk, grep, sort) over a seeded repository and give what the script expects.

#[path = "support/agent.rs"]
mod support_agent;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_proto::agent::v1::StorageGrant;
use support_agent::SocketAgent;

const BASE: &str = "/ns/policy/b1";

struct Row {
    source: String,
    line: String,
    command: String,
}

fn table() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/kubeblocks-datasafed-invocations.tsv");
    let text = std::fs::read_to_string(&path).expect("read the invocation table");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("source\t") && !l.is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            Row {
                source: parts.next().unwrap_or_default().to_string(),
                line: parts.next().unwrap_or_default().to_string(),
                command: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// The `datasafed ...` part of a command line: up to the first pipe, redirection, list
/// operator or closing command substitution outside quotes.
fn invocation(command: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = command.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '|' | ';' | '&' | ')' | '`' | '>' | '<' => break,
                '2' if chars.get(i + 1) == Some(&'>') => break,
                '$' if chars.get(i + 1) == Some(&'(') => break,
                _ => {}
            },
        }
        out.push(c);
        i += 1;
    }
    out.trim().to_string()
}

fn datasafed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Values for the variables scripts put on datasafed's command line: times are unix seconds,
/// everything else a path.
fn variables(command: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let bytes: Vec<char> = command.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' {
            let mut j = i + 1;
            if bytes.get(j) == Some(&'{') {
                j += 1;
            }
            let start = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == '_') {
                j += 1;
            }
            let name: String = bytes[start..j].iter().collect();
            if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
                let lower = name.to_ascii_lowercase();
                let value = if lower.contains("unix")
                    || lower.contains("timestamp")
                    || lower.contains("time")
                {
                    "1700000000".to_string()
                } else {
                    format!("compat/{}", lower)
                };
                vars.insert(name, value);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    vars
}

struct Agent {
    server: SocketAgent,
    repo: tempfile::TempDir,
    /// The scripts' working directory: the `compat/<var>` paths they write land here, not in
    /// the source tree.
    scratch: tempfile::TempDir,
}

impl std::ops::Deref for Agent {
    type Target = SocketAgent;

    fn deref(&self) -> &SocketAgent {
        &self.server
    }
}

impl Agent {
    fn start() -> Agent {
        Agent {
            server: SocketAgent::start(),
            repo: tempfile::tempdir().expect("tempdir"),
            scratch: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Runs `script` with bash in `mode` (`socket` or `direct`) at the backup's path.
    fn run(
        &self,
        mode: &str,
        token: &str,
        script: &str,
        vars: &BTreeMap<String, String>,
    ) -> Output {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(self.scratch.path())
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", datasafed_dir().display()),
            )
            .env("DATASAFED_BACKEND_BASE_PATH", BASE)
            .envs(vars);
        if mode == "socket" {
            command
                .env("CAIRN_STORAGE_SOCKET", &self.socket)
                .env("CAIRN_STORAGE_TOKEN", token);
        } else {
            command.env("DATASAFED_LOCAL_BACKEND_PATH", self.repo.path());
        }
        command.output().expect("bash runs")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn token(agent: &Agent, action: &str) -> String {
    let grant = StorageGrant {
        repo_name: "compat".into(),
        local_path: agent.repo.path().display().to_string(),
        read_write_prefix: BASE.into(),
        ..Default::default()
    };
    agent
        .grants
        .issue(action, &grant)
        .expect("issue")
        .expose()
        .to_string()
}

/// Seeds binlog-like files whose modification times are not in name order, so a script that
/// sorts on `.mtime` gets another order than a listing sorted by path.
fn seed(root: &Path) {
    let dir = root.join("ns/policy/b1");
    for (name, secs) in [
        ("binlog/mysql-bin.000001.zst", 1_700_000_300u64),
        ("binlog/mysql-bin.000002.zst", 1_700_000_100),
        ("binlog/mysql-bin.000003.zst", 1_700_000_200),
        ("mycluster-backup.tar.zst", 1_700_000_400),
    ] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, name.repeat(3)).expect("write");
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(time))
            .expect("mtime");
    }
}

#[test]
fn every_kubeblocks_invocation_is_accepted_in_socket_and_direct_mode() {
    let rows = table();
    assert!(rows.len() > 300, "the table has {} rows", rows.len());
    let agent = Agent::start();
    seed(agent.repo.path());
    let token = token(&agent, "compat-accept");
    let mut seen = std::collections::BTreeSet::new();
    let mut refused = Vec::new();
    for row in &rows {
        let call = invocation(&row.command);
        // Pushes would wait for data on stdin; they are run with an empty one.
        let call = if call.contains(" push ") || call.starts_with("datasafed push") {
            format!("{call} </dev/null")
        } else {
            call
        };
        if !seen.insert(call.clone()) {
            continue;
        }
        let vars = variables(&call);
        for mode in ["socket", "direct"] {
            let out = agent.run(mode, &token, &call, &vars);
            let err = stderr(&out);
            // clap's usage errors; runtime failures ("Error: ... does not exist") are fine.
            if err.contains("error: unexpected argument")
                || err.contains("error: invalid value")
                || err.contains("error: unrecognized subcommand")
                || err.contains("error: the argument")
                || err.contains("is not included in")
                || err.contains("Usage:")
            {
                refused.push(format!(
                    "{}:{} ({mode}): {call}\n{err}",
                    row.source, row.line
                ));
            }
        }
    }
    assert!(
        refused.is_empty(),
        "{} invocations refused:\n{}",
        refused.len(),
        refused.join("\n")
    );
    assert!(seen.len() > 100, "only {} distinct invocations", seen.len());
}

/// The rows whose output the script parses, run with the script's own pipeline.
#[test]
fn parsed_outputs_give_what_the_scripts_expect() {
    let rows = table();
    let agent = Agent::start();
    seed(agent.repo.path());
    let token = token(&agent, "compat-parse");
    let find = |needle: &str| {
        rows.iter()
            .find(|r| r.command.contains(needle))
            .unwrap_or_else(|| panic!("no row contains {needle:?}"))
    };
    // mysql-pitr-backup.sh: the oldest binlog by mtime.
    let oldest = find("jq -s -r '.[] | sort_by(.mtime) | .[] | .path' | grep .zst | head -n 1");
    // stat | grep TotalSize | awk: the total size.
    let total = find("datasafed stat / | grep TotalSize | awk '{print $2}'");
    // list -d / | sort -Vr | head -n 1: the last directory.
    let last_dir = find("datasafed list -d / | sort -Vr | head -n 1");
    let expected_total: usize = [
        "binlog/mysql-bin.000003.zst",
        "binlog/mysql-bin.000001.zst",
        "binlog/mysql-bin.000002.zst",
        "mycluster-backup.tar.zst",
    ]
    .iter()
    .map(|n| n.len() * 3)
    .sum();
    // mysql-pitr-restore.sh: the binlogs newer than the base backup, oldest first.
    let newer = find(
        "--newer-than ${baseBackupStartTimestamp} / -o json | jq -s -r '.[] | sort_by(.mtime) | .[] | .path' | grep .zst",
    );
    // mysql-pitr-backup.sh: the pod's binlog names, by mtime, on one line.
    let names = find("xargs -I {} basename {} .zst | paste -sd ' ' -");
    let vars = BTreeMap::from([
        (
            "baseBackupStartTimestamp".to_string(),
            "1700000150".to_string(),
        ),
        ("DP_TARGET_POD_NAME".to_string(), "mysql-bin".to_string()),
    ]);
    for mode in ["socket", "direct"] {
        let run = |row: &Row| {
            let script = row
                .command
                .trim_end_matches([')', ';'])
                .trim_end_matches(");do");
            let out = agent.run(mode, &token, script, &vars);
            assert!(
                out.status.success(),
                "{}:{} ({mode}) failed: {}",
                row.source,
                row.line,
                stderr(&out)
            );
            stdout(&out)
        };
        assert_eq!(
            run(oldest),
            "binlog/mysql-bin.000002.zst\n",
            "{} ({mode})",
            oldest.source
        );
        assert_eq!(
            run(total),
            format!("{expected_total}\n"),
            "{} ({mode})",
            total.source
        );
        assert_eq!(run(last_dir), "binlog/\n", "{} ({mode})", last_dir.source);
        assert_eq!(
            run(newer),
            "binlog/mysql-bin.000003.zst\nbinlog/mysql-bin.000001.zst\nmycluster-backup.tar.zst\n",
            "{} ({mode})",
            newer.source
        );
        assert_eq!(
            run(names),
            "mysql-bin.000002 mysql-bin.000003 mysql-bin.000001\n",
            "{} ({mode})",
            names.source
        );
        // mssql common.sh reads `total_size` from `stat --json` (with perl's JSON::PP; jq here).
        let stat = find("datasafed stat --json /");
        let script = format!("{} | jq -e '.total_size'", invocation(&stat.command));
        let out = agent.run(mode, &token, &script, &vars);
        assert_eq!(
            stdout(&out),
            format!("{expected_total}\n"),
            "{} ({mode})",
            stat.source
        );
    }
}
