//! A planned action as the agent receives it (docs/PROTOCOL.md): the wire `Action` with its
//! owner, its pod and the storage grant that scopes what it may reach in the repository.

use cairn_api::common::EncryptionConfig;
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::access::RepoAccess;

/// What an action runs. A new kind of action is a new variant here (and in the protocol).
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// A command in a container of the action's pod.
    Exec {
        container: String,
        command: Vec<String>,
        timeout_seconds: u32,
    },
    /// A Job the agent creates on its node, reaching the repository through `storage`.
    Job {
        job: Box<Job>,
        storage: Option<pb::StorageGrant>,
        info: Option<InfoFile>,
    },
    /// A long-running archiver: a StatefulSet of one replica the agent creates on its node and
    /// supervises until the action is cancelled, reporting its backup info file as it changes.
    Archiver {
        statefulset: Box<StatefulSet>,
        storage: pb::StorageGrant,
        info: InfoFile,
    },
    /// Write `content` at `path` in the repository.
    PutObject {
        storage: pb::StorageGrant,
        path: String,
        content: Vec<u8>,
    },
    /// Remove `path` and every parent that became empty.
    DeletePath {
        storage: pb::StorageGrant,
        path: String,
    },
    /// Push, pull and remove a probe file at `probe_path`.
    RepoCheck {
        storage: pb::StorageGrant,
        probe_path: String,
    },
    /// Create VolumeSnapshots and wait until every one is ready (PROTOCOL.md §2.4).
    VolumeSnapshot {
        snapshots: Vec<PlannedSnapshot>,
        /// 0: no timeout.
        timeout_seconds: u32,
    },
    /// Copy claims into the deduplicating repository of `storage`, or restore into them
    /// (snapshot data movement, PROTOCOL.md §2.4).
    VolumeMove {
        movement: VolumeMovement,
        storage: pb::StorageGrant,
    },
}

/// The volumes a `VolumeMove` action moves, and which way.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMovement {
    /// `true`: claims made from snapshots are copied into the repository; `false`: repository
    /// snapshots are restored into claims.
    pub to_repository: bool,
    pub volumes: Vec<MovedVolume>,
    /// 0: no timeout.
    pub timeout_seconds: u32,
}

/// One volume of a `VolumeMove` action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MovedVolume {
    pub volume_name: String,
    /// A complete `v1` PersistentVolumeClaim (the short-lived claim, or the one to fill).
    pub claim: serde_json::Value,
    /// To the repository: the repository snapshot's path tag.
    pub repository_path: String,
    /// To the repository: `<namespace>/<source claim>`, how the parent is found.
    pub lineage: String,
    /// From the repository: the snapshot to restore.
    pub snapshot_id: String,
    /// Bytes, when known (0: unknown).
    pub size_bytes: u64,
}

/// One VolumeSnapshot an action creates: the pod volume it is of and the object itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSnapshot {
    pub volume_name: String,
    /// A complete `snapshot.storage.k8s.io/v1` VolumeSnapshot.
    pub snapshot: serde_json::Value,
}

/// What a workload action runs in the owner's namespace: a command in a container of a pod, or
/// a Job on the agent's node. Backup and restore actions are workloads; [`Workload::kind`] adds
/// what only the wire needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// A command in a container of the action's pod.
    Exec {
        container: String,
        command: Vec<String>,
        /// 0: no timeout.
        timeout_seconds: u32,
    },
    /// A Job the agent creates on its node.
    Job(Box<Job>),
    /// VolumeSnapshots the agent creates and waits for (a `snapshotVolumes` method).
    VolumeSnapshot {
        snapshots: Vec<PlannedSnapshot>,
        /// 0: no timeout.
        timeout_seconds: u32,
    },
    /// Volume files moved between claims and the deduplicating repository (snapshot data
    /// movement); it always has a storage grant.
    VolumeMove(VolumeMovement),
}

