//! The real `datasafed` binary in agent-socket mode against the node agent's real storage
//! socket server: KubeBlocks' script calls through `sh -c`, with nothing but
//! `CAIRN_STORAGE_SOCKET`, `CAIRN_STORAGE_TOKEN` and `DATASAFED_BACKEND_BASE_PATH` in the
//! environment (no config file, no credentials), over a local repository.

#[path = "support/agent.rs"]
mod support_agent;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_agent::socket::{Token, Transferred};
use cairn_proto::agent::v1::StorageGrant;
use support_agent::SocketAgent;
use tempfile::TempDir;

const BACKUP: &str = "/ns/policy/b1";
const ROOT: &str = "/ns/policy";

/// A named way of running a script: `(mode, run)`.
type Runner<'a> = (&'static str, Box<dyn Fn(&str) -> Output + 'a>);

/// A storage socket served in this process over a temporary local repository.
struct Agent {
    server: SocketAgent,
    repo: TempDir,
}

impl std::ops::Deref for Agent {
    type Target = SocketAgent;

    fn deref(&self) -> &SocketAgent {
        &self.server
    }
}

impl Agent {
    fn start() -> Agent {
        Agent {
            server: SocketAgent::start(),
            repo: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A backup's grant: its own path read-write, its siblings read-only.
    fn backup_grant(&self) -> StorageGrant {
        StorageGrant {
            repo_name: "local-repo".into(),
            local_path: self.repo.path().display().to_string(),
            read_write_prefix: BACKUP.into(),
            read_only_prefixes: vec![ROOT.into()],
            ..Default::default()
        }
    }

    fn issue(&self, action: &str, grant: &StorageGrant) -> Token {
        self.grants.issue(action, grant).expect("issue a token")
    }

    /// Runs `script` with `sh -c` in agent-socket mode.
    fn sh(&self, token: &Token, base: &str, script: &str) -> Output {
        let env = BTreeMap::from([
            ("CAIRN_STORAGE_SOCKET", self.socket.display().to_string()),
            ("CAIRN_STORAGE_TOKEN", token.expose().to_string()),
            ("DATASAFED_BACKEND_BASE_PATH", base.to_string()),
        ]);
        sh(script, &env).output().expect("sh runs")
    }

    /// Runs `script` with `sh -c` in direct mode over the same repository.
    fn sh_direct(&self, base: &str, script: &str) -> Output {
        let env = BTreeMap::from([
            (
                "DATASAFED_LOCAL_BACKEND_PATH",
                self.repo.path().display().to_string(),
            ),
            ("DATASAFED_BACKEND_BASE_PATH", base.to_string()),
        ]);
        sh(script, &env).output().expect("sh runs")
    }

    /// `sh -c` runners over the same repository: through the agent socket with `token`, and
    /// in direct mode, both at the backup's path.
    fn modes<'a>(&'a self, token: &'a Token) -> [Runner<'a>; 2] {
        [
            (
                "agent socket",
                Box::new(move |script: &str| self.sh(token, BACKUP, script)),
            ),
            (
                "direct",
                Box::new(move |script: &str| self.sh_direct(BACKUP, script)),
            ),
        ]
    }

    /// A file of the repository, read directly.
    fn stored(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.repo.path().join(path.trim_start_matches('/'))).ok()
    }
}

fn datasafed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `sh -c script` with a clean environment: PATH (datasafed first) plus `env`.
fn sh(script: &str, env: &BTreeMap<&str, String>) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", datasafed_dir().display()),
        )
        .envs(env);
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

#[track_caller]
fn assert_fails_with(output: &Output, what: &str, message: &str) {
    assert!(
        !output.status.success(),
        "{what} should fail:\nstdout:\n{}",
        stdout(output)
    );
    assert!(
        stderr(output).contains(message),
        "{what}: stderr does not contain {message:?}:\n{}",
        stderr(output)
    );
}

