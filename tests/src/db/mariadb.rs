//! A MariaDB pod's contents seen from the host with the `mariadb` client: an InnoDB table of
//! orders to fill, and its row count and `CHECKSUM TABLE ... EXTENDED` to compare after a restore.

use super::host;

/// The pod template.
pub const TEMPLATE: &str = "db/mariadb-pod.yaml";
/// Host tools the pods, the ActionSets and this client run.
pub const TOOLS: &[&str] = &[
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "mariadb-backup",
    "mbstream",
    "rsync",
    "zstd",
    "bash",
];

/// What a restored database must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub rows: u64,
    /// `CHECKSUM TABLE shop.orders EXTENDED`.
    pub checksum: String,
}

/// The `mariadb` client against one server as one user.
#[derive(Debug, Clone)]
pub struct Mariadb {
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Mariadb {
    /// Runs `sql` and returns the batch output without column names.
    pub async fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let port = self.port.to_string();
        host::run(
            "mariadb",
            &[
                "--no-defaults",
                "--connect-timeout=10",
                "-h",
                "127.0.0.1",
                "-P",
                &port,
                "-u",
                &self.user,
                "-N",
                "-B",
                "-e",
                sql,
            ],
            &[("MYSQL_PWD", &self.password)],
            None,
        )
        .await
    }

    /// Creates `shop.orders` (InnoDB) with `rows` rows of about 170 bytes.
    pub async fn load(&self, rows: u64) -> anyhow::Result<()> {
        self.sql(&format!(
            "CREATE DATABASE shop;
             CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL,
               amount DECIMAL(12,2) NOT NULL, note TEXT) ENGINE=InnoDB;
             USE shop;
             INSERT INTO shop.orders
               SELECT seq, CONCAT('customer-', seq % 977), (seq * 7919 % 1000003) / 100,
                      REPEAT(MD5(seq), 4)
               FROM seq_1_to_{rows};"
        ))
        .await?;
        Ok(())
    }

    /// Changes made after the backup (a restore must not have them).
    pub async fn write_after_backup(&self) -> anyhow::Result<()> {
        self.sql("INSERT INTO shop.orders VALUES (0, 'after the backup', 0, NULL); UPDATE shop.orders SET amount = amount + 1 WHERE id = 1;")
            .await?;
        Ok(())
    }

    /// The row count and the table checksum.
    pub async fn fingerprint(&self) -> anyhow::Result<Fingerprint> {
        let rows = self.sql("SELECT COUNT(*) FROM shop.orders").await?;
        let checksum = self.sql("CHECKSUM TABLE shop.orders EXTENDED").await?;
        let value = checksum
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("unexpected CHECKSUM TABLE output: {checksum:?}"))?;
        Ok(Fingerprint {
            rows: rows.trim().parse()?,
            checksum: value.to_string(),
        })
    }
}
