//! `cairnctl repo` end to end as a user runs it: init, backup, snapshots, restore (to a
//! directory and to stdout), forget, prune, check, stat, keys; on a local path and on S3.

use std::path::Path;
use std::process::{Command, Output};

use cairn_repo::testing::{ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFs};

fn cairnctl(repo: &str, args: &[&str], password: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .arg("repo")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("CAIRN_REPO_PASSWORD", password)
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

fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("base/1")).expect("mkdir");
    let table: Vec<u8> = (0..200 * 8192u32)
        .map(|i| ((i / 8192) as u8).wrapping_mul(7) ^ (i % 13) as u8)
        .collect();
    std::fs::write(dir.join("base/1/1259"), table).expect("write");
    std::fs::write(dir.join("PG_VERSION"), "16\n").expect("write");
    std::os::unix::fs::symlink("PG_VERSION", dir.join("version-link")).expect("symlink");
}

fn same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .expect("diff");
    assert!(
        out.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn lifecycle(repo: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    make_source(&src);
    ok(cairnctl(repo, &["init"], "pw"), "init");
    let first: serde_json::Value = serde_json::from_str(&ok(
        cairnctl(
            repo,
            &[
                "--json",
                "backup",
                src.to_str().unwrap_or_default(),
                "--tag",
                "backup=b1",
            ],
            "pw",
        ),
        "backup",
    ))
    .expect("json");
    assert_eq!(first["tags"]["backup"], "b1");
    std::fs::write(src.join("PG_VERSION"), "17\n").expect("change");
    let second: serde_json::Value = serde_json::from_str(&ok(
        cairnctl(
            repo,
            &["--json", "backup", src.to_str().unwrap_or_default()],
            "pw",
        ),
        "backup 2",
    ))
    .expect("json");
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(
        second["summary"]["unchanged_files"], 1,
        "the table was not read again"
    );

    let listed: serde_json::Value = serde_json::from_str(&ok(
        cairnctl(repo, &["--json", "snapshots"], "pw"),
        "snapshots",
    ))
    .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    let target = work.path().join("restored");
    ok(
        cairnctl(
            repo,
            &[
                "restore",
                "latest",
                "--target",
                target.to_str().unwrap_or_default(),
                "--no-owners",
            ],
            "pw",
        ),
        "restore",
    );
    same_tree(&src, &target);

    let out = ok(
        cairnctl(
            repo,
            &[
                "restore",
                "latest",
                "--target",
                "-",
                "--include",
                "PG_VERSION",
            ],
            "pw",
        ),
        "restore to stdout",
    );
    assert_eq!(out, "17\n");

    let stream = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq 1 100000 | '{}' repo --repo '{repo}' backup - --stream-name numbers.txt",
            env!("CARGO_BIN_EXE_cairnctl")
        ))
        .env("CAIRN_REPO_PASSWORD", "pw")
        .output()
        .expect("stream backup");
    ok(stream, "stream backup");
    let text = ok(
        cairnctl(repo, &["restore", "latest", "--target", "-"], "pw"),
        "stream restore",
    );
    assert_eq!(text.lines().last(), Some("100000"));

    let wrong = cairnctl(repo, &["snapshots"], "nope");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong password"),
        "{wrong:?}"
    );

    let plan = ok(
        cairnctl(repo, &["forget", "--keep-last", "1", "--dry-run"], "pw"),
        "forget dry run",
    );
    assert!(plan.contains("remove"), "{plan}");
    ok(
        cairnctl(repo, &["forget", "--keep-last", "1", "--prune"], "pw"),
        "forget",
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        cairnctl(repo, &["--json", "snapshots"], "pw"),
        "snapshots",
    ))
    .expect("json");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(2),
        "one per group remains"
    );
    let check: serde_json::Value = serde_json::from_str(&ok(
        cairnctl(repo, &["--json", "check", "--read-data"], "pw"),
        "check",
    ))
    .expect("json");
    assert_eq!(check["errors"].as_array().map(Vec::len), Some(0), "{check}");
    ok(
        cairnctl(repo, &["check", "--read-data-subset", "50%"], "pw"),
        "check subset",
    );
    let stat: serde_json::Value =
        serde_json::from_str(&ok(cairnctl(repo, &["--json", "stat"], "pw"), "stat")).expect("json");
    assert_eq!(stat["snapshots"], 2);

    let add = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args([
            "repo", "--repo", repo, "--json", "key", "add", "--label", "ops",
        ])
        .env("CAIRN_REPO_PASSWORD", "pw")
        .env("CAIRN_REPO_NEW_PASSWORD", "second")
        .output()
        .expect("key add");
    let added: serde_json::Value = serde_json::from_str(&ok(add, "key add")).expect("json");
    ok(
        cairnctl(repo, &["snapshots"], "second"),
        "open with the new key",
    );
    let keys = ok(cairnctl(repo, &["key", "list"], "pw"), "key list");
    assert_eq!(keys.lines().count(), 2, "{keys}");
    let id = added["id"].as_str().unwrap_or_default().to_string();
    ok(
        cairnctl(repo, &["key", "remove", &id[..8]], "pw"),
        "key remove",
    );
    assert!(!cairnctl(repo, &["snapshots"], "second").status.success());
}

#[test]
fn a_repository_lifecycle_on_a_local_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    lifecycle(&format!("file://{}", dir.path().display()));
}