/// Deterministic incompressible bytes.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn kubeblocks_script_calls_round_trip_through_the_agent_socket() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());

    let pushed = agent.sh(
        &token,
        BACKUP,
        "echo data | datasafed push -z zstd-fastest - /b1.tar.zst",
    );
    assert_ok(&pushed, "push from stdin");
    let stored = agent
        .stored("ns/policy/b1/b1.tar.zst")
        .expect("the agent stored the file under the base path");
    assert_eq!(
        &stored[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "the agent compressed with zstd"
    );

    let size = agent.sh(
        &token,
        BACKUP,
        "datasafed stat / | grep TotalSize | awk '{print $2}'",
    );
    assert_ok(&size, "stat");
    assert_eq!(stdout(&size).trim(), stored.len().to_string());

    let listed = agent.sh(
        &token,
        BACKUP,
        r#"[ "$(datasafed list b1.tar.zst)" = "b1.tar.zst" ] && echo same"#,
    );
    assert_ok(&listed, "list equality");
    assert_eq!(stdout(&listed), "same\n");

    let pulled = agent.sh(
        &token,
        BACKUP,
        "datasafed pull -d zstd-fastest b1.tar.zst -",
    );
    assert_ok(&pulled, "pull to stdout");
    assert_eq!(stdout(&pulled), "data\n");
}

#[test]
fn a_multi_megabyte_random_file_round_trips_byte_for_byte() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    let data = random_bytes(5 * 1024 * 1024 + 12_345, 7);
    std::fs::write(&source, &data).expect("write source");
    let script = format!(
        "datasafed push -z zstd-fastest - /b1.tar.zst < {src} && \
         datasafed pull -d zstd-fastest b1.tar.zst - > {out}.stdout && \
         datasafed push {src} /sub/plain.bin && \
         datasafed pull /sub/plain.bin {out}.file",
        src = source.display(),
        out = work.path().join("out").display()
    );
    assert_ok(&agent.sh(&token, BACKUP, &script), "push and pull");
    let via_stdout = std::fs::read(work.path().join("out.stdout")).expect("pulled");
    let via_file = std::fs::read(work.path().join("out.file")).expect("pulled");
    assert!(via_stdout == data, "stdin -> stdout round trip differs");
    assert!(via_file == data, "file -> file round trip differs");
    assert_eq!(
        agent.grants.transferred("a1"),
        Some(Transferred {
            bytes_in: 2 * data.len() as u64,
            bytes_out: 2 * data.len() as u64,
        }),
        "the agent counted every byte pushed and pulled"
    );
}

#[test]
fn list_and_stat_print_exactly_what_direct_mode_prints() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let setup = "echo one | datasafed push - /data.tar.zst && \
                 echo twenty-two | datasafed push - /wal/000001.zst && \
                 echo 3 | datasafed push - /wal/deep/000002.zst && \
                 datasafed mkdir /empty";
    assert_ok(&agent.sh(&token, BACKUP, setup), "setup");
    for command in [
        "datasafed list /",
        "datasafed list",
        "datasafed list -r /",
        "datasafed list -r wal",
        "datasafed list -r wal/",
        "datasafed list -r -o long /",
        "datasafed list -r -o json /",
        "datasafed list -r -f -s size --reverse /",
        "datasafed list -r -d /",
        "datasafed list -r --max-depth 2 /",
        "datasafed list -r --name '*.zst' /",
        "datasafed list -r -s mtime --newer-than 0 /",
        "datasafed list data.tar.zst",
        "datasafed list /wal/000001.zst",
        "datasafed stat /",
        "datasafed stat --json wal",
        "datasafed stat data.tar.zst",
    ] {
        let socket = agent.sh(&token, BACKUP, command);
        let direct = agent.sh_direct(BACKUP, command);
        assert_ok(&socket, command);
        assert_ok(&direct, command);
        assert_eq!(stdout(&socket), stdout(&direct), "{command}");
        assert!(!stdout(&socket).is_empty(), "{command} printed nothing");
    }
    let siblings = agent.sh(&token, ROOT, "datasafed list /");
    assert_ok(&siblings, "list the backup root (read-only prefix)");
    assert_eq!(stdout(&siblings), "b1/\n");
}

