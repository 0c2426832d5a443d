//! `cairn-control-plane ca issue-agent --renew-before --every`, the agent pod's renewal
//! container, as a real process: it issues the certificate, keeps running, and stops cleanly
//! on SIGTERM (a container's PID 1 gets no default action for it, so the binary must handle it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_renewal_loop_issues_then_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cairn-control-plane");
    let dir = tmp.path().join("ca");
    let status = Command::new(bin)
        .args(["ca", "init", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = tmp.path().join("tls/agent");
    let mut child = Command::new(bin)
        .args(["ca", "issue-agent", "--node", "n1", "--days", "30"])
        .args(["--renew-before", "240h", "--every", "1h", "--dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cert = tmp.path().join("tls/agent.pem");
    let started = Instant::now();
    while !cert.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no certificate at {}",
            cert.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the loop ended by itself"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "SIGTERM ends the loop with success, not by the signal: {status:?}"
    );
}
