//! Names of the objects a BackupRepo derives: KubeBlocks' `<prefix>-<repo>-<6 random chars>`
//! (§5.3), with the 6 characters taken from a hash of the repository uid instead of a random
//! source, so the same repository always gets the same names and the planner stays pure.

use cairn_api::backup_repo::BackupRepo;

use crate::plan::names::cut_63;

/// The characters Kubernetes' `rand.String` draws from (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// `<prefix>-<repo>` is cut to this many characters so the whole name fits in 63.
const MAX_BASE: usize = 56;

/// `<prefix>-<repo>-<6 chars>`: `pvc`, `sc`, `secret` names.
pub fn derived_name(repo: &BackupRepo, prefix: &str) -> String {
    let name = repo.metadata.name.as_deref().unwrap_or_default();
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    let base: String = format!("{prefix}-{name}").chars().take(MAX_BASE).collect();
    format!("{base}-{}", suffix(&format!("{uid}/{prefix}")))
}

/// The Mount pre-check's PVC and Job for one digest: `pre-check-<uid[:8]>-<digest[:8]>-<repo>`,
/// cut to 63 characters.
pub fn pre_check_name(repo: &BackupRepo, digest: &str) -> String {
    let name = repo.metadata.name.as_deref().unwrap_or_default();
    let uid8: String = repo
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect();
    let digest8: String = digest.chars().take(8).collect();
    cut_63(&format!("pre-check-{uid8}-{digest8}-{name}"))
}

fn suffix(seed: &str) -> String {
    blake3::hash(seed.as_bytes())
        .as_bytes()
        .iter()
        .take(6)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn repo(name: &str, uid: &str) -> BackupRepo {
        serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": name, "uid": uid},
            "spec": {"storageProviderRef": "s3", "pvReclaimPolicy": "Retain"}
        }))
        .unwrap()
    }

    #[test]
    fn derived_names_look_like_kubeblocks_and_are_stable() {
        let r = repo("repo1", "5b7c1c0e-0000-4000-8000-000000000001");
        let name = derived_name(&r, "pvc");
        assert!(name.starts_with("pvc-repo1-"), "{name}");
        let tail = &name["pvc-repo1-".len()..];
        assert_eq!(tail.len(), 6);
        assert!(tail.bytes().all(|b| ALPHABET.contains(&b)), "{tail}");
        assert_eq!(name, derived_name(&r, "pvc"));
    }

    #[test]
    fn derived_names_differ_by_prefix_and_by_repository_uid() {
        let a = repo("repo1", "uid-a");
        let b = repo("repo1", "uid-b");
        assert_ne!(derived_name(&a, "pvc"), derived_name(&b, "pvc"));
        let sc = derived_name(&a, "sc");
        let secret = derived_name(&a, "secret");
        assert_ne!(&sc[3..], &secret[7..]);
    }

    #[test]
    fn long_repository_names_still_give_names_within_63_characters() {
        let r = repo(&"r".repeat(63), "uid");
        let name = derived_name(&r, "secret");
        assert_eq!(name.len(), 63);
        let check = pre_check_name(&r, "0123456789abcdef");
        assert!(check.len() <= 63);
        assert!(!check.ends_with('-'));
    }

    #[test]
    fn pre_check_names_change_with_the_digest() {
        let r = repo("repo1", "0123456789abcdef");
        assert_eq!(
            pre_check_name(&r, "aaaaaaaabbbb"),
            "pre-check-01234567-aaaaaaaa-repo1"
        );
        assert_ne!(
            pre_check_name(&r, "aaaaaaaabbbb"),
            pre_check_name(&r, "ccccccccbbbb")
        );
    }
}
