//! RBAC evaluation of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, as the
//! Kubernetes RBAC authoriser does it (allow rules only). An aggregated ClusterRole
//! (`aggregationRule.clusterRoleSelectors`) grants the rules of every ClusterRole its selectors
//! match, as the aggregation controller would have written them into its `rules`; localkube
//! resolves them when it evaluates (its stored `rules` are not rewritten).

use std::collections::HashSet;

use serde_json::Value;

use super::Identity;
use crate::resource::Builtin;
use crate::rest::Api;
use crate::selector::LabelSelector;

/// What a request does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// API group (empty for the core group).
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// Empty for collections.
    pub name: String,
}

/// An authorisation decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Decides whether `who` may do `attrs`.
pub fn authorize(api: &Api, who: &Identity, attrs: &Attributes) -> Decision {
    if who.is_master() {
        return Decision {
            allowed: true,
            reason: format!("member of {}", super::MASTERS),
        };
    }
    let store = api.store();
    let list = |b: Builtin, ns: Option<&str>| -> Vec<Value> {
        let rt = api.builtin(b);
        store
            .list(&rt.storage, ns, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.value())
            .collect()
    };
    let get = |b: Builtin, ns: &str, name: &str| -> Option<Value> {
        let rt = api.builtin(b);
        store.get(&rt.storage, ns, name).map(|o| o.value())
    };
    let cluster_roles = std::cell::OnceCell::new();
    let rules = |role: &Value| -> Vec<Value> {
        if role["aggregationRule"].is_object() {
            let all = cluster_roles.get_or_init(|| list(Builtin::ClusterRole, None));
            aggregated_rules(role, all)
        } else {
            role["rules"].as_array().cloned().unwrap_or_default()
        }
    };
    for binding in list(Builtin::ClusterRoleBinding, None) {
        if let Some(reason) = grants(&binding, "", who, attrs, &get, &rules) {
            return Decision {
                allowed: true,
                reason,
            };
        }
    }
    if !attrs.namespace.is_empty() {
        for binding in list(Builtin::RoleBinding, Some(&attrs.namespace)) {
            if let Some(reason) = grants(&binding, &attrs.namespace, who, attrs, &get, &rules) {
                return Decision {
                    allowed: true,
                    reason,
                };
            }
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

/// The reason a binding allows the request, if it does.
fn grants(
    binding: &Value,
    namespace: &str,
    who: &Identity,
    attrs: &Attributes,
    get: &dyn Fn(Builtin, &str, &str) -> Option<Value>,
    rules: &dyn Fn(&Value) -> Vec<Value>,
) -> Option<String> {
    let binding_ns = binding["metadata"]["namespace"]
        .as_str()
        .unwrap_or(namespace);
    let subject = binding["subjects"]
        .as_array()?
        .iter()
        .find(|s| subject_matches(s, binding_ns, who))?;
    let role_kind = binding["roleRef"]["kind"].as_str()?;
    let role_name = binding["roleRef"]["name"].as_str()?;
    let role = match role_kind {
        "ClusterRole" => get(Builtin::ClusterRole, "", role_name)?,
        "Role" if !namespace.is_empty() => get(Builtin::Role, namespace, role_name)?,
        _ => return None,
    };
    let allowed = rules(&role).iter().any(|rule| rule_matches(rule, attrs));
    if !allowed {
        return None;
    }
    let binding_kind = if namespace.is_empty() {
        "ClusterRoleBinding"
    } else {
        "RoleBinding"
    };
    let binding_name = binding["metadata"]["name"].as_str().unwrap_or_default();
    let place = if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace:?}")
    };
    Some(format!(
        "RBAC: allowed by {binding_kind} {binding_name:?} of {role_kind} {role_name:?} to {} {:?}{place}",
        subject["kind"].as_str().unwrap_or_default(),
        subject["name"].as_str().unwrap_or_default(),
    ))
}

/// The rules of an aggregated ClusterRole: those of every ClusterRole in `all` that one of its
/// `aggregationRule.clusterRoleSelectors` matches, followed through aggregated ones (each role
/// once, so a cycle ends).
fn aggregated_rules(role: &Value, all: &[Value]) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    collect_rules(role, all, &mut seen, &mut out);
    out
}

