//! KubeBlocks' own PostgreSQL ActionSet scripts, unchanged, run through bash the way a job
//! action runs them: `datasafed` on PATH in agent-socket mode, with only the socket and the
//! token in its environment, against the node agent's real storage socket serving an S3
//! repository (SeaweedFS) with encryption. The script's environment holds no storage
//! configuration, credential or passphrase; the agent holds them all.
//!
//! Reads the manifests from `$CAIRN_KUBEBLOCKS_FIXTURES` and skips when it is unset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_agent::socket::{Grants, SocketServer};
use cairn_proto::agent::v1::StorageGrant;
use cairn_repo::testing::SeaweedFs;
use tokio::sync::oneshot;

const ACTIONSETS: &[&str] = &[
    "addons-0.9_vanilla-postgresql_actionset-pgbasebackup_vanilla-pg-basebackup.yaml",
    "addons-0.9_postgresql_actionset-pgbasebackup_postgres-basebackup.yaml",
];
const BACKUP_PATH: &str = "/default/mycluster-3f2a/postgresql/mycluster-pg-20261122";
const ROOT_PATH: &str = "/default/mycluster-3f2a/postgresql";

fn fixtures() -> Option<PathBuf> {
    match std::env::var_os("CAIRN_KUBEBLOCKS_FIXTURES") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!("skipping: CAIRN_KUBEBLOCKS_FIXTURES is not set");
            None
        }
    }
}

/// `spec.backup.backupData.command[2]` and `spec.restore.prepareData.command[2]`.
fn scripts(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("read actionset");
    let value: serde_json::Value = serde_saphyr::from_str(&text).expect("parse actionset");
    let script = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{pointer} missing in {}", path.display()))
            .to_string()
    };
    (
        script("/spec/backup/backupData/command/2"),
        script("/spec/restore/prepareData/command/2"),
    )
}

/// `psql` answers the start time query; `pg_basebackup` tars the "database" directory.
fn stubs(dir: &Path, database: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, body) in [
        (
            "psql",
            "#!/bin/sh\necho ' 2026-11-22 10:00:00.123456'\n".to_string(),
        ),
        (
            "pg_basebackup",
            format!(
                "#!/bin/sh\ncat >/dev/null\nexec tar -cf - -C '{}' .\n",
                database.display()
            ),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write stub");
        Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
    }
}

fn make_database(dir: &Path) {
    std::fs::create_dir_all(dir.join("base/1")).expect("mkdir");
    let pages: Vec<u8> = (0..40 * 8192u32)
        .map(|i| (i % 8192 / 97) as u8 ^ (i / 8192) as u8)
        .collect();
    std::fs::write(dir.join("base/1/2619"), pages).expect("write");
    std::fs::write(dir.join("PG_VERSION"), "14\n").expect("write");
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("prefix");
                out.insert(
                    relative.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("read"),
                );
            }
        }
    }
    out
}

#[test]
fn postgres_actionsets_run_unchanged_through_the_agent_socket_on_encrypted_s3() {
    let Some(fixtures) = fixtures() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let socket_dir = tempfile::tempdir().expect("tempdir");
    let grants = Grants::new();
    let server = runtime
        .block_on(async { SocketServer::bind(socket_dir.path()) })
        .expect("bind");
    let socket = server.path().to_path_buf();
    let (stop, stopped) = oneshot::channel::<()>();
    runtime.spawn(server.run(grants.clone(), async {
        let _ = stopped.await;
    }));
    let datasafed_dir = PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    for (n, file) in ACTIONSETS.iter().enumerate() {
        let datasafed_config = SeaweedFs::shared().fresh_datasafed_config("socket-actionsets");
        let grant = StorageGrant {
            repo_name: "s3-repo".into(),
            datasafed_config: datasafed_config.clone(),
            read_write_prefix: BACKUP_PATH.into(),
            read_only_prefixes: vec![ROOT_PATH.into()],
            encryption_algorithm: "AES-256-CFB".into(),
            encryption_passphrase: "kb-pass".into(),
            ..Default::default()
        };
        let action = format!("backup-{n}");
        let token = grants.issue(&action, &grant).expect("issue");
        let (backup, restore) = scripts(&fixtures.join(file));
        let work = tempfile::tempdir().expect("tempdir");
        let database = work.path().join("db");
        make_database(&database);
        stubs(&work.path().join("bin"), &database);
        let data_dir = work.path().join("restored");
        let info = work.path().join("backup.info");
        let env: Vec<(&str, String)> = vec![
            (
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    work.path().join("bin").display()
                ),
            ),
            ("HOME", work.path().display().to_string()),
            ("DP_DATASAFED_BIN_PATH", datasafed_dir.display().to_string()),
            ("DP_BACKUP_NAME", "mycluster-pg-20261122".into()),
            ("DP_BACKUP_BASE_PATH", BACKUP_PATH.into()),
            ("DP_BACKUP_INFO_FILE", info.display().to_string()),
            ("DP_DB_USER", "postgres".into()),
            ("DP_DB_PASSWORD", "pw".into()),
            ("DP_DB_HOST", "127.0.0.1".into()),
            ("DATA_DIR", data_dir.display().to_string()),
            ("CAIRN_STORAGE_SOCKET", socket.display().to_string()),
            ("CAIRN_STORAGE_TOKEN", token.expose().to_string()),
        ];
        let secret = datasafed_config
            .lines()
            .find_map(|line| line.strip_prefix("secret_access_key = "))
            .expect("the S3 config has a secret key")
            .trim()
            .to_string();
        for (name, value) in &env {
            assert!(
                !value.contains(&secret) && !value.contains("kb-pass"),
                "{name} carries a storage secret"
            );
        }
        let run = |script: &str| {
            let out = Command::new("bash")
                .arg("-c")
                .arg(script)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .expect("bash");
            assert!(
                out.status.success(),
                "{file} script failed:\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&backup);
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&info).expect("backup.info"))
                .expect("json");
        let total: u64 = info["totalSize"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("totalSize");
        assert!(total > 0, "{info}");
        assert_eq!(info["timeRange"]["start"], "2026-11-22T10:00:00Z");
        assert!(
            grants.bytes(&action) > 0,
            "the agent counted the backup's bytes"
        );
        run(&restore);
        let mut restored = tree(&data_dir);
        restored.remove("kb-restore.signal");
        assert!(
            restored == tree(&database),
            "{file}: restored data differs from the source"
        );
        grants.revoke(&token);
    }
    let _ = stop.send(());
}