#[test]
fn rm_rmdir_and_mkdir_work_like_the_deletion_job_expects() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let script = "echo x | datasafed push - /a/f1 && echo y | datasafed push - /a/b/f2 && \
                  datasafed mkdir /empty && datasafed rmdir /empty && \
                  datasafed rm /a/f1 && datasafed rm -r /a && datasafed list -r /";
    let output = agent.sh(&token, BACKUP, script);
    assert_ok(&output, "rm, rmdir, mkdir");
    assert_eq!(stdout(&output), "");
    assert!(agent.stored("ns/policy/b1/a/b/f2").is_none());
    let missing = agent.sh(&token, BACKUP, "datasafed rm /nothing-here");
    assert_fails_with(&missing, "rm of a missing file", "Error: ");
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );
    let not_empty = agent.sh(
        &token,
        BACKUP,
        "echo z | datasafed push - /d/f && datasafed rmdir /d",
    );
    assert_fails_with(&not_empty, "rmdir of a full directory", "is not empty");
}

#[test]
fn a_write_outside_the_grant_is_refused_with_a_clear_message() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let sibling = "/ns/policy/b0";
    // 20 MiB: the refusal must come back while the client is still sending.
    let push = agent.sh(
        &token,
        sibling,
        "head -c 20971520 /dev/zero | datasafed push - /stolen",
    );
    assert_fails_with(
        &push,
        "push into a read-only sibling",
        "Error: pushing /stolen: writing /ns/policy/b0/stolen is not allowed: this action may write only under /ns/policy/b1",
    );
    assert!(agent.stored("ns/policy/b0/stolen").is_none());
    for command in [
        "datasafed rm -r /",
        "datasafed mkdir /x",
        "datasafed rmdir /",
    ] {
        let output = agent.sh(&token, sibling, command);
        assert_fails_with(&output, command, "is not allowed");
    }
    let outside = agent.sh(&token, "/other-namespace", "datasafed list /");
    assert_fails_with(
        &outside,
        "list outside every prefix",
        "reading /other-namespace is not allowed: this action may read only under /ns/policy/b1, /ns/policy",
    );
    let escape = agent.sh(&token, BACKUP, "echo x | datasafed push - ../b0/x");
    assert_fails_with(&escape, "a .. escape", "\"..\"");
}

#[test]
fn a_sibling_under_a_read_only_prefix_can_be_read() {
    let agent = Agent::start();
    let sibling = agent.repo.path().join("ns/policy/b0");
    std::fs::create_dir_all(&sibling).expect("mkdir");
    std::fs::write(sibling.join("base.tar"), b"full backup\n").expect("write");
    let token = agent.issue("a1", &agent.backup_grant());
    let output = agent.sh(
        &token,
        "/ns/policy/b0",
        "datasafed list / && datasafed pull base.tar -",
    );
    assert_ok(&output, "read a sibling");
    assert_eq!(stdout(&output), "base.tar\nfull backup\n");
}

#[test]
fn a_revoked_or_unknown_token_is_refused() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    assert_ok(
        &agent.sh(&token, BACKUP, "datasafed stat /"),
        "stat while live",
    );
    agent.grants.revoke(&token);
    let revoked = agent.sh(&token, BACKUP, "datasafed stat /");
    assert_fails_with(
        &revoked,
        "stat with a revoked token",
        "Error: the storage token is unknown or has been revoked",
    );
    let unknown = Token::parse(&"0".repeat(64)).expect("token shape");
    let output = agent.sh(&unknown, BACKUP, "echo x | datasafed push - /x");
    assert_fails_with(
        &output,
        "push with an unknown token",
        "unknown or has been revoked",
    );
    assert!(agent.stored("ns/policy/b1/x").is_none());
}

