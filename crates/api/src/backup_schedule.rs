//! BackupSchedule (namespaced, short name `bs`): cron schedules that create Backups of a BackupPolicy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ParameterPair, RetentionPeriod};
use crate::schema::NAME_PATTERN;

/// The desired state of a BackupSchedule.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "BackupSchedule",
    namespaced,
    status = "BackupScheduleStatus",
    shortname = "bs",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(
        name = "POLICY",
        type_ = "string",
        json_path = ".spec.backupPolicyName"
    ),
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "BackupSchedule is the Schema for the backupschedules API.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// The BackupPolicy applied by the schedules.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub backup_policy_name: String,
    /// The deadline in minutes (0..1440) for starting the backup workload if it misses its
    /// scheduled time for any reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub starting_deadline_minutes: Option<i64>,
    /// The backup schedules (at least one).
    #[schemars(length(min = 1))]
    pub schedules: Vec<SchedulePolicy>,
}

/// One schedule: a method, a cron expression and a retention period.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicy {
    /// Whether the schedule is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The name of the schedule, unique in the BackupSchedule; the backup method when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The backup method, a name defined in the BackupPolicy.
    pub backup_method: String,
    /// The cron expression of the schedule, in UTC (see <https://en.wikipedia.org/wiki/Cron>).
    pub cron_expression: String,
    /// How long the backups are kept, e.g. `30d` or `30d12h30m` (default `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "7d"))]
    pub retention_period: Option<RetentionPeriod>,
    /// Parameters for the ActionSet, matching its `parametersSchema` (at most 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub parameters: Option<Vec<ParameterPair>>,
}

/// The phase of a BackupSchedule.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupSchedulePhase {
    /// The schedule is available.
    Available,
    /// The schedule failed; `failureReason` says why.
    Failed,
}

/// The phase of one schedule.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum SchedulePhase {
    /// The schedule runs.
    Running,
    /// The schedule failed.
    Failed,
}

/// The observed state of a BackupSchedule.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// The phase of the BackupSchedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupSchedulePhase>,
    /// The most recent generation observed for this BackupSchedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The error that made the schedule fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The status of each schedule, by schedule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<BTreeMap<String, ScheduleStatus>>,
}

/// The status of one schedule.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The phase of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SchedulePhase>,
    /// The error that made the backup fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The last time a backup was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The last time a backup completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}
