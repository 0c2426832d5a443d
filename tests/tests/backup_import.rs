//! `cairnctl backup import` into a fresh standalone stack: a repository laid out as KubeBlocks
//! lays it out (ARCHITECTURE.md §K2.7: `/<namespace>/<cluster>-<uid>/<component>/<backup>/<target>`,
//! the data and `kubeblocks-backup.json` side by side) holds a plain backup written with Cairn's
//! `datasafed` in direct mode, a backup encrypted as KubeBlocks' datasafed encrypts (AES-256-CFB,
//! made with the `openssl` CLI), and a damaged manifest. The import is a dry run first, names
//! each manifest it cannot import and why, creates Completed Backups with `--apply`, creates
//! nothing the second time, and both imported backups restore byte for byte. Real cairnctl,
//! datasafed, kubectl, localkube, control plane and agent, each its own process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cairn_api::backup::{Backup, BackupDeletionPolicy, BackupPhase};
use cairn_cli::standalone::default_bin_dir;
use cairn_e2e::manifests::render;
use cairn_e2e::{TestStack, dp, files, run};
use kube::api::Api;
use serde_json::json;

const NS: &str = "imported";
const OLD_NS: &str = "prod";
const WAIT: Duration = Duration::from_secs(120);
const PASSPHRASE: &str = "kubeblocks-passphrase";

/// Where KubeBlocks puts backup `name`'s files (status.path), and its target's directory.
fn kubeblocks_path(name: &str) -> String {
    format!("/{OLD_NS}/pg-cluster-6a0f3b2c/postgresql/{name}")
}

/// The Backup object KubeBlocks' manifest sidecar pushes beside the data: the Completed Backup
/// of the old cluster, with its uid, finalizer, repository and retention.
fn manifest(name: &str, encrypted: bool) -> serde_json::Value {
    let mut status = json!({
        "phase": "Completed", "formatVersion": "0.1.0",
        "path": kubeblocks_path(name), "backupRepoName": "s3-old-cluster",
        "startTimestamp": "2026-11-30T01:00:00Z", "completionTimestamp": "2026-11-30T01:00:12Z",
        "expiration": "2026-12-01T01:00:12Z",
        "duration": "12s", "totalSize": "4242",
        "timeRange": {"start": "2026-11-30T01:00:01Z", "end": "2026-11-30T01:00:11Z", "timeZone": "+00:00"},
        "target": {"name": "main", "serviceAccountName": "kb-pg-cluster",
                   "podSelector": {"matchLabels": {"app": "pg-cluster"}, "strategy": "Any"},
                   "selectedTargetPods": ["pg-cluster-postgresql-0"]},
        "backupMethod": {"name": "files", "actionSetName": "files-full", "snapshotVolumes": false,
                         "targetVolumes": {"volumes": ["data"],
                                           "volumeMounts": [{"name": "data", "mountPath": "/data"}]}},
        "actions": [{"name": "backupData-0", "phase": "Completed", "actionType": "Job",
                     "targetPodName": "pg-cluster-postgresql-0", "totalSize": "4242"}]
    });
    if encrypted {
        status["encryptionConfig"] = json!({"algorithm": "AES-256-CFB",
            "passPhraseSecretKeyRef": {"name": "kb-encryption", "key": "passphrase"}});
    }
    json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {
            "name": name, "namespace": OLD_NS, "uid": "0d4c1e2a-5b6f-4f3e-9a8b-7c6d5e4f3a2b",
            "resourceVersion": "884422", "generation": 1,
            "creationTimestamp": "2026-11-30T01:00:00Z",
            "finalizers": ["dataprotection.kubeblocks.io/finalizer"],
            "labels": {"app.kubernetes.io/instance": "pg-cluster",
                       "dataprotection.kubeblocks.io/backup-policy": "pg-cluster-postgresql-backup-policy",
                       "dataprotection.kubeblocks.io/backup-repo-name": "s3-old-cluster",
                       "dataprotection.kubeblocks.io/backup-type": "Full"}
        },
        "spec": {"backupPolicyName": "pg-cluster-postgresql-backup-policy", "backupMethod": "files",
                 "deletionPolicy": "Delete", "retentionPeriod": "1d"},
        "status": status
    })
}