#[test]
fn errors_print_like_direct_mode_and_leave_nothing_behind() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("restored");
    let pull = agent.sh(
        &token,
        BACKUP,
        &format!("datasafed pull missing.tar {}", target.display()),
    );
    assert_fails_with(
        &pull,
        "pull of a missing file",
        "Error: pulling missing.tar: ",
    );
    assert!(
        stderr(&pull).contains("does not exist"),
        "{}",
        stderr(&pull)
    );
    assert!(!target.exists(), "a failed pull leaves no file");

    // Reading a directory fails after the upload started: the agent must store nothing.
    let push = agent.sh(
        &token,
        BACKUP,
        &format!("datasafed push {} /half.bin", work.path().display()),
    );
    assert_fails_with(
        &push,
        "push of an unreadable source",
        "Error: pushing /half.bin: ",
    );
    // The agent aborts the upload when the stream breaks; on a loaded machine that can take
    // longer than the client's exit, so wait for it (bounded) instead of sleeping a guess.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while agent.stored("ns/policy/b1/half.bin").is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        agent.stored("ns/policy/b1/half.bin").is_none(),
        "a failed push left ns/policy/b1/half.bin behind"
    );

    let bad = agent.sh(&token, BACKUP, "echo x | datasafed push -z snappy - /x");
    assert_fails_with(
        &bad,
        "unknown compression",
        "compression \"snappy\" is not known",
    );

    let conf = agent.sh(&token, BACKUP, "datasafed getconf");
    assert_ok(&conf, "getconf");
    assert!(stdout(&conf).contains("agent-socket"), "{}", stdout(&conf));
    assert!(
        !stdout(&conf).contains(token.expose()),
        "getconf shows the token"
    );

    let gone = Command::new(env!("CARGO_BIN_EXE_datasafed"))
        .args(["stat", "/"])
        .env_clear()
        .env("CAIRN_STORAGE_SOCKET", work.path().join("no.sock"))
        .env("CAIRN_STORAGE_TOKEN", token.expose())
        .output()
        .expect("datasafed runs");
    assert_fails_with(
        &gone,
        "no agent listening",
        "Error: connecting to the node agent's storage socket",
    );
}

#[test]
fn encryption_happens_in_the_agent_with_the_direct_clients_key_derivation() {
    let agent = Agent::start();
    let mut grant = agent.backup_grant();
    grant.encryption_algorithm = "AES-256-CFB".into();
    grant.encryption_passphrase = "grant-passphrase".into();
    let token = agent.issue("a1", &grant);
    let output = agent.sh(
        &token,
        BACKUP,
        "echo secret-data | datasafed push -z zstd - /db.zst && datasafed pull -d zstd db.zst -",
    );
    assert_ok(&output, "encrypted push and pull");
    assert_eq!(stdout(&output), "secret-data\n");
    let stored = agent.stored("ns/policy/b1/db.zst").expect("stored");
    assert_eq!(&stored[..8], b"CAIRNSE1", "stored sealed");
    let env = BTreeMap::from([
        (
            "DATASAFED_LOCAL_BACKEND_PATH",
            agent.repo.path().display().to_string(),
        ),
        ("DATASAFED_BACKEND_BASE_PATH", BACKUP.to_string()),
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB".to_string()),
        (
            "DATASAFED_ENCRYPTION_PASS_PHRASE",
            "grant-passphrase".to_string(),
        ),
    ]);
    let direct = sh("datasafed pull -d zstd db.zst -", &env)
        .output()
        .expect("sh runs");
    assert_ok(&direct, "direct pull of what the agent encrypted");
    assert_eq!(stdout(&direct), "secret-data\n");
}

