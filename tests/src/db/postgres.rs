//! A PostgreSQL pod's contents seen from the host with `psql`: a table of accounts to fill, and a
//! fingerprint (row count plus an MD5 over every row in key order) to compare after a restore.

use super::host;

/// The pod template.
pub const TEMPLATE: &str = "db/postgresql-pod.yaml";
/// Host tools the pods, the ActionSets and this client run.
pub const TOOLS: &[&str] = &[
    "/usr/lib/postgresql/15/bin/postgres",
    "/usr/lib/postgresql/15/bin/initdb",
    "psql",
    "pg_isready",
    "pg_basebackup",
    "bash",
    "tar",
    "runuser",
];

/// What a restored database must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub rows: u64,
    /// `md5` of every row's text, in key order.
    pub checksum: String,
    /// `sum(balance)`, as PostgreSQL prints it.
    pub balance: String,
}

/// `psql` against one server as one user.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Postgres {
    /// Runs `sql` in database `postgres` and returns the unaligned, tuples-only output.
    pub async fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let port = self.port.to_string();
        host::run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                &self.user,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            &[("PGPASSWORD", &self.password), ("PGCONNECT_TIMEOUT", "10")],
            None,
        )
        .await
    }

    /// Creates table `accounts` with `rows` rows (about 180 bytes each, an index on the key).
    pub async fn load(&self, rows: u64) -> anyhow::Result<()> {
        self.sql(&format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL, note text);
             INSERT INTO accounts
               SELECT i, 'owner-' || i, (i * 7919 % 1000003) / 100.0, md5(i::text) || repeat(md5((i * 31)::text), 4)
               FROM generate_series(1, {rows}) AS i;
             CHECKPOINT;"
        ))
        .await?;
        Ok(())
    }

    /// Rows written after the backup (a restore must not have them).
    pub async fn write_after_backup(&self) -> anyhow::Result<()> {
        self.sql("INSERT INTO accounts VALUES (-1, 'after the backup', 0, NULL); UPDATE accounts SET balance = balance + 1 WHERE id = 1;")
            .await?;
        Ok(())
    }

    /// The row count and the checksum query over every row.
    pub async fn fingerprint(&self) -> anyhow::Result<Fingerprint> {
        let out = self
            .sql("SELECT count(*), md5(string_agg(a::text, '|' ORDER BY id)), sum(balance) FROM accounts a")
            .await?;
        let fields: Vec<&str> = out.trim().split('|').collect();
        let [rows, checksum, balance] = fields.as_slice() else {
            anyhow::bail!("unexpected fingerprint output from psql: {out:?}");
        };
        Ok(Fingerprint {
            rows: rows.parse()?,
            checksum: checksum.to_string(),
            balance: balance.to_string(),
        })
    }
}
