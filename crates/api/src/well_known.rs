//! Well-known names: the labels, annotations, finalizer and condition types and reasons that Cairn
//! reads and writes on Kubernetes objects, each defined once.
//!
//! Names in `dataprotection.kubeblocks.io/`, `apps.kubeblocks.io/` and `kubeblocks.io/` are
//! KubeBlocks' own, so objects made by either tool are understood by the other; names in
//! `cairn.io/` are Cairn's bookkeeping and mean nothing to KubeBlocks.

/// The finalizer Cairn puts on every object it reconciles (Backups, Restores, BackupSchedules,
/// BackupRepos, ActionSets, StorageProviders): KubeBlocks' data-protection finalizer, so both
/// tools agree on who may remove it.
pub const FINALIZER: &str = "dataprotection.kubeblocks.io/finalizer";

/// Label keys, and the label values Cairn writes.
pub mod label {
    /// The Backup an object (action Job, copied label) was made for.
    pub const BACKUP_NAME: &str = "dataprotection.kubeblocks.io/backup-name";
    /// The kind of a Backup (`Full`, `Incremental`, `Continuous`, `Selective`), from its ActionSet.
    pub const BACKUP_TYPE: &str = "dataprotection.kubeblocks.io/backup-type";
    /// The BackupPolicy of a Backup or a BackupSchedule.
    pub const BACKUP_POLICY: &str = "dataprotection.kubeblocks.io/backup-policy";
    /// The BackupRepo an object stores its data in or belongs to.
    pub const BACKUP_REPO: &str = "dataprotection.kubeblocks.io/backup-repo-name";
    /// The BackupSchedule that created a Backup.
    pub const BACKUP_SCHEDULE: &str = "dataprotection.kubeblocks.io/backup-schedule";
    /// Marks a Backup created by a schedule (`"true"`).
    pub const AUTOBACKUP: &str = "dataprotection.kubeblocks.io/autobackup";
    /// On a Backup or Restore waiting for its repository to be prepared in its namespace.
    pub const WAIT_REPO_PREPARATION: &str = "dataprotection.kubeblocks.io/wait-repo-preparation";
    /// The Restore an object (restore Job) was made for.
    pub const RESTORE: &str = "dataprotection.kubeblocks.io/restore";
    /// The uid of the KubeBlocks Cluster a pod belongs to (`KB_CLUSTER_UID` in actions).
    pub const CLUSTER_UID: &str = "dataprotection.kubeblocks.io/cluster-uid";
    /// The KubeBlocks component a pod belongs to (`KB_COMP_NAME` in actions).
    pub const COMPONENT_NAME: &str = "apps.kubeblocks.io/component-name";
    /// The KubeBlocks sharding a pod belongs to.
    pub const SHARDING_NAME: &str = "apps.kubeblocks.io/sharding-name";
    /// The role of a KubeBlocks pod (`primary`, `secondary`, ...).
    pub const ROLE: &str = "kubeblocks.io/role";
    /// The application instance (the KubeBlocks Cluster name; `KB_CLUSTER_NAME` in actions).
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// The tool managing an object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The application an object is part of.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// Value of [`MANAGED_BY`] on the Jobs and objects data protection creates (KubeBlocks' value).
    pub const MANAGED_BY_DATA_PROTECTION: &str = "kubeblocks-dataprotection";
    /// The action id a Job created by a node agent runs; how a restarted agent re-adopts its Jobs.
    pub const ACTION_ID: &str = "cairn.io/action-id";
    /// On a populator's shadow claim and Jobs: the name of the claim being populated (§K4.6).
    pub const POPULATE_PVC: &str = "dataprotection.kubeblocks.io/populate-pvc";
    /// On a holder pod of a Mount repository's PVC: the node (label value) of the agent that
    /// keeps it; a restarted agent finds its node's holders by it.
    pub const MOUNT_HOLDER_NODE: &str = "cairn.io/mount-holder-node";
}

