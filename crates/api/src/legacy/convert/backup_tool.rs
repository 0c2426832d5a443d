//! BackupTool → ActionSet.

use k8s_openapi::api::core::v1::EnvVar;
use kube::core::ObjectMeta;

use crate::action::{ActionSpec, BackupDataActionSpec, BaseJobActionSpec, JobActionSpec};
use crate::actionset::{ActionSet, ActionSetSpec, BackupActionSpec, BackupType, RestoreActionSpec};
use crate::legacy::backup_tool::{BackupTool, BackupToolType, DeployKind};
use crate::legacy::convert::{Warning, Warnings, carry_metadata};

/// Old tool environment variables and the new variables (or paths) that replace them; appended
/// to the ActionSet env so old scripts keep working (`$(VAR)` sees the controller's DP_* vars).
const ENV_MAPPING: [(&str, &str); 6] = [
    ("BACKUP_NAME", "$(DP_BACKUP_NAME)"),
    ("BACKUP_DIR", "/backupdata$(DP_BACKUP_BASE_PATH)"),
    ("DB_HOST", "$(DP_DB_HOST)"),
    ("DB_USER", "$(DP_DB_USER)"),
    ("DB_PASSWORD", "$(DP_DB_PASSWORD)"),
    ("TTL", "$(DP_TTL)"),
];

/// Converts a BackupTool to an ActionSet of the same name.
pub fn convert(tool: &BackupTool) -> (ActionSet, Vec<Warning>) {
    let mut w = Warnings::new("BackupTool", &tool.metadata);
    let spec = &tool.spec;
    let continuous = spec.deploy_kind == Some(DeployKind::StatefulSet)
        || spec.tool_type == Some(BackupToolType::Pitr);
    let mut env = spec.env.clone().unwrap_or_default();
    for (name, value) in ENV_MAPPING {
        if !env.iter().any(|e| e.name == name) {
            env.push(EnvVar {
                name: name.to_string(),
                value: Some(value.to_string()),
                value_from: None,
            });
        }
    }
    w.add(
        "spec.backupCommands",
        "old tools wrote into the backup PVC at /backupdata; BACKUP_DIR now points there only with a Mount BackupRepo (use datasafed for Tool repositories)",
    );
    if spec.resources.is_some() {
        w.add("spec.resources", "no equivalent in ActionSet; set backupMethods[].runtimeSettings.resources in the BackupPolicy");
    }
    if spec
        .incremental_backup_commands
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        w.add(
            "spec.incrementalBackupCommands",
            "no equivalent in the same ActionSet; incremental backups need a separate ActionSet of backupType Incremental",
        );
    }
    if spec
        .physical
        .incremental_restore_commands
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        w.add(
            "spec.physical.incrementalRestoreCommands",
            "no equivalent; restore of incremental backups is done by the Incremental ActionSet",
        );
    }
    let job = |command: Vec<String>| JobActionSpec {
        base: BaseJobActionSpec {
            image: spec.image.clone(),
            command,
        },
        run_on_target_pod_node: Some(true),
        on_error: None,
    };
    let prepare_data = spec
        .physical
        .restore_commands
        .clone()
        .filter(|c| !c.is_empty())
        .map(job);
    let mut post_ready = Vec::new();
    if let Some(logical) = &spec.logical {
        if let Some(commands) = logical
            .commands
            .restore_commands
            .clone()
            .filter(|c| !c.is_empty())
        {
            post_ready.push(ActionSpec {
                exec: None,
                job: Some(job(commands)),
            });
        }
        if logical
            .commands
            .incremental_restore_commands
            .as_ref()
            .is_some_and(|c| !c.is_empty())
        {
            w.add(
                "spec.logical.incrementalRestoreCommands",
                "no equivalent in the new API",
            );
        }
        if logical.pod_scope.is_some() {
            w.add("spec.logical.podScope", "no equivalent; postReady jobs run on the pods selected by Restore.spec.readyConfig");
        }
    }
    let restore = (prepare_data.is_some() || !post_ready.is_empty()).then(|| RestoreActionSpec {
        prepare_data,
        post_ready: (!post_ready.is_empty()).then_some(post_ready),
        base_backup_required: None,
        with_parameters: None,
    });
    let actionset = ActionSet {
        metadata: ObjectMeta {
            namespace: None,
            ..carry_metadata(&tool.metadata)
        },
        spec: ActionSetSpec {
            backup_type: if continuous {
                BackupType::Continuous
            } else {
                BackupType::Full
            },
            parameters_schema: None,
            env: Some(env),
            env_from: spec.env_from.clone(),
            backup: Some(BackupActionSpec {
                backup_data: BackupDataActionSpec {
                    job: job(spec.backup_commands.clone()),
                    sync_progress: None,
                },
                pre_backup: None,
                post_backup: None,
                pre_delete: None,
                with_parameters: None,
            }),
            restore,
        },
        status: None,
    };
    (actionset, w.into_vec())
}
