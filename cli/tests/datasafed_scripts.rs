//! The `datasafed` calls KubeBlocks action scripts make (push `-z zstd-fastest` from stdin,
//! `stat | grep TotalSize | awk`, the `list` equality check, `pull -d` to stdout, the deletion
//! job's `rm -r` + `list`/`rmdir` walk), run through bash against a local Mount repository
//! and a real S3 server, plain and encrypted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_repo::testing::SeaweedFs;

fn datasafed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn bash(script: &str, env: &BTreeMap<&str, String>) -> Output {
    let path = format!(
        "{}:{}",
        datasafed_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).env("PATH", path);
    for name in [
        "DATASAFED_LOCAL_BACKEND_PATH",
        "DATASAFED_BACKEND_BASE_PATH",
        "DATASAFED_ENCRYPTION_ALGORITHM",
        "DATASAFED_ENCRYPTION_PASS_PHRASE",
        "DATASAFED_KOPIA_REPO_ROOT",
        "DATASAFED_KOPIA_PASSWORD",
    ] {
        command.env_remove(name);
    }
    command.envs(env);
    command.output().expect("bash runs")
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A small "data directory": a page-structured table, a random-ish file, small files.
fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("base/16384")).expect("mkdir");
    let table: Vec<u8> = (0..64 * 8192u32)
        .map(|i| ((i / 8192) as u8) ^ (i as u8 & 0x0f))
        .collect();
    std::fs::write(dir.join("base/16384/1259"), table).expect("write");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.join("base/16384/noise"), noise).expect("write");
    std::fs::write(dir.join("PG_VERSION"), "16\n").expect("write");
    std::fs::write(dir.join("postgresql.auto.conf"), "# auto\n").expect("write");
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir") {
            let entry = entry.expect("entry");
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

const BACKUP_SCRIPT: &str = r#"
set -e
set -o pipefail
export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
tar -cf - -C "$SRC" . | datasafed push -z zstd-fastest - "/${DP_BACKUP_NAME}.tar.zst"
echo '{"metadata":{"name":"b1"}}' | datasafed push - /kubeblocks-backup.json
TOTAL_SIZE=$(datasafed stat / | grep TotalSize | awk '{print $2}')
[ "$TOTAL_SIZE" -gt 0 ]
echo "{\"totalSize\":\"$TOTAL_SIZE\"}" > "$OUT/backup.info"
"#;

const RESTORE_SCRIPT: &str = r#"
set -e
set -o pipefail
export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
function remote_file_exists() {
    out=$(datasafed list "$1")
    if [ "${out}" == "$1" ]; then echo "true"; return; fi
    echo "false"
}
[ "$(remote_file_exists "${DP_BACKUP_NAME}.tar.gz")" == "false" ]
if [ "$(remote_file_exists "${DP_BACKUP_NAME}.tar.zst")" == "true" ]; then
  mkdir -p "$DATA_DIR"
  datasafed pull -d zstd-fastest "${DP_BACKUP_NAME}.tar.zst" - | tar -xf - -C "${DATA_DIR}/"
  exit 0
fi
echo "backup file not found" >&2
exit 1
"#;

const DELETE_SCRIPT: &str = r#"
set -e
datasafed rm -r "$DP_BACKUP_BASE_PATH"
dir=$(dirname "$DP_BACKUP_BASE_PATH")
while [ "$dir" != "/" ]; do
  if [ -z "$(datasafed list "$dir")" ]; then
    datasafed rmdir "$dir"
    dir=$(dirname "$dir")
  else
    break
  fi
done
"#;