/// Annotation keys.
pub mod annotation {
    /// `"true"` on a Backup that data protection must leave alone.
    pub const SKIP_RECONCILIATION: &str = "dataprotection.kubeblocks.io/skip-reconciliation";
    /// `"true"` on the BackupRepo used when a policy names none.
    pub const DEFAULT_REPO: &str = "dataprotection.kubeblocks.io/is-default-repo";
    /// `"true"` on the BackupPolicy tools use when none is named.
    pub const DEFAULT_POLICY: &str = "dataprotection.kubeblocks.io/is-default-policy";
    /// On a BackupRepo: the digest of the configuration the last pre-check was started for.
    pub const BACKUP_REPO_DIGEST: &str = "dataprotection.kubeblocks.io/backup-repo-digest";
    /// The extras (JSON list) a Backup's actions reported, passed on to restore Jobs.
    pub const BACKUP_EXTRAS: &str = "dataprotection.kubeblocks.io/backup-extras";
    /// `"true"` on a Continuous ActionSet whose restore replays the base full backup itself: a
    /// point-in-time restore then runs the continuous backup's set alone.
    pub const SKIP_BASE_BACKUP_RESTORE_IN_PITR: &str =
        "dataprotection.kubeblocks.io/skip-base-backup-restore-in-pitr";
    /// The repository path prefix of old (≤ 0.6) BackupPolicies.
    pub const PATH_PREFIX: &str = "dataprotection.kubeblocks.io/path-prefix";
    /// On a deleting Backup: how many deletion attempts have failed.
    pub const DELETION_ATTEMPT: &str = "cairn.io/deletion-attempt";
    /// On a deleting Backup: the earliest time of the next deletion attempt (RFC 3339).
    pub const DELETION_RETRY_AT: &str = "cairn.io/deletion-retry-at";
    /// On a Restore: how many attempts its readiness probe has made.
    pub const READINESS_PROBE_ATTEMPT: &str = "cairn.io/readiness-probe-attempt";
    /// On a Restore: when the readiness probe's next attempt may start (RFC 3339).
    pub const READINESS_PROBE_RETRY_AT: &str = "cairn.io/readiness-probe-retry-at";
    /// On a BackupPolicy: how long (a Go duration, default 10m) the VolumeSnapshots of a
    /// `snapshotVolumes` backup may take to become ready before the backup fails.
    pub const VOLUME_SNAPSHOT_TIMEOUT: &str = "cairn.io/volume-snapshot-timeout";
    /// On a BackupPolicy: `"true"` (every `snapshotVolumes` method) or a comma-separated list
    /// of method names whose snapshots are copied into the policy's deduplicating repository
    /// (ARCHITECTURE.md §K2.5a).
    pub const SNAPSHOT_DATA_MOVEMENT: &str = "cairn.io/snapshot-data-movement";
    /// On a BackupPolicy: `"true"` deletes a moved backup's VolumeSnapshots once their copy is
    /// stored.
    pub const DELETE_SNAPSHOT_AFTER_MOVE: &str = "cairn.io/delete-snapshot-after-move";
    /// On a claim a Restore made empty and filled from a repository copy: the copy's path.
    pub const RESTORED_FROM_COPY: &str = "cairn.io/restored-from-copy";
    /// Tag of a repository snapshot of a moved volume: `<namespace>/<source claim>`, how the
    /// next copy of the same volume finds its parent.
    pub const VOLUME_SOURCE_TAG: &str = "cairn.io/volume-source";
    /// On a Restore: the JSON map `objectKey -> node` of where each restore Job runs.
    pub const RESTORE_NODES: &str = "cairn.io/restore-nodes";
    /// On a Backup: the JSON map `action id -> node` of where each Job that need not run on its
    /// target pod's node (`runOnTargetPodNode: false`) was dispatched.
    pub const BACKUP_NODES: &str = "cairn.io/backup-nodes";
    /// On an archiver's StatefulSet (continuous backups): the digest of the spec the control
    /// plane built, how the agent tells a changed archiver from the same one (PROTOCOL.md §2.4).
    pub const ARCHIVER_SPEC_DIGEST: &str = "cairn.io/archiver-spec-digest";
    /// On a Backup `cairnctl backup import` created: `<BackupRepo>:<path of the manifest>`,
    /// the `kubeblocks-backup.json` it was rebuilt from.
    pub const IMPORTED_FROM: &str = "cairn.io/imported-from";
    /// On an ActionSet or Restore the control plane converted from a BackupTool or RestoreJob
    /// (the old API): `BackupTool/<name>` or `RestoreJob/<name>`.
    pub const CONVERTED_FROM: &str = "cairn.io/converted-from";
    /// The node the scheduler chose for a claim (WaitForFirstConsumer); set by Kubernetes.
    pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
    /// On a PersistentVolume a Restore populated (volume populator): the Restore's name.
    pub const POPULATE_FROM: &str = "dataprotection.kubeblocks.io/populate-from";
    /// On a claim being populated: how many of the Restore's prepareData sets have written
    /// the shadow claim (recorded before their results are acknowledged, so none runs twice).
    pub const POPULATED_SETS: &str = "cairn.io/populated-sets";
    /// On a claim being populated: the node each populate Job was dispatched to (JSON).
    pub const POPULATE_NODES: &str = "cairn.io/populate-nodes";
}

/// The volume populator's names (ARCHITECTURE.md §K4.6).
pub mod populate {
    /// The prefix of a shadow claim's name (`kb-populate-<claim uid>`).
    pub const SHADOW_PREFIX: &str = "kb-populate-";
    /// The kind a claim's `spec.dataSourceRef` names to be populated by a Restore.
    pub const SOURCE_KIND: &str = "Restore";
    /// The provisioner prefix of in-tree volume plugins, which cannot populate volumes.
    pub const IN_TREE_PROVISIONER_PREFIX: &str = "kubernetes.io/";
}

