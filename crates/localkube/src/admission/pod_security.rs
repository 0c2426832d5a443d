//! Pod Security admission: the `baseline` and `restricted` Pod Security Standards
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>, policy version
//! `latest` as of Kubernetes 1.33), enforced on pods created in a namespace labelled
//! `pod-security.kubernetes.io/enforce`. Like the apiserver, only pods are refused: a Job whose
//! pods violate the level is stored, and its controller's pod creation fails.
//!
//! The checks are public so that tests can hold any pod spec against a level.

use serde_json::Value;

/// The namespace label that selects the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A Pod Security Standard level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Baseline plus hardening best practice.
    Restricted,
}

impl Level {
    /// The level a label value names; `None` for an unknown value (the apiserver rejects such
    /// labels on the namespace; localkube enforces nothing for them).
    pub fn parse(value: &str) -> Option<Level> {
        match value {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Capabilities baseline allows containers to add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types baseline allows.
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Every container of a pod spec: `(name, container)`, init and ephemeral ones included.
fn containers(spec: &Value) -> Vec<(&str, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            spec.get(*list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|c| (c.get("name").and_then(Value::as_str).unwrap_or_default(), c))
        .collect()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn is_true(value: &Value, pointer: &str) -> bool {
    value.pointer(pointer).and_then(Value::as_bool) == Some(true)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One violated rule with the offending names, in the apiserver's words.
fn rule(violations: &mut Vec<String>, what: &str, offenders: Vec<String>) {
    if !offenders.is_empty() {
        violations.push(format!("{what} ({})", offenders.join("; ")));
    }
}

/// The rules of `level` that a pod (`metadata` + `spec`) violates, one message each, in the
/// apiserver's order and wording (e.g. `hostPath volumes (volumes "a", "b")`). Empty when it
/// passes.
pub fn violations(level: Level, pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let all = containers(spec);
    let named = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        all.iter()
            .filter(|(_, c)| pred(c))
            .map(|(n, _)| n.to_string())
            .collect()
    };

    // --- baseline
    let mut host_process = named(&|c| is_true(c, "/securityContext/windowsOptions/hostProcess"));
    if is_true(spec, "/securityContext/windowsOptions/hostProcess") {
        host_process.insert(0, "pod".into());
    }
    if !host_process.is_empty() {
        out.push("hostProcess".into());
    }
    let host_ns: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| is_true(spec, &format!("/{f}")))
        .map(|f| format!("{f}=true"))
        .collect();
    if !host_ns.is_empty() {
        out.push(format!("host namespaces ({})", host_ns.join(", ")));
    }
    let privileged = named(&|c| is_true(c, "/securityContext/privileged"));
    if !privileged.is_empty() {
        out.push(format!("privileged (containers {})", quoted(&privileged)));
    }
    let mut added = Vec::new();
    for (name, c) in &all {
        let bad: Vec<String> = c
            .pointer("/securityContext/capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .map(|cap| format!("{cap:?}"))
            .collect();
        if !bad.is_empty() {
            added.push(format!("container {name:?} adds {}", bad.join(", ")));
        }
    }
    rule(&mut out, "non-default capabilities", added);
    let host_paths: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if !host_paths.is_empty() {
        out.push(format!(
            "hostPath volumes (volume{} {})",
            if host_paths.len() == 1 { "" } else { "s" },
            quoted(&host_paths)
        ));
    }
    let mut host_ports = Vec::new();
    for (name, c) in &all {
        let ports: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !ports.is_empty() {
            host_ports.push(format!("container {name:?} uses {}", ports.join(", ")));
        }
    }
    rule(&mut out, "hostPort", host_ports);
    let unconfined_apparmor =
        |sc: &Value| str_at(sc, "/appArmorProfile/type") == Some("Unconfined");
    let mut apparmor = Vec::new();
    if unconfined_apparmor(&spec["securityContext"]) {
        apparmor.push("pod".to_string());
    }
    apparmor.extend(
        named(&|c| unconfined_apparmor(&c["securityContext"]))
            .into_iter()
            .map(|n| format!("container {n:?}")),
    );
    for (key, value) in pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && value
                .as_str()
                .is_some_and(|v| v != "runtime/default" && !v.starts_with("localhost/"))
        {
            apparmor.push(format!("annotation {key}={value}"));
        }
    }
    rule(&mut out, "forbidden AppArmor profile", apparmor);
    let bad_selinux = |sc: &Value| {
        let options = &sc["seLinuxOptions"];
        !SELINUX_TYPES.contains(&str_at(options, "/type").unwrap_or_default())
            || !str_at(options, "/user").unwrap_or_default().is_empty()
            || !str_at(options, "/role").unwrap_or_default().is_empty()
    };
    let mut selinux = named(&|c| bad_selinux(&c["securityContext"]));
    if bad_selinux(&spec["securityContext"]) {
        selinux.insert(0, "pod".into());
    }
    if !selinux.is_empty() {
        out.push(format!("seLinuxOptions ({})", quoted(&selinux)));
    }
    let proc_mount =
        named(&|c| str_at(c, "/securityContext/procMount").is_some_and(|m| m != "Default"));
    if !proc_mount.is_empty() {
        out.push(format!("procMount (containers {})", quoted(&proc_mount)));
    }
    let unconfined_seccomp = |sc: &Value| str_at(sc, "/seccompProfile/type") == Some("Unconfined");
    let mut seccomp = named(&|c| unconfined_seccomp(&c["securityContext"]));
    if unconfined_seccomp(&spec["securityContext"]) {
        seccomp.insert(0, "pod".into());
    }
    if !seccomp.is_empty() {
        out.push(format!("seccompProfile ({} Unconfined)", quoted(&seccomp)));
    }
    let sysctls: Vec<String> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|name| !SAFE_SYSCTLS.contains(name))
        .map(str::to_owned)
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    if level == Level::Baseline {
        return out;
    }

    // --- restricted
    let mut volumes = Vec::new();
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(kind) = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .find(|k| *k != "name" && !RESTRICTED_VOLUMES.contains(&k.as_str()))
        {
            volumes.push(format!("volume {name:?} uses {kind}"));
        }
    }
    rule(&mut out, "restricted volume types", volumes);
    let escalation = named(&|c| {
        c.pointer("/securityContext/allowPrivilegeEscalation")
            .and_then(Value::as_bool)
            != Some(false)
    });
    if !escalation.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false (containers {} must set securityContext.allowPrivilegeEscalation=false)",
            quoted(&escalation)
        ));
    }
    let pod_non_root = spec
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool);
    let mut non_root: Vec<String> = named(&|c| match c
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool)
    {
        Some(value) => !value,
        None => pod_non_root != Some(true),
    });
    if pod_non_root == Some(false) {
        non_root.insert(0, "pod".into());
    }
    if !non_root.is_empty() {
        out.push(format!(
            "runAsNonRoot != true ({} must set securityContext.runAsNonRoot=true)",
            quoted(&non_root)
        ));
    }
    let mut root_user = named(&|c| {
        c.pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64)
            == Some(0)
    });
    if spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0)
    {
        root_user.insert(0, "pod".into());
    }
    if !root_user.is_empty() {
        out.push(format!("runAsUser=0 ({})", quoted(&root_user)));
    }
    let pod_seccomp = str_at(spec, "/securityContext/seccompProfile/type");
    let confined = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    let no_seccomp = named(&|c| {
        let own = str_at(c, "/securityContext/seccompProfile/type");
        !confined(own.or(pod_seccomp))
    });
    if !no_seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or containers {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            quoted(&no_seccomp)
        ));
    }
    let mut caps = Vec::new();
    for (name, c) in &all {
        let drops_all = c
            .pointer("/securityContext/capabilities/drop")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "ALL"));
        let adds: Vec<&str> = c
            .pointer("/securityContext/capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !drops_all {
            caps.push(format!("container {name:?} must drop ALL"));
        }
        if !adds.is_empty() {
            caps.push(format!(
                "container {name:?} must not add {}",
                adds.join(", ")
            ));
        }
    }
    rule(&mut out, "unrestricted capabilities", caps);
    out
}