/// Runs backup, restore and deletion; returns the `totalSize` the backup reported.
fn backup_restore_delete(env: &mut BTreeMap<&'static str, String>) -> u64 {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    make_source(&src);
    env.insert("SRC", src.display().to_string());
    env.insert("OUT", work.path().display().to_string());
    env.insert(
        "DATA_DIR",
        work.path().join("restored").display().to_string(),
    );
    env.insert("DP_BACKUP_NAME", "mycluster-backup-1".into());
    env.insert(
        "DP_BACKUP_BASE_PATH",
        "/default/mycluster-3f2a/postgresql/mycluster-backup-1".into(),
    );

    assert_ok(&bash(BACKUP_SCRIPT, env), "backup script");
    let info = std::fs::read_to_string(work.path().join("backup.info")).expect("info");
    let total: u64 = info
        .trim()
        .trim_start_matches("{\"totalSize\":\"")
        .trim_end_matches("\"}")
        .parse()
        .expect("totalSize is a number");

    assert_ok(&bash(RESTORE_SCRIPT, env), "restore script");
    assert!(
        files_of(&src) == files_of(&work.path().join("restored")),
        "restored tree differs"
    );

    assert_ok(&bash(DELETE_SCRIPT, env), "deletion script");
    let left = bash("datasafed list -r /", env);
    assert_ok(&left, "list after delete");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout),
        "",
        "repository is empty after deletion"
    );
    total
}

#[test]
fn kubeblocks_script_calls_work_on_a_local_mount_repository() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    let total = backup_restore_delete(&mut env);
    assert!(total > 1000, "totalSize {total}");
    let remaining: Vec<_> = std::fs::read_dir(repo.path()).expect("read").collect();
    assert!(
        remaining.is_empty(),
        "empty parent directories were removed: {remaining:?}"
    );
}

#[test]
fn kubeblocks_script_calls_work_with_encryption_env() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    env.insert("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB".into());
    env.insert("DATASAFED_ENCRYPTION_PASS_PHRASE", "kb-secret".into());
    backup_restore_delete(&mut env);
}

#[test]
fn kubeblocks_script_calls_work_on_s3_with_a_datasafed_config_file() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("datasafed.conf");
    std::fs::write(
        &config,
        SeaweedFs::shared().fresh_datasafed_config("scripts"),
    )
    .expect("write config");
    let mut env = BTreeMap::new();
    // What the config Secret mount provides at /etc/datasafed; here through -c via an alias.
    env.insert("BASH_ENV", {
        let rc = config_dir.path().join("rc");
        std::fs::write(
            &rc,
            format!(
                "datasafed() {{ command datasafed -c {} \"$@\"; }}\n",
                config.display()
            ),
        )
        .expect("rc");
        rc.display().to_string()
    });
    backup_restore_delete(&mut env);
}

#[test]
fn kubeblocks_script_calls_work_on_a_deduplicating_repository() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    env.insert("DATASAFED_KOPIA_REPO_ROOT", "/kb-repo/default/kopia".into());
    env.insert("DATASAFED_KOPIA_PASSWORD", "kopia-pw".into());
    env.insert("DATASAFED_KOPIA_MAINTENANCE", "true".into());
    backup_restore_delete(&mut env);
    assert!(
        repo.path().join("kb-repo/default/kopia/config").is_file(),
        "the repository was created on first use"
    );
    assert!(
        std::fs::read_dir(repo.path().join("kb-repo/default/kopia/snapshots"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "rm -r forgot the snapshots"
    );
}

#[test]
fn kubeblocks_script_calls_work_on_a_deduplicating_repository_on_s3() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("datasafed.conf");
    std::fs::write(
        &config,
        SeaweedFs::shared().fresh_datasafed_config("dedup-scripts"),
    )
    .expect("write config");
    let mut env = BTreeMap::new();
    env.insert("BASH_ENV", {
        let rc = config_dir.path().join("rc");
        std::fs::write(
            &rc,
            format!(
                "datasafed() {{ command datasafed -c {} \"$@\"; }}\n",
                config.display()
            ),
        )
        .expect("rc");
        rc.display().to_string()
    });
    env.insert("DATASAFED_KOPIA_REPO_ROOT", "/kopia".into());
    env.insert("DATASAFED_KOPIA_PASSWORD", "kopia-pw".into());
    backup_restore_delete(&mut env);
}

#[test]
fn dedup_pull_without_decompress_returns_the_compressed_stream_that_was_pushed() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    env.insert("DATASAFED_KOPIA_REPO_ROOT", "/kopia".into());
    env.insert("DATASAFED_KOPIA_PASSWORD", "pw".into());
    let script = r#"
