//! `datasafed` as apecloud/datasafed behaves at the command line: exit codes (1 for every
//! failure, usage errors included; 0 for `--help`), `-o/--output-format`, `getconf ITEM`,
//! `version [-v]`, and the `list -o json` / `stat --json` keys scripts read with jq.

use std::path::Path;
use std::process::{Command, Output};

fn datasafed(args: &[&str], local: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_datasafed"))
        .args(args)
        .env("DATASAFED_LOCAL_BACKEND_PATH", local)
        .env_remove("DATASAFED_BACKEND_BASE_PATH")
        .env_remove("DATASAFED_ENCRYPTION_ALGORITHM")
        .env_remove("DATASAFED_KOPIA_REPO_ROOT")
        .env_remove("CAIRN_STORAGE_SOCKET")
        .output()
        .expect("datasafed runs")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["list", "-o", "yaml", "/"][..],
        &["list", "--bogus", "/"],
        &["nosuchcommand"],
        &["getconf", "storage"],
        &["getconf", "storage.nosuchkey"],
    ] {
        let out = datasafed(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", err(&out));
    }
    let out = datasafed(&["list", "-o", "yaml", "/"], dir.path());
    assert!(
        err(&out).contains("yaml is not included in short,long,json"),
        "{}",
        err(&out)
    );
    let help = datasafed(&["--help"], dir.path());
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help).contains("push"), "{}", text(&help));
}

#[test]
fn getconf_item_and_version_print_like_datasafed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = datasafed(&["getconf", "storage.type"], dir.path());
    assert_eq!(text(&out), "local\n", "{}", err(&out));
    let out = datasafed(&["getconf", "storage.root"], dir.path());
    assert_eq!(text(&out), format!("{}\n", dir.path().display()));
    let out = datasafed(&["version"], dir.path());
    assert!(text(&out).starts_with("datasafed: "), "{}", text(&out));
    let out = datasafed(&["version", "-v"], dir.path());
    assert!(text(&out).lines().count() > 1, "{}", text(&out));
}

#[test]
fn list_json_and_stat_json_carry_datasafeds_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("wal")).expect("mkdir");
    for (name, secs) in [("wal/b", 1_700_000_200i64), ("wal/a", 1_700_000_100)] {
        let path = dir.path().join(name);
        std::fs::write(&path, name).expect("write");
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(time))
            .expect("set mtime");
    }
    let out = datasafed(
        &["list", "-f", "--recursive", "/", "--output-format", "json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", err(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = value.as_array().expect("array");
    assert_eq!(items.len(), 2);
    for item in items {
        for key in ["path", "size", "mtime", "mtime_str", "is_dir"] {
            assert!(item.get(key).is_some(), "{key} missing in {item}");
        }
    }
    let a = items
        .iter()
        .find(|i| i["path"] == "wal/a")
        .expect("wal/a listed");
    assert_eq!(a["mtime"], 1_700_000_100);
    assert_eq!(a["mtime_str"], "2023-11-14T22:15:00Z");
    let out = datasafed(&["list", "-o", "long", "wal/a"], dir.path());
    assert_eq!(text(&out), "2023-11-14T22:15:00Z\t5\twal/a\n");
    let out = datasafed(&["stat", "--json", "/"], dir.path());
    let stat: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(stat["total_size"], 10);
    assert_eq!(stat["files"], 2);
}

/// KubeBlocks' redis-pitr-backup as its restore reads the archive: the newest entry of the root
/// by name (`datasafed list / | sort -Vr`, whose first `.`-field is a unix time: no leading `/`,
/// as apecloud/datasafed prints rclone's paths relative to the root), then each file below it
/// pulled to `${DATA_DIR}/${filename#*/}`, a directory that does not exist yet
/// (apecloud/datasafed's `pull` creates the destination's parent directories).
#[test]
fn the_redis_pitr_restore_finds_and_pulls_its_archive_directory() {
    let repo = tempfile::tempdir().expect("tempdir");
    let archive = repo.path().join("1700000000.1.dir/appendonlydir");
    std::fs::create_dir_all(&archive).expect("mkdir");
    std::fs::write(
        archive.join("appendonly.aof.1.incr.aof"),
        "#TS:1700000001\r\n",
    )
    .expect("write");
    std::fs::write(
        repo.path().join("1700000000.1.dir/users.acl"),
        "user default on\n",
    )
    .expect("write");
    let out = datasafed(&["list", "/"], repo.path());
    assert_eq!(text(&out), "1700000000.1.dir/\n", "{}", err(&out));
    let out = datasafed(&["list", "-d", "/"], repo.path());
    assert_eq!(text(&out), "1700000000.1.dir/\n", "{}", err(&out));
    let out = datasafed(&["list", "-r", "-f", "1700000000.1.dir/"], repo.path());
    assert_eq!(
        text(&out),
        "1700000000.1.dir/appendonlydir/appendonly.aof.1.incr.aof\n1700000000.1.dir/users.acl\n",
        "{}",
        err(&out)
    );
    let data = tempfile::tempdir().expect("tempdir");
    let local = data.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let out = datasafed(
        &[
            "pull",
            "1700000000.1.dir/appendonlydir/appendonly.aof.1.incr.aof",
            &local.display().to_string(),
        ],
        repo.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert_eq!(
        std::fs::read_to_string(&local).expect("pulled"),
        "#TS:1700000001\r\n"
    );
}
