//! Action Jobs in a namespace that enforces the `baseline` Pod Security Standard (localkube
//! enforces `pod-security.kubernetes.io/enforce` as the apiserver does): a backup, a restore and
//! a deletion with a preDelete Job all run there, and every Job Cairn created is held against
//! the standard's rules, its `datasafed` init container against `restricted`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use cairn_e2e::{dp, files, run, scenario};
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use localkube::admission::pod_security::{Level, violations};
use serde_json::{Value, json};

const NS: &str = "guarded";

/// A namespace enforcing `level`, and a pod `db-0` holding test data in its PVC
/// (no hostPath: the workload itself must pass the level).
fn workload(level: &str, namespace: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
  labels:
    pod-security.kubernetes.io/enforce: {level}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-db-0
  namespace: {namespace}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: {namespace}
  labels:
    app: db
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: main
      image: busybox:1.36
      command:
        - sh
        - -c
        - |
          set -e
          if [ ! -f /data/.seeded ]; then
            mkdir -p "/data/dir with spaces"
            head -c 2000000 /dev/urandom > /data/random.bin
            echo "hello from a guarded namespace" > "/data/dir with spaces/hello.txt"
            touch /data/.seeded
          fi
          exec sleep 3600
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      readinessProbe:
        exec:
          command: [test, -f, /data/.seeded]
        periodSeconds: 1
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: data-db-0
"#
    )
}

/// The file ActionSet with a preDelete Job, and a policy with only the `data` volume.
fn policy(namespace: &str) -> String {
    format!(
        r#"apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: ActionSet
metadata:
  name: files-guarded
spec:
  backupType: Full
  backup:
    backupData:
      image: busybox:1.36
      runOnTargetPodNode: true
      command:
        - sh
        - -c
        - |
          set -e
          export PATH="$PATH:$DP_DATASAFED_BIN_PATH"
          export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
          tar -cf - -C /data . | datasafed push -z zstd-fastest - "/$DP_BACKUP_NAME.tar.zst"
          size=$(datasafed stat / | awk '/TotalSize/ {{print $2}}')
          echo "{{\"totalSize\":\"$size\"}}" > "$DP_BACKUP_INFO_FILE"
    preDelete:
      image: busybox:1.36
      command:
        - sh
        - -c
        - |
          set -e
          export PATH="$PATH:$DP_DATASAFED_BIN_PATH"
          export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
          datasafed list /
  restore:
    prepareData:
      image: busybox:1.36
      command:
        - sh
        - -c
        - |
          set -e
          export PATH="$PATH:$DP_DATASAFED_BIN_PATH"
          export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
          datasafed pull -d zstd-fastest "/$DP_BACKUP_NAME.tar.zst" - | tar -xf - -C /data
---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupPolicy
metadata:
  name: db-files
  namespace: {namespace}
spec:
  backoffLimit: 0
  target:
    podSelector:
      matchLabels:
        app: db
      strategy: Any
  backupMethods:
    - name: files
      actionSetName: files-guarded
      targetVolumes:
        volumes: [data]
        volumeMounts:
          - name: data
            mountPath: /data
"#
    )
}

/// Every rule of `level` the pod template of `job` breaks.
fn job_violations(level: Level, job: &Job) -> anyhow::Result<Vec<String>> {
    let template = serde_json::to_value(&job.spec.as_ref().context("job spec")?.template)?;
    Ok(violations(level, &json!({"spec": template["spec"]})))
}

/// Every Job created in `namespace` while the test runs (finished actions' Jobs are deleted,
/// so they are collected as they appear).
struct JobRecorder {
    seen: Arc<Mutex<BTreeMap<String, Job>>>,
    task: tokio::task::JoinHandle<()>,
}

impl JobRecorder {
    fn start(client: &kube::Client, namespace: &str) -> JobRecorder {
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(jobs, watcher::Config::default()).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(job)) = stream.next().await {
                let name = job.metadata.name.clone().unwrap_or_default();
                into.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(name)
                    .or_insert(job);
            }
        });
        JobRecorder { seen, task }
    }

    fn jobs(&self) -> Vec<Job> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