#[test]
fn dedup_grants_serve_the_deduplicating_repository() {
    let agent = Agent::start();
    let mut grant = agent.backup_grant();
    grant.dedup_repo_root = "/ns/kopia".into();
    grant.dedup_password = "dedup-password".into();
    let token = agent.issue("a1", &grant);
    let data = "hello dedup\n".repeat(1000);
    let output = agent.sh(
        &token,
        BACKUP,
        &format!(
            "printf '%s' '{data}' | datasafed push - /dump.sql && datasafed list / && datasafed pull dump.sql -"
        ),
    );
    assert_ok(&output, "dedup push, list, pull");
    assert_eq!(stdout(&output), format!("dump.sql\n{data}"));
    assert!(
        agent.repo.path().join("ns/kopia").is_dir(),
        "the agent created the repository at the grant's root"
    );
}

#[test]
fn byte_counters_advance_during_a_large_push() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    const MIB: u64 = 1024 * 1024;
    let env = BTreeMap::from([
        ("CAIRN_STORAGE_SOCKET", agent.socket.display().to_string()),
        ("CAIRN_STORAGE_TOKEN", token.expose().to_string()),
        ("DATASAFED_BACKEND_BASE_PATH", BACKUP.to_string()),
    ]);
    // 24 MiB written a MiB at a time with pauses, so the push is observably in progress.
    let mut child = sh(
        "i=0; while [ $i -lt 24 ]; do head -c 1048576 /dev/zero; sleep 0.05; i=$((i+1)); done \
         | datasafed push - /big.bin",
        &env,
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "push did not finish");
        seen.push(agent.grants.bytes("a1"));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "push failed: {status}");
    assert!(
        seen.iter().any(|&b| b > 0 && b < 24 * MIB),
        "no intermediate count observed: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "counts went backwards"
    );
    assert_eq!(agent.grants.bytes("a1"), 24 * MIB);
    assert_eq!(
        agent.grants.revoke(&token),
        Some(Transferred {
            bytes_in: 24 * MIB,
            bytes_out: 0
        })
    );
}

