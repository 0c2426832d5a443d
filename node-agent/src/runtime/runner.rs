//! The agent's `ActionRunner`: runs each assigned action in a task of its own (exec, job,
//! repository check, file deletion, object write, volume snapshots), reports progress every second and the
//! outcome once, and re-adopts Jobs after an agent restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cairn_api::well_known;
use cairn_proto::agent::v1::{Action, StorageGrant, action};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodSpec;
use kube::api::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::archiver::{self, Supervision};
use super::exec::{self, ExecRequest};
use super::holder_pod;
use super::job::{self, ActionInjection, InfoFile, NodeInjection};
use super::mount_claim;
use super::repo_ops;
use super::snapshot;
use super::volume_move;
use crate::session::{ActionRunner, Outcome, ProgressUpdate, Reporter};
use crate::socket::grants::{Grants, Token};

/// How often a running Job is checked for pods the API server refuses (`FailedCreate`).
const REFUSAL_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// How often an archiver's StatefulSet, pod and backup info file are looked at.
const ARCHIVER_LOOK_INTERVAL: Duration = Duration::from_secs(2);

/// Where this agent runs and what it injects into Jobs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub node: NodeInjection,
    /// The kubelet's root directory (pod volumes live under `<dir>/pods/<uid>/volumes`).
    pub kubelet_dir: PathBuf,
    /// How often progress is reported for a running action.
    pub progress_interval: Duration,
}

/// Runs actions against the Kubernetes API and the repositories.
pub struct Runtime {
    client: kube::Client,
    config: RuntimeConfig,
    grants: Grants,
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Running archivers, by action id: where a revised spec is handed to its supervisor.
    archivers: Mutex<HashMap<String, watch::Sender<cairn_proto::agent::v1::ArchiverAction>>>,
}

impl Runtime {
    /// A runtime using `client`, sharing `grants` with the storage socket.
    pub fn new(client: kube::Client, config: RuntimeConfig, grants: Grants) -> Runtime {
        Runtime {
            client,
            config,
            grants,
            running: Mutex::new(HashMap::new()),
            archivers: Mutex::new(HashMap::new()),
        }
    }

    fn track(&self, id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), token.clone());
        token
    }

    fn untrack(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    async fn run(self: Arc<Self>, action: Action, reporter: Reporter, adopting: bool) {
        let id = action.id.clone();
        let cancel = self.track(&id);
        let running = crate::metrics::metrics().running(kind_name(action.kind.as_ref()));
        let outcome = match action.kind.clone() {
            Some(action::Kind::Exec(exec)) => self.exec(&action, exec, &cancel).await,
            Some(action::Kind::Job(job)) => {
                self.job(&action, job, &reporter, &cancel, adopting).await
            }
            Some(action::Kind::Archiver(archiver)) => {
                self.archiver(&action, archiver, &reporter, &cancel, adopting)
                    .await
            }
            Some(action::Kind::RepoCheck(check)) => self
                .direct(check.storage, false, &cancel, |files| async move {
                    repo_ops::check(&files, &check.probe_path).await
                })
                .await
                // The control plane sends a pre-check to one agent: say which node failed it.
                .failed_on_node(&self.config.node.node_name),
            Some(action::Kind::DeletePath(delete)) => {
                self.direct(delete.storage, true, &cancel, |files| async move {
                    repo_ops::delete_path(&files, &delete.path).await
                })
                .await
            }
            Some(action::Kind::PutObject(put)) => {
                self.direct(put.storage, false, &cancel, |files| async move {
                    repo_ops::put_object(&files, &put.path, put.content).await
                })
                .await
            }
            Some(action::Kind::VolumeSnapshot(spec)) => {
                tokio::select! {
                    result = snapshot::run(self.client.clone(), &id, &spec) => match result {
                        Ok(report) => Outcome::succeeded().with_backup_info_json(report),
                        Err(err) => Outcome::failed(chain(&err)),
                    },
                    _ = cancel.cancelled() => Outcome::cancelled("cancelled while waiting for the volume snapshots"),
                }
            }
            Some(action::Kind::VolumeMove(spec)) => {
                self.volume_move(&id, spec, &reporter, &cancel).await
            }
            None => Outcome::failed(format!("action {:?} has no kind", action.name)),
        };
        self.untrack(&id);
        running.finished(&outcome.phase_name());
        drop(running);
        crate::telemetry::end_action(&id);
        if let Err(err) = reporter.finish(outcome).await {
            tracing::error!(action.id = %id, error = %err, "recording an action's result failed");
        }
    }
}