impl Workload {
    /// The wire kind: a Job reaches the repository through `storage` (asked for only for a Job)
    /// and, with `info`, has its backup info file read.
    pub fn kind(
        &self,
        storage: impl FnOnce() -> pb::StorageGrant,
        info: Option<InfoFile>,
    ) -> ActionKind {
        match self {
            Workload::Exec {
                container,
                command,
                timeout_seconds,
            } => ActionKind::Exec {
                container: container.clone(),
                command: command.clone(),
                timeout_seconds: *timeout_seconds,
            },
            Workload::Job(job) => ActionKind::Job {
                job: job.clone(),
                storage: Some(storage()),
                info,
            },
            Workload::VolumeSnapshot {
                snapshots,
                timeout_seconds,
            } => ActionKind::VolumeSnapshot {
                snapshots: snapshots.clone(),
                timeout_seconds: *timeout_seconds,
            },
            Workload::VolumeMove(movement) => ActionKind::VolumeMove {
                movement: movement.clone(),
                storage: storage(),
            },
        }
    }

    /// Whether it is a Job.
    pub fn is_job(&self) -> bool {
        matches!(self, Workload::Job(_))
    }
}

/// The backup info file a Job writes (`DP_BACKUP_INFO_FILE`), in one of its volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoFile {
    /// The Job's volume holding the file (an emptyDir).
    pub volume: String,
    /// The file's name in that volume.
    pub file: String,
    /// Whether the agent reads it (and reports it with the result).
    pub collect: bool,
}

/// The wire action: `kind` run as action `id` (`name`) for `owner`, on `pod` when it has one.
pub fn to_wire(
    id: &str,
    name: &str,
    owner: pb::ObjectRef,
    pod: Option<&Pod>,
    kind: ActionKind,
) -> pb::Action {
    let kind = match kind {
        ActionKind::Exec {
            container,
            command,
            timeout_seconds,
        } => pb::action::Kind::Exec(pb::ExecAction {
            container,
            command,
            timeout_seconds,
        }),
        ActionKind::Job { job, storage, info } => {
            let info = info.unwrap_or(InfoFile {
                volume: String::new(),
                file: String::new(),
                collect: false,
            });
            pb::action::Kind::Job(pb::JobAction {
                job_json: object_json(&*job),
                storage,
                collect_backup_info: info.collect,
                info_volume: info.volume,
                info_file: info.file,
            })
        }
        ActionKind::Archiver {
            statefulset,
            storage,
            info,
        } => pb::action::Kind::Archiver(pb::ArchiverAction {
            spec_digest: statefulset
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(well_known::annotation::ARCHIVER_SPEC_DIGEST))
                .cloned()
                .unwrap_or_default(),
            statefulset_json: object_json(&*statefulset),
            storage: Some(storage),
            info_volume: info.volume,
            info_file: info.file,
        }),
        ActionKind::PutObject {
            storage,
            path,
            content,
        } => pb::action::Kind::PutObject(pb::PutObjectAction {
            storage: Some(storage),
            path,
            content,
        }),
        ActionKind::DeletePath { storage, path } => {
            pb::action::Kind::DeletePath(pb::DeletePathAction {
                storage: Some(storage),
                path,
            })
        }
        ActionKind::RepoCheck {
            storage,
            probe_path,
        } => pb::action::Kind::RepoCheck(pb::RepoCheckAction {
            storage: Some(storage),
            probe_path,
        }),
        ActionKind::VolumeSnapshot {
            snapshots,
            timeout_seconds,
        } => pb::action::Kind::VolumeSnapshot(pb::VolumeSnapshotAction {
            snapshots: snapshots
                .into_iter()
                .map(|s| pb::PlannedSnapshot {
                    volume_name: s.volume_name,
                    snapshot_json: s.snapshot.to_string(),
                })
                .collect(),
            timeout_seconds,
        }),
        ActionKind::VolumeMove { movement, storage } => {
            pb::action::Kind::VolumeMove(pb::VolumeMoveAction {
                to_repository: movement.to_repository,
                volumes: movement
                    .volumes
                    .into_iter()
                    .map(|v| pb::MovedVolume {
                        volume_name: v.volume_name,
                        claim_json: v.claim.to_string(),
                        repository_path: v.repository_path,
                        lineage: v.lineage,
                        snapshot_id: v.snapshot_id,
                        size_bytes: v.size_bytes,
                    })
                    .collect(),
                storage: Some(storage),
                timeout_seconds: movement.timeout_seconds,
            })
        }
    };
    pb::Action {
        id: id.into(),
        name: name.into(),
        owner: Some(owner),
        pod: pod.map(pod_ref),
        kind: Some(kind),
        // Set when the action is dispatched, from the reconcile's span (shell::execute).
        traceparent: String::new(),
    }
}

