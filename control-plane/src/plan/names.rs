//! Object names the way KubeBlocks builds them (ARCHITECTURE.md §K2.2, §K4.2), within
//! Kubernetes' 63-character limit.

/// Job name of a backup action: `<action>-<backup>-<uid[:8]>`, cut to 63 characters with any
/// trailing `-` trimmed (§2.2).
pub fn backup_job_name(action: &str, backup: &str, backup_uid: &str) -> String {
    let uid8: String = backup_uid.chars().take(8).collect();
    cut_63(&format!("{action}-{backup}-{uid8}"))
}

/// Restore job names longer than 63 characters become the first 57 + `-` + the last 5 (§4.2).
pub fn restore_job_name(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let head: String = name.chars().take(57).collect();
    let tail: String = name
        .chars()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}-{tail}")
}

/// Truncates to 63 characters and trims trailing `-`.
pub fn cut_63(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_job_name_joins_action_backup_and_uid_prefix() {
        assert_eq!(
            backup_job_name("dp-backup-0", "b1", "0123456789abcdef"),
            "dp-backup-0-b1-01234567"
        );
    }

    #[test]
    fn long_backup_job_names_are_cut_without_a_trailing_dash() {
        let name = backup_job_name("dp-backup-0", &"x".repeat(51), "0123456789");
        assert!(name.len() <= 63);
        assert!(!name.ends_with('-'));
        assert_eq!(name, format!("dp-backup-0-{}", "x".repeat(51)));
    }

    #[test]
    fn long_restore_job_names_keep_head_and_tail() {
        let long = format!("restore-preparedata-12345678-{}-0", "b".repeat(40));
        let name = restore_job_name(&long);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("bbb-0"));
        assert!(name.starts_with("restore-preparedata-12345678-"));
    }
}