/// The kind of an action, as metrics label it.
fn kind_name(kind: Option<&action::Kind>) -> &'static str {
    match kind {
        Some(action::Kind::Exec(_)) => "exec",
        Some(action::Kind::Job(_)) => "job",
        Some(action::Kind::RepoCheck(_)) => "repo-check",
        Some(action::Kind::DeletePath(_)) => "delete-path",
        Some(action::Kind::PutObject(_)) => "put-object",
        Some(action::Kind::VolumeSnapshot(_)) => "volume-snapshot",
        Some(action::Kind::VolumeMove(_)) => "volume-move",
        // A kind added later and not named here yet.
        #[allow(unreachable_patterns)]
        Some(_) => "other",
        None => "unknown",
    }
}

impl Runtime {
    async fn exec(
        &self,
        action: &Action,
        exec: cairn_proto::agent::v1::ExecAction,
        cancel: &CancellationToken,
    ) -> Outcome {
        let Some(pod) = &action.pod else {
            return Outcome::failed("exec action has no target pod");
        };
        let request = ExecRequest {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            container: exec.container,
            command: exec.command,
            timeout: (exec.timeout_seconds > 0)
                .then(|| Duration::from_secs(u64::from(exec.timeout_seconds))),
        };
        let result = tokio::select! {
            result = exec::run(self.client.clone(), &request) => result,
            _ = cancel.cancelled() => return Outcome::cancelled("cancelled while the command ran"),
        };
        match result {
            Ok(outcome) if outcome.exit_code == 0 => Outcome::succeeded().with_exit_code(0),
            Ok(outcome) => {
                Outcome::failed(outcome.failure_reason()).with_exit_code(outcome.exit_code)
            }
            Err(err) => Outcome::failed(chain(&err)),
        }
    }

    async fn job(
        &self,
        action: &Action,
        spec: cairn_proto::agent::v1::JobAction,
        reporter: &Reporter,
        cancel: &CancellationToken,
        adopting: bool,
    ) -> Outcome {
        let id = action.id.as_str();
        let token = match (&spec.storage, adopting) {
            (None, _) => None,
            (Some(grant), true) => match self.reinstate(id, &spec.job_json, grant).await {
                Some(token) => Some(token),
                None => match self.grants.issue(id, grant) {
                    Ok(token) => Some(token),
                    Err(err) => return Outcome::failed(chain(&err)),
                },
            },
            (Some(grant), false) => match self.grants.issue(id, grant) {
                Ok(token) => Some(token),
                Err(err) => return Outcome::failed(chain(&err)),
            },
        };
        let outcome = self
            .job_inner(id, &spec, token.as_ref(), reporter, cancel)
            .await;
        let transferred = self
            .grants
            .revoke_action(id)
            .map(|t| t.total())
            .unwrap_or(0);
        outcome.with_bytes_done(transferred)
    }

