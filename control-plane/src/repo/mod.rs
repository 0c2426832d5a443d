//! BackupRepo support that is not a planner: template rendering for StorageProviders.

pub mod access;
/// The template renderer lives in the API crate, so `cairnctl` renders a repository's
/// datasafed configuration the same way (`cairnctl backup import`).
pub use cairn_api::storage_template as template;