fn bin(name: &str) -> anyhow::Result<PathBuf> {
    Ok(default_bin_dir()?.join(name))
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Runs Cairn's `datasafed` in direct mode on the local repository `root`, under `base`.
fn datasafed(root: &Path, base: &str, args: &[&str], stdin: &[u8]) -> anyhow::Result<Vec<u8>> {
    let conf = root.with_extension("datasafed.conf");
    std::fs::write(
        &conf,
        format!("[storage]\ntype = local\nroot = {}\n", root.display()),
    )?;
    let mut child = Command::new(bin("datasafed")?)
        .arg("-c")
        .arg(&conf)
        .args(args)
        .env("DATASAFED_BACKEND_BASE_PATH", base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    check(&out, &format!("datasafed {}", args.join(" ")))?;
    Ok(out.stdout)
}

/// `tar -cf - -C dir .`
fn tar(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(dir)
        .arg(".")
        .output()?;
    check(&out, "tar")?;
    Ok(out.stdout)
}

/// A file as KubeBlocks' datasafed encrypts it (FORMAT.md §3.3.1), made with the `openssl` CLI:
/// key = HKDF-SHA256(passphrase, salt "encryption"), 32 bytes; AES-256-CFB128; the IV in front.
fn kubeblocks_cfb(plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let kdf = Command::new("openssl")
        .args([
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
        ])
        .arg(format!("key:{PASSPHRASE}"))
        .args(["-kdfopt", "salt:encryption", "HKDF"])
        .output()?;
    check(&kdf, "openssl kdf")?;
    let key = String::from_utf8_lossy(&kdf.stdout)
        .trim()
        .replace(':', "")
        .to_ascii_lowercase();
    let iv = [0x5au8; 16];
    let iv_hex: String = iv.iter().map(|b| format!("{b:02x}")).collect();
    let input = std::env::temp_dir().join(format!("cairn-import-cfb-{}", std::process::id()));
    std::fs::write(&input, plain)?;
    let enc = Command::new("openssl")
        .args([
            "enc",
            "-aes-256-cfb",
            "-nosalt",
            "-K",
            &key,
            "-iv",
            &iv_hex,
            "-in",
        ])
        .arg(&input)
        .output()?;
    let _ = std::fs::remove_file(&input);
    check(&enc, "openssl enc")?;
    let mut object = iv.to_vec();
    object.extend_from_slice(&enc.stdout);
    Ok(object)
}

/// `cairnctl backup import ARGS -n NS` against the stack.
fn import(stack: &TestStack, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new(bin("cairnctl")?)
        .args([
            "backup",
            "import",
            "--repo",
            "local",
            "-n",
            NS,
            "--kubeconfig",
        ])
        .arg(&stack.stack.kubeconfig)
        .args(args)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

fn line_of<'a>(text: &'a str, needle: &str) -> anyhow::Result<&'a str> {
    text.lines()
        .find(|l| l.contains(needle))
        .ok_or_else(|| anyhow::anyhow!("no line with {needle:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeblocks_backups_are_imported_into_a_fresh_stack_and_restore() -> anyhow::Result<()> {
    run("backup-import", async |stack| {
        // The data both old backups hold.
        let source = stack.scratch.join("source");
        std::fs::create_dir_all(source.join("sub"))?;
        std::fs::write(source.join("a.txt"), b"the first file\n")?;
        std::fs::write(
            source.join("sub/random.bin"),
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<_>>(),
        )?;
        let archive = tar(&source)?;

        // The repository of the old cluster, in the new stack's `local` BackupRepo.
        let repo = stack.local_repo();
        std::fs::create_dir_all(&repo)?;
        // 1. Plain: data and manifest pushed by datasafed in KubeBlocks' paths.
        let plain_base = format!("{}/main", kubeblocks_path("pg-full-plain"));
        datasafed(
            &repo,
            &plain_base,
            &["push", "-z", "zstd-fastest", "-", "/pg-full-plain.tar.zst"],
            &archive,
        )?;
        let text = serde_json::to_vec_pretty(&manifest("pg-full-plain", false))?;
        datasafed(
            &repo,
            &plain_base,
            &["push", "-", "/kubeblocks-backup.json"],
            &text,
        )?;
        // 2. Encrypted by KubeBlocks' datasafed: `P.enc` files in AES-256-CFB.
        let scratch_repo = stack.scratch.join("compress");
        std::fs::create_dir_all(&scratch_repo)?;
        datasafed(
            &scratch_repo,
            "/",
            &["push", "-z", "zstd-fastest", "-", "/x.tar.zst"],
            &archive,
        )?;
        let compressed = std::fs::read(scratch_repo.join("x.tar.zst"))?;
        let enc_dir = repo
            .join(kubeblocks_path("pg-full-cfb").trim_start_matches('/'))
            .join("main");
        std::fs::create_dir_all(&enc_dir)?;
        std::fs::write(
            enc_dir.join("pg-full-cfb.tar.zst.enc"),
            kubeblocks_cfb(&compressed)?,
        )?;
        let text = serde_json::to_vec_pretty(&manifest("pg-full-cfb", true))?;
        std::fs::write(
            enc_dir.join("kubeblocks-backup.json.enc"),
            kubeblocks_cfb(&text)?,
        )?;
        // 3. A damaged manifest.
        let broken_base = format!("{}/main", kubeblocks_path("pg-broken"));
        datasafed(
            &repo,
            &broken_base,
            &["push", "-", "/kubeblocks-backup.json"],
            b"{\"kind\": \"Backup\", ",
        )?;

        stack.ensure_namespace(NS).await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-files.yaml",
                &[("ACTIONSET", "files-full"), ("BEFORE_PUSH", "true")],
            )?)
            .await?;
        stack
            .kubectl
            .run(&[
                "create",
                "secret",
                "generic",
                "kb-encryption",
                "-n",
                NS,
                &format!("--from-literal=passphrase={PASSPHRASE}"),
            ])
            .await?;
        let backups: Api<Backup> = Api::namespaced(stack.client.clone(), NS);

        // Dry run without the passphrase: the encrypted and the damaged manifests are named with
        // why; nothing is created.
        let (ok, text) = import(stack, &[])?;
        anyhow::ensure!(!ok, "errors make the exit code non-zero:\n{text}");
        anyhow::ensure!(
            line_of(&text, "pg-full-plain")?.contains("would import"),
            "{text}"
        );
        let cfb = line_of(&text, "kubeblocks-backup.json.enc")?;
        anyhow::ensure!(
            cfb.contains("is encrypted") && cfb.contains("--passphrase-secret"),
            "{text}"
        );
        let broken = line_of(&text, "pg-broken")?;
        anyhow::ensure!(broken.contains("is not JSON"), "{text}");
        anyhow::ensure!(text.contains("pass --apply"), "{text}");
        anyhow::ensure!(
            backups.list(&Default::default()).await?.items.is_empty(),
            "a dry run creates nothing"
        );

        // Applied, with the passphrase: both good ones imported, the damaged one still named.
        let key = [
            "--passphrase-secret",
            "kb-encryption/passphrase",
            "--encryption-algorithm",
            "AES-256-CFB",
        ];
        let (ok, text) = import(stack, &[&key[..], &["--apply"]].concat())?;
        anyhow::ensure!(!ok, "the damaged manifest still fails the run:\n{text}");
        for name in ["pg-full-plain", "pg-full-cfb"] {
            anyhow::ensure!(
                line_of(&text, name)?.contains("imported"),
                "{name}:\n{text}"
            );
        }
        anyhow::ensure!(
            line_of(&text, "pg-broken")?.contains("is not JSON"),
            "{text}"
        );

        // Once the damaged manifest is gone, a second run creates nothing and succeeds.
        std::fs::remove_dir_all(repo.join(kubeblocks_path("pg-broken").trim_start_matches('/')))?;
        let before: Vec<_> = backups.list(&Default::default()).await?.items;
        let (ok, text) = import(stack, &[&key[..], &["--apply"]].concat())?;
        anyhow::ensure!(ok, "{text}");
        for name in ["pg-full-plain", "pg-full-cfb"] {
            anyhow::ensure!(line_of(&text, name)?.contains("exists"), "{name}:\n{text}");
        }
        let after: Vec<_> = backups.list(&Default::default()).await?.items;
        let versions = |list: &[Backup]| {
            list.iter()
                .map(|b| (b.metadata.name.clone(), b.metadata.resource_version.clone()))
                .collect::<Vec<_>>()
        };
        anyhow::ensure!(
            versions(&before) == versions(&after),
            "the second run changed nothing"
        );

        for name in ["pg-full-plain", "pg-full-cfb"] {
            let backup = backups.get(name).await?;
            let status = backup.status.clone().unwrap_or_default();
            anyhow::ensure!(
                status.phase == Some(BackupPhase::Completed),
                "{name}: {status:?}"
            );
            anyhow::ensure!(
                status.backup_repo_name.as_deref() == Some("local"),
                "{name}: {status:?}"
            );
            anyhow::ensure!(
                status.path == Some(kubeblocks_path(name)),
                "{name}: {status:?}"
            );
            anyhow::ensure!(status.expiration.is_none(), "{name}: no expiration");
            anyhow::ensure!(
                backup.spec.deletion_policy == Some(BackupDeletionPolicy::Retain),
                "{name}: imported data is retained"
            );

            // Restored byte for byte.
            let restore = format!("restore-{name}");
            let pvc = format!("data-{name}");
            stack
                .kubectl
                .apply(&render(
                    "restore.yaml",
                    &[
                        ("RESTORE", &restore),
                        ("NS", NS),
                        ("BACKUP", name),
                        ("RESTORED_PVC", &pvc),
                    ],
                )?)
                .await?;
            dp::restore_completed(&stack.client, NS, &restore, WAIT).await?;
            let restored = dp::pvc_dir(&stack.client, NS, &pvc).await?;
            let differences = files::differences(&files::tree(&source)?, &files::tree(&restored)?);
            anyhow::ensure!(
                differences.is_empty(),
                "{name}: the restored PVC differs from the data:\n{}",
                differences.join("\n")
            );
        }
        Ok(())
    })
    .await
}
