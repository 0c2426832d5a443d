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
