//! The objects most tests need, applied with the real `kubectl` from `tests/manifests`: a
//! stateful pod with test data, a file-level ActionSet and a BackupPolicy, Backups and Restores.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::manifests::render;
use crate::stack::TestStack;

/// How long a pod may take to become Ready.
pub const POD_READY: Duration = Duration::from_secs(60);

/// A deployed stateful pod.
#[derive(Debug, Clone)]
pub struct Workload {
    pub namespace: String,
    pub pod: String,
    pub pvc: String,
    /// The value of its `app` label (the policy's selector).
    pub app: String,
    /// The host directory mounted at `/side` in the pod and in backup jobs.
    pub side_dir: PathBuf,
    /// The host directory of its `data` PVC.
    pub data_dir: PathBuf,
}

/// Creates namespace `namespace` and a pod `app-0` with PVC `data-app-0` holding
/// `random_bytes` of random data plus a few small files, and waits until it is Ready.
pub async fn workload(
    stack: &TestStack,
    namespace: &str,
    app: &str,
    random_bytes: usize,
) -> anyhow::Result<Workload> {
    stack.ensure_namespace(namespace).await?;
    let pod = format!("{app}-0");
    let pvc = format!("data-{app}-0");
    let side_dir = stack.scratch.join(format!("{namespace}-{app}-side"));
    std::fs::create_dir_all(&side_dir)
        .with_context(|| format!("creating {}", side_dir.display()))?;
    let bytes = random_bytes.to_string();
    let side = side_dir.display().to_string();
    stack
        .kubectl
        .apply(&render(
            "workload.yaml",
            &[
                ("NS", namespace),
                ("POD", &pod),
                ("PVC", &pvc),
                ("APP", app),
                ("RANDOM_BYTES", &bytes),
                ("SIDE_DIR", &side),
            ],
        )?)
        .await?;
    crate::dp::pod_ready(&stack.client, namespace, &pod, POD_READY).await?;
    let data_dir = crate::dp::pvc_dir(&stack.client, namespace, &pvc).await?;
    Ok(Workload {
        namespace: namespace.into(),
        pod,
        pvc,
        app: app.into(),
        side_dir,
        data_dir,
    })
}

/// Names of a policy and what it uses.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub method: String,
    pub actionset: String,
}

/// Applies the file ActionSet `actionset` (with `before_push` run before the push) and a
/// policy `policy` backing up `workload` with method `files` to `repo` ("" for the default
/// repository).
pub async fn file_policy(
    stack: &TestStack,
    workload: &Workload,
    policy: &str,
    actionset: &str,
    repo: &str,
    before_push: &str,
) -> anyhow::Result<Policy> {
    stack
        .kubectl
        .apply(&render(
            "actionset-files.yaml",
            &[("ACTIONSET", actionset), ("BEFORE_PUSH", before_push)],
        )?)
        .await?;
    policy_for(stack, workload, policy, actionset, repo, 2).await
}

/// Applies a policy `policy` backing up `workload` with method `files` and the existing (or
/// missing) ActionSet `actionset`.
pub async fn policy_for(
    stack: &TestStack,
    workload: &Workload,
    policy: &str,
    actionset: &str,
    repo: &str,
    backoff_limit: u32,
) -> anyhow::Result<Policy> {
    let backoff = backoff_limit.to_string();
    let repo_field = if repo.is_empty() {
        "# the default repository".to_string()
    } else {
        format!("backupRepoName: {repo}")
    };
    stack
        .kubectl
        .apply(&render(
            "policy.yaml",
            &[
                ("POLICY", policy),
                ("NS", &workload.namespace),
                ("REPO_FIELD", &repo_field),
                ("BACKOFF_LIMIT", &backoff),
                ("APP", &workload.app),
                ("METHOD", "files"),
                ("ACTIONSET", actionset),
            ],
        )?)
        .await?;
    Ok(Policy {
        name: policy.into(),
        method: "files".into(),
        actionset: actionset.into(),
    })
}

/// Deploys the snapshot workload `app-0` (`snapshot-workload.yaml`, on a local-csi claim) with
/// its snapshot ActionSet and policy `app-snapshots` (`snapshot-policy.yaml`, action timeout
/// `timeout`) in `namespace`; returns the host directory shared with the pod (`/side`).
pub async fn snapshot_workload(
    stack: &TestStack,
    namespace: &str,
    app: &str,
    timeout: &str,
) -> anyhow::Result<PathBuf> {
    stack.ensure_namespace(namespace).await?;
    let side = stack.scratch.join(format!("{app}-side"));
    std::fs::create_dir_all(&side)?;
    let side_text = side.display().to_string();
    stack
        .kubectl
        .apply(&render(
            "snapshot-workload.yaml",
            &[("NS", namespace), ("APP", app), ("SIDE_DIR", &side_text)],
        )?)
        .await?;
    stack
        .kubectl
        .apply(&render(
            "snapshot-policy.yaml",
            &[("NS", namespace), ("APP", app), ("TIMEOUT", timeout)],
        )?)
        .await?;
    crate::dp::pod_ready(&stack.client, namespace, &format!("{app}-0"), POD_READY).await?;
    Ok(side)
}

/// `kubectl create` of a Backup.
pub async fn backup(
    stack: &TestStack,
    namespace: &str,
    name: &str,
    policy: &str,
    method: &str,
    deletion_policy: &str,
) -> anyhow::Result<()> {
    stack
        .kubectl
        .create(&render(
            "backup.yaml",
            &[
                ("BACKUP", name),
                ("NS", namespace),
                ("POLICY", policy),
                ("METHOD", method),
                ("DELETION_POLICY", deletion_policy),
            ],
        )?)
        .await?;
    Ok(())
}

/// `kubectl create` of a Restore of `backup` into the new PVC `claim`.
pub async fn restore(
    stack: &TestStack,
    namespace: &str,
    name: &str,
    backup: &str,
    claim: &str,
) -> anyhow::Result<()> {
    stack
        .kubectl
        .create(&render(
            "restore.yaml",
            &[
                ("RESTORE", name),
                ("NS", namespace),
                ("BACKUP", backup),
                ("RESTORED_PVC", claim),
            ],
        )?)
        .await?;
    Ok(())
}

/// `kubectl create` of a Restore of `backup` that is a data source (`dataSourceRef`, the
/// backup's `data` volume), then of claim `claim` in `namespace` naming it in its
/// `spec.dataSourceRef` (with the Restore's namespace `source_namespace`) and of pod
/// `<claim>-reader`, which prints `/data/hello.txt` and lists `/data` once the claim is bound.
pub async fn populated_claim(
    stack: &TestStack,
    namespace: &str,
    claim: &str,
    source_namespace: &str,
    restore: &str,
) -> anyhow::Result<()> {
    stack
        .kubectl
        .create(&render(
            "populated-claim.yaml",
            &[
                ("NS", namespace),
                ("CLAIM", claim),
                ("SOURCE_NS", source_namespace),
                ("RESTORE", restore),
            ],
        )?)
        .await?;
    Ok(())
}

/// `kubectl create` of a Restore `name` of `backup` that is a data source for claims
/// (`prepareDataConfig.dataSourceRef` of the backup's `data` volume).
pub async fn data_source_restore(
    stack: &TestStack,
    namespace: &str,
    name: &str,
    backup: &str,
) -> anyhow::Result<()> {
    stack
        .kubectl
        .create(&render(
            "restore-data-source.yaml",
            &[("RESTORE", name), ("NS", namespace), ("BACKUP", backup)],
        )?)
        .await?;
    Ok(())
}
