//! KubeBlocks' own PostgreSQL ActionSet scripts, unchanged, run through bash with our
//! `datasafed` on PATH (psql and pg_basebackup are stubs that serve a directory as the
//! database): the backup writes `backup.info` with the totalSize from `datasafed stat`, the
//! restore finds the file with `datasafed list` and unpacks `datasafed pull -d` output.
//!
//! Reads the manifests from `$CAIRN_KUBEBLOCKS_FIXTURES` and skips when it is unset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_repo::testing::SeaweedFs;

const ACTIONSETS: &[&str] = &[
    "addons-0.9_vanilla-postgresql_actionset-pgbasebackup_vanilla-pg-basebackup.yaml",
    "addons-0.9_postgresql_actionset-pgbasebackup_postgres-basebackup.yaml",
];

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

fn stubs(dir: &Path, src: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let write = |name: &str, body: String| {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write stub");
        Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
    };
    write(
        "psql",
        "#!/bin/sh\necho ' 2026-11-22 10:00:00.123456'\n".to_string(),
    );
    write(
        "pg_basebackup",
        format!(
            "#!/bin/sh\ncat >/dev/null\nexec tar -cf - -C '{}' .\n",
            src.display()
        ),
    );
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
                let rel = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn run_actionset(file: &str, storage_env: &[(&str, String)]) {
    let Some(dir) = fixtures() else { return };
    let (backup, restore) = scripts(&dir.join(file));
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("db");
    make_database(&src);
    stubs(&work.path().join("bin"), &src);
    let datasafed_dir = PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let data_dir = work.path().join("restored");
    let info = work.path().join("backup.info");
    let mut env: Vec<(&str, String)> = vec![
        (
            "PATH",
            format!(
                "{}:{}",
                work.path().join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("DP_DATASAFED_BIN_PATH", datasafed_dir.display().to_string()),
        ("DP_BACKUP_NAME", "mycluster-pg-20261122".into()),
        (
            "DP_BACKUP_BASE_PATH",
            "/default/mycluster-3f2a/postgresql/mycluster-pg-20261122".into(),
        ),
        ("DP_BACKUP_INFO_FILE", info.display().to_string()),
        ("DP_DB_USER", "postgres".into()),
        ("DP_DB_PASSWORD", "pw".into()),
        ("DP_DB_HOST", "127.0.0.1".into()),
        ("DATA_DIR", data_dir.display().to_string()),
    ];
    env.extend(storage_env.iter().cloned());
    let run = |script: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HOME", work.path())
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
        serde_json::from_str(&std::fs::read_to_string(&info).expect("backup.info")).expect("json");
    let total: u64 = info["totalSize"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("totalSize");
    assert!(total > 0, "{info}");
    assert_eq!(info["timeRange"]["start"], "2026-11-22T10:00:00Z");
    run(&restore);
    let mut restored = tree(&data_dir);
    restored.remove("kb-restore.signal");
    assert!(
        restored == tree(&src),
        "{file}: restored data differs from the source"
    );
}

#[test]
fn postgres_actionsets_run_unchanged_on_a_local_mount_repository() {
    for file in ACTIONSETS {
        let repo = tempfile::tempdir().expect("tempdir");
        run_actionset(
            file,
            &[(
                "DATASAFED_LOCAL_BACKEND_PATH",
                repo.path().display().to_string(),
            )],
        );
    }
}

#[test]
fn postgres_actionsets_run_unchanged_on_a_deduplicating_repository() {
    for file in ACTIONSETS {
        let repo = tempfile::tempdir().expect("tempdir");
        run_actionset(
            file,
            &[
                (
                    "DATASAFED_LOCAL_BACKEND_PATH",
                    repo.path().display().to_string(),
                ),
                ("DATASAFED_KOPIA_REPO_ROOT", "/default/kopia".into()),
                ("DATASAFED_KOPIA_PASSWORD", "kopia-pass".into()),
            ],
        );
    }
}

#[test]
fn postgres_actionsets_run_unchanged_on_s3_with_encryption() {
    if fixtures().is_none() {
        return;
    }
    for file in ACTIONSETS {
        let conf = tempfile::tempdir().expect("tempdir");
        let path = conf.path().join("datasafed.conf");
        std::fs::write(
            &path,
            SeaweedFs::shared().fresh_datasafed_config("actionsets"),
        )
        .expect("write");
        // The Tool access method mounts the config at /etc/datasafed; a wrapper passes -c.
        let bin = conf.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let wrapper = bin.join("datasafed");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec '{}' -c '{}' \"$@\"\n",
                env!("CARGO_BIN_EXE_datasafed"),
                path.display()
            ),
        )
        .expect("wrapper");
        Command::new("chmod")
            .arg("+x")
            .arg(&wrapper)
            .status()
            .expect("chmod");
        run_actionset(
            file,
            &[
                ("DP_DATASAFED_BIN_PATH", bin.display().to_string()),
                ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB".into()),
                ("DATASAFED_ENCRYPTION_PASS_PHRASE", "kb-pass".into()),
            ],
        );
    }
}
