//! A real database doing real incremental backups: a MariaDB pod (Debian's server) on
//! localkube is backed up Full with `mariadb-backup`, then twice Incremental
//! (`--incremental-basedir` of the parent's checkpoints, pulled through datasafed from the
//! parent's path), with inserts, updates and deletes in between. The Restore of the last
//! Incremental replays the chain into a new PVC (`mariadb-backup --prepare` of the base, then of
//! each increment in order, from `DP_BASE_BACKUP_NAME` and
//! `DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES`), a MariaDB is started on it and every row is compared
//! with the source's rows when the last Incremental was taken. ActionSets of Cairn's own,
//! modelled on KubeBlocks' `mysql-xtrabackup-inc-br` (tests/manifests/db/mariadb-incremental.yaml),
//! a Mount repository, real kubectl, localkube, control plane and agent processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_api::backup_repo::BackupRepo;
use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::mariadb::{self, Mariadb};
use cairn_e2e::db::{host, round_trip};
use cairn_e2e::manifests::render;
use cairn_e2e::stack::{self, TestStack};
use kube::api::Api;

const NS: &str = "ledger";
const CLUSTER: &str = "books";
const REPO: &str = "ledger-pvc-repo";
const POLICY: &str = "books-mariadb-chain-policy";
const SECRET: &str = "books-mariadb-account";
const USER: &str = "root";
const PASSWORD: &str = "maria-Chain-7c1d";
/// About 7 MiB of table.
const ROWS: u64 = 40_000;

/// Every row of `shop.orders`, by id, as the client prints it.
async fn rows(db: &Mariadb) -> anyhow::Result<BTreeMap<u64, String>> {
    let text = db
        .sql("SELECT id, customer, amount, IFNULL(note, '<null>') FROM shop.orders ORDER BY id")
        .await?;
    text.lines()
        .map(|line| {
            let (id, rest) = line
                .split_once('\t')
                .ok_or_else(|| anyhow::anyhow!("unexpected row {line:?}"))?;
            Ok((id.parse()?, rest.to_string()))
        })
        .collect()
}

/// The ids whose rows differ between `expected` and `actual` (at most `limit` of them).
fn differing(
    expected: &BTreeMap<u64, String>,
    actual: &BTreeMap<u64, String>,
    limit: usize,
) -> Vec<String> {
    let ids: std::collections::BTreeSet<u64> =
        expected.keys().chain(actual.keys()).copied().collect();
    ids.into_iter()
        .filter(|id| expected.get(id) != actual.get(id))
        .take(limit)
        .map(|id| {
            format!(
                "id {id}: expected {:?}, restored {:?}",
                expected.get(&id),
                actual.get(&id)
            )
        })
        .collect()
}

/// Inserts, updates and deletes between two backups (`round` 1, 2, ...), each touching rows
/// the previous rounds wrote.
async fn change(db: &Mariadb, round: u64) -> anyhow::Result<()> {
    let first_new = ROWS + (round - 1) * 2_000 + 1;
    let last_new = first_new + 1_999;
    db.sql(&format!(
        "USE shop;
         INSERT INTO shop.orders
           SELECT seq, CONCAT('round-{round}-', seq % 13), seq / 10, REPEAT(SHA1(seq), 2)
           FROM seq_{first_new}_to_{last_new};
         UPDATE shop.orders SET amount = amount + {round}, note = CONCAT('changed in round {round}')
           WHERE id % {modulo} = 0;
         DELETE FROM shop.orders WHERE id BETWEEN {round}00 AND {round}99 OR id = {previous};",
        modulo = 40 + round,
        previous = first_new - 7,
    ))
    .await?;
    Ok(())
}

async fn back_up(t: &TestStack, name: &str, method: &str) -> anyhow::Result<Backup> {
    let (backup, took) = round_trip::backup(
        t,
        NS,
        "db/backup-to-repo.yaml",
        &[
            ("BACKUP", name),
            ("POLICY", POLICY),
            ("METHOD", method),
            ("REPO", REPO),
        ],
    )
    .await?;
    println!(
        "backup {name} ({method}): {} bytes stored in {:.1} s",
        round_trip::stored_bytes(&backup),
        took.as_secs_f64()
    );
    Ok(backup)
}