    async fn job_inner(
        &self,
        id: &str,
        spec: &cairn_proto::agent::v1::JobAction,
        token: Option<&Token>,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Outcome {
        let injection = ActionInjection {
            action_id: id,
            storage_token: token.map(|t| t.expose()),
        };
        let prepared = match job::prepare(&spec.job_json, &self.config.node, &injection) {
            Ok(job) => job,
            Err(err) => return Outcome::failed(chain(&err)),
        };
        let namespace = prepared.metadata.namespace.clone().unwrap_or_default();
        let name = match job::create_or_adopt(self.client.clone(), &prepared, id).await {
            Ok(name) => name,
            Err(err) => return Outcome::failed(chain(&err)),
        };
        let mut ticker = tokio::time::interval(self.config.progress_interval);
        let mut refusal_check = tokio::time::interval(REFUSAL_CHECK_INTERVAL);
        let (wait_namespace, wait_name) = (namespace.clone(), name.clone());
        let wait = job::wait_finished(self.client.clone(), &wait_namespace, &wait_name);
        tokio::pin!(wait);
        let finished = loop {
            tokio::select! {
                finished = &mut wait => break finished,
                _ = ticker.tick() => {
                    let bytes = self.grants.bytes(id);
                    reporter.progress(ProgressUpdate {
                        bytes_done: bytes,
                        bytes_total: 0,
                        bytes_per_second: 0,
                        phase: format!("job {name} running"),
                        ..ProgressUpdate::default()
                    });
                }
                _ = refusal_check.tick() => {
                    match job::creation_refused(self.client.clone(), &namespace, &name).await {
                        Ok(Some(reason)) => {
                            // The Job controller would retry for ever, and a pod created later
                            // would run an action nobody waits for.
                            if let Err(err) = job::delete(self.client.clone(), &namespace, &name).await {
                                tracing::warn!(error = %chain(&err), "deleting a job whose pods are refused failed");
                            }
                            return Outcome::failed(reason).with_job_name(name);
                        }
                        Ok(None) => {}
                        Err(err) => tracing::debug!(error = %chain(&err), "checking a job's pod creation"),
                    }
                }
                _ = cancel.cancelled() => {
                    if let Err(err) = job::delete(self.client.clone(), &namespace, &name).await {
                        tracing::warn!(error = %chain(&err), "deleting a cancelled job failed");
                    }
                    return Outcome::cancelled("cancelled: the job was deleted").with_job_name(name);
                }
            }
        };
        let finished = match finished {
            Ok(job) => job,
            Err(err) => return Outcome::failed(chain(&err)).with_job_name(name),
        };
        let info = spec.collect_backup_info.then(|| InfoFile {
            kubelet_dir: &self.config.kubelet_dir,
            volume: &spec.info_volume,
            file: &spec.info_file,
        });
        match job::outcome(self.client.clone(), &finished, info.as_ref()).await {
            Ok(outcome) if outcome.succeeded => {
                let mut result = Outcome::succeeded().with_job_name(outcome.job_name);
                if let Some(json) = outcome.backup_info {
                    result = result.with_backup_info_json(json);
                }
                result
            }
            Ok(outcome) => Outcome::failed(outcome.failure_reason).with_job_name(outcome.job_name),
            Err(err) => Outcome::failed(chain(&err)).with_job_name(name),
        }
    }

    /// After an agent restart: finds the Job of `id` and puts its token back, so its running
    /// `datasafed` keeps working; `None` when the Job does not exist (it is then created anew).
    async fn reinstate(&self, id: &str, job_json: &str, grant: &StorageGrant) -> Option<Token> {
        self.reinstate_workload::<Job>(id, job_json, grant, |job| {
            job.spec.as_ref()?.template.spec.as_ref()
        })
        .await
    }

    /// The same for an archiver's StatefulSet.
    async fn reinstate_archiver(
        &self,
        id: &str,
        set_json: &str,
        grant: &StorageGrant,
    ) -> Option<Token> {
        self.reinstate_workload::<StatefulSet>(id, set_json, grant, |set| {
            set.spec.as_ref()?.template.spec.as_ref()
        })
        .await
    }

    /// Finds the workload `planned_json` names and, when action `id` created it, puts back the
    /// token its pod template carries.
    async fn reinstate_workload<K>(
        &self,
        id: &str,
        planned_json: &str,
        grant: &StorageGrant,
        pod: impl Fn(&K) -> Option<&PodSpec>,
    ) -> Option<Token>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let planned: K = serde_json::from_str(planned_json).ok()?;
        let namespace = planned.meta().namespace.clone()?;
        let name = planned.meta().name.clone()?;
        let existing = Api::<K>::namespaced(self.client.clone(), &namespace)
            .get_opt(&name)
            .await
            .ok()
            .flatten()?;
        self.reinstate_from(id, existing.meta().labels.as_ref(), pod(&existing), grant)
    }

