//! The registry of served resource types: built-ins plus the versions of established CRDs.

use super::{ResourceType, builtin_types, custom_types};
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// A group and its served versions, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersion {
    pub group: String,
    pub versions: Vec<String>,
}

/// An immutable snapshot of everything served; rebuilt whenever a CRD changes.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
    groups: Vec<GroupVersion>,
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first,
/// then anything else alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((major, stage, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

impl Registry {
    /// Built-ins plus every established CRD in `crds`.
    pub fn new(crds: &[Value]) -> Registry {
        let mut types: Vec<Arc<ResourceType>> = builtin_types().into_iter().map(Arc::new).collect();
        let builtin_groups: Vec<String> = types.iter().map(|t| t.group.clone()).collect();
        let mut custom: Vec<ResourceType> = crds.iter().flat_map(custom_types).collect();
        // A CRD may not shadow a built-in group.
        custom.retain(|t| !builtin_groups.contains(&t.group));
        custom.sort_by(|a, b| {
            a.group
                .cmp(&b.group)
                .then(compare_versions(&a.version, &b.version))
                .then(a.plural.cmp(&b.plural))
        });
        types.extend(custom.into_iter().map(Arc::new));
        let mut groups: Vec<GroupVersion> = Vec::new();
        for t in &types {
            match groups.iter_mut().find(|g| g.group == t.group) {
                Some(g) => {
                    if !g.versions.contains(&t.version) {
                        g.versions.push(t.version.clone());
                    }
                }
                None => groups.push(GroupVersion {
                    group: t.group.clone(),
                    versions: vec![t.version.clone()],
                }),
            }
        }
        for g in &mut groups {
            g.versions.sort_by(|a, b| compare_versions(a, b));
        }
        Registry { types, groups }
    }

    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Groups in discovery order; the core group (`""`) first.
    pub fn groups(&self) -> &[GroupVersion] {
        &self.groups
    }

    pub fn group(&self, group: &str) -> Option<&GroupVersion> {
        self.groups.iter().find(|g| g.group == group)
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Resource types of one group-version, in registry order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// The type for an `apiVersion` and `kind`, as owner references name them.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .or_else(|| {
                self.types
                    .iter()
                    .find(|t| t.group == group && t.kind == kind)
            })
            .cloned()
    }

    /// The canonical type of a storage key: the storage version of a CR, core/v1 for Events.
    pub fn for_storage(&self, storage: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.storage == storage && !t.needs_conversion())
            .or_else(|| self.types.iter().find(|t| t.storage == storage))
            .cloned()
    }

    /// Every distinct storage key, with its canonical type.
    pub fn storages(&self) -> Vec<Arc<ResourceType>> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for t in &self.types {
            if seen.contains(&t.storage.as_str()) {
                continue;
            }
            seen.push(&t.storage);
            if let Some(c) = self.for_storage(&t.storage) {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_sort_ga_then_beta_then_alpha() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo", "v10"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    fn crd(established: bool) -> Value {
        json!({
            "metadata": {"name": "backups.dataprotection.kubeblocks.io"},
            "spec": {
                "group": "dataprotection.kubeblocks.io",
                "scope": "Namespaced",
                "names": {"kind": "Backup", "plural": "backups", "shortNames": ["bk"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "subresources": {"status": {}}}]
            },
            "status": {"conditions": [{"type": "Established", "status": if established {"True"} else {"False"}}]}
        })
    }

    #[test]
    fn established_crds_are_served_and_others_are_not() {
        let r = Registry::new(&[crd(true)]);
        let t = r
            .lookup("dataprotection.kubeblocks.io", "v1alpha1", "backups")
            .unwrap();
        assert_eq!(t.kind, "Backup");
        assert_eq!(t.list_kind, "BackupList");
        assert!(t.has_status());
        assert_eq!(t.short_names, ["bk"]);
        let r = Registry::new(&[crd(false)]);
        assert!(
            r.lookup("dataprotection.kubeblocks.io", "v1alpha1", "backups")
                .is_none()
        );
    }

    #[test]
    fn both_event_apis_share_one_storage_with_core_as_canonical() {
        let r = Registry::new(&[]);
        let core = r.lookup("", "v1", "events").unwrap();
        let v1 = r.lookup("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.storage, v1.storage);
        assert_eq!(r.for_storage(&core.storage).unwrap().group, "");
    }
}
