//! Coexistence with KubeBlocks' own data-protection controller (ARCHITECTURE.md §K9): both
//! reconcile `dataprotection.kubeblocks.io`, so while KubeBlocks' controller runs, Cairn stands
//! by instead of racing it over the same Backups, Restores and repositories, and says why (a
//! warning in its log, an Event on KubeBlocks' Deployment, the `/readyz` body), unless told to
//! take over (`--take-over-from-kubeblocks=true`).
//!
//! KubeBlocks' chart (0.9 and 1.x, `deploy/helm/templates/dataprotection.yaml`) runs the
//! controller as the Deployment `<fullname>-dataprotection`, labelled
//! `app.kubernetes.io/name=kubeblocks` and `app.kubernetes.io/component=dataprotection`, electing
//! its leader through the Lease `abd03fda.kubeblocks.io` in its namespace. The controller counts
//! as active while that Deployment asks for replicas, while any of its pods remain, or while
//! that Lease is held; scaled to zero with its Lease released or expired, it is not.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The labels of KubeBlocks' data-protection Deployment.
pub const KUBEBLOCKS_DATAPROTECTION_SELECTOR: &str =
    "app.kubernetes.io/name=kubeblocks,app.kubernetes.io/component=dataprotection";
/// The Lease KubeBlocks' data-protection controller elects its leader with (its default
/// `--leader-elect-id` `abd03fda` and the `.kubeblocks.io` suffix it appends).
pub const KUBEBLOCKS_DATAPROTECTION_LEASE: &str = "abd03fda.kubeblocks.io";

/// An active KubeBlocks data-protection controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveController {
    /// Namespace of its Deployment.
    pub namespace: String,
    /// Name of its Deployment.
    pub name: String,
    /// Why it counts as active.
    pub why: String,
}

impl std::fmt::Display for ActiveController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.name, self.why)
    }
}

/// Why `deployment` (with its namespace's KubeBlocks Lease, if any) counts as an active
/// controller at `now`; `None` when it does not.
pub fn active_because(
    deployment: &Deployment,
    lease: Option<&Lease>,
    now: jiff::Timestamp,
) -> Option<String> {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    if wanted > 0 {
        return Some(format!("its Deployment asks for {wanted} replica(s)"));
    }
    let running = deployment
        .status
        .as_ref()
        .and_then(|status| status.replicas)
        .unwrap_or(0);
    if running > 0 {
        return Some(format!("scaled to 0, but {running} of its pods still run"));
    }
    let spec = lease?.spec.as_ref()?;
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.as_ref()?.0;
    let duration =
        jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    (renewed + duration > now).then(|| {
        format!("scaled to 0, but {holder} still holds its Lease {KUBEBLOCKS_DATAPROTECTION_LEASE}")
    })
}

/// Every active KubeBlocks data-protection controller in the cluster.
pub async fn find_active(client: &kube::Client) -> Result<Vec<ActiveController>, kube::Error> {
    let deployments = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().labels(KUBEBLOCKS_DATAPROTECTION_SELECTOR))
        .await?;
    let now = jiff::Timestamp::now();
    let mut active = Vec::new();
    for deployment in deployments {
        let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let lease = Api::<Lease>::namespaced(client.clone(), &namespace)
            .get_opt(KUBEBLOCKS_DATAPROTECTION_LEASE)
            .await?;
        if let Some(why) = active_because(&deployment, lease.as_ref(), now) {
            active.push(ActiveController {
                namespace,
                name,
                why,
            });
        }
    }
    Ok(active)
}

/// What the guard decided, for `/readyz` and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Standing {
    /// Not checked yet.
    #[default]
    Unknown,
    /// No active KubeBlocks controller: Cairn reconciles.
    Clear,
    /// KubeBlocks' controller is active and Cairn was told to take over: it reconciles too.
    TakingOver(Vec<ActiveController>),
    /// KubeBlocks' controller is active: Cairn does not reconcile.
    StandingBy(Vec<ActiveController>),
    /// The check failed (the message): Cairn does not reconcile until it succeeds.
    CannotTell(String),
}

impl Standing {
    /// Whether the reconcilers may run.
    pub fn may_reconcile(&self) -> bool {
        matches!(self, Standing::Clear | Standing::TakingOver(_))
    }

    /// One sentence for the log and `/readyz`; `None` when there is nothing to say.
    pub fn explain(&self) -> Option<String> {
        let list = |controllers: &[ActiveController]| {
            controllers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Standing::Unknown | Standing::Clear => None,
            Standing::TakingOver(controllers) => Some(format!(
                "KubeBlocks' data-protection controller is active ({}) and --take-over-from-kubeblocks is set: reconciling anyway, so both controllers act on the same dataprotection.kubeblocks.io objects until KubeBlocks' is turned off",
                list(controllers)
            )),
            Standing::StandingBy(controllers) => Some(format!(
                "not reconciling: KubeBlocks' data-protection controller is active ({}) and would act on the same dataprotection.kubeblocks.io objects; turn it off (helm upgrade <kubeblocks release> --reuse-values --set dataProtection.enabled=false) or start Cairn with --take-over-from-kubeblocks=true (chart value controlPlane.takeOverFromKubeBlocks); see the chart README, \"Migrating from KubeBlocks' data protection\"",
                list(controllers)
            )),
            Standing::CannotTell(err) => Some(format!(
                "not reconciling: cannot tell whether KubeBlocks' data-protection controller runs ({err}); grant list on deployments.apps and get on leases.coordination.k8s.io, or start Cairn with --take-over-from-kubeblocks=true"
            )),
        }
    }
}

