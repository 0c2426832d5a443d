//! Leadership changes in the middle of a backup, with two `cairn-control-plane` processes
//! electing a leader through a Lease in localkube and one agent given both addresses
//! (docs/ARCHITECTURE.md, HA).
//!
//! The backup job appends a line to `/side/runs` (a host directory) and then sleeps, so the
//! leader can be taken away while the action runs. Afterwards the Backup must be Completed on
//! the other control plane, the job must have run exactly once, and the agent must be attached
//! to the new leader. The times from the leader's loss to the agent reattaching and to the
//! backup completing are printed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cairn_cli::standalone::{HA_LEASE, HaOptions, StackOptions, connected_agents, probe};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::stack::TestStack;
use crate::wait::{Check, until};
use crate::{dp, files, scenario};

const NS: &str = "shop";
/// How long the Lease is valid: how long after the leader's loss the other replica takes over.
pub const LEASE: Duration = Duration::from_secs(4);
/// Also the grace period the new leader gives agents: with the leader's own start as its
/// start (the bug this guards against), the node would be lost at once.
pub const GRACE: &str = "15s";

/// How the leader is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `kill -9`, then the process is started again (as Kubernetes would) once the backup is done.
    Kill,
    /// SIGSTOP for longer than the lease, SIGCONT while the backup still runs on the new leader.
    Freeze,
}

/// Stack options for the scenario: two control planes with short lease timings.
pub fn options(options: &mut StackOptions) {
    options.agent_grace_period = GRACE.into();
    options.ha = Some(HaOptions {
        lease_duration: format!("{}s", LEASE.as_secs()),
        renew_deadline: "3s".into(),
        retry_period: "500ms".into(),
        heartbeat_interval: "1s".into(),
    });
}

/// The identity of the Lease's holder.
async fn holder(client: &kube::Client) -> anyhow::Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    Ok(leases
        .get_opt(HA_LEASE)
        .await
        .context("reading the leader Lease")?
        .and_then(|l| l.spec?.holder_identity))
}

/// A probe that gives up after a second (a frozen process accepts but never answers).
async fn agents_on(addr: SocketAddr) -> Option<i64> {
    tokio::time::timeout(Duration::from_secs(1), connected_agents(addr))
        .await
        .ok()
        .flatten()
}

async fn body_of(addr: SocketAddr, path: &str) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(1), probe(addr, path))
        .await
        .ok()
        .flatten()
}

