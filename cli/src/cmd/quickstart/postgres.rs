//! The quickstart's PostgreSQL workload: finding an installed server (Debian's
//! `/usr/lib/postgresql/<version>/bin` and the `postgres` user), loading a shop database of
//! the wanted size, and the fingerprint (row count, sums, a per-row hash and a top-customers
//! query) that proves a restore gave back the same data.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// An installed PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub bin_dir: PathBuf,
    /// The major version (directory name), e.g. `15`.
    pub version: String,
    pub uid: u32,
    pub gid: u32,
}

const TOOLS: [&str; 5] = ["initdb", "postgres", "pg_basebackup", "psql", "pg_isready"];

/// The newest `<root>/<version>/bin` holding every tool the quickstart runs.
pub fn find_bin_dir(root: &Path) -> Option<(PathBuf, String)> {
    let mut versions: Vec<(u32, String, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().into_owned();
            let number: u32 = version.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            TOOLS
                .iter()
                .all(|tool| bin.join(tool).is_file())
                .then_some((number, version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, version, bin)| (bin, version))
}

/// The installed server, or why there is none (to say so before using the fallback).
pub fn detect() -> Result<Install, String> {
    let Some((bin_dir, version)) = find_bin_dir(Path::new("/usr/lib/postgresql")) else {
        return Err(format!(
            "no PostgreSQL server found (/usr/lib/postgresql/<version>/bin with {})",
            TOOLS.join(", ")
        ));
    };
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Install {
            bin_dir,
            version,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }),
        _ => Err("PostgreSQL is installed but there is no `postgres` user to run it".into()),
    }
}

/// A connection to one server, through the host's `psql` over TCP.
#[derive(Debug, Clone)]
pub struct Psql {
    pub bin_dir: PathBuf,
    pub port: u16,
    pub password: String,
}

impl Psql {
    /// Runs SQL in `database` and returns the unaligned, tuples-only output.
    pub async fn run(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let output = tokio::process::Command::new(self.bin_dir.join("psql"))
            .args([
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-F",
                "|",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .kill_on_drop(true)
            .output()
            .await
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql on port {} failed ({}): {}",
                self.port,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

/// The database the quickstart fills.
pub const DATABASE: &str = "shop";

/// Rows of `orders` for about `bytes` of table and index (~150 bytes a row).
pub fn rows_for(bytes: u64) -> u64 {
    (bytes / 150).max(1000)
}

/// Creates `shop` with an `orders` table of `rows` generated rows and its indexes.
pub async fn load(psql: &Psql, rows: u64) -> anyhow::Result<()> {
    psql.run("postgres", &format!("CREATE DATABASE {DATABASE}"))
        .await
        .context("creating the database")?;
    let sql = format!(
        "CREATE TABLE orders (
            id bigint NOT NULL,
            customer text NOT NULL,
            amount numeric(12,2) NOT NULL,
            created_at timestamptz NOT NULL,
            status text NOT NULL,
            note text);
         INSERT INTO orders
         SELECT g,
                'customer-' || (g * 7919 % 50000),
                round(((g * 104729) % 100000) / 100.0, 2),
                timestamptz '2025-01-01 00:00:00+00' + g * interval '7 seconds',
                (ARRAY['created','paid','shipped','delivered','returned'])[1 + (g % 5)::int],
                md5(g::text) || ' ' || repeat(chr(97 + (g % 26)::int), 10 + (g % 30)::int)
         FROM generate_series(1::bigint, {rows}) AS g;
         ALTER TABLE orders ADD PRIMARY KEY (id);
         CREATE INDEX orders_customer ON orders (customer);
         ANALYZE orders;"
    );
    psql.run(DATABASE, &sql)
        .await
        .context("loading the orders table")?;
    Ok(())
}

/// What the data looks like, to compare before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub rows: u64,
    /// `sum(amount)` as PostgreSQL prints it.
    pub amount: String,
    /// Sum of a hash of every row's text.
    pub row_hash: String,
    /// The three best customers by amount: `customer|orders|amount`.
    pub top_customers: Vec<String>,
}

/// The top-customers query shown in the summary.
pub const TOP_CUSTOMERS: &str = "SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer ORDER BY sum(amount) DESC, customer LIMIT 3";

/// Reads the fingerprint of `orders`.
pub async fn fingerprint(psql: &Psql) -> anyhow::Result<Fingerprint> {
    let totals = psql
        .run(
            DATABASE,
            "SELECT count(*), sum(amount), sum(hashtext(o::text)::bigint) FROM orders o",
        )
        .await
        .context("counting the orders")?;
    let fields: Vec<&str> = totals.split('|').collect();
    let [rows, amount, row_hash] = fields.as_slice() else {
        bail!("unexpected psql output {totals:?}");
    };
    let top = psql
        .run(DATABASE, TOP_CUSTOMERS)
        .await
        .context("querying the top customers")?;
    Ok(Fingerprint {
        rows: rows
            .parse()
            .with_context(|| format!("row count {rows:?}"))?,
        amount: amount.to_string(),
        row_hash: row_hash.to_string(),
        top_customers: top.lines().map(str::to_string).collect(),
    })
}

/// The size of the shop database in bytes.
pub async fn database_bytes(psql: &Psql) -> anyhow::Result<u64> {
    let text = psql
        .run(
            "postgres",
            &format!("SELECT pg_database_size('{DATABASE}')"),
        )
        .await?;
    text.parse()
        .with_context(|| format!("database size {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_complete_version_is_chosen() {
        let root = tempfile::tempdir().expect("tempdir");
        for (version, tools) in [("13", &TOOLS[..]), ("15", &TOOLS[..]), ("16", &TOOLS[..3])] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            for tool in tools {
                std::fs::write(bin.join(tool), "").expect("write");
            }
        }
        let (bin, version) = find_bin_dir(root.path()).expect("found");
        assert_eq!(version, "15", "16 lacks psql and pg_isready");
        assert_eq!(bin, root.path().join("15/bin"));
        assert_eq!(find_bin_dir(&root.path().join("missing")), None);
    }

    #[test]
    fn row_counts_follow_the_wanted_size() {
        assert_eq!(rows_for(300 << 20), 2_097_152);
        assert_eq!(rows_for(10), 1000);
    }
}