impl Drop for JobRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds every Job recorded to `baseline`, and the agent's init container alone to
/// `restricted`; returns the names of the Jobs checked.
fn check_jobs(recorder: &JobRecorder) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for job in recorder.jobs() {
        let name = job.metadata.name.clone().unwrap_or_default();
        let broken = job_violations(Level::Baseline, &job)?;
        anyhow::ensure!(broken.is_empty(), "Job {name} breaks baseline: {broken:?}");
        let template = serde_json::to_value(&job.spec.as_ref().context("spec")?.template)?;
        let init = template["spec"]["initContainers"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == "cairn-install-datasafed"))
            .with_context(|| format!("Job {name} has no datasafed init container"))?;
        let volumes: Vec<&Value> = template["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["name"] == "cairn-datasafed-bin")
            .collect();
        let alone =
            json!({"spec": {"initContainers": [init], "containers": [], "volumes": volumes}});
        let broken = violations(Level::Restricted, &alone);
        anyhow::ensure!(
            broken.is_empty(),
            "the datasafed init container of Job {name} breaks restricted: {broken:?}"
        );
        names.push(name);
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restores_and_deletions_run_in_a_namespace_enforcing_baseline() -> anyhow::Result<()>
{
    run("pod-security", async |stack| {
        let recorder = JobRecorder::start(&stack.client, NS);
        stack.kubectl.apply(&workload("baseline", NS)).await?;
        dp::pod_ready(&stack.client, NS, "db-0", scenario::POD_READY).await?;
        let data_dir = dp::pvc_dir(&stack.client, NS, "data-db-0").await?;
        let source = files::tree(&data_dir)?;
        stack.kubectl.apply(&policy(NS)).await?;

        scenario::backup(stack, NS, "db-1", "db-files", "files", "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "db-1", Duration::from_secs(120)).await?;
        let path = backup.status.unwrap_or_default().path.unwrap_or_default();
        let stored = stack.local_repo().join(path.trim_start_matches('/'));
        anyhow::ensure!(
            stored.join("db-1.tar.zst").is_file(),
            "the archive reached the repository through the agent's endpoint"
        );

        scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(120)).await?;
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored PVC differs:\n{}",
            differences.join("\n")
        );

        // The deletion runs the preDelete Job, then removes the files.
        let backups: Api<cairn_api::backup::Backup> = Api::namespaced(stack.client.clone(), NS);
        backups.delete("db-1", &DeleteParams::default()).await?;
        dp::gone(&backups, "db-1", Duration::from_secs(120)).await?;
        anyhow::ensure!(
            !stored.join("db-1.tar.zst").exists(),
            "the deletion removed the archive"
        );
        let checked = check_jobs(&recorder)?;
        for kind in ["dp-backup-", "restore-preparedata-", "predelete"] {
            anyhow::ensure!(
                checked.iter().any(|name| name.contains(kind)),
                "no {kind} Job was checked: {checked:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_job_pods_are_refused_fails_promptly_with_the_refusal() -> anyhow::Result<()>
{
    const STRICT: &str = "strict";
    run("pod-security-refused", async |stack| {
        // The workload passes `restricted`; the backup Job's container runs as root (KubeBlocks'
        // backup Jobs do, ARCHITECTURE.md §K2.3), which `restricted` refuses.
        stack.kubectl.apply(&workload("restricted", STRICT)).await?;
        dp::pod_ready(&stack.client, STRICT, "db-0", scenario::POD_READY).await?;
        stack.kubectl.apply(&policy(STRICT)).await?;
        let started = std::time::Instant::now();
        scenario::backup(stack, STRICT, "db-1", "db-files", "files", "Delete").await?;
        // The action's own timeout is far longer: only the FailedCreate event ends it this soon.
        let backup =
            dp::backup_finished(&stack.client, STRICT, "db-1", Duration::from_secs(90)).await?;
        let took = started.elapsed();
        anyhow::ensure!(
            dp::backup_phase(&backup) == "Failed",
            "the backup {}",
            dp::backup_phase(&backup)
        );
        let actions = serde_json::to_string(
            &backup
                .status
                .as_ref()
                .and_then(|s| s.actions.clone())
                .unwrap_or_default(),
        )?;
        anyhow::ensure!(
            actions.contains("FailedCreate") && actions.contains("violates PodSecurity"),
            "the action's failure names the refusal: {actions}"
        );
        eprintln!("the refused backup failed after {took:?}");
        // The agent deleted the Job, so no pod appears later and runs unattended.
        let jobs: Api<Job> = Api::namespaced(stack.client.clone(), STRICT);
        let left = jobs.list(&Default::default()).await?.items;
        anyhow::ensure!(
            left.iter().all(|j| j.metadata.deletion_timestamp.is_some()),
            "the refused Job was left to retry: {:?}",
            left.iter()
                .map(|j| j.metadata.name.clone())
                .collect::<Vec<_>>()
        );
        Ok(())
    })
    .await
}
