//! A `Debug` view of an `Action` with its secrets replaced, for the logs of both sides.
//!
//! prost derives `Debug` for `Action` with every field, including the storage grant's rendered
//! datasafed configuration, encryption passphrase and dedup password. Log `Redacted(&action)`
//! instead, never the action itself.

use std::fmt;

use crate::agent::v1::{Action, StorageGrant, action};

/// What a secret field shows in logs.
pub const REDACTED: &str = "<redacted>";

/// Formats an `Action` like its derived `Debug`, with secret fields replaced by [`REDACTED`].
pub struct Redacted<'a>(pub &'a Action);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redacted_copy(self.0), f)
    }
}

/// A copy of `action` whose secrets are replaced by [`REDACTED`] (empty ones stay empty, so a
/// reader still sees whether a secret was set) and whose object content is replaced by its
/// length.
pub fn redacted_copy(action: &Action) -> Action {
    let mut copy = action.clone();
    let grant = match copy.kind.as_mut() {
        Some(action::Kind::Job(job)) => job.storage.as_mut(),
        Some(action::Kind::Archiver(archiver)) => archiver.storage.as_mut(),
        Some(action::Kind::VolumeMove(moved)) => moved.storage.as_mut(),
        Some(action::Kind::RepoCheck(check)) => check.storage.as_mut(),
        Some(action::Kind::DeletePath(delete)) => delete.storage.as_mut(),
        Some(action::Kind::PutObject(put)) => {
            // Not secret, but up to 1 MiB: logs show its length instead.
            put.content = format!("<{} bytes>", put.content.len()).into_bytes();
            put.storage.as_mut()
        }
        // A VolumeSnapshot carries no secret (and no storage grant).
        Some(action::Kind::Exec(_)) | Some(action::Kind::VolumeSnapshot(_)) | None => None,
    };
    if let Some(grant) = grant {
        redact_grant(grant);
    }
    copy
}

fn redact_grant(grant: &mut StorageGrant) {
    for secret in [
        &mut grant.datasafed_config,
        &mut grant.encryption_passphrase,
        &mut grant.dedup_password,
    ] {
        if !secret.is_empty() {
            *secret = REDACTED.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::v1::{
        ArchiverAction, DeletePathAction, JobAction, PutObjectAction, RepoCheckAction,
        VolumeMoveAction,
    };

    fn grant() -> StorageGrant {
        StorageGrant {
            repo_name: "repo-1".into(),
            datasafed_config: "[storage]\naccess_key_id = AKIDSECRET\nsecret_access_key = S3CR3T"
                .into(),
            encryption_passphrase: "pass-phrase-xyz".into(),
            dedup_password: "dedup-pw-123".into(),
            read_write_prefix: "ns/backup-1".into(),
            ..StorageGrant::default()
        }
    }

    fn action(kind: action::Kind) -> Action {
        Action {
            id: "dp-backup-0.abc".into(),
            name: "dp-backup-0".into(),
            kind: Some(kind),
            ..Action::default()
        }
    }

    #[test]
    fn debug_of_an_action_never_shows_its_secrets() {
        let kinds = [
            action::Kind::Job(JobAction {
                job_json: "{}".into(),
                storage: Some(grant()),
                ..JobAction::default()
            }),
            action::Kind::RepoCheck(RepoCheckAction {
                storage: Some(grant()),
                probe_path: "probe".into(),
            }),
            action::Kind::Archiver(ArchiverAction {
                statefulset_json: "{}".into(),
                storage: Some(grant()),
                ..ArchiverAction::default()
            }),
            action::Kind::DeletePath(DeletePathAction {
                storage: Some(grant()),
                path: "ns/backup-1".into(),
            }),
            action::Kind::VolumeMove(VolumeMoveAction {
                storage: Some(grant()),
                to_repository: true,
                ..VolumeMoveAction::default()
            }),
            action::Kind::PutObject(PutObjectAction {
                storage: Some(grant()),
                path: "ns/backup-1/kubeblocks-backup.json".into(),
                content: b"{}".to_vec(),
            }),
        ];
        for kind in kinds {
            let action = action(kind);
            // The unredacted form does contain them: the test would notice a renamed field.
            assert!(format!("{action:?}").contains("S3CR3T"));
            let shown = format!("{:?}", Redacted(&action));
            for secret in ["AKIDSECRET", "S3CR3T", "pass-phrase-xyz", "dedup-pw-123"] {
                assert!(!shown.contains(secret), "{secret} leaked in {shown}");
            }
            assert!(
                shown.contains("repo-1") && shown.contains("ns/backup-1"),
                "{shown}"
            );
            assert!(shown.contains(REDACTED));
        }
    }
}
