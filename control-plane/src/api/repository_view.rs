//! BackupRepo CRs as `cairn.api.v1.Repository` messages, with their usage from the Backups.

use std::collections::HashMap;

use cairn_api::{Backup, BackupRepo};
use cairn_proto::api::v1 as pb;

use super::meta::{object_meta, text};

/// Adds `backups` to the Backups and bytes per repository name, from the Backups' status
/// (`backupRepoName`, `totalSize`); a size that is not a quantity counts as 0 bytes.
pub fn add_usage(out: &mut HashMap<String, pb::RepositoryUsage>, backups: &[Backup]) {
    for b in backups {
        let Some(status) = &b.status else { continue };
        let Some(repo) = &status.backup_repo_name else {
            continue;
        };
        let bytes = status
            .total_size
            .as_deref()
            .and_then(|s| cairn_api::parse::quantity::parse_bytes(s).ok())
            .unwrap_or(0);
        let entry = out.entry(repo.clone()).or_default();
        entry.backups += 1;
        entry.bytes = entry
            .bytes
            .saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// The API's view of a BackupRepo CR with its usage.
pub fn repository(r: &BackupRepo, usage: &HashMap<String, pb::RepositoryUsage>) -> pb::Repository {
    let status = r.status.clone().unwrap_or_default();
    let name = r.metadata.name.clone().unwrap_or_default();
    pb::Repository {
        metadata: Some(object_meta(&r.metadata)),
        storage_provider: r.spec.storage_provider_ref.clone(),
        access_method: text(&r.spec.access_method),
        phase: text(&status.phase),
        is_default: status.is_default.unwrap_or(false),
        usage: Some(usage.get(&name).cloned().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(repo: &str, size: &str) -> Backup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": cairn_api::API_VERSION, "kind": "Backup",
            "metadata": {"name": "b", "namespace": "n"},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"},
            "status": {"backupRepoName": repo, "totalSize": size},
        }))
        .unwrap()
    }

    #[test]
    fn usage_sums_the_recorded_sizes_per_repository() {
        let mut usage = HashMap::new();
        add_usage(&mut usage, &[backup("r1", "1Ki"), backup("r1", "2Ki")]);
        add_usage(&mut usage, &[backup("r2", "5")]);
        assert_eq!(usage["r1"].backups, 2);
        assert_eq!(usage["r1"].bytes, 3072);
        assert_eq!(usage["r2"].bytes, 5);
    }
}