/// Condition types and reasons, one module per kind that has conditions. The values are
/// KubeBlocks', so `kubectl wait --for=condition=...` works the same against both tools.
pub mod conditions {
    /// A BackupRepo's conditions.
    pub mod backup_repo {
        /// Type: the repository's StorageProvider exists and is Ready.
        pub const CONDITION_STORAGE_PROVIDER_READY: &str = "StorageProviderReady";
        /// Type: the repository's parameters render the provider's templates.
        pub const CONDITION_PARAMETERS_CHECKED: &str = "ParametersChecked";
        /// Type: the StorageClass of a Mount repository exists.
        pub const CONDITION_STORAGE_CLASS_CREATED: &str = "StorageClassCreated";
        /// Type: the provider's PVC template renders.
        pub const CONDITION_PVC_TEMPLATE_CHECKED: &str = "PVCTemplateChecked";
        /// Type: the pre-check action reached the storage.
        pub const CONDITION_PRE_CHECK_PASSED: &str = "PreCheckPassed";
        /// Type: a deleting repository's derived objects are gone.
        pub const CONDITION_DERIVED_OBJECTS_DELETED: &str = "DerivedObjectsDeleted";

        /// Reason: the StorageProvider is Ready.
        pub const REASON_STORAGE_PROVIDER_READY: &str = "StorageProviderReady";
        /// Reason: the StorageProvider exists but is not Ready.
        pub const REASON_STORAGE_PROVIDER_NOT_READY: &str = "StorageProviderNotReady";
        /// Reason: the StorageProvider does not exist.
        pub const REASON_STORAGE_PROVIDER_NOT_FOUND: &str = "StorageProviderNotFound";
        /// Reason: the StorageProvider is unusable (no templates, bad schema).
        pub const REASON_INVALID_STORAGE_PROVIDER: &str = "InvalidStorageProvider";
        /// Reason: the parameters were checked.
        pub const REASON_PARAMETERS_CHECKED: &str = "ParametersChecked";
        /// Reason: the credential Secret does not exist.
        pub const REASON_CREDENTIAL_SECRET_NOT_FOUND: &str = "CredentialSecretNotFound";
        /// Reason: the CSI driver's Secret could not be rendered.
        pub const REASON_PREPARE_CSI_SECRET_FAILED: &str = "PrepareCSISecretFailed";
        /// Reason: the StorageClass could not be rendered.
        pub const REASON_PREPARE_STORAGE_CLASS_FAILED: &str = "PrepareStorageClassFailed";
        /// Reason: the StorageClass exists.
        pub const REASON_STORAGE_CLASS_CREATED: &str = "StorageClassCreated";
        /// Reason: the PVC template does not render.
        pub const REASON_BAD_PVC_TEMPLATE: &str = "BadPVCTemplate";
        /// Reason: the PVC template renders.
        pub const REASON_PVC_TEMPLATE_CHECKED: &str = "PVCTemplateChecked";
        /// Reason: the step does not apply to this repository.
        pub const REASON_SKIPPED: &str = "Skipped";
        /// Reason: the configuration changed since the last pre-check.
        pub const REASON_DIGEST_CHANGED: &str = "DigestChanged";
        /// Reason: the pre-check passed.
        pub const REASON_PRE_CHECK_PASSED: &str = "PreCheckPassed";
        /// Reason: the pre-check failed.
        pub const REASON_PRE_CHECK_FAILED: &str = "PreCheckFailed";
        /// Reason: deletion waits for the Backups stored in the repository.
        pub const REASON_HAVE_ASSOCIATED_BACKUPS: &str = "HaveAssociatedBackups";
        /// Reason: deletion waits for the repository's PVCs in workload namespaces.
        pub const REASON_HAVE_RESIDUAL_PVCS: &str = "HaveResidualPVCs";
        /// Reason: the derived objects are deleted.
        pub const REASON_DERIVED_OBJECTS_DELETED: &str = "DerivedObjectsDeleted";
    }

    /// A Restore's conditions (ARCHITECTURE.md §K1.5).
    pub mod restore {
        /// Type: the Backup's repository is usable.
        pub const CONDITION_CHECK_BACKUP_REPO: &str = "CheckBackupRepo";
        /// Type: the request (Backup, method, targets) is valid.
        pub const CONDITION_VALIDATION_PASSED: &str = "ValidationPassed";
        /// Type: the prepareData stage.
        pub const CONDITION_PREPARE_DATA: &str = "PrepareData";
        /// Type: the postReady stage.
        pub const CONDITION_POST_READY: &str = "PostReady";
        /// Type: the readiness probe.
        pub const CONDITION_READINESS_PROBE: &str = "ReadinessProbe";
        /// Type (Cairn extension): fields of the spec are set that Cairn does not act on
        /// (`cairn_api::ignored::restore`); `True`, with reason `IgnoredField`, names them.
        pub const CONDITION_IGNORED_FIELD: &str = "IgnoredField";