/// `cairnctl restore create NAME --backup BACKUP --pvc PVC --wait` against the stack, as its own
/// process; its stdout.
async fn cairnctl_restore(
    t: &TestStack,
    name: &str,
    backup: &str,
    pvc: &str,
) -> anyhow::Result<String> {
    let cairnctl = t.stack.bin_dir.join("cairnctl");
    let out = tokio::process::Command::new(&cairnctl)
        .args([
            "restore", "create", name, "--backup", backup, "--pvc", pvc, "-n", NS,
        ])
        .args(["--wait", "--timeout", "300", "--kubeconfig"])
        .arg(&t.stack.kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "{} restore create failed ({}):\n{stdout}\n{}",
        cairnctl.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

fn links(backup: &Backup) -> (String, String) {
    let status = backup.status.clone().unwrap_or_default();
    (
        status.parent_backup_name.unwrap_or_default(),
        status.base_backup_name.unwrap_or_default(),
    )
}

/// The `xtrabackup_checkpoints` a backup stored beside its stream, as key = value pairs.
fn checkpoints(repo_root: &Path, backup: &Backup) -> anyhow::Result<BTreeMap<String, String>> {
    let status = backup.status.clone().unwrap_or_default();
    let name = backup.metadata.name.clone().unwrap_or_default();
    let file: PathBuf = repo_root
        .join(status.path.unwrap_or_default().trim_start_matches('/'))
        .join(format!("{name}.xtrabackup_checkpoints"));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("{} is not in the repository: {e}", file.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_full_and_two_incrementals_restore_every_row_of_the_last() -> anyhow::Result<()> {
    host::require(mariadb::TOOLS)?;
    stack::run("db-mariadb-incremental", async |t| {
        t.ensure_namespace(NS).await?;
        t.kubectl
            .apply(&render("db/pvc-provider.yaml", &[])?)
            .await?;
        t.kubectl
            .apply(&render(
                "db/mount-repo.yaml",
                &[("REPO", REPO), ("PROVIDER", "cairn-pvc")],
            )?)
            .await?;
        t.kubectl
            .apply(&render(
                "db/mariadb-incremental.yaml",
                &[("CLUSTER", CLUSTER), ("NS", NS), ("REPO", REPO)],
            )?)
            .await?;
        cairn_e2e::dp::repo_ready(&t.client, REPO, Duration::from_secs(120)).await?;
        deploy::account(t, NS, SECRET, USER, PASSWORD).await?;
        let source_pod = format!("{CLUSTER}-mariadb-0");
        let source = deploy::pod(
            t,
            &PodSpec {
                template: mariadb::TEMPLATE,
                namespace: NS,
                pod: &source_pod,
                pvc: &format!("data-{source_pod}"),
                instance: CLUSTER,
                component: "mariadb",
                secret: SECRET,
                new_volume: true,
            },
        )
        .await?;
        let db = Mariadb {
            port: source.port,
            user: USER.into(),
            password: PASSWORD.into(),
        };
        db.load(ROWS).await?;
        let at_full = rows(&db).await?;

        let full = back_up(t, "books-full", "mariadb-full").await?;
        anyhow::ensure!(
            links(&full) == (String::new(), String::new()),
            "a Full backup has no parent: {:?}",
            links(&full)
        );
        change(&db, 1).await?;
        let inc1 = back_up(t, "books-inc-1", "mariadb-inc").await?;
        anyhow::ensure!(
            links(&inc1) == ("books-full".into(), "books-full".into()),
            "books-inc-1 links to books-full: {:?}",
            links(&inc1)
        );
        change(&db, 2).await?;
        let inc2 = back_up(t, "books-inc-2", "mariadb-inc").await?;
        anyhow::ensure!(
            links(&inc2) == ("books-inc-1".into(), "books-full".into()),
            "books-inc-2 links to books-inc-1 on base books-full: {:?}",
            links(&inc2)
        );
        let expected = rows(&db).await?;
        let expected_fingerprint = db.fingerprint().await?;
        anyhow::ensure!(
            !differing(&at_full, &expected, 1).is_empty(),
            "the rounds changed the table"
        );
        // After the last backup: must not come back.
        db.write_after_backup().await?;

        // Each increment really is one: taken from its parent's checkpoint LSN.
        let repo: BackupRepo = Api::all(t.client.clone()).get(REPO).await?;
        let claim = repo
            .status
            .and_then(|s| s.backup_pvc_name)
            .ok_or_else(|| anyhow::anyhow!("the Mount repository names no backupPVCName"))?;
        let repo_root = cairn_e2e::dp::pvc_dir(&t.client, NS, &claim).await?;
        let lsns = [&full, &inc1, &inc2]
            .map(|b| checkpoints(&repo_root, b))
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            lsns[0].get("backup_type").map(String::as_str) == Some("full-backuped"),
            "the Full's checkpoints: {:?}",
            lsns[0]
        );
        for (parent, child) in lsns.iter().zip(&lsns[1..]) {
            anyhow::ensure!(
                child.get("backup_type").map(String::as_str) == Some("incremental")
                    && child.get("from_lsn") == parent.get("to_lsn"),
                "an increment starts at its parent's to_lsn: parent {parent:?}, child {child:?}"
            );
        }

        // `cairnctl restore create` says what it will replay before it creates the Restore.
        let restored_pvc = format!("{CLUSTER}-restored-data");
        let started = std::time::Instant::now();
        let said = cairnctl_restore(t, "books-inc-2-restore", "books-inc-2", &restored_pvc).await?;
        println!(
            "restore of books-inc-2 (base + 2 increments): {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let replay = said
            .lines()
            .position(|l| {
                l.starts_with("restoring books-inc-2 replays 3 backups, oldest first: books-full (Completed, ")
                    && l.contains(") -> books-inc-1 (Completed, ")
                    && l.contains(") -> books-inc-2 (Completed, ")
            })
            .ok_or_else(|| anyhow::anyhow!("cairnctl did not say what it replays:\n{said}"))?;
        let done = said
            .lines()
            .position(|l| l.contains("books-inc-2-restore"))
            .ok_or_else(|| anyhow::anyhow!("cairnctl did not report the Restore:\n{said}"))?;
        anyhow::ensure!(replay < done, "the replay is said first:\n{said}");
        let restored_instance = format!("{CLUSTER}-restored");
        let restored = deploy::pod(
            t,
            &PodSpec {
                template: mariadb::TEMPLATE,
                namespace: NS,
                pod: &format!("{restored_instance}-0"),
                pvc: &restored_pvc,
                instance: &restored_instance,
                component: "mariadb",
                secret: SECRET,
                new_volume: false,
            },
        )
        .await?;
        let copy = Mariadb {
            port: restored.port,
            ..db.clone()
        };
        let actual = rows(&copy).await?;
        let differences = differing(&expected, &actual, 20);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored table differs from the source at books-inc-2 ({} rows expected, {} restored):\n{}",
            expected.len(),
            actual.len(),
            differences.join("\n")
        );
        anyhow::ensure!(
            copy.fingerprint().await? == expected_fingerprint,
            "the restored table's CHECKSUM TABLE is the source's at books-inc-2"
        );
        Ok(())
    })
    .await
}
