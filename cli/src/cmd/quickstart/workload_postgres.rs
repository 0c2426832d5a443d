//! The PostgreSQL workload: a real server in pod `postgres` on PVC `postgres-data`, loaded
//! with a shop database; backed up with `pg_basebackup` through the agent; the accident is a
//! dropped table; the proof is the same row count, sums, per-row hash and query result from a
//! second server started on the restored PVC.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use indicatif::HumanCount;
use jiff::Timestamp;

use super::manifests::{self, NAMESPACE, PostgresPod, postgres};
use super::postgres::{DATABASE, Fingerprint, Install, Psql, TOP_CUSTOMERS};
use super::steps::detail;
use super::workload::{Ctx, Workload};
use super::{cluster, human};

/// The PostgreSQL workload.
pub struct Postgres {
    install: Install,
    bytes: u64,
    password: String,
    port: u16,
    restored_port: Option<u16>,
    original: Option<Fingerprint>,
    database_bytes: u64,
    /// `--pitr`: archive the WAL continuously and restore to the second before the accident.
    pitr: bool,
    /// The ids of the orders written after the backup.
    late_orders: Vec<i64>,
    accident: Option<Timestamp>,
}

/// Orders written one by one after the backup (`--pitr`), this far apart.
const LATE_ORDERS: i64 = 5;
const LATE_GAP: Duration = Duration::from_millis(200);

impl Postgres {
    /// A server of `install` with about `bytes` of data.
    pub fn new(install: Install, bytes: u64, pitr: bool) -> Postgres {
        Postgres {
            install,
            bytes,
            password: uuid::Uuid::new_v4().simple().to_string(),
            port: 0,
            restored_port: None,
            original: None,
            database_bytes: 0,
            pitr,
            late_orders: Vec::new(),
            accident: None,
        }
    }

    fn psql(&self, port: u16) -> Psql {
        Psql {
            bin_dir: self.install.bin_dir.clone(),
            port,
            password: self.password.clone(),
        }
    }

    fn pod(
        &self,
        name: &str,
        claim: &str,
        port: u16,
    ) -> anyhow::Result<k8s_openapi::api::core::v1::Pod> {
        manifests::postgres_pod(&PostgresPod {
            name,
            claim,
            bin_dir: &self.install.bin_dir,
            uid: self.install.uid,
            gid: self.install.gid,
            port,
        })
    }
}

impl Postgres {
    /// Starts a server in pod `name` on the restored `claim` and waits until it is Ready (it
    /// recovers first); returns its port.
    async fn start_server(&self, ctx: &Ctx, name: &str, claim: &str) -> anyhow::Result<u16> {
        let port = free_port()?;
        cluster::create(&ctx.client, &self.pod(name, claim, port)?).await?;
        cluster::wait_pod_ready(&ctx.client, name, Duration::from_secs(180), &mut || {}).await?;
        Ok(port)
    }
}

/// A port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn describe(f: &Fingerprint) -> String {
    format!(
        "{} rows, sum(amount) {}, top customer {}",
        HumanCount(f.rows),
        f.amount,
        f.top_customers.first().map(String::as_str).unwrap_or("-")
    )
}

impl Workload for Postgres {
    fn noun(&self) -> String {
        format!("a PostgreSQL {} database", self.install.version)
    }

    fn start_title(&self) -> String {
        format!(
            "Start PostgreSQL {} in pod {NAMESPACE}/{} (PVC {}) and load about {} of orders",
            self.install.version,
            postgres::POD,
            postgres::PVC,
            human(self.bytes)
        )
    }

    async fn start(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        self.port = free_port()?;
        cluster::create(&ctx.client, &manifests::postgres_secret(&self.password)?).await?;
        cluster::create(
            &ctx.client,
            &manifests::claim(postgres::PVC, self.bytes * 3)?,
        )
        .await?;
        cluster::create(
            &ctx.client,
            &self.pod(postgres::POD, postgres::PVC, self.port)?,
        )
        .await?;
        cluster::wait_pod_ready(
            &ctx.client,
            postgres::POD,
            Duration::from_secs(120),
            &mut || {},
        )
        .await?;
        detail(&format!(
            "PostgreSQL {} is Ready on 127.0.0.1:{} (initdb as user postgres)",
            self.install.version, self.port
        ));
        let rows = super::postgres::rows_for(self.bytes);
        detail(&format!(
            "loading {} rows into {DATABASE}.orders ...",
            HumanCount(rows)
        ));
        let psql = self.psql(self.port);
        super::postgres::load(&psql, rows).await?;
        self.database_bytes = super::postgres::database_bytes(&psql).await?;
        detail(&format!(
            "database {DATABASE} holds {} rows ({})",
            HumanCount(rows),
            human(self.database_bytes)
        ));
        Ok(())
    }

