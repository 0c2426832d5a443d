//! What killed writers leave and what damage a restore must work around, through the real
//! binaries: a `datasafed push` killed with SIGKILL, `cairnctl repo restore` of a damaged
//! snapshot, and file names that are not UTF-8 (hardening issue 11, items 9, 11, 12).

use cairn_repo::testing::noise;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cairn_repo::config::Secret;
use cairn_repo::dedup::Repository;
use cairn_repo::dedup::pack::pack_key;
use cairn_repo::{StorageConfig, Store};

fn datasafed(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_datasafed"));
    for name in [
        "DATASAFED_BACKEND_BASE_PATH",
        "DATASAFED_ENCRYPTION_ALGORITHM",
        "DATASAFED_ENCRYPTION_PASS_PHRASE",
        "DATASAFED_KOPIA_REPO_ROOT",
        "DATASAFED_KOPIA_PASSWORD",
        "DATASAFED_AGENT_SOCKET",
    ] {
        command.env_remove(name);
    }
    command.env("DATASAFED_LOCAL_BACKEND_PATH", store);
    command
}

fn cairnctl(repo: &Path, args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .arg("repo")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("CAIRN_REPO_PASSWORD", "pw")
        .env_remove("CAIRN_REPO")
        .output()
        .expect("cairnctl runs")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Starts `datasafed push - KEY`, feeds it more than one multipart part, waits until its
/// staging file `KEY#n` exists, and kills it with SIGKILL. Returns the staging file.
fn killed_push(store: &Path, key: &str, n: u32) -> std::path::PathBuf {
    let mut child = datasafed(store)
        .args(["push", "-", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("datasafed runs");
    let staging = store.join(format!("{key}#{n}"));
    let mut stdin = child.stdin.take().expect("stdin");
    // 80 MiB: five 16 MiB parts (a push becomes a multipart upload at its second part and
    // writes parts once four are in flight), so part data is on disk; stdin stays open.
    stdin.write_all(&noise(80 << 20, n as u64)).expect("feed");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until it holds a whole part: space that would leak.
    while std::fs::metadata(&staging).map_or(0, |m| m.len()) < 16 << 20 {
        assert!(Instant::now() < deadline, "no staging file {staging:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    drop(stdin);
    assert!(staging.exists(), "the killed push left {staging:?}");
    staging
}

#[test]
fn staging_files_of_killed_datasafed_pushes_are_removed_by_the_next_push_and_by_rm_r() {
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    let key = "ns/backup-1/dump.sql";
    let old = killed_push(&store, key, 1);
    let size = std::fs::metadata(&old).expect("meta").len();
    assert!(
        size >= 16 << 20,
        "the staging file holds a part ({size} bytes)"
    );
    // Invisible to list: that is why it leaked.
    let listed = ok(
        datasafed(&store)
            .args(["list", "-r", "ns"])
            .output()
            .expect("list"),
        "list",
    );
    assert!(!listed.contains('#'), "{listed}");
    // An abandoned one (older than 15 minutes) and one that might still be uploading.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&old)
        .expect("open")
        .set_modified(SystemTime::now() - Duration::from_secs(16 * 60))
        .expect("mtime");
    let recent = killed_push(&store, key, 2);

    // A later push of the same path removes the abandoned staging file, not the recent one.
    let file = work.path().join("dump.sql");
    std::fs::write(&file, b"the retried dump").expect("write");
    ok(
        datasafed(&store)
            .arg("push")
            .arg(&file)
            .arg(key)
            .output()
            .expect("push"),
        "push",
    );
    assert!(!old.exists(), "the abandoned staging file is gone");
    assert!(recent.exists(), "a recent staging file is left alone");

    // Deleting the backup's path removes everything under it, staging files included.
    ok(
        datasafed(&store)
            .args(["rm", "-r", "ns/backup-1"])
            .output()
            .expect("rm"),
        "rm -r",
    );
    assert!(!recent.exists());
    assert!(
        !store.join("ns/backup-1").exists(),
        "the directory is gone too"
    );
}

#[test]
fn cairnctl_restore_goes_on_past_a_damaged_blob_names_every_damaged_path_and_fails() {
    let work = tempfile::tempdir().expect("tempdir");
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..30 {
        std::fs::write(src.join(format!("f{i:02}")), noise(10_000, i)).expect("write");
    }
    std::fs::create_dir_all(&repo_dir).expect("mkdir");
    ok(cairnctl(&repo_dir, &[OsStr::new("init")]), "init");
    ok(
        cairnctl(&repo_dir, &[OsStr::new("backup"), src.as_os_str()]),
        "backup",
    );
    // Damage the content list of f03 and of f17 (the issue's case), in the pack file.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&StorageConfig::local(&repo_dir)).expect("store");
        let repo = Repository::open(store, &Secret::new("pw"))
            .await
            .expect("open");
        let snapshot = repo.find_snapshot("latest").await.expect("latest");
        let tree = repo
            .read_tree(&snapshot.root.subtree.expect("tree"))
            .await
            .expect("tree");
        for name in ["f03", "f17"] {
            let node = tree.nodes.iter().find(|n| n.name == name).expect("node");
            let r = node.content[0];
            let path = repo_dir.join(pack_key(&r.pack));
            let mut bytes = std::fs::read(&path).expect("pack");
            bytes[r.offset as usize + 2] ^= 0x55;
            std::fs::write(&path, bytes).expect("write pack");
        }
    });
    let out = work.path().join("out");
    let restored = cairnctl(
        &repo_dir,
        &[
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            out.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&restored.stderr);
    assert_eq!(restored.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 paths of snapshot"),
        "the count is reported: {stderr}"
    );
    for name in ["f03", "f17"] {
        assert!(
            stderr.contains(&out.join(name).display().to_string()),
            "{name} is named: {stderr}"
        );
        assert!(
            !out.join(name).exists(),
            "{name} is not left looking complete"
        );
    }
    for i in (0..30).filter(|i| *i != 3 && *i != 17) {
        let name = format!("f{i:02}");
        assert!(
            std::fs::read(out.join(&name)).expect("restored")
                == std::fs::read(src.join(&name)).expect("source"),
            "{name} is restored byte for byte"
        );
    }
}

#[test]
fn cairnctl_backs_up_and_restores_names_that_are_not_utf8() {
    let work = tempfile::tempdir().expect("tempdir");
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join(OsStr::from_bytes(b"dir\xe9"))).expect("mkdir");
    std::fs::write(src.join(OsStr::from_bytes(b"r\xe9sum\xe9.txt")), b"latin-1").expect("write");
    std::fs::write(
        src.join(OsStr::from_bytes(b"dir\xe9")).join("table"),
        noise(50_000, 1),
    )
    .expect("write");
    std::fs::write(src.join("ok.txt"), b"utf-8").expect("write");
    std::fs::create_dir_all(&repo_dir).expect("mkdir");
    ok(cairnctl(&repo_dir, &[OsStr::new("init")]), "init");
    ok(
        cairnctl(&repo_dir, &[OsStr::new("backup"), src.as_os_str()]),
        "backup",
    );
    let check = ok(cairnctl(&repo_dir, &[OsStr::new("check")]), "check");
    assert!(!check.contains("session"), "no marker is left: {check}");
    let out = work.path().join("out");
    ok(
        cairnctl(
            &repo_dir,
            &[
                OsStr::new("restore"),
                OsStr::new("latest"),
                OsStr::new("--target"),
                out.as_os_str(),
            ],
        ),
        "restore",
    );
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(&out)
        .output()
        .expect("diff");
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}