        /// Reason: the repository is usable.
        pub const REASON_REPO_OK: &str = "CheckBackupRepoSuccessfully";
        /// Reason: the repository is not usable yet.
        pub const REASON_WAIT_FOR_REPO: &str = "WaitForBackupRepo";
        /// Reason: the repository failed.
        pub const REASON_REPO_FAILED: &str = "CheckBackupRepoFailed";
        /// Reason: the request is valid.
        pub const REASON_VALIDATE_OK: &str = "ValidateSuccessfully";
        /// Reason: the request is invalid.
        pub const REASON_VALIDATE_FAILED: &str = "ValidateFailed";
        /// Reason: the stage is running.
        pub const REASON_PROCESSING: &str = "Processing";
        /// Reason: the stage succeeded.
        pub const REASON_SUCCEED: &str = "Succeed";
        /// Reason: the stage failed.
        pub const REASON_FAILED: &str = "Failed";
        /// Reason of the `IgnoredField` condition (and of its Warning event).
        pub const REASON_IGNORED_FIELD: &str = "IgnoredField";
    }

    /// The condition of a PersistentVolumeClaim a Restore populates.
    pub mod populate {
        /// Type: where populating the claim stands.
        pub const CONDITION_POPULATING: &str = "Populating";
        /// Reason: the claim is being populated.
        pub const REASON_PROCESSING: &str = "Processing";
        /// Reason: the claim was populated.
        pub const REASON_SUCCEED: &str = "Succeed";
        /// Reason: populating the claim failed.
        pub const REASON_FAILED: &str = "Failed";
        /// Event: populating a claim started.
        pub const EVENT_START: &str = "StartToVolumePopulate";
        /// Event: the populated volume was handed to the claim.
        pub const EVENT_SUCCEED: &str = "VolumePopulateSucceed";
        /// Event: populating a claim failed.
        pub const EVENT_FAILED: &str = "VolumePopulateFailed";
    }

    /// A continuous Backup's conditions (Cairn extension).
    pub mod backup {
        /// Type: `timeRange.end` has not advanced for longer than the stall threshold.
        pub const CONDITION_ARCHIVE_STALLED: &str = "ArchiveStalled";
        /// Type: the archiver's container keeps restarting.
        pub const CONDITION_ARCHIVER_RESTARTING: &str = "ArchiverRestarting";
        /// Reason: `timeRange.end` has not advanced.
        pub const REASON_NOT_ADVANCING: &str = "TimeRangeNotAdvancing";
        /// Reason: `timeRange.end` advances.
        pub const REASON_ADVANCING: &str = "TimeRangeAdvancing";
        /// Reason: the archiver restarted repeatedly.
        pub const REASON_CRASHING: &str = "ArchiverCrashing";
        /// Reason: the archiver runs without restarting.
        pub const REASON_STABLE: &str = "ArchiverStable";
        /// Type: the archive has a gap (`status.gaps`): times inside it cannot be restored.
        pub const CONDITION_ARCHIVE_GAP: &str = "ArchiveGap";
        /// Reason: the archiver started a new window after the end it had reached.
        pub const REASON_NEW_WINDOW: &str = "ArchiverStartedNewWindow";
        /// Reason: no gap inside `timeRange` (any earlier one was trimmed away).
        pub const REASON_NO_GAP: &str = "NoGap";
    }

    /// A StorageProvider's conditions.
    pub mod storage_provider {
        /// Type: the provider's CSI driver is installed (or none is needed).
        pub const CONDITION_CSI_DRIVER_INSTALLED: &str = "CSIDriverInstalled";
        /// Reason: the CSIDriver exists (or none is needed).
        pub const REASON_CSI_DRIVER_OBJECT_FOUND: &str = "CSIDriverObjectFound";
        /// Reason: the CSIDriver could not be found.
        pub const REASON_CHECK_CSI_DRIVER_FAILED: &str = "CheckCSIDriverFailed";
    }
}

/// The deduplicating repositories of `useKopia` policies (ARCHITECTURE.md §K2.11).
pub mod dedup {
    /// The password of a `useKopia` policy's deduplicating repository when the policy has no
    /// `encryptionConfig`: the data is not secret (as a plain backup of such a policy is not),
    /// and any Cairn client can open the repository with this documented value. With an
    /// `encryptionConfig` the passphrase in its Secret is the password.
    pub const UNENCRYPTED_PASSWORD: &str = "cairn-dedup-without-encryption-config";
}