set -e -o pipefail
seq 1 200000 | datasafed push -z zstd-fastest - /x.zst
[ "$(datasafed pull x.zst - | zstd -d | tail -1)" == "200000" ]
[ "$(datasafed pull -d zstd-fastest x.zst - | tail -1)" == "200000" ]
datasafed stat / | grep -q 'Files: 1'
"#;
    assert_ok(&bash(script, &env), "dedup pull");
    let wrong = bash("DATASAFED_KOPIA_PASSWORD=nope datasafed list /", &env);
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong password"),
        "{wrong:?}"
    );
}

#[test]
fn encrypted_files_are_unreadable_without_the_passphrase() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    env.insert("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB".into());
    env.insert("DATASAFED_ENCRYPTION_PASS_PHRASE", "right".into());
    assert_ok(&bash("echo hello | datasafed push - x.txt", &env), "push");
    let stored = std::fs::read(repo.path().join("x.txt")).expect("stored");
    assert!(stored.starts_with(b"CAIRNSE1"), "stored bytes are sealed");
    env.insert("DATASAFED_ENCRYPTION_PASS_PHRASE", "wrong".into());
    let out = bash("datasafed pull x.txt -", &env);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{out:?}"
    );
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let repo = tempfile::tempdir().expect("tempdir");
    let mut env = BTreeMap::new();
    env.insert(
        "DATASAFED_LOCAL_BACKEND_PATH",
        repo.path().display().to_string(),
    );
    let cases = [
        ("datasafed pull missing.tar -", "missing.tar does not exist"),
        (
            "echo x | datasafed push -z brotli - a",
            "compression \"brotli\" is not known",
        ),
        (
            "datasafed list -o yaml /",
            "invalid argument \"yaml\" for \"-o, --output-format\" flag",
        ),
    ];
    for (script, expected) in cases {
        let out = bash(script, &env);
        assert!(!out.status.success(), "{script} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("Error: ") && stderr.contains(expected),
            "{script}: {stderr}"
        );
    }
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("ftp.conf");
    std::fs::write(&config, "[storage]\ntype = ftp\nhost = h\n").expect("write");
    let out = bash(
        &format!("datasafed -c {} list /", config.display()),
        &BTreeMap::new(),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported storage type \"ftp\""),
        "{out:?}"
    );
}

#[test]
fn list_formats_and_getconf_redact_secrets() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let repo = config_dir.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let config = config_dir.path().join("local.conf");
    std::fs::write(
        &config,
        format!("[storage]\ntype = local\nroot = {}\n", repo.display()),
    )
    .expect("write");
    let mut env = BTreeMap::new();
    env.insert("CONF", config.display().to_string());
    env.insert("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM".into());
    env.insert("DATASAFED_ENCRYPTION_PASS_PHRASE", "do-not-print-me".into());
    let script = r#"
set -e
alias ds='datasafed -c "$CONF"'
shopt -s expand_aliases
printf 'aaaa' | ds push - d/one.txt
printf 'bbbbbbbb' | ds push - d/two.log
ds mkdir d/empty
echo "--short"; ds list d
echo "--files"; ds list -f -s size --reverse d
echo "--name"; ds list --name '*.log' -r /
echo "--json"; ds list -o json d/one.txt
echo "--stat"; ds stat --json /
echo "--conf"; ds getconf
"#;
    let out = bash(script, &env);
    assert_ok(&out, "script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--short\nd/empty/\nd/one.txt\nd/two.log\n"),
        "{text}"
    );
    assert!(text.contains("--files\nd/two.log\nd/one.txt\n"), "{text}");
    assert!(text.contains("--name\nd/two.log\n"), "{text}");
    assert!(text.contains("\"path\": \"d/one.txt\""), "{text}");
    assert!(text.contains("\"entries\":4"), "{text}");
    assert!(
        !text.contains("do-not-print-me"),
        "getconf must not print the passphrase: {text}"
    );
}