#[test]
fn a_repository_lifecycle_on_s3() {
    let server = SeaweedFs::shared();
    let prefix = format!("cli-{}", std::process::id());
    lifecycle(&format!(
        "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1&access_key_id={ACCESS_KEY}&secret_access_key={SECRET_KEY}",
        server.endpoint
    ));
}

#[test]
fn a_missing_repository_and_password_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = format!("file://{}", dir.path().display());
    let out = cairnctl(&repo, &["snapshots"], "pw");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no repository"),
        "{out:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["repo", "--repo", &repo, "init"])
        .env_remove("CAIRN_REPO_PASSWORD")
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CAIRN_REPO_PASSWORD"),
        "{out:?}"
    );
}

/// Issue 15: `init` of a local repository whose directory does not exist creates it (and
/// its missing parents) and says so, as restic and borg do; the repository then works. A
/// failed init (no password) leaves no directory behind.
#[test]
fn init_creates_a_missing_local_directory_and_says_so() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("new/repo");
    let repo = format!("file://{}", dir.display());
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["repo", "--repo", &repo, "init"])
        .env_remove("CAIRN_REPO_PASSWORD")
        .env_remove("CAIRN_REPO")
        .output()
        .expect("run");
    assert!(!out.status.success(), "{out:?}");
    assert!(!dir.exists(), "a failed init left {}", dir.display());

    let stdout = ok(
        cairnctl(&repo, &["init"], "pw"),
        "init into a missing directory",
    );
    assert!(
        stdout.contains(&format!("created directory {}", dir.display())),
        "{stdout}"
    );
    assert!(
        dir.join("config").is_file(),
        "no config in {}",
        dir.display()
    );
    let src = work.path().join("src");
    make_source(&src);
    ok(
        cairnctl(&repo, &["backup", src.to_str().expect("utf-8")], "pw"),
        "backup",
    );
    let restored = work.path().join("restored");
    ok(
        cairnctl(
            &repo,
            &[
                "restore",
                "latest",
                "--target",
                restored.to_str().expect("utf-8"),
                "--no-owners",
            ],
            "pw",
        ),
        "restore",
    );
    same_tree(&src, &restored);

    // An existing directory is used as it is, and nothing claims it was created.
    let other = work.path().join("existing");
    std::fs::create_dir_all(&other).expect("mkdir");
    let stdout = ok(
        cairnctl(&format!("file://{}", other.display()), &["init"], "pw"),
        "init into an existing directory",
    );
    assert!(!stdout.contains("created directory"), "{stdout}");
}

/// Issue 11 items 7 and 8 as a user meets them: a damaged index and stray files. `backup`
/// warns and goes on, `check` fails and names `cairnctl repo repair index`, which rebuilds
/// the index; afterwards `check` passes and the latest snapshot restores byte for byte.
#[test]
fn a_damaged_index_is_repaired_by_repair_index() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    make_source(&src);
    let dir = work.path().join("repo");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let repo = format!("file://{}", dir.display());
    let src_arg = src.to_str().expect("utf-8");
    ok(cairnctl(&repo, &["init"], "pw"), "init");
    ok(cairnctl(&repo, &["backup", src_arg], "pw"), "backup");
    let index = std::fs::read_dir(dir.join("index"))
        .expect("index dir")
        .flatten()
        .next()
        .expect("an index")
        .path();
    let name = format!(
        "index/{}",
        index.file_name().expect("name").to_string_lossy()
    );
    let mut bytes = std::fs::read(&index).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&index, bytes).expect("write");
    std::fs::write(dir.join("snapshots/readme.txt"), "notes").expect("stray");
    std::fs::write(dir.join("keys/readme.txt"), "notes").expect("stray");

    let out = cairnctl(&repo, &["backup", "--parent", "none", src_arg], "pw");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out, "backup after index damage");
    assert!(
        stderr.contains("warning:") && stderr.contains(&name) && stderr.contains("repair index"),
        "{stderr}"
    );
    ok(
        cairnctl(&repo, &["snapshots"], "pw"),
        "snapshots with a stray file",
    );

    let out = cairnctl(&repo, &["check"], "pw");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains(&name), "{stdout}");
    assert!(
        stdout.contains("repair: cairnctl repo repair index"),
        "{stdout}"
    );
    assert!(stdout.contains("snapshots/readme.txt"), "{stdout}");

    let dry = ok(
        cairnctl(&repo, &["repair", "index", "--dry-run"], "pw"),
        "repair index --dry-run",
    );
    assert!(dry.contains("dry run"), "{dry}");
    let repaired = ok(cairnctl(&repo, &["repair", "index"], "pw"), "repair index");
    assert!(repaired.contains("wrote index"), "{repaired}");
    let checked = ok(
        cairnctl(&repo, &["check", "--read-data"], "pw"),
        "check after repair",
    );
    assert!(checked.contains("no errors"), "{checked}");
    let again = ok(
        cairnctl(&repo, &["repair", "index"], "pw"),
        "repair index again",
    );
    assert!(again.contains("nothing to repair"), "{again}");

    let target = work.path().join("restored");
    ok(
        cairnctl(
            &repo,
            &[
                "restore",
                "latest",
                "--target",
                target.to_str().expect("utf-8"),
                "--no-owners",
            ],
            "pw",
        ),
        "restore latest",
    );
    same_tree(&src, &target);
}
