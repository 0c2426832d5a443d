//! KubeBlocks' own incremental ActionSets (apecloud/kubeblocks-addons, main), as far as the env
//! tests need them: each ActionSet's `env` and image as its chart renders them with the chart's
//! default values, where its restore runs, and the variables its backup and restore scripts read
//! from their environment (variables a script sets itself are left out). Quoted as test data,
//! no script text; the planners' tests check that every variable read is set, in an order in
//! which each `$(VAR)` sees the variable it names (`plan/backup/tests_kb_incremental.rs`,
//! `plan/restore/tests_kb_incremental.rs`).

use k8s_openapi::api::core::v1::{EnvVar, Pod};
use serde_json::json;

/// Where an ActionSet restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStage {
    /// `restore.prepareData`: a Job writing new volumes.
    PrepareData,
    /// `restore.postReady[0].job`: a Job next to the running database.
    PostReadyJob,
}

/// One incremental ActionSet of kubeblocks-addons.
#[derive(Debug, Clone)]
pub struct Addon {
    /// Where it comes from.
    pub source: &'static str,
    /// The ActionSet's name.
    pub name: &'static str,
    /// `spec.env`.
    pub env: serde_json::Value,
    /// The backupData (and restore) image, `$(VAR)` references left in.
    pub image: &'static str,
    /// What the backup script reads.
    pub backup_reads: &'static [&'static str],
    /// Where the restore runs.
    pub restore_stage: RestoreStage,
    /// What the restore script reads.
    pub restore_reads: &'static [&'static str],
    /// Env of the database pod's first container the scripts rely on (the backup Job copies
    /// it, §K3.1; a postReady Job too, §K3.2).
    pub pod_env: &'static [(&'static str, &'static str)],
}

/// What the node agent adds to every Job with storage (node-agent/src/runtime/job.rs), so the
/// planner does not set it.
pub const AGENT_ADDS: &[&str] = &["DP_DATASAFED_BIN_PATH"];

/// `addons/mysql`: `actionset-xtrabackup-inc.yaml`, `dataprotection/xtrabackup-incremental-
/// {backup,restore}.sh` (values: `dataMountPath: /var/lib/mysql`, xtrabackup image
/// `apecloud/percona-xtrabackup`).
pub fn mysql_xtrabackup_inc() -> Addon {
    Addon {
        source: "addons/mysql/templates/actionset-xtrabackup-inc.yaml",
        name: "mysql-xtrabackup-inc-br",
        env: json!([
            {"name": "DATA_DIR", "value": "/var/lib/mysql/data"},
            {"name": "MYSQL_DIR", "value": "/var/lib/mysql"},
            {"name": "IMAGE_TAG", "value": "8.0"},
            {"name": "BACKUP_FOR_STANDBY", "value": "false"}
        ]),
        image: "docker.io/apecloud/percona-xtrabackup:$(IMAGE_TAG)",
        backup_reads: &[
            "DP_DATASAFED_BIN_PATH",
            "DP_PARENT_BACKUP_NAME",
            "DATA_DIR",
            "MYSQL_DIR",
            "DP_BACKUP_ROOT_PATH",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_BASE_PATH",
            "IMAGE_TAG",
            "DP_DB_HOST",
            "DP_DB_PORT",
            "DP_DB_USER",
            "DP_DB_PASSWORD",
            "DP_BACKUP_NAME",
            "DP_BACKUP_INFO_FILE",
        ],
        restore_stage: RestoreStage::PrepareData,
        restore_reads: &[
            "DP_DATASAFED_BIN_PATH",
            "DP_BACKUP_ROOT_PATH",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BASE_BACKUP_NAME",
            "DATA_DIR",
            "MYSQL_DIR",
            "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES",
            "DP_BACKUP_NAME",
            "BACKUP_FOR_STANDBY",
        ],
        pod_env: &[],
    }
}

/// `addons/postgresql`: `actionset-wal-g-incremental.yaml`, `dataprotection/wal-g-incremental-
/// backup.sh` and `wal-g-restore.sh` (values: `dataMountPath: /home/postgres/pgdata`). wal-g
/// keeps its own delta chain, so the restore reads the backup's own path, not the ancestors.
pub fn postgresql_wal_g_incremental() -> Addon {
    Addon {
        source: "addons/postgresql/templates/actionset-wal-g-incremental.yaml",
        name: "postgres-wal-g-incremental",
        env: json!([
            {"name": "VOLUME_DATA_DIR", "value": "/home/postgres/pgdata"},
            {"name": "RESTORE_SCRIPT_DIR", "value": "$(VOLUME_DATA_DIR)/kb_restore"},
            {"name": "DATA_DIR", "value": "$(VOLUME_DATA_DIR)/pgroot/data"},
            {"name": "CONF_DIR", "value": "$(VOLUME_DATA_DIR)/conf"}
        ]),
        image: "docker.io/apecloud/wal-g-pg:3.0.0",
        backup_reads: &[
            "DP_BACKUP_BASE_PATH",
            "DP_DATASAFED_BIN_PATH",
            "DP_DB_PASSWORD",
            "VOLUME_DATA_DIR",
            "DP_PARENT_BACKUP_NAME",
            "DP_DB_HOST",
            "DP_DB_USER",
            "DP_DB_PORT",
            "DATA_DIR",
            "DP_BACKUP_NAME",
            "DP_BACKUP_INFO_FILE",
        ],
        restore_stage: RestoreStage::PrepareData,
        restore_reads: &[
            "DP_DATASAFED_BIN_PATH",
            "DP_BACKUP_BASE_PATH",
            "DATA_DIR",
            "VOLUME_DATA_DIR",
            "RESTORE_SCRIPT_DIR",
            "CONF_DIR",
        ],
        pod_env: &[],
    }
}

