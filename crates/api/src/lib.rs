//! The KubeBlocks data-protection API (`dataprotection.kubeblocks.io/v1alpha1`) as Rust types, with
//! the CRDs generated from them.
//!
//! One module per kind ([`actionset`], [`backup`], [`backup_policy`], [`backup_repo`],
//! [`backup_schedule`], [`restore`], [`storage_provider`]) plus shared sub-types ([`common`],
//! [`action`], [`target`]). Field names are the reference's camelCase JSON names; optional fields
//! are `Option`s that are omitted when `None`, so an object read and written back is unchanged.
//! String enums reject unknown values with a deserialization error instead of defaulting.
//!
//! [`crds::all`] returns every CustomResourceDefinition (including the legacy BackupTool and
//! RestoreJob and the deprecated `storage.kubeblocks.io` StorageProvider).
//!
//! Around the types:
//! - [`parse`]: one parser per string format (retention periods, Go durations, restore times,
//!   time zones, cron, quantities, label selectors), each error quoting the bad input;
//! - [`validate`]: semantic checks beyond the schema as pure functions returning
//!   [`validate::Problem`]s with Kubernetes field paths, and [`validate::manifest::Checker`], which
//!   runs metadata, unknown-field, schema, type and semantic checks on raw objects;
//! - [`legacy`]: the old (≤ 0.6) API and its conversion to this one;
//! - [`object`]: any object of the API read from JSON by `apiVersion` and `kind`;
//! - [`well_known`]: the labels, annotations, finalizer and condition types and reasons Cairn
//!   reads and writes, each defined once;
//! - [`window`]: the recoverability window of point-in-time restores, from the Continuous
//!   backups and their bases.

// kube-derive takes one `printcolumn(...)`/`category` per entry, so their keys repeat by design.
#![allow(clippy::duplicated_attributes)]

pub mod action;
pub mod actionset;
pub mod backup;
pub mod backup_policy;
pub mod backup_repo;
pub mod backup_schedule;
pub mod common;
pub mod crds;
pub mod ignored;
pub mod legacy;
pub mod object;
pub mod parse;
pub mod restore;
pub mod schema;
pub mod storage_provider;
pub mod storage_template;
pub mod target;
pub mod validate;
pub mod well_known;
pub mod window;

pub use actionset::{ActionSet, ActionSetSpec, ActionSetStatus, BackupType};
pub use backup::{Backup, BackupSpec, BackupStatus};
pub use backup_policy::{BackupPolicy, BackupPolicySpec, BackupPolicyStatus};
pub use backup_repo::{BackupRepo, BackupRepoSpec, BackupRepoStatus};
pub use backup_schedule::{BackupSchedule, BackupScheduleSpec, BackupScheduleStatus};
pub use restore::{Restore, RestoreSpec, RestoreStatus};
pub use storage_provider::{
    LegacyStorageProvider, StorageProvider, StorageProviderSpec, StorageProviderStatus,
};

/// The API group of the data-protection API.
pub const GROUP: &str = "dataprotection.kubeblocks.io";
/// The API version of the data-protection API.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every data-protection object.
pub const API_VERSION: &str = "dataprotection.kubeblocks.io/v1alpha1";
/// `apiVersion` of the deprecated StorageProvider group.
pub const LEGACY_STORAGE_API_VERSION: &str = "storage.kubeblocks.io/v1alpha1";
