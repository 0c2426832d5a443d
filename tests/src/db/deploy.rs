//! Puts a database pod on the stack the way a KubeBlocks component instance looks: an account
//! Secret, a data PVC (new, or one a Restore filled) and the pod, labelled with its cluster
//! instance and component so that a BackupPolicy's selector finds it.

use std::path::PathBuf;
use std::time::Duration;

use crate::manifests::render;
use crate::stack::TestStack;

/// How long a database pod may take to become Ready (initialising a new database included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Which pod to run.
#[derive(Debug, Clone)]
pub struct PodSpec<'a> {
    /// Template under `tests/manifests` (`db/postgresql-pod.yaml`, ...).
    pub template: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
    /// Its data PVC.
    pub pvc: &'a str,
    /// `app.kubernetes.io/instance` (the cluster).
    pub instance: &'a str,
    /// `apps.kubeblocks.io/component-name`.
    pub component: &'a str,
    /// The account Secret it reads.
    pub secret: &'a str,
    /// Whether to create the PVC (false: a Restore created and filled it).
    pub new_volume: bool,
}

/// A running database pod.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub pod: String,
    pub pvc: String,
    /// The port it listens on at 127.0.0.1 (pods share the host's network).
    pub port: u16,
    /// The host directory of its data PVC.
    pub data_dir: PathBuf,
}

/// Creates the account Secret `secret` with `user` and `password`.
pub async fn account(
    stack: &TestStack,
    namespace: &str,
    secret: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    stack
        .kubectl
        .apply(&render(
            "db/account.yaml",
            &[
                ("NS", namespace),
                ("SECRET", secret),
                ("USER", user),
                ("PASSWORD", password),
            ],
        )?)
        .await?;
    Ok(())
}

/// Starts the pod on a free port and waits until its readiness probe passes.
pub async fn pod(stack: &TestStack, spec: &PodSpec<'_>) -> anyhow::Result<Deployed> {
    if spec.new_volume {
        stack
            .kubectl
            .apply(&render(
                "db/data-pvc.yaml",
                &[("NS", spec.namespace), ("PVC", spec.pvc)],
            )?)
            .await?;
    }
    let port = super::host::free_port()?;
    let port_text = port.to_string();
    stack
        .kubectl
        .apply(&render(
            spec.template,
            &[
                ("NS", spec.namespace),
                ("POD", spec.pod),
                ("PVC", spec.pvc),
                ("INSTANCE", spec.instance),
                ("COMPONENT", spec.component),
                ("SECRET", spec.secret),
                ("PORT", &port_text),
            ],
        )?)
        .await?;
    if let Err(error) =
        crate::dp::pod_ready(&stack.client, spec.namespace, spec.pod, READY_TIMEOUT).await
    {
        let logs = stack
            .kubectl
            .output(&["logs", "-n", spec.namespace, spec.pod, "--tail=30"], None)
            .await
            .map(|o| format!("{}{}", o.stdout, o.stderr))
            .unwrap_or_default();
        return Err(error.context(format!("pod {} log:\n{logs}", spec.pod)));
    }
    let data_dir = crate::dp::pvc_dir(&stack.client, spec.namespace, spec.pvc).await?;
    Ok(Deployed {
        pod: spec.pod.into(),
        pvc: spec.pvc.into(),
        port,
        data_dir,
    })
}