    /// Puts back the token an existing workload of action `id` carries in its pod template.
    fn reinstate_from(
        &self,
        id: &str,
        labels: Option<&std::collections::BTreeMap<String, String>>,
        pod: Option<&PodSpec>,
        grant: &StorageGrant,
    ) -> Option<Token> {
        let owner = labels.and_then(|l| l.get(well_known::label::ACTION_ID))?;
        if owner != id {
            return None;
        }
        let token = pod
            .and_then(|p| p.containers.first())
            .and_then(|c| c.env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == "CAIRN_STORAGE_TOKEN"))
            .and_then(|e| e.value.as_deref())
            .and_then(Token::parse)?;
        self.grants.reinstate(id, token.clone(), grant).ok()?;
        Some(token)
    }

    /// Runs an archiver until it is cancelled (PROTOCOL.md §2.4 `ArchiverAction`).
    async fn archiver(
        &self,
        action: &Action,
        spec: cairn_proto::agent::v1::ArchiverAction,
        reporter: &Reporter,
        cancel: &CancellationToken,
        adopting: bool,
    ) -> Outcome {
        let id = action.id.as_str();
        let Some(grant) = &spec.storage else {
            return Outcome::failed("the archiver action carries no storage grant");
        };
        let reinstated = if adopting {
            self.reinstate_archiver(id, &spec.statefulset_json, grant)
                .await
        } else {
            None
        };
        let token = match reinstated {
            Some(token) => token,
            None => match self.grants.issue(id, grant) {
                Ok(token) => token,
                Err(err) => return Outcome::failed(chain(&err)),
            },
        };
        let outcome = self
            .archiver_inner(id, &spec, &token, reporter, cancel)
            .await;
        let transferred = self
            .grants
            .revoke_action(id)
            .map(|t| t.total())
            .unwrap_or(0);
        outcome.with_bytes_done(transferred)
    }

    async fn archiver_inner(
        &self,
        id: &str,
        spec: &cairn_proto::agent::v1::ArchiverAction,
        token: &Token,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Outcome {
        let injection = ActionInjection {
            action_id: id,
            storage_token: Some(token.expose()),
        };
        let prepared =
            match archiver::prepare(&spec.statefulset_json, &self.config.node, &injection) {
                Ok(set) => set,
                Err(err) => return Outcome::failed(chain(&err)),
            };
        let mut prepared = prepared;
        if let Err(err) = archiver::ensure(self.client.clone(), &prepared, id).await {
            return Outcome::failed(chain(&err));
        }
        // A revision that came while the action was starting is waiting in the map.
        let mut revisions = self
            .archivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(spec.clone()).0)
            .subscribe();
        if revisions.borrow().spec_digest != spec.spec_digest {
            revisions.mark_changed();
        }
        let outcome = self
            .supervise_archiver(
                id,
                spec,
                &mut prepared,
                &mut revisions,
                &injection,
                reporter,
                cancel,
            )
            .await;
        self.archivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        outcome
    }

    /// Applies a revised archiver spec (PROTOCOL.md §2.4): the live StatefulSet is replaced
    /// when its digest differs; `prepared` becomes the new spec either way (re-creations use it).
    async fn revise_archiver(
        &self,
        id: &str,
        spec: &cairn_proto::agent::v1::ArchiverAction,
        prepared: &mut StatefulSet,
        injection: &ActionInjection<'_>,
    ) -> Option<archiver::Revision> {
        let planned = match archiver::prepare(&spec.statefulset_json, &self.config.node, injection)
        {
            Ok(set) => set,
            Err(err) => {
                tracing::warn!(error = %chain(&err), "a revised archiver spec is invalid; the running one stays");
                return None;
            }
        };
        let revision = match archiver::revise(self.client.clone(), &planned, id).await {
            Ok(revision @ archiver::Revision::Unchanged) => revision,
            Ok(revision) => {
                tracing::info!(
                    statefulset = ?planned.metadata.name,
                    digest = %spec.spec_digest,
                    ?revision,
                    "the archiver's spec changed; its StatefulSet now runs the new one"
                );
                revision
            }
            Err(err) => {
                tracing::warn!(error = %chain(&err), "revising the archiver's statefulset failed; retried at the next Assign");
                return None;
            }
        };
        *prepared = planned;
        Some(revision)
    }

    #[allow(clippy::too_many_arguments)]
    async fn supervise_archiver(
        &self,
        id: &str,
        spec: &cairn_proto::agent::v1::ArchiverAction,
        prepared: &mut StatefulSet,
        revisions: &mut watch::Receiver<cairn_proto::agent::v1::ArchiverAction>,
        injection: &ActionInjection<'_>,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Outcome {
        let namespace = prepared.metadata.namespace.clone().unwrap_or_default();
        let name = prepared.metadata.name.clone().unwrap_or_default();
        let mut info_volume = spec.info_volume.clone();
        let mut info_file = spec.info_file.clone();
        let mut supervision = Supervision::default();
        let mut report = tokio::time::interval(self.config.progress_interval);
        let mut look = tokio::time::interval(ARCHIVER_LOOK_INTERVAL);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    if let Err(err) = archiver::delete(self.client.clone(), &namespace, &name).await {
                        tracing::warn!(error = %chain(&err), "deleting a cancelled archiver failed");
                    }
                    return Outcome::cancelled("cancelled: the archiver's statefulset was deleted");
                }
                Ok(()) = revisions.changed() => {
                    let revised = revisions.borrow_and_update().clone();
                    if self.revise_archiver(id, &revised, prepared, injection).await
                        == Some(archiver::Revision::Updated)
                    {
                        // Its pod is replaced for the new spec, not because it failed.
                        supervision.expect_replacement();
                    }
                    info_volume = revised.info_volume;
                    info_file = revised.info_file;
                }
                _ = look.tick() => {
                    match archiver::exists(self.client.clone(), &namespace, &name).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(statefulset = %name, "the archiver's statefulset is gone; creating it again");
                            if let Err(err @ archiver::ArchiverError::NameTaken { .. }) =
                                archiver::ensure(self.client.clone(), prepared, id).await
                            {
                                return Outcome::failed(chain(&err));
                            }
                        }
                        Err(err) => tracing::warn!(error = %chain(&err), "reading the archiver's statefulset failed"),
                    }
                    let seen = archiver::look(
                        self.client.clone(),
                        &namespace,
                        &name,
                        &self.config.kubelet_dir,
                        &info_volume,
                        &info_file,
                    )
                    .await;
                    let termination = seen.last_termination.clone();
                    if supervision.update(seen) {
                        let tail = archiver::log_tail(self.client.clone(), &namespace, &name).await;
                        let reason = termination.unwrap_or_else(|| "the pod was replaced".into());
                        supervision.last_failure = Some(match tail {
                            Some(tail) => format!("{reason}; last log lines: {tail}"),
                            None => reason,
                        });
                        tracing::warn!(statefulset = %name, restarts = supervision.restarts, "the archiver restarted");
                    }
                }
                _ = report.tick() => {
                    reporter.progress(ProgressUpdate {
                        bytes_done: self.grants.bytes(id),
                        phase: format!("archiver {name} running"),
                        backup_info_json: supervision.info.clone().unwrap_or_default(),
                        restarts: supervision.restarts,
                        last_failure: supervision.last_failure.clone().unwrap_or_default(),
                        ..ProgressUpdate::default()
                    });
                }
            }
        }
    }

    /// Moves volume data between claims and the deduplicating repository (PROTOCOL.md §2.4),
    /// reporting bytes, total and rate every progress interval.
    async fn volume_move(
        &self,
        id: &str,
        spec: cairn_proto::agent::v1::VolumeMoveAction,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Outcome {
        let Some(mut grant) = spec.storage.clone() else {
            return Outcome::failed("the volume move action carries no storage grant");
        };
        let node = self.config.node.node_name.as_str();
        // Kept until the move ends: a Mount repository's holder pod.
        let _lease =
            match mount_claim::resolve_grant(self.grants.claim_resolver().as_deref(), &mut grant)
                .await
            {
                Ok(lease) => lease,
                Err(err) => return Outcome::failed(err.reason),
            };
        let files = match crate::socket::repository::GrantStorage::from_grant(&grant)
            .open_files()
            .await
        {
            Ok(files) => files,
            Err(err) => return Outcome::failed(chain(&err)),
        };
        let cairn_repo::RepoFiles::Dedup(files) = files else {
            return Outcome::failed(format!(
                "the volume move action's grant for repository {:?} names no deduplicating repository",
                grant.repo_name
            ));
        };
        let agent_binary = self
            .config
            .node
            .install_command
            .first()
            .cloned()
            .unwrap_or_default();
        let config = holder_pod::HolderConfig {
            node: node.to_string(),
            kubelet_dir: self.config.kubelet_dir.clone(),
            image: self.config.node.install_image.clone(),
            agent_binary,
        };
        let counter = cairn_repo::progress::Counter::default();
        let work = volume_move::run(
            self.client.clone(),
            &config,
            id,
            &spec,
            files.repo(),
            counter.clone(),
        );
        tokio::pin!(work);
        let mut ticker = tokio::time::interval(self.config.progress_interval);
        let started = tokio::time::Instant::now();
        let phase = if spec.to_repository {
            "copying volume snapshots into the repository"
        } else {
            "restoring volumes from the repository"
        };
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticker.tick() => {
                    // The average since the start: the engine counts in bursts (a file, a
                    // chunk), so the rate over one interval jumps between 0 and peaks.
                    let done = counter.done();
                    let seconds = started.elapsed().as_secs_f64();
                    let rate = if seconds > 0.0 { (done as f64 / seconds) as u64 } else { 0 };
                    reporter.progress(ProgressUpdate {
                        bytes_done: done,
                        bytes_total: counter.total(),
                        bytes_per_second: rate,
                        phase: phase.into(),
                        ..ProgressUpdate::default()
                    });
                }
                _ = cancel.cancelled() => {
                    volume_move::cleanup_all(&self.client, &spec).await;
                    return Outcome::cancelled("cancelled: the temporary claims and pods were deleted");
                }
            }
        };
        match result {
            Ok(report) => Outcome::succeeded()
                .with_backup_info_json(report)
                .with_bytes_done(counter.done()),
            Err(err) => Outcome::failed(chain(&err)).with_bytes_done(counter.done()),
        }
    }

    /// Runs a repository operation in the agent itself. `deleting`: a Mount repository whose
    /// PVC is gone or was never bound holds nothing to delete, so the deletion succeeds.
    async fn direct<F, Fut>(
        &self,
        grant: Option<StorageGrant>,
        deleting: bool,
        cancel: &CancellationToken,
        op: F,
    ) -> Outcome
    where
        F: FnOnce(cairn_repo::RepoFiles) -> Fut,
        Fut: std::future::Future<Output = Result<u64, String>>,
    {
        let Some(mut grant) = grant else {
            return Outcome::failed("the action carries no storage grant");
        };
        // Kept until the operation ends: a Mount repository's holder pod.
        let _lease =
            match mount_claim::resolve_grant(self.grants.claim_resolver().as_deref(), &mut grant)
                .await
            {
                Ok(lease) => lease,
                Err(err) if deleting && err.gone_or_unbound => {
                    tracing::info!(reason = %err.reason, "nothing to delete in the repository PVC");
                    return Outcome::succeeded().with_bytes_done(0);
                }
                Err(err) => return Outcome::failed(err.reason),
            };
        let mut storage = crate::socket::repository::GrantStorage::from_grant(&grant);
        if deleting {
            storage = storage.pruning_after_removal();
        }
        let files = match storage.open_files().await {
            Ok(files) => files,
            Err(err) => return Outcome::failed(chain(&err)),
        };
        tokio::select! {
            result = op(files) => match result {
                Ok(bytes) => Outcome::succeeded().with_bytes_done(bytes),
                Err(reason) => Outcome::failed(reason),
            },
            _ = cancel.cancelled() => Outcome::cancelled("cancelled"),
        }
    }
}