/// A Job or StatefulSet as JSON. Serialising one cannot fail (string map keys, no non-finite
/// floats, derived `Serialize` impls only); were it ever to, the agent refuses the empty text and
/// reports the action failed, so the failure is seen in the owner's status.
fn object_json(object: &impl serde::Serialize) -> String {
    serde_json::to_string(object).unwrap_or_default()
}

/// An object of the dataprotection API (`kind` Backup, Restore, BackupRepo...) as the owner of
/// its actions: results are routed back to it.
pub fn owner(kind: &str, meta: &ObjectMeta) -> pb::ObjectRef {
    pb::ObjectRef {
        api_version: "dataprotection.kubeblocks.io/v1alpha1".into(),
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
    }
}

/// The pod an action runs in or for, with its node.
pub fn pod_ref(pod: &Pod) -> pb::PodRef {
    pb::PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
    }
}

/// What an action may reach in a repository.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The one prefix it may write (and read); empty for none.
    pub read_write: &'a str,
    /// Prefixes it may only read.
    pub read_only: &'a [String],
    /// The repository's encryption and its passphrase, when the data is encrypted.
    pub encryption: Option<(&'a EncryptionConfig, &'a str)>,
    /// The deduplicating repository (`useKopia`) the paths live in, when set.
    pub dedup: Option<Dedup<'a>>,
}

/// A deduplicating repository: its root in the storage (`status.kopiaRepoPath`) and password.
#[derive(Debug, Clone, Copy)]
pub struct Dedup<'a> {
    pub root: &'a str,
    pub password: &'a str,
}

impl<'a> Dedup<'a> {
    /// The repository at `root` of a backup whose data has `passphrase` (its encryption's), or
    /// none: then the documented password of unencrypted policies.
    pub fn new(root: &'a str, passphrase: Option<&'a str>) -> Dedup<'a> {
        Dedup {
            root,
            password: passphrase.unwrap_or(cairn_api::well_known::dedup::UNENCRYPTED_PASSWORD),
        }
    }
}