/// The level a namespace enforces, from its labels.
pub fn enforced(namespace: &Value) -> Option<Level> {
    namespace
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(ENFORCE_LABEL))
        .and_then(Value::as_str)
        .and_then(Level::parse)
}

/// The apiserver's refusal message for `pod` violating `level`, if it does.
pub fn refusal(level: Level, pod_name: &str, pod: &Value) -> Option<String> {
    let found = violations(level, pod);
    (!found.is_empty()).then(|| {
        format!(
            "pods {pod_name:?} is forbidden: violates PodSecurity \"{}:latest\": {}",
            level.name(),
            found.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn restricted_pod() -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
                            {"name": "bin", "emptyDir": {}}],
                "initContainers": [{"name": "copy", "image": "i", "securityContext": {
                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
                "containers": [{"name": "main", "image": "i", "securityContext": {
                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
            }
        })
    }

    #[test]
    fn a_hardened_pod_passes_every_level() {
        for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
            assert_eq!(
                violations(level, &restricted_pod()),
                Vec::<String>::new(),
                "{level:?}"
            );
        }
    }

    #[test]
    fn baseline_refuses_host_paths_naming_the_volumes() {
        let mut pod = restricted_pod();
        pod["spec"]["volumes"] = json!([
            {"name": "sock", "hostPath": {"path": "/var/lib/x"}},
            {"name": "bin", "hostPath": {"path": "/bin"}}
        ]);
        assert_eq!(
            violations(Level::Baseline, &pod),
            vec![r#"hostPath volumes (volumes "sock", "bin")"#.to_string()]
        );
        assert_eq!(
            refusal(Level::Baseline, "p", &pod).as_deref(),
            Some(
                r#"pods "p" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volumes "sock", "bin")"#
            )
        );
        assert!(violations(Level::Privileged, &pod).is_empty());
    }

    #[test]
    fn baseline_refuses_each_privilege_it_lists() {
        let mut pod = restricted_pod();
        pod["spec"]["hostNetwork"] = json!(true);
        pod["spec"]["securityContext"]["sysctls"] =
            json!([{"name": "kernel.msgmax", "value": "1"}]);
        let c = &mut pod["spec"]["containers"][0];
        c["securityContext"]["privileged"] = json!(true);
        c["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN", "CHOWN"]);
        c["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        c["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
        c["securityContext"]["seLinuxOptions"] = json!({"type": "spc_t"});
        c["securityContext"]["procMount"] = json!("Unmasked");
        let found = violations(Level::Baseline, &pod).join("\n");
        for expected in [
            "host namespaces (hostNetwork=true)",
            r#"privileged (containers "main")"#,
            r#"non-default capabilities (container "main" adds "SYS_ADMIN")"#,
            r#"hostPort (container "main" uses 8080)"#,
            r#"seLinuxOptions ("main")"#,
            r#"procMount (containers "main")"#,
            r#"seccompProfile ("main" Unconfined)"#,
            "forbidden sysctls (kernel.msgmax)",
        ] {
            assert!(
                found.contains(expected),
                "{expected} missing from:\n{found}"
            );
        }
    }

    #[test]
    fn restricted_asks_for_non_root_no_escalation_seccomp_and_dropped_capabilities() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "volumes": [{"name": "nfs", "nfs": {"server": "s", "path": "/"}}],
                "containers": [{"name": "main", "image": "i",
                                "securityContext": {"runAsUser": 0}}]
            }
        });
        assert!(violations(Level::Baseline, &pod).is_empty());
        let found = violations(Level::Restricted, &pod).join("\n");
        for expected in [
            r#"restricted volume types (volume "nfs" uses nfs)"#,
            r#"allowPrivilegeEscalation != false (containers "main""#,
            r#"runAsNonRoot != true ("main""#,
            r#"runAsUser=0 ("main")"#,
            r#"seccompProfile (pod or containers "main""#,
            r#"unrestricted capabilities (container "main" must drop ALL)"#,
        ] {
            assert!(
                found.contains(expected),
                "{expected} missing from:\n{found}"
            );
        }
    }

    #[test]
    fn the_namespace_label_selects_the_level() {
        let ns = |v: &str| json!({"metadata": {"labels": {ENFORCE_LABEL: v}}});
        assert_eq!(enforced(&ns("baseline")), Some(Level::Baseline));
        assert_eq!(enforced(&ns("restricted")), Some(Level::Restricted));
        assert_eq!(enforced(&ns("bogus")), None);
        assert_eq!(enforced(&json!({"metadata": {}})), None);
    }
}
