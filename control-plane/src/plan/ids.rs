//! Stable action ids (docs/PROTOCOL.md §1): the same owner, action name and pod always give the
//! same id, so a restarted control plane re-derives them and agents deduplicate by them.

/// `blake3("<owner-uid>/<action-name>/<pod>")`, first 32 hex characters (a valid label value).
pub fn action_id(owner_uid: &str, action_name: &str, pod: &str) -> String {
    let digest = blake3::hash(format!("{owner_uid}/{action_name}/{pod}").as_bytes());
    digest.to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_give_the_same_id() {
        assert_eq!(
            action_id("u1", "dp-backup-0", "p0"),
            action_id("u1", "dp-backup-0", "p0")
        );
    }

    #[test]
    fn any_different_input_gives_a_different_id() {
        let base = action_id("u1", "dp-backup-0", "p0");
        assert_ne!(base, action_id("u2", "dp-backup-0", "p0"));
        assert_ne!(base, action_id("u1", "dp-backup-1", "p0"));
        assert_ne!(base, action_id("u1", "dp-backup-0", "p1"));
    }

    #[test]
    fn ids_are_label_values() {
        let id = action_id("u", "a", "p");
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