/// The storage grant for an action of an owner in `namespace` (a Mount repository is reached
/// through its PVC in that namespace), limited to `scope`.
pub fn grant(access: &RepoAccess, namespace: &str, scope: Scope<'_>) -> pb::StorageGrant {
    let mut grant = access.grant(namespace);
    grant.read_write_prefix = scope.read_write.to_string();
    grant.read_only_prefixes = scope.read_only.to_vec();
    if let Some(dedup) = scope.dedup {
        // The deduplicating repository encrypts with keys of its own, unlocked by the password.
        grant.dedup_repo_root = dedup.root.to_string();
        grant.dedup_password = dedup.password.to_string();
    } else if let Some((config, passphrase)) = scope.encryption {
        grant.encryption_algorithm = serde_json::to_value(config.algorithm)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        grant.encryption_passphrase = passphrase.to_string();
    }
    grant
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pg-0", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"nodeName": "node-a", "containers": []}
        }))
        .unwrap()
    }

    fn access() -> RepoAccess {
        RepoAccess {
            repo_name: "repo1".into(),
            datasafed_config: "[storage]\n".into(),
            local_path: String::new(),
            mount_claim: Some("repo-pvc".into()),
        }
    }

    #[test]
    fn an_exec_action_names_its_pod_and_node_and_owner() {
        let meta = ObjectMeta {
            name: Some("b1".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let action = to_wire(
            "id1",
            "dp-prebackup-0-0",
            owner("Backup", &meta),
            Some(&pod()),
            ActionKind::Exec {
                container: "pg".into(),
                command: vec!["true".into()],
                timeout_seconds: 30,
            },
        );
        assert_eq!(action.id, "id1");
        assert_eq!(action.name, "dp-prebackup-0-0");
        let owner = action.owner.unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Backup", "b1", "u1")
        );
        let pod = action.pod.unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.node_name.as_str()),
            ("pg-0", "node-a")
        );
        assert!(matches!(action.kind, Some(pb::action::Kind::Exec(e)) if e.timeout_seconds == 30));
    }

    #[test]
    fn a_job_without_an_info_file_asks_the_agent_to_collect_nothing() {
        let action = to_wire(
            "id1",
            "pre-check",
            owner("BackupRepo", &ObjectMeta::default()),
            None,
            ActionKind::Job {
                job: Box::default(),
                storage: None,
                info: None,
            },
        );
        let Some(pb::action::Kind::Job(job)) = action.kind else {
            panic!("expected a job");
        };
        assert!(!job.collect_backup_info);
        assert_eq!((job.info_volume.as_str(), job.info_file.as_str()), ("", ""));
        assert!(job.job_json.starts_with('{'));
        assert!(action.pod.is_none());
    }

    #[test]
    fn only_a_job_workload_gets_a_storage_grant() {
        let exec = Workload::Exec {
            container: "pg".into(),
            command: vec!["true".into()],
            timeout_seconds: 0,
        };
        let kind = exec.kind(|| panic!("an exec action asked for a grant"), None);
        assert!(matches!(kind, ActionKind::Exec { .. }));
        let job = Workload::Job(Box::default());
        let ActionKind::Job { storage, info, .. } = job.kind(|| access().grant("ns"), None) else {
            panic!("expected a job");
        };
        assert_eq!(storage.unwrap().repo_name, "repo1");
        assert_eq!(info, None);
    }

    #[test]
    fn a_grant_is_limited_to_its_scope_and_reaches_a_mount_repo_in_the_owners_namespace() {
        let read_only = vec!["/root".to_string()];
        let grant = grant(
            &access(),
            "ns",
            Scope {
                read_write: "/root/b1",
                read_only: &read_only,
                ..Scope::default()
            },
        );
        assert_eq!(grant.read_write_prefix, "/root/b1");
        assert_eq!(grant.read_only_prefixes, read_only);
        assert_eq!(grant.mount_claim.unwrap().namespace, "ns");
        assert!(grant.encryption_passphrase.is_empty());
    }

    #[test]
    fn a_dedup_grant_names_the_repository_and_its_password_instead_of_file_encryption() {
        let config: EncryptionConfig = serde_json::from_value(serde_json::json!({
            "algorithm": "AES-256-CFB",
            "passPhraseSecretKeyRef": {"name": "s", "key": "k"}
        }))
        .unwrap();
        let scope = |dedup| Scope {
            read_write: "/root/b1",
            encryption: Some((&config, "pass")),
            dedup,
            ..Scope::default()
        };
        let plain = grant(&access(), "ns", scope(None));
        assert_eq!(plain.encryption_passphrase, "pass");
        assert_eq!(plain.dedup_repo_root, "");

        let encrypted = grant(
            &access(),
            "ns",
            scope(Some(Dedup::new("/root/kopia", Some("pass")))),
        );
        assert_eq!(
            (
                encrypted.dedup_repo_root.as_str(),
                encrypted.dedup_password.as_str()
            ),
            ("/root/kopia", "pass")
        );
        assert_eq!(encrypted.encryption_algorithm, "");
        assert_eq!(encrypted.encryption_passphrase, "");

        let unencrypted = grant(
            &access(),
            "ns",
            scope(Some(Dedup::new("/root/kopia", None))),
        );
        assert_eq!(
            unencrypted.dedup_password,
            cairn_api::well_known::dedup::UNENCRYPTED_PASSWORD
        );
    }
}
