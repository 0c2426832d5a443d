//! mTLS between separate processes: a second `cairn-agent` process presenting a certificate
//! for another node, or one from another CA, is refused and the control plane logs why, while
//! the stack's own agent stays connected.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_e2e::TestStack;
use cairn_e2e::run;
use cairn_e2e::wait::{Check, until};

/// Runs `cairn-control-plane ca ARGS`.
fn ca(stack: &TestStack, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(stack.stack.bin_dir.join("cairn-control-plane"))
        .arg("ca")
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cairn-control-plane ca {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A `cairn-agent` claiming the stack's node with `cert`/`key`, logging to `log`.
fn intruder(
    stack: &TestStack,
    cert: &Path,
    key: &Path,
    work: &Path,
    log: &Path,
) -> anyhow::Result<std::process::Child> {
    std::fs::create_dir_all(work.join("state"))?;
    std::fs::create_dir_all(work.join("node"))?;
    let log_file = std::fs::File::create(log)?;
    Ok(Command::new(stack.stack.bin_dir.join("cairn-agent"))
        .arg("--node-name")
        .arg(&stack.stack.node_name)
        .arg("--control-plane")
        .arg(format!("https://{}", stack.stack.agent_addr))
        .args(["--server-name", "localhost"])
        .arg("--tls-ca")
        .arg(stack.data_dir.join("tls/ca.pem"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--agent-dir")
        .arg(work.join("node"))
        .arg("--kubelet-dir")
        .arg(stack.data_dir.join("kube/kubelet"))
        .arg("--datasafed-bin")
        .arg(stack.stack.bin_dir.join("datasafed"))
        .args(["--storage-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &stack.stack.kubeconfig)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()?)
}

/// Waits until the control plane's log has a line containing every part of `parts`.
async fn control_plane_logs(stack: &TestStack, parts: &[&str]) -> anyhow::Result<String> {
    until(
        &format!("the control plane to log {parts:?}"),
        Duration::from_secs(30),
        async || {
            let log = stack.log("control-plane.log");
            Ok(
                match log
                    .lines()
                    .find(|line| parts.iter().all(|p| line.contains(p)))
                {
                    Some(line) => Check::Done(line.to_string()),
                    None => Check::Pending("no such line yet".into()),
                },
            )
        },
    )
    .await
}

/// Whether the stack's own agent is still counted as connected.
async fn one_agent_connected(stack: &TestStack) -> anyhow::Result<()> {
    let metrics = cairn_cli::standalone::metrics(stack.stack.health_addr)
        .await
        .unwrap_or_default();
    anyhow::ensure!(
        metrics.lines().any(|l| l == "cairn_connected_agents 1"),
        "the stack's own agent stays connected (and no other): {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("cairn_connected_agents"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_process_with_another_nodes_certificate_or_a_foreign_ca_is_refused_and_logged()
-> anyhow::Result<()> {
    run("agent-mtls", async |stack| {
        let work = stack.scratch.clone();
        let tls = stack.data_dir.join("tls");
        let node = stack.stack.node_name.clone();

        // A certificate from Cairn's own CA, but for another node.
        let other = work.join("other-node");
        ca(
            stack,
            &[
                "issue-agent",
                "--dir",
                &tls.display().to_string(),
                "--node",
                "other-node",
                "--out",
                &other.display().to_string(),
            ],
        )?;
        let log = work.join("intruder-1.log");
        let mut agent = intruder(
            stack,
            &other.with_extension("pem"),
            &work.join("other-node-key.pem"),
            &work.join("intruder-1"),
            &log,
        )?;
        let line = control_plane_logs(
            stack,
            &[
                "agent refused",
                "certificate is for node \"other-node\"",
                &format!("claims node \"{node}\""),
            ],
        )
        .await;
        let _ = agent.kill();
        let _ = agent.wait();
        let line = line?;
        anyhow::ensure!(
            line.contains("127.0.0.1"),
            "the refusal names the peer address: {line}"
        );
        let agent_log = std::fs::read_to_string(&log)?;
        anyhow::ensure!(
            agent_log.to_lowercase().contains("permission"),
            "the refused agent is told why (PERMISSION_DENIED): {agent_log}"
        );
        one_agent_connected(stack).await?;

        // A certificate for the right node from a CA Cairn does not know.
        let foreign = work.join("foreign-ca");
        ca(stack, &["init", "--dir", &foreign.display().to_string()])?;
        let forged = work.join("forged");
        ca(
            stack,
            &[
                "issue-agent",
                "--dir",
                &foreign.display().to_string(),
                "--node",
                &node,
                "--out",
                &forged.display().to_string(),
            ],
        )?;
        let before = stack.log("control-plane.log").lines().count();
        let mut agent = intruder(
            stack,
            &forged.with_extension("pem"),
            &work.join("forged-key.pem"),
            &work.join("intruder-2"),
            &work.join("intruder-2.log"),
        )?;
        let refused = until(
            "the control plane to refuse the foreign certificate",
            Duration::from_secs(30),
            async || {
                let log = stack.log("control-plane.log");
                Ok(
                    match log
                        .lines()
                        .skip(before)
                        .find(|l| l.contains("agent refused"))
                    {
                        Some(line) => Check::Done(line.to_string()),
                        None => Check::Pending("no refusal logged yet".into()),
                    },
                )
            },
        )
        .await;
        let _ = agent.kill();
        let _ = agent.wait();
        let refused = refused?;
        anyhow::ensure!(
            refused.to_lowercase().contains("certificate"),
            "the refusal says the certificate is the problem: {refused}"
        );
        one_agent_connected(stack).await
    })
    .await
}