fn collect_rules<'a>(
    role: &'a Value,
    all: &'a [Value],
    seen: &mut HashSet<&'a str>,
    out: &mut Vec<Value>,
) {
    let name = role["metadata"]["name"].as_str().unwrap_or_default();
    if !seen.insert(name) {
        return;
    }
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        out.extend(role["rules"].as_array().into_iter().flatten().cloned());
        return;
    };
    // An invalid selector selects nothing (the aggregation controller would report it).
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| LabelSelector::from_label_selector(Some(s)).ok())
        .collect();
    for other in all {
        if selectors.iter().any(|s| s.matches_object(other)) {
            collect_rules(other, all, seen, out);
        }
    }
}

fn subject_matches(subject: &Value, binding_ns: &str, who: &Identity) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => who.user == name,
        "Group" => who.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            who.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array().is_some_and(|l| {
        l.iter()
            .any(|v| v.as_str() == Some("*") || v.as_str() == Some(want))
    })
}

fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    if !has(&rule["verbs"], &attrs.verb) || !has(&rule["apiGroups"], &attrs.group) {
        return false;
    }
    let resources = rule["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let resource_ok = resources.iter().filter_map(Value::as_str).any(|r| {
        if attrs.subresource.is_empty() {
            r == "*" || r == attrs.resource
        } else {
            r == "*"
                || r == format!("{}/{}", attrs.resource, attrs.subresource)
                || r == format!("*/{}", attrs.subresource)
        }
    });
    if !resource_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => {
            !attrs.name.is_empty() && names.iter().any(|n| n.as_str() == Some(&attrs.name))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, resource: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: "dataprotection.kubeblocks.io".into(),
            resource: resource.into(),
            namespace: "a".into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let rule = json!({"verbs": ["get", "create"], "apiGroups": ["dataprotection.kubeblocks.io"], "resources": ["backups"]});
        assert!(rule_matches(&rule, &attrs("create", "backups")));
        assert!(!rule_matches(&rule, &attrs("delete", "backups")));
        assert!(!rule_matches(&rule, &attrs("get", "restores")));
        let wild = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]});
        assert!(rule_matches(&wild, &attrs("delete", "restores")));
        let named = json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["backups"], "resourceNames": ["b1"]});
        assert!(!rule_matches(&named, &attrs("get", "backups")));
        let mut one = attrs("get", "backups");
        one.name = "b1".into();
        assert!(rule_matches(&named, &one));
    }

    #[test]
    fn an_aggregated_cluster_role_grants_the_rules_its_selectors_match() {
        let role = |name: &str, labels: Value, verb: &str| {
            json!({"metadata": {"name": name, "labels": labels},
                   "rules": [{"verbs": [verb], "apiGroups": ["dataprotection.kubeblocks.io"], "resources": ["backups"]}]})
        };
        let admin = json!({"metadata": {"name": "dp-admin"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"dp/aggregate-to-admin": "true"}},
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}]},
            // Stale stored rules: the aggregation replaces them.
            "rules": [{"verbs": ["delete"], "apiGroups": ["*"], "resources": ["*"]}]});
        let nested = json!({"metadata": {"name": "dp-edit", "labels": {"dp/aggregate-to-admin": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"dp/aggregate-to-edit": "true"}}]}});
        let all = vec![
            admin.clone(),
            nested,
            role("getter", json!({"dp/aggregate-to-admin": "true"}), "get"),
            role("creator", json!({"dp/aggregate-to-edit": "true"}), "create"),
            role("lister", json!({"tier": "gold"}), "list"),
            role("watcher", json!({"tier": "silver"}), "watch"),
        ];
        let rules = aggregated_rules(&admin, &all);
        let allows = |verb: &str| {
            rules
                .iter()
                .any(|r| rule_matches(r, &attrs(verb, "backups")))
        };
        assert!(allows("get"), "matchLabels");
        assert!(allows("create"), "through the nested aggregated role");
        assert!(allows("list"), "matchExpressions");
        assert!(!allows("watch"), "a role no selector matches");
        assert!(!allows("delete"), "the stale stored rules");
        // A cycle (a role selecting itself) ends.
        let selfish = json!({"metadata": {"name": "loop", "labels": {"x": "y"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}});
        assert!(aggregated_rules(&selfish, std::slice::from_ref(&selfish)).is_empty());
    }

    #[test]
    fn service_account_subjects_default_to_the_bindings_namespace() {
        let who = Identity::service_account("a", "orch", "u");
        assert!(subject_matches(
            &json!({"kind": "ServiceAccount", "name": "orch"}),
            "a",
            &who
        ));
        assert!(!subject_matches(
            &json!({"kind": "ServiceAccount", "name": "orch"}),
            "b",
            &who
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "system:serviceaccounts:a"}),
            "b",
            &who
        ));
    }
}