/// Everything under `dir` (relative path and bytes), not following links.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let rel = path.strip_prefix(dir).expect("under").display().to_string();
            if meta.is_dir() {
                pending.push(path);
                out.push((rel, Vec::new()));
            } else {
                out.push((rel, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_symbolic_link_planted_in_the_repository_is_never_followed() {
    let agent = Agent::start();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("s.txt"), b"outside the repository\n").expect("write");
    std::fs::create_dir(outside.path().join("sub")).expect("mkdir");
    std::fs::write(outside.path().join("sub/t.txt"), b"also outside\n").expect("write");
    let before = tree(outside.path());
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("file.txt");
    std::fs::write(&file, b"pushed\n").expect("write");

    // What an action pod could do in a Mount repository's claim: plant links.
    let backup = agent.repo.path().join("ns/policy/b1");
    std::fs::create_dir_all(&backup).expect("mkdir");
    std::fs::write(backup.join("inside.txt"), b"inside\n").expect("write");
    std::os::unix::fs::symlink(outside.path(), backup.join("link")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("s.txt"), backup.join("file-link"))
        .expect("symlink");
    let link = backup.join("link").display().to_string();

    let token = agent.issue("a1", &agent.backup_grant());
    for (mode, run) in agent.modes(&token) {
        let refused = format!("{link} is a symbolic link");
        for (script, message) in [
            ("datasafed pull link/s.txt -".to_string(), refused.as_str()),
            (
                "datasafed pull link/sub/t.txt -".to_string(),
                refused.as_str(),
            ),
            (
                format!("datasafed push {} link/new.txt", file.display()),
                refused.as_str(),
            ),
            (
                format!("datasafed push {} link/sub/new.txt", file.display()),
                refused.as_str(),
            ),
            ("datasafed rm -r link".to_string(), refused.as_str()),
            ("datasafed rm link/s.txt".to_string(), refused.as_str()),
            ("datasafed mkdir link/d".to_string(), refused.as_str()),
            ("datasafed list link/".to_string(), refused.as_str()),
            (
                "datasafed pull file-link -".to_string(),
                "file-link is a symbolic link",
            ),
            (
                format!("datasafed push {} file-link", file.display()),
                "file-link is a symbolic link",
            ),
        ] {
            let output = run(&script);
            assert_fails_with(&output, &format!("{mode}: {script}"), message);
            assert!(
                !stdout(&output).contains("outside"),
                "{mode}: {script} printed outside data: {}",
                stdout(&output)
            );
        }
        // A listing shows the repository's own files and skips the links.
        let list = run("datasafed list -r /");
        assert_ok(&list, &format!("{mode}: list -r"));
        assert_eq!(stdout(&list), "inside.txt\n", "{mode}");
        let stat = run("datasafed stat /");
        assert_ok(&stat, &format!("{mode}: stat"));
        assert!(
            stdout(&stat).contains("Files: 1\n"),
            "{mode}: {}",
            stdout(&stat)
        );
        assert_eq!(
            tree(outside.path()),
            before,
            "{mode}: something outside changed"
        );
    }
    // rm -r of the directory holding the links removes its own files only.
    let _ = agent.sh(&token, BACKUP, "datasafed rm -r /");
    assert!(agent.stored("ns/policy/b1/inside.txt").is_none());
    assert_eq!(tree(outside.path()), before, "rm -r / reached outside");
}

#[test]
fn a_failed_pull_keeps_the_existing_local_file() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("keep.txt");
    assert_ok(
        &agent.sh(
            &token,
            BACKUP,
            "printf 'new data' | datasafed push - /data.txt",
        ),
        "push",
    );
    for (mode, run) in agent.modes(&token) {
        std::fs::write(&target, b"precious").expect("write");
        let pull = run(&format!("datasafed pull missing.txt {}", target.display()));
        assert_fails_with(
            &pull,
            &format!("{mode}: pull of a missing file"),
            "does not exist",
        );
        assert_eq!(
            std::fs::read(&target).ok().as_deref(),
            Some(&b"precious"[..]),
            "{mode}: a failed pull changed the existing file"
        );
        let pull = run(&format!("datasafed pull data.txt {}", target.display()));
        assert_ok(&pull, &format!("{mode}: pull over an existing file"));
        assert_eq!(std::fs::read(&target).expect("read"), b"new data");
        let names: Vec<String> = std::fs::read_dir(work.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["keep.txt"], "{mode}: temporary files left behind");
        // A destination that is not a regular file is written in place, never replaced.
        let null = run("datasafed pull data.txt /dev/null");
        assert_ok(&null, &format!("{mode}: pull into /dev/null"));
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::metadata("/dev/null")
                .expect("stat")
                .file_type()
                .is_char_device()
        );
    }
}

#[test]
fn a_push_from_a_closed_stdin_fails_and_stores_nothing() {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    for (mode, run) in agent.modes(&token) {
        let closed = run("datasafed push - /closed.txt <&-");
        assert_fails_with(
            &closed,
            &format!("{mode}: push from a closed stdin"),
            "stdin",
        );
        let unreadable = run("datasafed push - /unreadable.txt 0>/dev/null");
        assert_fails_with(
            &unreadable,
            &format!("{mode}: push from a write-only stdin"),
            "stdin",
        );
        assert!(agent.stored("ns/policy/b1/closed.txt").is_none(), "{mode}");
        assert!(
            agent.stored("ns/policy/b1/unreadable.txt").is_none(),
            "{mode}"
        );
        // An empty but open stdin is an empty file, as with the Go client.
        let empty = run("datasafed push - /empty.txt </dev/null");
        assert_ok(&empty, &format!("{mode}: push of an empty stdin"));
        assert_eq!(agent.stored("ns/policy/b1/empty.txt"), Some(Vec::new()));
    }
}

