//! BackupRepo support that is not a planner: template rendering for StorageProviders.

pub mod access;
pub mod template;
