//! The pre-check of a Mount BackupRepo goes through the path backups use (ARCHITECTURE.md
//! §K5.3 step 6): after KubeBlocks' pre-check Job wrote and read the pre-check PVC, the node
//! agent opens that PVC as it opens a repository PVC for a backup (here through a holder pod on
//! its node, the volume being a shared CSI volume) and writes, reads back and removes a probe.
//! A repository whose PVCs can never be bound is Failed, the condition and a warning Event
//! naming the claim and why, instead of being Ready and failing every backup.

use std::time::Duration;

use anyhow::Context as _;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_e2e::manifests::render;
use cairn_e2e::run;
use cairn_e2e::wait::{Check, until};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};

const SHARED: &str = "precheck-shared";
const UNBOUND: &str = "precheck-unbound";

/// The Mount repository manifest on the `cairn-pvc` provider with the given PVC parameters.
fn repo(name: &str, parameters: &str) -> anyhow::Result<String> {
    let manifest = render(
        "db/mount-repo.yaml",
        &[("REPO", name), ("PROVIDER", "cairn-pvc")],
    )?
    .replace("storageClassName: local-path", parameters);
    anyhow::ensure!(manifest.contains(parameters), "{manifest}");
    Ok(manifest)
}

fn pre_check(repo: &BackupRepo) -> Option<Condition> {
    repo.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PreCheckPassed")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_repository_is_ready_only_once_the_agent_reached_it_and_failed_when_its_claim_never_binds()
-> anyhow::Result<()> {
    run("precheck-mount", async |stack| {
        stack
            .kubectl
            .apply(&render("db/pvc-provider.yaml", &[])?)
            .await?;
        let repos: Api<BackupRepo> = Api::all(stack.client.clone());

        // A shared (NFS-like CSI) volume: the Job, then the agent through a holder pod.
        stack
            .kubectl
            .apply(&repo(
                SHARED,
                "storageClassName: localkube-shared\n    accessMode: ReadWriteMany",
            )?)
            .await?;
        let ready =
            cairn_e2e::dp::repo_ready(&stack.client, SHARED, Duration::from_secs(120)).await?;
        let condition = pre_check(&ready).context("PreCheckPassed")?;
        anyhow::ensure!(
            condition.status == "True" && condition.reason == "PreCheckPassed",
            "{condition:?}"
        );
        let log = stack.log("agent.log");
        let held = log.lines().find(|line| {
            line.contains("holding a repository PVC on this node") && line.contains("pre-check-")
        });
        anyhow::ensure!(
            held.is_some(),
            "the agent did not open the pre-check PVC through a holder pod:\n{log}"
        );
        // The pre-check PVC goes once the check is over (after its holder pod, when idle).
        let claims: Api<PersistentVolumeClaim> = Api::all(stack.client.clone());
        until(
            "the pre-check PVC to be deleted",
            Duration::from_secs(90),
            async || {
                let left: Vec<String> = claims
                    .list(&ListParams::default().labels(&format!(
                        "{}={SHARED}",
                        cairn_api::well_known::label::BACKUP_REPO
                    )))
                    .await?
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .filter(|name| name.starts_with("pre-check-"))
                    .collect();
                Ok(if left.is_empty() {
                    Check::Done(())
                } else {
                    Check::Pending(left.join(", "))
                })
            },
        )
        .await?;

        // A StorageClass that does not exist: no repository PVC would ever be bound.
        stack
            .kubectl
            .apply(&repo(UNBOUND, "storageClassName: no-such-class")?)
            .await?;
        let failed = until(
            "the repository on a class that does not exist to fail its pre-check",
            Duration::from_secs(60),
            async || {
                let Some(repo) = repos.get_opt(UNBOUND).await? else {
                    return Ok(Check::Pending("no BackupRepo".into()));
                };
                let phase = repo.status.as_ref().and_then(|s| s.phase);
                Ok(match phase {
                    Some(BackupRepoPhase::Failed) => Check::Done(repo),
                    Some(BackupRepoPhase::Ready) => {
                        anyhow::bail!("a repository whose PVCs never bind is Ready: {repo:?}")
                    }
                    _ => Check::Pending(format!("{phase:?}: {:?}", pre_check(&repo))),
                })
            },
        )
        .await?;
        let condition = pre_check(&failed).context("PreCheckPassed")?;
        anyhow::ensure!(
            condition.status == "False" && condition.reason == "PreCheckFailed",
            "{condition:?}"
        );
        for part in [
            "the pre-check PVC ",
            "/pre-check-",
            "can never be bound",
            "\"no-such-class\" does not exist",
            "every backup would fail",
        ] {
            anyhow::ensure!(
                condition.message.contains(part),
                "the condition does not say {part:?}: {}",
                condition.message
            );
        }
        let events = stack
            .kubectl
            .get_json(&["events.events.k8s.io", "--all-namespaces"])
            .await?;
        let warned = events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "BackupRepoFailed"
                && e["regarding"]["name"] == UNBOUND
                && e["note"]
                    .as_str()
                    .is_some_and(|note| note.contains("no-such-class"))
        });
        anyhow::ensure!(
            warned,
            "no BackupRepoFailed Event naming the class: {events}"
        );
        Ok(())
    })
    .await
}
