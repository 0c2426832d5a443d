//! The kubectl-like conventions of `cairnctl` as a user meets them: shell completion scripts
//! that bash, zsh and fish accept, distinct exit codes for usage errors (2), failures (1) and
//! timeouts (3), `--timeout` durations such as `10m`, the `kubectl-cairn` plugin form, and an
//! about text that says what the program is.

use std::process::{Command, Output};

fn cairnctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("cairnctl runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn which(shell: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {shell}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completion_scripts_name_the_commands_and_parse_in_their_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cairnctl(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout).into_owned();
        for word in ["cairnctl", "backup", "restore", "import"] {
            assert!(script.contains(word), "{shell} script names {word}");
        }
        // The shell itself reads the script without a syntax error, where it is installed.
        let check = match shell {
            "bash" => Some(("bash", vec!["-n"])),
            "zsh" => Some(("zsh", vec!["-n"])),
            _ => Some(("fish", vec!["--no-execute"])),
        };
        if let Some((program, flags)) = check.filter(|(p, _)| which(p)) {
            let file = std::env::temp_dir().join(format!("cairnctl-completion.{shell}"));
            std::fs::write(&file, &script).unwrap();
            let parsed = Command::new(program)
                .args(flags)
                .arg(&file)
                .output()
                .unwrap();
            assert!(parsed.status.success(), "{shell} -n: {}", text(&parsed));
        }
    }
    let out = cairnctl(&["completion", "powershell-9"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn usage_errors_exit_2_failures_exit_1_and_help_exits_0() {
    let out = cairnctl(&["backup", "list", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = cairnctl(&["backup", "create", "--timeout", "ten minutes", "p"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("such as 90s"), "{}", text(&out));
    // A well-formed call that fails (no cluster at that kubeconfig).
    let out = cairnctl(&["backup", "list", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = cairnctl(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out);
    assert!(
        help.contains("backups and restores of stateful workloads"),
        "{help}"
    );
    let out = cairnctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out);
    assert!(
        help.contains("a drop-in for KubeBlocks' data protection"),
        "{help}"
    );
    assert!(
        help.contains("Exit codes: 0 success, 1 failure, 2 usage error, 3 timeout"),
        "{help}"
    );
}

#[test]
fn the_kubectl_plugin_form_is_the_same_program_named_as_kubectl_runs_it() {
    let plugin =
        std::path::Path::new(env!("CARGO_BIN_EXE_cairnctl")).with_file_name("kubectl-cairn");
    let out = Command::new(&plugin)
        .args(["backup", "--help"])
        .output()
        .expect("kubectl-cairn runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = text(&out);
    assert!(help.contains("Usage: kubectl cairn backup"), "{help}");
    assert!(help.contains("import"), "{help}");
    // kubectl finds it on PATH and passes the rest of the line.
    let kubectl =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/kubectl");
    if kubectl.exists() {
        let path = format!(
            "{}:{}",
            plugin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(&kubectl)
            .args(["cairn", "restore", "--help"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains("Usage: kubectl cairn restore"),
            "{}",
            text(&out)
        );
    }
}

/// A kubeconfig for an "API server" that accepts connections and never answers.
fn silent_server() -> (tempfile::TempDir, std::path::PathBuf) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: silent\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: silent\n  context:\n    cluster: silent\n    user: nobody\n    namespace: ns\ncurrent-context: silent\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn global_options_are_taken_anywhere_on_the_line() {
    // Well-formed lines fail for want of a cluster (1), never as usage errors (2).
    for args in [
        &["-n", "prod", "backup", "list"][..],
        &["backup", "-n", "prod", "list"],
        &["backup", "list", "--namespace=prod", "-o", "name"],
        &[
            "-o",
            "jsonpath={.items[*].metadata.name}",
            "restore",
            "list",
            "-A",
        ],
        &[
            "-A",
            "schedule",
            "list",
            "-l",
            "tier in (gold),!draft",
            "-owide",
        ],
        &["--context", "x", "backup", "describe", "b1", "-o=yaml"],
        &["repo", "list", "-o", "custom-columns=NAME:.metadata.name"],
        &["backup", "windows", "--request-timeout", "1m", "-o", "json"],
    ] {
        let out = cairnctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
}

#[test]
fn bad_formats_and_options_a_command_cannot_honour_are_usage_errors() {
    let out = cairnctl(&["backup", "list", "-o", "tabular"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("custom-columns=HEADER:PATH"),
        "{}",
        text(&out)
    );
    let out = cairnctl(&["backup", "list", "-o", "jsonpath={.items[*]"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unclosed"), "{}", text(&out));
    let out = cairnctl(&["backup", "list", "--request-timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = cairnctl(&["backup", "list", "--json", "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Commands that do not list cluster objects refuse -o, -l and -A instead of ignoring them.
    for (args, says) in [
        (
            &["repo", "snapshots", "-o", "json"][..],
            "cairnctl repo does not take -o",
        ),
        (
            &["validate", "-f", "x.yaml", "-l", "a=b"],
            "cairnctl validate does not take -l",
        ),
        (
            &["repo", "list", "-A"],
            "cairnctl repo list does not take -A",
        ),
    ] {
        let out = cairnctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
}

#[test]
fn a_request_timeout_that_expires_exits_3() {
    let (_dir, kubeconfig) = silent_server();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["backup", "list", "--request-timeout", "2s", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        took < std::time::Duration::from_secs(60),
        "gave up after {took:?}"
    );
    assert!(
        text(&out).contains("listing Backups in namespace ns"),
        "{}",
        text(&out)
    );
    // kubectl gives up on the same server with the same option.
    let kubectl =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/kubectl");
    if kubectl.exists() {
        let out = Command::new(&kubectl)
            .args(["get", "pods", "--request-timeout", "2s", "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
    }
}

#[test]
fn version_prints_the_client_version_without_a_cluster() {
    let out = cairnctl(&["version", "--client"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Client Version: {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = cairnctl(&["version", "--client", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(value.get("controlPlanes").is_none());
    // Without --client it asks the cluster, and says when it cannot.
    let out = cairnctl(&["version"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