/// A file as KubeBlocks' datasafed encrypts it (FORMAT.md §3.3.1), made by the `openssl` CLI
/// (an independent implementation): the key is `openssl kdf ... HKDF` of the passphrase with
/// salt "encryption", the body `openssl enc -aes-N-cfb` (128-bit feedback), the IV in front.
fn kubeblocks_cfb_object(bits: u32, passphrase: &str, iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let kdf = Command::new("openssl")
        .args([
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
        ])
        .arg(format!("key:{passphrase}"))
        .args(["-kdfopt", "salt:encryption", "HKDF"])
        .output()
        .expect("openssl kdf runs");
    assert!(kdf.status.success(), "openssl kdf: {kdf:?}");
    let key: String = stdout(&kdf)
        .trim()
        .replace(':', "")
        .to_ascii_lowercase()
        .chars()
        .take(bits as usize / 4)
        .collect();
    let iv_hex: String = iv.iter().map(|b| format!("{b:02x}")).collect();
    let mut enc = Command::new("openssl")
        .args([
            "enc",
            &format!("-aes-{bits}-cfb"),
            "-nosalt",
            "-K",
            &key,
            "-iv",
            &iv_hex,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl enc runs");
    let mut stdin = enc.stdin.take().expect("stdin");
    let input = plain.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).expect("write plaintext");
    });
    let out = enc.wait_with_output().expect("openssl enc");
    writer.join().expect("writer");
    assert!(out.status.success(), "openssl enc failed");
    assert_eq!(out.stdout.len(), plain.len(), "CFB keeps the length");
    let mut object = iv.to_vec();
    object.extend_from_slice(&out.stdout);
    object
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).expect("zstd")
}

#[test]
fn kubeblocks_cfb_encrypted_files_restore_in_socket_and_direct_mode() {
    let agent = Agent::start();
    let data = random_bytes(300_000, 7);
    let mut compressible = b"-- dump --\n".repeat(20_000);
    compressible.extend_from_slice(&data[..1000]);
    let dir = agent.repo.path().join("ns/policy/b1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (bits, passphrase) in [
        (128u32, "kb-pass-128"),
        (192, "kb-pass-192"),
        (256, "kb-pass-256"),
    ] {
        let algorithm = format!("AES-{bits}-CFB");
        let iv: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(bits as u8) ^ 0x5a);
        std::fs::write(
            dir.join("mysql.xbstream.enc"),
            kubeblocks_cfb_object(bits, passphrase, &iv, &data),
        )
        .expect("write");
        std::fs::write(
            dir.join("dump.sql.zst.enc"),
            kubeblocks_cfb_object(bits, passphrase, &iv, &zstd_compress(&compressible)),
        )
        .expect("write");
        let mut grant = agent.backup_grant();
        grant.encryption_algorithm = algorithm.to_lowercase();
        grant.encryption_passphrase = passphrase.into();
        let token = agent.issue(&format!("cfb-{bits}"), &grant);
        let direct_env = BTreeMap::from([
            (
                "DATASAFED_LOCAL_BACKEND_PATH",
                agent.repo.path().display().to_string(),
            ),
            ("DATASAFED_BACKEND_BASE_PATH", BACKUP.to_string()),
            ("DATASAFED_ENCRYPTION_ALGORITHM", algorithm.clone()),
            ("DATASAFED_ENCRYPTION_PASS_PHRASE", passphrase.to_string()),
        ]);
        let socket = |script: &str| agent.sh(&token, BACKUP, script);
        let direct = |script: &str| sh(script, &direct_env).output().expect("sh runs");
        let runners: [Runner<'_>; 2] = [
            ("agent socket", Box::new(socket)),
            ("direct", Box::new(direct)),
        ];
        for (mode, run) in runners {
            let what = format!("{algorithm} {mode}");
            let out = run("datasafed pull mysql.xbstream -");
            assert_ok(&out, &what);
            assert!(out.stdout == data, "{what}: the plaintext differs");
            let out = run("datasafed pull -d zstd-fastest dump.sql.zst -");
            assert_ok(&out, &what);
            assert!(out.stdout == compressible, "{what}: the dump differs");
            // The scripts' existence check and size: the file as it was pushed.
            let out = run("datasafed list mysql.xbstream");
            assert_eq!(stdout(&out), "mysql.xbstream\n", "{what}");
            let out = run("datasafed stat mysql.xbstream | grep TotalSize | awk '{print $2}'");
            assert_eq!(stdout(&out), format!("{}\n", data.len()), "{what}");
            let out = run("datasafed list -f / | sort");
            assert_eq!(stdout(&out), "dump.sql.zst\nmysql.xbstream\n", "{what}");
        }
        // New data is still written in Cairn's authenticated format, without the suffix.
        let out = socket("echo new | datasafed push - new.txt && datasafed pull new.txt -");
        assert_ok(&out, "push with a CFB grant");
        assert_eq!(stdout(&out), "new\n");
        let stored = agent.stored("ns/policy/b1/new.txt").expect("stored");
        assert_eq!(&stored[..8], b"CAIRNSE1");
        std::fs::remove_file(dir.join("new.txt")).expect("rm");
        // `rm FILE` removes KubeBlocks' `FILE.enc` (deletion jobs name the file as pushed).
        std::fs::write(
            dir.join("old.info.enc"),
            kubeblocks_cfb_object(bits, passphrase, &iv, b"{}"),
        )
        .expect("write");
        let out = socket("datasafed rm old.info");
        assert_ok(&out, "rm of a CFB file");
        assert!(!dir.join("old.info.enc").exists(), "old.info.enc removed");
    }
    // Without a CFB algorithm, `.enc` objects are ordinary files.
    let token = agent.issue("plain", &agent.backup_grant());
    let out = agent.sh(&token, BACKUP, "datasafed pull mysql.xbstream -");
    assert_fails_with(&out, "plain pull", "does not exist");
    let out = agent.sh(&token, BACKUP, "datasafed list -f / | sort");
    assert_eq!(stdout(&out), "dump.sql.zst.enc\nmysql.xbstream.enc\n");
}