/// Settings of the guard.
#[derive(Clone, Debug)]
pub struct GuardSettings {
    /// Reconcile even while KubeBlocks' controller is active.
    pub take_over: bool,
    /// How often to look.
    pub interval: Duration,
}

/// Looks for an active KubeBlocks controller every `settings.interval` until `shutdown`;
/// the returned receiver holds the current [`Standing`].
pub fn spawn(
    client: kube::Client,
    settings: GuardSettings,
    shutdown: CancellationToken,
) -> watch::Receiver<Standing> {
    let (tx, rx) = watch::channel(Standing::Unknown);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "cairn-control-plane".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    tokio::spawn(async move {
        loop {
            let standing = match find_active(&client).await {
                Ok(active) if active.is_empty() => Standing::Clear,
                Ok(active) if settings.take_over => Standing::TakingOver(active),
                Ok(active) => Standing::StandingBy(active),
                Err(_) if settings.take_over => Standing::Clear,
                Err(err) => Standing::CannotTell(crate::shell::chain(&err)),
            };
            let before = tx.borrow().clone();
            if before != standing {
                announce(&recorder, &standing, &before).await;
                tx.send_replace(standing);
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(settings.interval) => {}
            }
        }
    });
    rx
}

async fn announce(recorder: &Recorder, standing: &Standing, before: &Standing) {
    match (standing.explain(), standing) {
        (Some(text), Standing::TakingOver(_)) => tracing::warn!("{text}"),
        (Some(text), _) => tracing::error!("{text}"),
        (None, _) if !matches!(before, Standing::Unknown) => {
            tracing::info!("no active KubeBlocks data-protection controller any more: reconciling")
        }
        (None, _) => {}
    }
    let controllers = match standing {
        Standing::StandingBy(controllers) | Standing::TakingOver(controllers) => controllers,
        _ => return,
    };
    for controller in controllers {
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            namespace: Some(controller.namespace.clone()),
            name: Some(controller.name.clone()),
            ..Default::default()
        };
        let (reason, note) = match standing {
            Standing::TakingOver(_) => (
                "CairnTakingOver",
                "Cairn reconciles dataprotection.kubeblocks.io objects alongside this controller (--take-over-from-kubeblocks); turn this one off",
            ),
            _ => (
                "CairnStandingBy",
                "Cairn does not reconcile dataprotection.kubeblocks.io objects while this controller runs; turn it off (dataProtection.enabled=false) or start Cairn with --take-over-from-kubeblocks=true",
            ),
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Coexist".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::debug!(error = %err, "publishing an event on {}/{} failed", controller.namespace, controller.name);
        }
    }
}

/// Leading and clear to reconcile: what the reconcilers run on.
pub fn gate(
    mut leading: watch::Receiver<bool>,
    mut standing: watch::Receiver<Standing>,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let may = *leading.borrow_and_update() && standing.borrow_and_update().may_reconcile();
            tx.send_if_modified(|current| {
                let modified = *current != may;
                *current = may;
                modified
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leading.changed() => if changed.is_err() { return },
                changed = standing.changed() => if changed.is_err() { return },
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn deployment(replicas: Option<i32>, running: Option<i32>) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas,
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                replicas: running,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(holder: &str, renewed: jiff::Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_deployment_asking_for_replicas_running_pods_or_a_held_lease_is_active() {
        let now = jiff::Timestamp::now();
        let secs = jiff::SignedDuration::from_secs;
        assert_eq!(
            active_because(&deployment(None, None), None, now).as_deref(),
            Some("its Deployment asks for 1 replica(s)")
        );
        assert!(active_because(&deployment(Some(2), Some(0)), None, now).is_some());
        assert!(active_because(&deployment(Some(0), Some(1)), None, now).is_some());
        assert_eq!(
            active_because(&deployment(Some(0), Some(0)), None, now),
            None
        );
        let held = lease("kb-dp-0", now - secs(5));
        assert!(
            active_because(&deployment(Some(0), None), Some(&held), now)
                .is_some_and(|why| why.contains("kb-dp-0"))
        );
        let expired = lease("kb-dp-0", now - secs(60));
        assert_eq!(
            active_because(&deployment(Some(0), None), Some(&expired), now),
            None
        );
        let released = lease("", now);
        assert_eq!(
            active_because(&deployment(Some(0), None), Some(&released), now),
            None
        );
    }

    #[test]
    fn only_clear_or_taking_over_may_reconcile() {
        let kb = ActiveController {
            namespace: "kb-system".into(),
            name: "kubeblocks-dataprotection".into(),
            why: "its Deployment asks for 1 replica(s)".into(),
        };
        assert!(Standing::Clear.may_reconcile());
        assert!(Standing::TakingOver(vec![kb.clone()]).may_reconcile());
        assert!(!Standing::Unknown.may_reconcile());
        assert!(!Standing::CannotTell("x".into()).may_reconcile());
        let standing_by = Standing::StandingBy(vec![kb]);
        assert!(!standing_by.may_reconcile());
        let text = standing_by.explain().unwrap();
        assert!(
            text.contains("kb-system/kubeblocks-dataprotection")
                && text.contains("--take-over-from-kubeblocks=true"),
            "{text}"
        );
    }
}