    fn app(&self) -> &'static str {
        "postgres"
    }

    fn claim(&self) -> &'static str {
        postgres::PVC
    }

    fn actionset(&self) -> anyhow::Result<ActionSet> {
        manifests::postgres_actionset(&self.install.bin_dir)
    }

    fn policy(&self) -> anyhow::Result<BackupPolicy> {
        let policy = manifests::policy(
            postgres::POLICY,
            postgres::POD,
            postgres::METHOD,
            postgres::ACTIONSET,
            Some(postgres::SECRET),
        )?;
        if !self.pitr {
            return Ok(policy);
        }
        manifests::with_continuous_method(policy, postgres::WAL_METHOD, postgres::WAL_ACTIONSET)
    }

    async fn before_backup(&mut self, _ctx: &Ctx, _source_dir: &Path) -> anyhow::Result<()> {
        let fingerprint = super::postgres::fingerprint(&self.psql(self.port)).await?;
        self.original = Some(fingerprint);
        Ok(())
    }

    fn damage_title(&self) -> String {
        format!("The accident: DROP TABLE orders in {DATABASE}")
    }

    async fn damage(&mut self, _ctx: &Ctx, _source_dir: &Path) -> anyhow::Result<()> {
        let psql = self.psql(self.port);
        let accident = Timestamp::now();
        psql.run(DATABASE, "DROP TABLE orders")
            .await
            .context("dropping the table")?;
        self.accident = Some(accident);
        detail(&format!(
            "DROP TABLE orders at {} UTC",
            accident.strftime("%H:%M:%S%.3f")
        ));
        match psql.run(DATABASE, "SELECT count(*) FROM orders").await {
            Ok(count) => bail!("orders still answers after DROP TABLE ({count} rows)"),
            Err(err) => detail(&format!(
                "the table is gone: SELECT count(*) FROM orders -> {}",
                format!("{err:#}")
                    .lines()
                    .find_map(|l| l.find("ERROR:").map(|at| l[at..].trim().to_string()))
                    .unwrap_or_else(|| "an error".to_string())
            )),
        }
        Ok(())
    }

    async fn verify(
        &mut self,
        ctx: &Ctx,
        restored_claim: &str,
        _restored_dir: &Path,
    ) -> anyhow::Result<String> {
        let port = self
            .start_server(ctx, postgres::RESTORED_POD, restored_claim)
            .await?;
        self.restored_port = Some(port);
        detail(&format!(
            "PostgreSQL started on the restored PVC in pod {NAMESPACE}/{} (127.0.0.1:{port}) and recovered the base backup",
            postgres::RESTORED_POD
        ));
        let restored = super::postgres::fingerprint(&self.psql(port)).await?;
        let original = self
            .original
            .clone()
            .context("the original data was not fingerprinted")?;
        if restored != original {
            bail!("the restored database differs: original {original:?}, restored {restored:?}");
        }
        detail(&format!("original: {}", describe(&original)));
        detail(&format!("restored: {}", describe(&restored)));
        detail(&format!("{TOP_CUSTOMERS}:"));
        for row in &restored.top_customers {
            detail(&format!("  {row}"));
        }
        Ok(format!(
            "{} rows, sum(amount), a hash of every row and the top-customers query match",
            HumanCount(restored.rows)
        ))
    }

    fn description(&self) -> String {
        format!(
            "PostgreSQL {} in pod {NAMESPACE}/{}: database {DATABASE}, {} orders ({})",
            self.install.version,
            postgres::POD,
            HumanCount(self.original.as_ref().map(|f| f.rows).unwrap_or(0)),
            human(self.database_bytes)
        )
    }

    fn continuous(&self) -> anyhow::Result<Option<(ActionSet, &'static str)>> {
        if !self.pitr {
            return Ok(None);
        }
        let actionset = manifests::postgres_wal_actionset(&self.install.bin_dir)?;
        Ok(Some((actionset, postgres::WAL_METHOD)))
    }

    async fn after_backup(&mut self, _ctx: &Ctx) -> anyhow::Result<()> {
        if !self.pitr {
            return Ok(());
        }
        let psql = self.psql(self.port);
        let max: i64 = psql
            .run(DATABASE, "SELECT max(id) FROM orders")
            .await?
            .trim()
            .parse()
            .context("reading the largest order id")?;
        let mut last = Timestamp::now();
        for id in max + 1..=max + LATE_ORDERS {
            psql.run(
                DATABASE,
                &format!(
                    "INSERT INTO orders VALUES ({id}, 'customer-late', 42.00, clock_timestamp(), 'created', 'written after the backup')"
                ),
            )
            .await
            .with_context(|| format!("writing order {id}"))?;
            last = Timestamp::now();
            self.late_orders.push(id);
            tokio::time::sleep(LATE_GAP).await;
        }
        detail(&format!(
            "{LATE_ORDERS} orders written after the backup (ids {}..{}), the last at {} UTC: only the WAL archive has them",
            max + 1,
            max + LATE_ORDERS,
            last.strftime("%H:%M:%S%.3f")
        ));
        // The accident comes in a later second than the one after the last write, so the second
        // before the accident holds every late order.
        let clear = Timestamp::from_second(last.as_second() + 2)?;
        if let Ok(wait) = Duration::try_from(clear.duration_since(Timestamp::now())) {
            tokio::time::sleep(wait + Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn accident_at(&self) -> Option<Timestamp> {
        self.accident
    }

    async fn verify_point_in_time(
        &mut self,
        ctx: &Ctx,
        claim: &str,
        at: Timestamp,
    ) -> anyhow::Result<String> {
        let port = self.start_server(ctx, postgres::PITR_POD, claim).await?;
        detail(&format!(
            "PostgreSQL started on PVC {claim} in pod {NAMESPACE}/{} (127.0.0.1:{port}), replayed the WAL to {} UTC and was promoted",
            postgres::PITR_POD,
            at.strftime("%H:%M:%S")
        ));
        let psql = self.psql(port);
        let original = self
            .original
            .clone()
            .context("the original data was not fingerprinted")?;
        let late: Vec<i64> = psql
            .run(
                DATABASE,
                "SELECT id FROM orders WHERE note = 'written after the backup' ORDER BY id",
            )
            .await?
            .lines()
            .map(|l| l.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .context("reading the late orders")?;
        let rows: u64 = psql
            .run(DATABASE, "SELECT count(*) FROM orders")
            .await?
            .trim()
            .parse()
            .context("counting the orders")?;
        let expected = original.rows + self.late_orders.len() as u64;
        if late != self.late_orders || rows != expected {
            bail!(
                "the point-in-time copy has {rows} orders and late orders {late:?}; expected {expected} with late orders {:?}",
                self.late_orders
            );
        }
        detail(&format!(
            "orders: {} = the {} backed up + the {} written after the backup, up to {} UTC",
            HumanCount(rows),
            HumanCount(original.rows),
            late.len(),
            at.strftime("%H:%M:%S")
        ));
        Ok(format!(
            "{} orders, every one written up to {} UTC (the second before the accident)",
            HumanCount(rows),
            at.strftime("%H:%M:%S")
        ))
    }

    fn extra_commands(&self, _ctx: &Ctx) -> Vec<String> {
        let Some(port) = self.restored_port else {
            return Vec::new();
        };
        vec![format!(
            "kubectl -n {NAMESPACE} exec {} -- bash -c 'PGPASSWORD=$POSTGRES_PASSWORD {}/psql -h 127.0.0.1 -p {port} -U postgres -d {DATABASE} -c \"SELECT count(*) FROM orders\"'",
            postgres::RESTORED_POD,
            self.install.bin_dir.display()
        )]
    }
}