#[test]
fn a_compressed_pull_decompresses_in_datasafed_counts_the_decompressed_bytes_and_fails_like_direct_mode()
 {
    let agent = Agent::start();
    let token = agent.issue("a1", &agent.backup_grant());
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    // Compressible, several chunks long once decompressed: a database dump's shape.
    let data: Vec<u8> = (0..(6 * 1024 * 1024 + 4321))
        .map(|i: usize| b"orders,customer,amount\n"[i % 23])
        .collect();
    std::fs::write(&source, &data).expect("write source");
    let out = work.path().join("out");
    let script = format!(
        "datasafed push -z zstd-fastest - /db.tar.zst < {src} && \
         datasafed pull -d zstd-fastest db.tar.zst - > {out}.stdout && \
         datasafed pull -d zstd-fastest db.tar.zst {out}.file",
        src = source.display(),
        out = out.display()
    );
    assert_ok(&agent.sh(&token, BACKUP, &script), "push and pull");
    let stored = agent.stored("ns/policy/b1/db.tar.zst").expect("stored");
    assert!(stored.len() < data.len() / 10, "stored compressed");
    for name in ["out.stdout", "out.file"] {
        let pulled = std::fs::read(work.path().join(name)).expect("pulled");
        assert!(pulled == data, "{name} differs from what was pushed");
    }
    assert_eq!(
        agent.grants.transferred("a1"),
        Some(Transferred {
            bytes_in: data.len() as u64,
            bytes_out: 2 * data.len() as u64,
        }),
        "the progress counts the decompressed bytes, as when the agent decompressed"
    );

    // A file that is not compressed, pulled with -d: the same error in both modes, and a
    // failed pull to a file leaves nothing.
    let raw = format!("datasafed push {} /raw.bin", source.display());
    assert_ok(&agent.sh(&token, BACKUP, &raw), "push uncompressed");
    for (mode, run) in agent.modes(&token) {
        let target = work.path().join(format!("bad-{}", mode.replace(' ', "-")));
        let pulled = run(&format!(
            "datasafed pull -d zstd-fastest raw.bin {}",
            target.display()
        ));
        assert_fails_with(
            &pulled,
            mode,
            "the data is not in the expected format or is damaged",
        );
        assert!(!target.exists(), "{mode}: a failed pull left {target:?}");
    }
}