/// An error with its causes, `a: b: c`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The runtime as the session's runner.
#[derive(Clone)]
pub struct SharedRuntime(pub Arc<Runtime>);

#[async_trait]
impl ActionRunner for SharedRuntime {
    async fn start(&self, action: Action, reporter: Reporter) {
        tokio::spawn(self.0.clone().run(action, reporter, false));
    }

    async fn adopt(&self, action: Action, reporter: Reporter) {
        match action.kind {
            // An exec stream dies with the agent: its outcome is unknown.
            Some(action::Kind::Exec(_)) | None => {
                let reason = format!(
                    "the agent restarted while exec action {:?} was running; its outcome is unknown",
                    action.name
                );
                if let Err(err) = reporter.finish(Outcome::failed(reason)).await {
                    tracing::error!(error = %err, "reporting an exec lost to a restart failed");
                }
            }
            // Jobs are found again by label; repository actions are idempotent and run again.
            _ => {
                tokio::spawn(self.0.clone().run(action, reporter, true));
            }
        }
    }

    async fn revise(&self, action: Action) {
        let Some(action::Kind::Archiver(spec)) = action.kind else {
            return;
        };
        let sender = self
            .0
            .archivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&action.id)
            .cloned();
        match sender {
            // The supervisor compares the digest with the live StatefulSet's.
            Some(sender) => {
                sender.send_replace(spec);
            }
            // Not supervised yet (it is starting): kept for its supervisor.
            None => {
                self.0
                    .archivers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(action.id, watch::channel(spec).0);
            }
        }
    }

    async fn cancel(&self, action_id: &str, reason: &str) {
        let token = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(action_id)
            .cloned();
        match token {
            Some(token) => {
                tracing::info!(action.id = %action_id, reason, "cancelling action");
                token.cancel();
            }
            None => {
                tracing::debug!(action.id = %action_id, "cancel for an action that is not running")
            }
        }
    }
}