/// `addons/clickhouse`: `actionset-incremental.yaml`, `dataprotection/common.sh` and
/// `incremental-{backup,restore}.sh` (values: `restore.schemaReadyTimeoutSeconds: 1800`,
/// `schemaReadyCheckIntervalSeconds: 5`). Its restore is a postReady Job on the target pod's
/// node; the admin account comes from the ClickHouse pod's env.
pub fn clickhouse_incremental() -> Addon {
    Addon {
        source: "addons/clickhouse/templates/actionset-incremental.yaml",
        name: "clickhouse-incremental-backup",
        env: json!([
            {"name": "RESTORE_SCHEMA_READY_TIMEOUT_SECONDS", "value": "1800"},
            {"name": "RESTORE_SCHEMA_READY_CHECK_INTERVAL_SECONDS", "value": "5"}
        ]),
        image: "docker.io/apecloud/clickhouse-backup-full:2.7.4",
        backup_reads: &[
            "DP_BACKUP_ROOT_PATH",
            "DP_PARENT_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_BASE_PATH",
            "DP_BACKUP_NAME",
            "DP_BACKUP_INFO_FILE",
            "DP_DATASAFED_BIN_PATH",
            "DP_DB_HOST",
            "CLICKHOUSE_ADMIN_USER",
            "CLICKHOUSE_ADMIN_PASSWORD",
        ],
        restore_stage: RestoreStage::PostReadyJob,
        restore_reads: &[
            "DP_BACKUP_ROOT_PATH",
            "DP_BASE_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES",
            "DP_BACKUP_BASE_PATH",
            "DP_BACKUP_NAME",
            "DP_DATASAFED_BIN_PATH",
            "DP_DB_HOST",
            "CLICKHOUSE_ADMIN_USER",
            "CLICKHOUSE_ADMIN_PASSWORD",
            "RESTORE_SCHEMA_READY_TIMEOUT_SECONDS",
            "RESTORE_SCHEMA_READY_CHECK_INTERVAL_SECONDS",
        ],
        pod_env: &[
            ("CLICKHOUSE_ADMIN_USER", "admin"),
            ("CLICKHOUSE_ADMIN_PASSWORD", "from-the-pod"),
        ],
    }
}

/// The three.
pub fn all() -> Vec<Addon> {
    vec![
        mysql_xtrabackup_inc(),
        postgresql_wal_g_incremental(),
        clickhouse_incremental(),
    ]
}

impl Addon {
    /// The ActionSet: Incremental, with its env, a backupData and the restore of its stage.
    pub fn actionset(&self) -> serde_json::Value {
        let action = json!({"image": self.image, "command": ["bash", "-c", "script"]});
        let restore = match self.restore_stage {
            RestoreStage::PrepareData => json!({"prepareData": action}),
            RestoreStage::PostReadyJob => json!({"postReady": [{"job": {
                "image": self.image, "command": ["bash", "-c", "script"],
                "runOnTargetPodNode": true}}]}),
        };
        json!({
            "metadata": {"name": self.name},
            "spec": {
                "backupType": "Incremental",
                "env": self.env,
                "backup": {"preBackup": [], "postBackup": [], "backupData": {
                    "image": self.image, "command": ["bash", "-c", "script"],
                    "runOnTargetPodNode": true,
                    "syncProgress": {"enabled": true, "intervalSeconds": 5}}},
                "restore": restore
            }
        })
    }

    /// Gives the first container of every pod the addon's pod env.
    pub fn add_pod_env(&self, pods: &mut [Pod]) {
        for pod in pods {
            let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) else {
                continue;
            };
            let env = container.env.get_or_insert_with(Vec::new);
            env.extend(self.pod_env.iter().map(|(name, value)| EnvVar {
                name: name.to_string(),
                value: Some(value.to_string()),
                value_from: None,
            }));
        }
    }

    /// Every `$(VAR)` of `env` names a variable set before it, and `image` has none left.
    pub fn assert_expanded(&self, env: &[(String, String)], image: &str) {
        assert_eq!(
            unresolved_references(env),
            Vec::<String>::new(),
            "{}: a $(VAR) names a variable not set before it",
            self.name
        );
        assert!(
            !image.contains("$("),
            "{}: the image {image:?} is expanded",
            self.name
        );
    }

    /// The variables of `reads` that neither `env` nor the agent sets.
    pub fn missing<'a>(reads: &[&'a str], env: &[(String, String)]) -> Vec<&'a str> {
        reads
            .iter()
            .copied()
            .filter(|name| !AGENT_ADDS.contains(name) && !env.iter().any(|(n, _)| n == name))
            .collect()
    }
}

/// The last value of `name` in `env` (later entries win), panicking when it is not set.
pub fn value(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{name} is not set"))
}

/// `$(VAR)` references in env values that name no variable set before them (the kubelet leaves
/// those unexpanded), as `NAME -> VAR`.
pub fn unresolved_references(env: &[(String, String)]) -> Vec<String> {
    let mut unresolved = Vec::new();
    for (at, (name, value)) in env.iter().enumerate() {
        let mut rest = value.as_str();
        while let Some(start) = rest.find("$(") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let referenced = &after[..end];
            if !env[..at].iter().any(|(n, _)| n == referenced) {
                unresolved.push(format!("{name} -> {referenced}"));
            }
            rest = &after[end..];
        }
    }
    unresolved
}

#[test]
fn a_reference_to_a_later_variable_is_unresolved() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    assert!(unresolved_references(&env(&[("A", "/x"), ("B", "$(A)/y")])).is_empty());
    assert_eq!(
        unresolved_references(&env(&[("B", "$(A)/y"), ("A", "/x")])),
        ["B -> A"]
    );
}