/// Runs the scenario; see the module documentation.
pub async fn lose_the_leader_in_the_middle_of_a_backup(
    stack: &mut TestStack,
    loss: Loss,
) -> anyhow::Result<()> {
    let addrs = stack.stack.health_addrs();
    anyhow::ensure!(
        addrs.len() == 2,
        "the stack runs {} control planes",
        addrs.len()
    );
    // Both replicas are Ready (healthy), whichever leads.
    for addr in &addrs {
        let ready = body_of(*addr, "/readyz").await.unwrap_or_default();
        anyhow::ensure!(
            ready == "leading" || ready == "following",
            "control plane at {addr} is not Ready: /readyz says {ready:?}"
        );
    }
    let leader = until("a leader", Duration::from_secs(30), async || {
        Ok(match holder(&stack.client).await? {
            Some(h) if h == "cp-0" || h == "cp-1" => Check::Done(h),
            other => Check::Pending(format!("Lease holder {other:?}")),
        })
    })
    .await?;
    let (old, new) = if leader == "cp-0" { (0, 1) } else { (1, 0) };
    let new_identity = format!("cp-{new}");
    // The agent is attached to the leader only: the follower refused it.
    until(
        "the agent to be attached to the leader only",
        Duration::from_secs(30),
        async || {
            let on_leader = agents_on(addrs[old]).await;
            let on_follower = agents_on(addrs[new]).await;
            Ok(match (on_leader, on_follower) {
                (Some(1), Some(0)) => Check::Done(()),
                other => Check::Pending(format!("agents on (leader, follower): {other:?}")),
            })
        },
    )
    .await?;

    let workload = scenario::workload(stack, NS, "db", 1 << 20).await?;
    let source = files::tree(&workload.data_dir)?;
    let policy = scenario::file_policy(
        stack,
        &workload,
        "db",
        "slow-files",
        "",
        "echo run >> /side/runs; sleep 16",
    )
    .await?;
    scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
    let runs = workload.side_dir.join("runs");
    until(
        "the backup job to start",
        Duration::from_secs(60),
        async || {
            Ok(match std::fs::read_to_string(&runs) {
                Ok(text) if !text.is_empty() => Check::Done(()),
                _ => Check::Pending("the job has not counted its run".into()),
            })
        },
    )
    .await?;

    let (child, _) = stack
        .stack
        .control_plane_at(old)
        .context("the leader's process")?;
    let pid = Pid::from_raw(
        i32::try_from(child.pid().context("the leader has no pid")?).context("pid range")?,
    );
    let lost_at = Instant::now();
    match loss {
        Loss::Kill => child.kill9(),
        Loss::Freeze => kill(pid, Signal::SIGSTOP).context("SIGSTOP to the leader")?,
    }
    eprintln!("{loss:?}: took the leader cp-{old} away");

    until(
        "the other control plane to take the Lease",
        Duration::from_secs(30),
        async || {
            Ok(match holder(&stack.client).await? {
                Some(h) if h == new_identity => Check::Done(()),
                other => Check::Pending(format!("Lease holder {other:?}")),
            })
        },
    )
    .await?;
    let elected = lost_at.elapsed();
    until(
        "the agent to attach to the new leader",
        Duration::from_secs(30),
        async || {
            Ok(match agents_on(addrs[new]).await {
                Some(n) if n > 0 => Check::Done(()),
                other => Check::Pending(format!("agents on the new leader: {other:?}")),
            })
        },
    )
    .await?;
    let attached = lost_at.elapsed();

    if loss == Loss::Freeze {
        // Resume the old leader while the backup still runs on the new one: it must notice
        // that it lost the Lease before doing anything, and step down.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let runs_text = std::fs::read_to_string(&runs)?;
        anyhow::ensure!(
            runs_text.lines().count() == 1,
            "the job ran again while the old leader was frozen"
        );
        kill(pid, Signal::SIGCONT).context("SIGCONT to the old leader")?;
        eprintln!("resumed cp-{old} after {:?}", lost_at.elapsed());
        until(
            "the resumed old leader to follow",
            Duration::from_secs(10),
            async || {
                let ready = body_of(addrs[old], "/readyz").await;
                let agents = agents_on(addrs[old]).await;
                Ok(match (ready.as_deref(), agents) {
                    (Some("following"), Some(0)) => Check::Done(()),
                    other => {
                        Check::Pending(format!("/readyz and agents of the old leader: {other:?}"))
                    }
                })
            },
        )
        .await?;
    }

    let backup = dp::backup_finished(&stack.client, NS, "db-1", Duration::from_secs(90)).await?;
    let completed = lost_at.elapsed();
    anyhow::ensure!(
        dp::backup_phase(&backup) == "Completed",
        "the Backup ended {} ({:?}) after the leadership change; the new leader must complete it",
        dp::backup_phase(&backup),
        dp::failure_reason(&backup)
    );
    let counted = std::fs::read_to_string(&runs)?;
    anyhow::ensure!(
        counted.lines().count() == 1,
        "the action ran exactly once, /side/runs has {} lines",
        counted.lines().count()
    );
    eprintln!(
        "HA {loss:?}: new leader elected after {:.1} s, agent reattached after {:.1} s, backup \
         completed after {:.1} s (lease {} s, job sleeping 16 s)",
        elected.as_secs_f64(),
        attached.as_secs_f64(),
        completed.as_secs_f64(),
        LEASE.as_secs()
    );
    // After a kill the agent's stream breaks at once; on a frozen leader the agent notices
    // after three heartbeats (3 s) and a dial to the frozen process gives up after 5 s.
    let limit = match loss {
        Loss::Kill => Duration::from_secs(5),
        Loss::Freeze => Duration::from_secs(10),
    };
    anyhow::ensure!(
        attached - elected < limit,
        "the agent took {:?} after the election to reach the new leader",
        attached - elected
    );
    // The agent stays with the new leader; the old one (restarted or resumed) follows.
    if loss == Loss::Kill {
        let (child, _) = stack
            .stack
            .control_plane_at(old)
            .context("the old leader's process")?;
        child.respawn()?;
    }
    until(
        "the old leader to answer as a follower",
        Duration::from_secs(30),
        async || {
            Ok(match body_of(addrs[old], "/readyz").await.as_deref() {
                Some("following") => Check::Done(()),
                other => Check::Pending(format!("/readyz of the old leader: {other:?}")),
            })
        },
    )
    .await?;
    anyhow::ensure!(
        agents_on(addrs[new]).await == Some(1) && agents_on(addrs[old]).await == Some(0),
        "the agent is not attached to the new leader alone"
    );
    dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await?;
    scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
    dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(60)).await?;
    let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
    let differences = files::differences(&source, &restored);
    anyhow::ensure!(
        differences.is_empty(),
        "the data backed up across the leadership change restores unchanged:\n{}",
        differences.join("\n")
    );
    Ok(())
}
