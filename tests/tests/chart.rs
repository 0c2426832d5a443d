//! The Helm chart (`charts/cairn`) and the images: Helm's lint and render (Helm v4 through
//! `tools/helm.py`), strict Kubernetes 1.33 schema validation, the CRDs, the flags against the
//! real binaries, hadolint and yamllint, and an install into localkube whose rendered pods run
//! and connect over mutual TLS with the Helm-generated certificates.
//!
//! Tools come from `PATH` or `.tools/venv/bin` (`./test.sh` installs them); the binaries from the
//! cargo target directory (`cargo build --workspace --bins`). A missing one fails the test with
//! a message saying so.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

const KUBE_VERSION: &str = "1.33.0";
const RELEASE: &str = "cairn";
const NAMESPACE: &str = "cairn-system";

// ---------------------------------------------------------------------------------------------
// Locating the workspace, the tools and the binaries.

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    root().join("charts/cairn")
}

/// `name` from PATH, else from `.tools/venv/bin`; an error naming the tool otherwise.
fn tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::iter::once(root().join(".tools/venv/bin")))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`{name}` is not on PATH nor in .tools/venv/bin; the chart tests need it \
                 (.ci/requirements.txt lists it): run ./test.sh"
            )
        })
}

/// The Python that has helm-python-sdk: `.tools/venv/bin/python` first, then `python3`.
fn python() -> Result<PathBuf> {
    let venv = root().join(".tools/venv/bin/python");
    let python = if venv.is_file() {
        venv
    } else {
        tool("python3")?
    };
    let probe = Command::new(&python)
        .args(["-c", "import helm_python"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        probe.status.success(),
        "{} cannot import helm_python (helm-python-sdk==0.2.2, in .ci/requirements.txt): run ./test.sh",
        python.display()
    );
    Ok(python)
}

/// The directory holding the workspace binaries (target/debug for a test in target/debug/deps).
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .context("test executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

fn binary(name: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(name);
    ensure!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace --bins)",
        path.display()
    );
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Running things.

fn run(command: &mut Command) -> Result<Output> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("starting {shown}"))?;
    ensure!(
        output.status.success(),
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn helm_py(args: &[&str]) -> Result<Output> {
    run(Command::new(python()?)
        .arg(root().join("tools/helm.py"))
        .args(args)
        .current_dir(root()))
}

/// Writes `values` to a file Helm reads as a values file (JSON is YAML).
fn values_file(dir: &Path, values: &Value) -> Result<PathBuf> {
    let path = dir.join("values.json");
    std::fs::write(&path, serde_json::to_vec_pretty(values)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A rendered chart: the YAML Helm printed and the same objects as JSON.
struct Rendered {
    yaml: String,
    objects: Vec<Value>,
}

impl Rendered {
    fn of(values: &Value) -> Result<Rendered> {
        Self::with_crds(values, false)
    }

    fn with_crds(values: &Value, include_crds: bool) -> Result<Rendered> {
        let dir = tempfile::tempdir()?;
        let file = values_file(dir.path(), values)?;
        let chart = chart_dir();
        let mut args = vec![
            "template".to_string(),
            chart.display().to_string(),
            "--name".into(),
            RELEASE.into(),
            "--namespace".into(),
            NAMESPACE.into(),
            "-f".into(),
            file.display().to_string(),
        ];
        if include_crds {
            args.push("--include-crds".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let yaml = stdout(&helm_py(&args)?);
        let mut json_args = args.clone();
        json_args.extend(["--output", "json"]);
        let listed: Value = serde_json::from_str(&stdout(&helm_py(&json_args)?))
            .context("parsing tools/helm.py template --output json")?;
        let objects = listed
            .as_array()
            .context("template --output json is not a list")?
            .iter()
            .map(|entry| entry["object"].clone())
            .collect();
        Ok(Rendered { yaml, objects })
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str, name: &str) -> Result<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .with_context(|| format!("the render has no {kind} {name}"))
    }
}

fn strs(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Every container and init container of a workload, with whether it is an init container.
fn containers(workload: &Value) -> Vec<(&Value, bool)> {
    let spec = &workload["spec"]["template"]["spec"];
    let init = spec["initContainers"].as_array().into_iter().flatten();
    let main = spec["containers"].as_array().into_iter().flatten();
    init.map(|c| (c, true))
        .chain(main.map(|c| (c, false)))
        .collect()
}

fn container<'a>(workload: &'a Value, name: &str) -> Result<&'a Value> {
    containers(workload)
        .into_iter()
        .map(|(c, _)| c)
        .find(|c| c["name"] == name)
        .with_context(|| format!("no container {name} in {}", workload["metadata"]["name"]))
}

/// Values that change every setting a user would plausibly change.
fn non_default_values() -> Value {
    json!({
        "fullnameOverride": "dp",
        "clusterDomain": "corp.example",
        "commonLabels": {"team": "storage"},
        "imagePullSecrets": [{"name": "regcred"}],
        "controlPlane": {
            "image": {
                "repository": "registry.example/cairn-cp",
                "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "pullPolicy": "Always"
            },
            "replicas": 3,
            "listenAddress": "::",
            "ports": {"agent": 19443, "health": 18080, "api": 19444},
            "api": {"clientCASecret": "api-callers-ca"},
            "agentGracePeriod": "90s",
            "heartbeatInterval": "5s",
            "progressInterval": "2s",
            "leaderElection": {"leaseName": "cairn-leader"},
            "logFormat": "text",
            "logLevel": "debug",
            "extraEnv": [{"name": "OTEL_SERVICE_NAME", "value": "cairn"}],
            "extraVolumes": [{"name": "s3-ca", "configMap": {"name": "corp-ca"}}],
            "extraVolumeMounts": [{"name": "s3-ca", "mountPath": "/etc/corp-ca", "readOnly": true}],
            "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            "podAnnotations": {"example.com/scrape": "true"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [{
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "control-plane"}}
            }],
            "priorityClassName": "system-cluster-critical",
            "service": {"type": "NodePort", "annotations": {"example.com/lb": "internal"}},
            "serviceAccount": {"name": "cp-sa", "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/cairn"}}
        },
        "agent": {
            "image": {"tag": "v9.9.9"},
            "controlPlaneAddress": "https://cairn.example:19443",
            "serverName": "cairn.example",
            "hostDir": "/data/cairn/",
            "kubeletDir": "/var/lib/k0s/kubelet",
            "datasafedBin": "/opt/cairn/datasafed",
            "logFormat": "text",
            "extraArgs": ["--log-format=json"],
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"}],
            "extraVolumes": [{"name": "proxy-ca", "secret": {"secretName": "proxy-ca"}}],
            "extraVolumeMounts": [{"name": "proxy-ca", "mountPath": "/etc/proxy-ca", "readOnly": true}],
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
            "podAnnotations": {"example.com/agent": "yes"},
            "nodeSelector": {"storage": "true"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]
            }}},
            "tolerations": [],
            "priorityClassName": "system-node-critical",
            "updateStrategy": {"type": "OnDelete"},
            "securityContext": {"seLinuxOptions": {"type": "spc_t"}},
            "serviceAccount": {"create": false, "name": "node-agent"}
        },
        "tls": {
            "agentCertValidityDays": 30,
            "extraServerNames": ["cairn.example"],
            "extraServerIPs": ["10.0.0.10"]
        },
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}}
    })
}

// ---------------------------------------------------------------------------------------------
// Lint, schema validation and the linters.

#[test]
fn helm_lint_passes_strictly_with_default_and_non_default_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = values_file(dir.path(), &non_default_values())?;
    let chart = chart_dir().display().to_string();
    let default = helm_py(&["lint", &chart, "--strict", "--kube-version", "v1.33.0"])?;
    ensure!(
        stdout(&default).contains("no failures"),
        "{}",
        stdout(&default)
    );
    let custom = helm_py(&[
        "lint",
        &chart,
        "--strict",
        "-f",
        &file.display().to_string(),
    ])?;
    ensure!(
        stdout(&custom).contains("no failures"),
        "{}",
        stdout(&custom)
    );
    Ok(())
}

/// Runs kubernetes-validate --strict on `yaml`; returns its report.
fn kubernetes_validate(yaml: &str) -> Result<Output> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, yaml)?;
    Command::new(tool("kubernetes-validate")?)
        .args(["--strict", "-k", KUBE_VERSION])
        .arg(&path)
        .output()
        .context("running kubernetes-validate")
}

/// Asserts every object but those of `unschematized` kinds passed strict validation.
fn assert_valid(rendered: &Rendered, unschematized: &[&str]) -> Result<()> {
    let report = kubernetes_validate(&rendered.yaml)?;
    let text = format!(
        "{}{}",
        stdout(&report),
        String::from_utf8_lossy(&report.stderr)
    );
    ensure!(
        report.status.success(),
        "kubernetes-validate --strict -k {KUBE_VERSION} failed:\n{text}"
    );
    for object in &rendered.objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let passed = format!(
            "passed for resource {}/{name} against version 1.33",
            kind.to_lowercase()
        );
        if unschematized.contains(&kind) {
            ensure!(
                !text.contains(&passed),
                "{kind} unexpectedly has a schema now: validate it strictly\n{text}"
            );
        } else {
            ensure!(
                text.contains(&passed),
                "{kind} {name} was not validated:\n{text}"
            );
        }
    }
    Ok(())
}

#[test]
fn kubernetes_validate_rejects_an_unknown_field_in_strict_mode() -> Result<()> {
    let misspelled = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  \
                      selector: {a: b}\n  ports:\n    - port: 80\n      targetPortt: 80\n";
    let report = kubernetes_validate(misspelled)?;
    ensure!(
        !report.status.success(),
        "a Service with `targetPortt` passed strict validation, so the chart checks prove nothing"
    );
    Ok(())
}

#[test]
fn default_render_passes_strict_kubernetes_1_33_validation() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    let kinds: BTreeSet<&str> = rendered
        .objects
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Deployment",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    .into();
    ensure!(kinds == expected, "rendered kinds {kinds:?}");
    ensure!(rendered.of_kind("ServiceMonitor").is_empty());
    assert_valid(&rendered, &[])
}

#[test]
fn non_default_values_render_valid_objects_carrying_those_values() -> Result<()> {
    let rendered = Rendered::of(&non_default_values())?;
    assert_valid(&rendered, &["ServiceMonitor"])?;
    for object in &rendered.objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        ensure!(
            name.starts_with("dp-") || name == "cp-sa",
            "{name} ignores fullnameOverride"
        );
        ensure!(
            object["metadata"]["labels"]["team"] == "storage",
            "{name} lacks commonLabels"
        );
    }

    let deployment = rendered.one("Deployment", "dp-control-plane")?;
    ensure!(deployment["spec"]["replicas"] == 3);
    let pod = &deployment["spec"]["template"]["spec"];
    ensure!(pod["serviceAccountName"] == "cp-sa");
    ensure!(pod["imagePullSecrets"][0]["name"] == "regcred");
    ensure!(pod["priorityClassName"] == "system-cluster-critical");
    ensure!(pod["nodeSelector"]["kubernetes.io/os"] == "linux");
    ensure!(pod["tolerations"][0]["key"] == "dedicated");
    ensure!(pod["topologySpreadConstraints"][0]["maxSkew"] == 1);
    let cp = container(deployment, "control-plane")?;
    ensure!(
        cp["image"]
            == "registry.example/cairn-cp@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    ensure!(cp["imagePullPolicy"] == "Always");
    let args = strs(&cp["args"]);
    for expected in [
        "--agent-listen=[::]:19443",
        "--health-listen=[::]:18080",
        "--agent-grace-period=90s",
        "--heartbeat-interval=5s",
        "--progress-interval=2s",
        "--leader-election-name=cairn-leader",
        "--log-format=text",
    ] {
        ensure!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    ensure!(cp["readinessProbe"]["httpGet"]["port"] == 18080);
    ensure!(cp["ports"][0]["containerPort"] == 19443);
    let env = cp["env"].as_array().context("control plane env")?;
    ensure!(
        env.iter()
            .any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug")
    );
    ensure!(env.iter().any(|e| e["name"] == "OTEL_SERVICE_NAME"));
    ensure!(cp["resources"]["requests"]["cpu"] == "200m");
    ensure!(
        pod["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["configMap"]["name"] == "corp-ca")),
        "controlPlane.extraVolumes not rendered: {}",
        pod["volumes"]
    );
    ensure!(
        cp["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/etc/corp-ca")),
        "controlPlane.extraVolumeMounts not rendered: {}",
        cp["volumeMounts"]
    );
    ensure!(
        deployment["spec"]["template"]["metadata"]["annotations"]["example.com/scrape"] == "true"
    );

    let role = rendered.one("Role", "dp-control-plane")?;
    ensure!(
        role["rules"][0]["resourceNames"] == json!(["cairn-leader"]),
        "the Lease rule does not follow leaderElection.leaseName: {role}"
    );
    let service = rendered.one("Service", "dp-control-plane")?;
    ensure!(service["spec"]["type"] == "NodePort");
    ensure!(service["metadata"]["annotations"]["example.com/lb"] == "internal");
    ensure!(service["spec"]["ports"][0]["port"] == 19443);

    let daemonset = rendered.one("DaemonSet", "dp-agent")?;
    let pod = &daemonset["spec"]["template"]["spec"];
    ensure!(pod["serviceAccountName"] == "node-agent");
    ensure!(rendered.of_kind("ServiceAccount").len() == 1);
    ensure!(pod["priorityClassName"] == "system-node-critical");
    ensure!(
        pod.get("tolerations").is_none(),
        "empty tolerations rendered"
    );
    ensure!(daemonset["spec"]["updateStrategy"]["type"] == "OnDelete");
    let agent = container(daemonset, "agent")?;
    ensure!(agent["image"] == "ghcr.io/cairn-dp/cairn-agent:v9.9.9");
    ensure!(agent["securityContext"]["seLinuxOptions"]["type"] == "spc_t");
    ensure!(
        agent["env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["name"] == "HTTPS_PROXY")),
        "agent.extraEnv not rendered: {}",
        agent["env"]
    );
    ensure!(
        pod["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["secret"]["secretName"] == "proxy-ca")),
        "agent.extraVolumes not rendered: {}",
        pod["volumes"]
    );
    ensure!(
        agent["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/etc/proxy-ca")),
        "agent.extraVolumeMounts not rendered: {}",
        agent["volumeMounts"]
    );
    ensure!(agent["resources"]["limits"]["memory"] == "256Mi");
    ensure!(daemonset["spec"]["template"]["metadata"]["annotations"]["example.com/agent"] == "yes");
    ensure!(pod["nodeSelector"]["storage"] == "true");
    ensure!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"]
            == "kubernetes.io/os"
    );
    ensure!(
        agent["securityContext"]["capabilities"]["add"] == json!(["DAC_READ_SEARCH"]),
        "merging securityContext lost the defaults"
    );
    let args = strs(&agent["args"]);
    for expected in [
        "--control-plane=https://cairn.example:19443",
        "--server-name=cairn.example",
        "--agent-dir=/data/cairn/node",
        "--state-dir=/data/cairn/state",
        "--kubelet-dir=/var/lib/k0s/kubelet",
        "--datasafed-bin=/opt/cairn/datasafed",
        "--log-format=text",
        "--log-format=json",
    ] {
        ensure!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    let volumes = pod["volumes"].as_array().context("agent volumes")?;
    ensure!(
        volumes
            .iter()
            .any(|v| v["hostPath"]["path"] == "/data/cairn")
    );
    ensure!(
        volumes
            .iter()
            .any(|v| v["hostPath"]["path"] == "/var/lib/k0s/kubelet/pods")
    );
    let mounts = agent["volumeMounts"].as_array().context("agent mounts")?;
    ensure!(
        mounts.iter().any(|m| m["mountPath"] == "/data/cairn"),
        "the host directory must be mounted at its host path: {mounts:?}"
    );
    let issuer = container(daemonset, "issue-certificate")?;
    ensure!(strs(&issuer["args"]).contains(&"--days=30".to_string()));
    ensure!(
        issuer["image"] == cp["image"],
        "init container must run the control-plane image"
    );

    let monitor = rendered.one("ServiceMonitor", "dp-control-plane")?;
    ensure!(monitor["metadata"]["labels"]["release"] == "prometheus");
    ensure!(monitor["spec"]["endpoints"][0]["port"] == "http-metrics");
    Ok(())
}

#[test]
fn values_schema_rejects_bad_values_naming_each_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = values_file(
        dir.path(),
        &json!({
            "controlPlane": {"logFormat": "yaml", "agentGracePeriod": "5 minutes", "replicass": 2},
            "agent": {"hostDir": "var/lib/cairn-agent", "controlPlaneAddress": "http://cp:9443"},
            "tls": {"agentCertValidityDays": 0}
        }),
    )?;
    let output = Command::new(python()?)
        .arg(root().join("tools/helm.py"))
        .args(["template", &chart_dir().display().to_string(), "-f"])
        .arg(&file)
        .output()
        .context("running tools/helm.py")?;
    let errors = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "bad values rendered");
    for field in [
        "/controlPlane/logFormat",
        "/controlPlane/agentGracePeriod",
        "'replicass' not allowed",
        "/agent/hostDir",
        "/agent/controlPlaneAddress",
        "/tls/agentCertValidityDays",
    ] {
        ensure!(errors.contains(field), "{field} not named in:\n{errors}");
    }
    Ok(())
}

#[test]
fn dockerfiles_are_hadolint_clean() -> Result<()> {
    let hadolint = tool("hadolint")?;
    for dockerfile in ["Dockerfile.control", "Dockerfile.agent"] {
        let output = Command::new(&hadolint)
            .arg(root().join(dockerfile))
            .output()
            .context("running hadolint")?;
        ensure!(
            output.status.success() && output.stdout.is_empty(),
            "hadolint {dockerfile}:\n{}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[test]
fn chart_yaml_files_are_yamllint_clean() -> Result<()> {
    let chart = chart_dir();
    let output = Command::new(tool("yamllint")?)
        .args(["--strict", "-c"])
        .arg(chart.join(".yamllint"))
        .arg(chart.join("values.yaml"))
        .arg(chart.join("Chart.yaml"))
        .output()
        .context("running yamllint")?;
    ensure!(
        output.status.success(),
        "yamllint:\n{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CRDs and flags against the real binaries.

#[test]
fn chart_ships_exactly_the_crds_cairnctl_generates() -> Result<()> {
    let generated = tempfile::tempdir()?;
    run(Command::new(binary("cairnctl")?)
        .args(["crds", "--dir"])
        .arg(generated.path()))?;
    let read_dir = |dir: &Path| -> Result<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.insert(name, std::fs::read_to_string(&path)?);
        }
        Ok(files)
    };
    let shipped = read_dir(&chart_dir().join("crds"))?;
    let fresh = read_dir(generated.path())?;
    ensure!(
        shipped.keys().eq(fresh.keys()),
        "charts/cairn/crds has {:?}, cairnctl crds writes {:?}",
        shipped.keys(),
        fresh.keys()
    );
    for (name, text) in &fresh {
        ensure!(
            shipped.get(name) == Some(text),
            "charts/cairn/crds/{name} is stale: regenerate with `cairnctl crds --dir charts/cairn/crds`"
        );
    }

    // Helm itself must see them as the chart's CRDs (installed before the templates).
    let rendered = Rendered::with_crds(&json!({}), true)?;
    let crds: BTreeSet<String> = rendered
        .of_kind("CustomResourceDefinition")
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    ensure!(crds.len() == fresh.len(), "Helm loaded {crds:?}");
    for kind in [
        "actionsets",
        "backuppolicies",
        "backuprepos",
        "backups",
        "backupschedules",
        "restores",
        "storageproviders",
    ] {
        let name = format!("{kind}.dataprotection.kubeblocks.io");
        ensure!(crds.contains(&name), "no CRD {name} in {crds:?}");
    }
    ensure!(crds.contains("storageproviders.storage.kubeblocks.io"));
    Ok(())
}

/// The `--flags` a clap help text defines: the first `--name` of each option line.
fn help_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            let rest = &line[line.find("--")? + 2..];
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!flag.is_empty()).then_some(flag)
        })
        .collect()
}

fn help_of(binary_name: &str, subcommands: &[String]) -> Result<BTreeSet<String>> {
    let output = run(Command::new(binary(binary_name)?)
        .args(subcommands)
        .arg("--help"))?;
    Ok(help_flags(&stdout(&output)))
}

/// One container's command line: its binary, subcommands and `--flag=value` arguments.
struct CommandLine {
    binary: String,
    subcommands: Vec<String>,
    flags: Vec<String>,
}

fn command_lines(rendered: &Rendered) -> Result<Vec<(String, CommandLine)>> {
    let mut lines = Vec::new();
    for kind in ["Deployment", "DaemonSet"] {
        for workload in rendered.of_kind(kind) {
            for (c, _) in containers(workload) {
                let name = format!("{}/{}", workload["metadata"]["name"], c["name"]);
                let command = strs(&c["command"]);
                ensure!(command.len() == 1, "{name}: command {command:?}");
                let binary = Path::new(&command[0])
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let args = strs(&c["args"]);
                let split = args
                    .iter()
                    .position(|a| a.starts_with("--"))
                    .unwrap_or(args.len());
                let mut flags = Vec::new();
                for arg in &args[split..] {
                    let Some((flag, _)) = arg.strip_prefix("--").and_then(|a| a.split_once('='))
                    else {
                        bail!("{name}: argument {arg:?} is not --flag=value");
                    };
                    flags.push(flag.to_string());
                }
                lines.push((
                    name,
                    CommandLine {
                        binary,
                        subcommands: args[..split].to_vec(),
                        flags,
                    },
                ));
            }
        }
    }
    Ok(lines)
}

#[test]
fn every_flag_the_templates_pass_exists_in_the_binaries() -> Result<()> {
    let mut checked = 0;
    for values in [json!({}), non_default_values()] {
        let rendered = Rendered::of(&values)?;
        for (name, line) in command_lines(&rendered)? {
            let known = help_of(&line.binary, &line.subcommands)?;
            for flag in &line.flags {
                ensure!(
                    known.contains(flag),
                    "{name} passes --{flag}, which `{} {} --help` does not list ({known:?})",
                    line.binary,
                    line.subcommands.join(" ")
                );
                checked += 1;
            }
        }
    }
    ensure!(checked > 30, "only {checked} flags checked");
    Ok(())
}

#[test]
fn every_flag_of_the_binaries_is_set_by_the_chart_or_known_not_to_apply() -> Result<()> {
    // Flags that have no meaning in a cluster, with the reason.
    let not_in_cluster: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "cairn-control-plane",
            // Standalone mode only: the chart provides the certificates.
            ["tls-generate", "tls-server-name", "help", "version"].as_slice(),
        ),
        ("cairn-agent", ["help", "version"].as_slice()),
    ]);
    let mut set: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for values in [json!({}), non_default_values()] {
        for (_, line) in command_lines(&Rendered::of(&values)?)? {
            if line.subcommands.is_empty() {
                set.entry(line.binary).or_default().extend(line.flags);
            }
        }
    }
    for (binary_name, skipped) in not_in_cluster {
        let all = help_of(binary_name, &[])?;
        let chart = set.get(binary_name).cloned().unwrap_or_default();
        let missing: Vec<&String> = all
            .iter()
            .filter(|f| !chart.contains(*f) && !skipped.contains(&f.as_str()))
            .collect();
        ensure!(
            missing.is_empty(),
            "{binary_name} has flags the chart never sets: {missing:?}; give each a value in \
             charts/cairn/values.yaml or list it here with the reason"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Security properties a reviewer would check by hand.

/// The containers of `workload` that mount `volume`.
fn mounting(workload: &Value, volume: &str) -> BTreeSet<String> {
    containers(workload)
        .into_iter()
        .filter(|(c, _)| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["name"] == volume)
        })
        .filter_map(|(c, _)| c["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn only_the_certificate_issuing_containers_can_read_the_agent_ca_key() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
    let volumes = daemonset["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .context("agent volumes")?;
    let holding_key: Vec<&str> = volumes
        .iter()
        .filter(|v| {
            let items = v["secret"]["items"].as_array();
            v.get("secret").is_some()
                && items.is_none_or(|items| items.iter().any(|i| i["key"] == "ca-key.pem"))
        })
        .filter_map(|v| v["name"].as_str())
        .collect();
    ensure!(
        holding_key == ["agent-ca"],
        "volumes with the CA key: {holding_key:?}"
    );
    // The init container issues the first certificate, the renewal container the next ones;
    // the agent, which serves the storage port, never sees the key.
    let holders = mounting(daemonset, "agent-ca");
    ensure!(
        holders
            == BTreeSet::from([
                "issue-certificate".to_owned(),
                "renew-certificate".to_owned()
            ]),
        "containers mounting the agent CA: {holders:?}"
    );
    let renew = container(daemonset, "renew-certificate")?;
    ensure!(
        renew["ports"].is_null(),
        "the renewal container serves something: {renew}"
    );
    // The control plane gets the agent CA's certificate but never its key.
    let secret = rendered.one("Secret", "cairn-control-plane-tls")?;
    let keys: BTreeSet<&str> = secret["data"]
        .as_object()
        .context("secret data")?
        .keys()
        .map(String::as_str)
        .collect();
    ensure!(keys == BTreeSet::from(["ca.pem", "server.pem", "server-key.pem"]));
    Ok(())
}

/// Where each file of a pod volume comes from: `path -> (secret, key)`, for secret and
/// projected secret volumes.
fn volume_files(volume: &Value) -> BTreeMap<String, (String, String)> {
    let mut files = BTreeMap::new();
    let mut add = |secret: &Value, name: &Value| {
        for item in secret["items"].as_array().into_iter().flatten() {
            files.insert(
                item["path"].as_str().unwrap_or_default().to_string(),
                (
                    name.as_str().unwrap_or_default().to_string(),
                    item["key"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
    };
    add(&volume["secret"], &volume["secret"]["secretName"]);
    for source in volume["projected"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        add(&source["secret"], &source["secret"]["name"]);
    }
    files
}

fn pod_volume<'a>(workload: &'a Value, name: &str) -> Result<&'a Value> {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == name)
        .with_context(|| format!("no volume {name} in {}", workload["metadata"]["name"]))
}

#[test]
fn cert_manager_mode_issues_the_same_files_without_lookup_and_renders_the_same_twice() -> Result<()>
{
    let values =
        json!({"tls": {"certManager": {"enabled": true}, "extraServerIPs": ["10.0.0.10"]}});
    let rendered = Rendered::of(&values)?;
    assert_valid(&rendered, &["Issuer", "Certificate"])?;
    // Nothing generated at render time: Argo CD's repeated offline renders agree.
    ensure!(
        rendered.of_kind("Secret").is_empty(),
        "cert-manager mode still renders Helm-generated Secrets"
    );
    ensure!(
        Rendered::of(&values)?.yaml == rendered.yaml,
        "two offline renders differ, so every Argo CD sync would change the release"
    );
    let agent_ca = rendered.one("Certificate", "cairn-agent-ca")?;
    ensure!(agent_ca["spec"]["isCA"] == true);
    // The one key format `cairn-control-plane ca issue-agent` (rcgen on ring) loads.
    ensure!(agent_ca["spec"]["privateKey"]["algorithm"] == "Ed25519");
    ensure!(agent_ca["spec"]["privateKey"]["encoding"] == "PKCS8");
    let server = rendered.one("Certificate", "cairn-control-plane-tls")?;
    ensure!(
        server["spec"]["issuerRef"]["name"] == "cairn-server-ca"
            && rendered.one("Issuer", "cairn-server-ca")?["spec"]["ca"]["secretName"]
                == "cairn-server-ca",
        "the server certificate is not signed by the server CA: {server}"
    );
    ensure!(strs(&server["spec"]["dnsNames"]).contains(&format!(
        "cairn-control-plane.{NAMESPACE}.svc.cluster.local"
    )));
    ensure!(server["spec"]["ipAddresses"] == json!(["10.0.0.10"]));

    // The binaries read the same file names as in Helm mode, from cert-manager's keys.
    let entry = |secret: &str, key: &str| (secret.to_string(), key.to_string());
    let deployment = rendered.one("Deployment", "cairn-control-plane")?;
    ensure!(
        volume_files(pod_volume(deployment, "tls")?)
            == BTreeMap::from([
                ("ca.pem".into(), entry("cairn-agent-ca", "tls.crt")),
                (
                    "server.pem".into(),
                    entry("cairn-control-plane-tls", "tls.crt")
                ),
                (
                    "server-key.pem".into(),
                    entry("cairn-control-plane-tls", "tls.key")
                ),
            ]),
        "control plane TLS volume {}",
        pod_volume(deployment, "tls")?
    );
    let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
    ensure!(
        volume_files(pod_volume(daemonset, "agent-ca")?)
            == BTreeMap::from([
                ("ca.pem".into(), entry("cairn-agent-ca", "tls.crt")),
                ("ca-key.pem".into(), entry("cairn-agent-ca", "tls.key")),
            ])
    );
    ensure!(
        volume_files(pod_volume(daemonset, "server-ca")?)
            == BTreeMap::from([(
                "server-ca.pem".into(),
                entry("cairn-control-plane-tls", "ca.crt")
            )]),
        "the agent must trust the server CA through the server certificate's ca.crt"
    );
    // Only the issuing containers mount the agent CA key; no pod mounts the server CA's Secret.
    ensure!(
        mounting(daemonset, "agent-ca")
            == BTreeSet::from([
                "issue-certificate".to_owned(),
                "renew-certificate".to_owned()
            ])
    );
    // Every Certificate renews before it expires; the binaries reload the files.
    for certificate in rendered.of_kind("Certificate") {
        ensure!(
            certificate["spec"]["renewBefore"].is_string(),
            "no renewBefore: {certificate}"
        );
    }
    ensure!(rendered.one("Certificate", "cairn-agent-ca")?["spec"]["renewBefore"] == "2160h");
    ensure!(
        rendered.one("Certificate", "cairn-control-plane-tls")?["spec"]["renewBefore"] == "720h"
    );
    // The agents' own certificates are renewed by the renewal container.
    let args = strs(&container(daemonset, "renew-certificate")?["args"]);
    for wanted in ["--renew-before=720h", "--every=1m", "--days=365"] {
        ensure!(
            args.iter().any(|a| a == wanted),
            "{wanted} missing from {args:?}"
        );
    }
    for workload in [deployment, daemonset] {
        for volume in workload["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            ensure!(
                !volume_files(volume)
                    .values()
                    .any(|(secret, _)| secret == "cairn-server-ca"),
                "a pod mounts the server CA's key: {volume}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_agent_mounts_only_its_host_directory_and_the_kubelets_pods_directory() -> Result<()> {
    // (values, host directory, pods directory, whether the pods directory is writable)
    for (values, host_dir, pods, pods_writable) in [
        (
            json!({}),
            "/var/lib/cairn-agent",
            "/var/lib/kubelet/pods",
            true,
        ),
        (
            json!({"agent": {"kubeletDir": "/var/lib/k0s/kubelet/", "hostDir": "/data/cairn"}}),
            "/data/cairn",
            "/var/lib/k0s/kubelet/pods",
            true,
        ),
        (
            json!({"agent": {"kubeletPodsWritable": false}}),
            "/var/lib/cairn-agent",
            "/var/lib/kubelet/pods",
            false,
        ),
    ] {
        let rendered = Rendered::of(&values)?;
        let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
        let host_paths: BTreeMap<&str, &str> = daemonset["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .context("agent volumes")?
            .iter()
            .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
            .collect();
        ensure!(
            host_paths.values().copied().collect::<BTreeSet<_>>()
                == BTreeSet::from([host_dir, pods]),
            "the agent's hostPath volumes: {host_paths:?}"
        );
        let agent = container(daemonset, "agent")?;
        for mount in agent["volumeMounts"].as_array().context("agent mounts")? {
            let Some(path) = mount["name"].as_str().and_then(|n| host_paths.get(n)) else {
                continue;
            };
            ensure!(
                mount["mountPath"] == *path,
                "{path} is mounted at {}",
                mount["mountPath"]
            );
            if *path == pods {
                // Holder pods' volumes (Mount repositories on NFS/CSI, restores of moved
                // snapshot copies) are written there; mounts made later must show up.
                ensure!(
                    mount["readOnly"] == json!(!pods_writable),
                    "{path}: readOnly {} with kubeletPodsWritable {pods_writable}",
                    mount["readOnly"]
                );
                ensure!(
                    mount["mountPropagation"] == "HostToContainer",
                    "{path}: mountPropagation {}",
                    mount["mountPropagation"]
                );
            } else {
                ensure!(*path == host_dir, "{path} is mounted in the agent");
            }
        }
        ensure!(
            strs(&agent["args"])
                .contains(&format!("--kubelet-dir={}", pods.trim_end_matches("/pods"))),
            "{:?}",
            agent["args"]
        );
    }
    Ok(())
}

#[test]
fn nothing_runs_privileged_and_rbac_names_every_resource_and_verb() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    for kind in ["Deployment", "DaemonSet"] {
        for workload in rendered.of_kind(kind) {
            let pod = &workload["spec"]["template"]["spec"];
            ensure!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
            for (c, _) in containers(workload) {
                let security = &c["securityContext"];
                ensure!(
                    security["privileged"] != true,
                    "{} is privileged",
                    c["name"]
                );
                ensure!(security["allowPrivilegeEscalation"] == false);
                ensure!(security["readOnlyRootFilesystem"] == true);
                ensure!(security["capabilities"]["drop"] == json!(["ALL"]));
                let added = strs(&security["capabilities"]["add"]);
                ensure!(
                    added.is_empty() || added == ["DAC_READ_SEARCH"],
                    "{} adds {added:?}",
                    c["name"]
                );
            }
        }
    }
    let control_plane = rendered.one("Deployment", "cairn-control-plane")?;
    ensure!(control_plane["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] == true);

    for kind in ["ClusterRole", "Role"] {
        for role in rendered.of_kind(kind) {
            for rule in role["rules"].as_array().context("rules")? {
                for field in ["apiGroups", "resources", "verbs"] {
                    ensure!(
                        !strs(&rule[field]).iter().any(|v| v.contains('*')),
                        "{kind} {} has a wildcard in {field}: {rule}",
                        role["metadata"]["name"]
                    );
                }
                let verbs = strs(&rule["verbs"]);
                ensure!(
                    !verbs.contains(&"escalate".into()) && !verbs.contains(&"bind".into()),
                    "{rule}"
                );
            }
        }
    }
    let agent = rendered.one("ClusterRole", "cairn-agent")?;
    let granted = |resource: &str| -> BTreeSet<String> {
        agent["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| strs(&r["resources"]).iter().any(|x| x == resource))
            .flat_map(|r| strs(&r["verbs"]))
            .collect()
    };
    ensure!(
        granted("secrets").is_empty(),
        "the agent must not read Secrets"
    );
    // Targets are read; snapshot data movement creates and deletes a holder pod per claim.
    ensure!(
        granted("pods")
            == BTreeSet::from([
                "create".into(),
                "delete".into(),
                "get".into(),
                "list".into()
            ])
    );
    ensure!(granted("jobs").len() == 5);
    // Continuous backups' archivers: revised in place when their spec changes.
    ensure!(
        granted("statefulsets")
            == BTreeSet::from([
                "create".into(),
                "delete".into(),
                "get".into(),
                "update".into()
            ])
    );
    Ok(())
}

/// Evaluates a CEL expression of a ValidatingAdmissionPolicy with `request` and `object` bound
/// (the `cel` crate: Kubernetes' typed CEL and cost limits are not modelled).
fn cel_holds(expression: &str, request: &Value, object: &Value) -> Result<bool> {
    let env = std::sync::Arc::new(cel::Env::stdlib());
    let program = env
        .compile(expression)
        .map_err(|e| anyhow::anyhow!("compiling {expression:?}: {e}"))?;
    let mut context = cel::Context::with_env(env);
    context.add_variable("request", request.clone())?;
    context.add_variable("object", object.clone())?;
    match program.execute(&context) {
        Ok(cel::Value::Bool(holds)) => Ok(holds),
        Ok(other) => bail!("{expression:?} gave {other:?}, not a bool"),
        Err(e) => bail!("evaluating {expression:?}: {e}"),
    }
}

/// What `policy` says of a pod create: `None` when its match conditions do not select the
/// request, else the messages of the validations that fail (empty: admitted). An expression
/// that cannot be evaluated denies, as `failurePolicy: Fail` does.
fn admission(policy: &Value, request: &Value, pod: &Value) -> Result<Option<Vec<String>>> {
    for condition in policy["spec"]["matchConditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expression = condition["expression"].as_str().context("matchCondition")?;
        if !cel_holds(expression, request, pod)? {
            return Ok(None);
        }
    }
    let mut denied = Vec::new();
    for validation in policy["spec"]["validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expression = validation["expression"].as_str().context("validation")?;
        match cel_holds(expression, request, pod) {
            Ok(true) => {}
            Ok(false) => denied.push(validation["message"].as_str().unwrap_or(expression).into()),
            Err(e) => denied.push(format!("error: {e:#}")),
        }
    }
    Ok(Some(denied))
}

#[test]
fn the_admission_policy_lets_the_agent_create_only_the_holder_pods_it_builds() -> Result<()> {
    use cairn_agent::runtime::{holder_pod, mount_holder};

    let rendered = Rendered::of(&json!({}))?;
    let policy = rendered.one("ValidatingAdmissionPolicy", "cairn-agent-holder-pods")?;
    let binding = rendered.one(
        "ValidatingAdmissionPolicyBinding",
        "cairn-agent-holder-pods",
    )?;
    ensure!(binding["spec"]["policyName"] == "cairn-agent-holder-pods");
    ensure!(binding["spec"]["validationActions"] == json!(["Deny"]));
    ensure!(policy["spec"]["failurePolicy"] == "Fail");
    ensure!(
        policy["spec"]["matchConstraints"]["resourceRules"]
            == json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}])
    );

    // The holder pods this chart's agent builds: its image and binary, as the DaemonSet runs it.
    let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
    let agent = container(daemonset, "agent")?;
    let config = holder_pod::HolderConfig {
        node: "node-a".into(),
        kubelet_dir: "/var/lib/kubelet".into(),
        image: agent["image"].as_str().context("agent image")?.into(),
        agent_binary: strs(&agent["command"])
            .first()
            .cloned()
            .context("agent command")?,
    };
    let claim: k8s_openapi::api::core::v1::PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "pvc-repo1-abcdef", "namespace": "shop", "uid": "c1a1"}
    }))?;
    let repository_holder = serde_json::to_value(holder_pod::pod(
        &config,
        &mount_holder::repository_holder("node-a", "cairn-repo-holder-0a1b2c3d4e", &claim),
    ))?;
    // Snapshot data movement's holder (runtime/volume_move.rs): the claim's labels and the
    // action's id, read-only.
    let move_holder = serde_json::to_value(holder_pod::pod(
        &config,
        &holder_pod::Holder {
            namespace: "shop".into(),
            pod: "snap-copy-1".into(),
            claim: "snap-copy-1".into(),
            labels: [("cairn.io/action-id".to_string(), "a-1".to_string())].into(),
            owner_references: Vec::new(),
            read_only: true,
            adopt_label: "cairn.io/action-id".into(),
        },
    ))?;
    let agent_request = |node: &str| {
        json!({
            "operation": "CREATE",
            "userInfo": {
                "username": format!("system:serviceaccount:{NAMESPACE}:cairn-agent"),
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{NAMESPACE}"), "system:authenticated"],
                "extra": {"authentication.kubernetes.io/node-name": [node]}
            }
        })
    };
    let on_node_a = agent_request("node-a");
    for pod in [&repository_holder, &move_holder] {
        ensure!(
            admission(policy, &on_node_a, pod)? == Some(Vec::new()),
            "a holder pod the agent builds is refused: {:?}\n{pod:#}",
            admission(policy, &on_node_a, pod)?
        );
    }
    // A token without the node claim (older clusters, unbound tokens) is not tied to a node.
    let mut unbound = on_node_a.clone();
    unbound["userInfo"]
        .as_object_mut()
        .context("userInfo")?
        .remove("extra");
    ensure!(admission(policy, &unbound, &repository_holder)? == Some(Vec::new()));

    // What a stolen agent token might try, each refused naming why.
    let changed = |change: &dyn Fn(&mut Value)| {
        let mut pod = repository_holder.clone();
        change(&mut pod);
        pod
    };
    let attacks: Vec<(&str, Value, &str)> = vec![
        (
            "the node's root filesystem",
            changed(&|p| {
                p["spec"]["volumes"]
                    .as_array_mut()
                    .into_iter()
                    .for_each(|v| v.push(json!({"name": "root", "hostPath": {"path": "/"}})));
                p["spec"]["containers"][0]["volumeMounts"]
                    .as_array_mut()
                    .into_iter()
                    .for_each(|m| m.push(json!({"name": "root", "mountPath": "/host"})));
            }),
            "only PersistentVolumeClaims",
        ),
        (
            "another image with a shell",
            changed(&|p| {
                p["spec"]["containers"][0]["image"] = json!("docker.io/library/busybox:1.36");
                p["spec"]["containers"][0]["command"] = json!(["sh", "-c", "cat /data/*"]);
            }),
            "hold-volume and nothing else",
        ),
        (
            "the agent image running something else",
            changed(&|p| {
                p["spec"]["containers"][0]["args"] = json!(["--control-plane=https://evil"])
            }),
            "hold-volume and nothing else",
        ),
        (
            "a privileged container",
            changed(&|p| p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true)),
            "not privileged",
        ),
        (
            "an added capability",
            changed(&|p| {
                p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
                    json!(["SYS_ADMIN"]);
            }),
            "adds no capability",
        ),
        (
            "root",
            changed(&|p| p["spec"]["securityContext"]["runAsUser"] = json!(0)),
            "non-root",
        ),
        (
            "the host network",
            changed(&|p| p["spec"]["hostNetwork"] = json!(true)),
            "no host namespace",
        ),
        (
            "a second container",
            changed(&|p| {
                let copy = p["spec"]["containers"][0].clone();
                p["spec"]["containers"]
                    .as_array_mut()
                    .into_iter()
                    .for_each(|c| c.push(copy.clone()));
            }),
            "one container",
        ),
        (
            "a ServiceAccount token",
            changed(&|p| {
                p["spec"].as_object_mut().into_iter().for_each(|s| {
                    s.remove("automountServiceAccountToken");
                });
            }),
            "no ServiceAccount token",
        ),
        (
            "another node",
            changed(&|p| p["spec"]["nodeSelector"]["kubernetes.io/hostname"] = json!("node-b")),
            "onto the agent's own node",
        ),
        (
            "a node named directly",
            changed(&|p| p["spec"]["nodeName"] = json!("node-b")),
            "onto the agent's own node",
        ),
        (
            "a pod without the holder labels",
            changed(&|p| {
                p["metadata"].as_object_mut().into_iter().for_each(|m| {
                    m.remove("labels");
                });
            }),
            "only holder pods",
        ),
    ];
    for (what, pod, expected) in &attacks {
        let denied = admission(policy, &on_node_a, pod)?
            .with_context(|| format!("{what}: the policy does not select the agent's request"))?;
        ensure!(
            denied.iter().any(|m| m.contains(expected)),
            "{what}: expected a denial saying {expected:?}, got {denied:?}"
        );
        ensure!(
            denied.iter().all(|m| !m.starts_with("error:")),
            "{what}: an expression failed to evaluate: {denied:?}"
        );
    }
    // Other users' pods are not this policy's business.
    let someone_else = json!({"operation": "CREATE", "userInfo": {"username": "system:serviceaccount:shop:default"}});
    ensure!(admission(policy, &someone_else, &attacks[0].1)?.is_none());

    // Off with its value or without RBAC.
    for values in [
        json!({"agent": {"holderPodAdmissionPolicy": false}}),
        json!({"rbac": {"create": false}}),
    ] {
        let rendered = Rendered::of(&values)?;
        ensure!(
            rendered.of_kind("ValidatingAdmissionPolicy").is_empty()
                && rendered
                    .of_kind("ValidatingAdmissionPolicyBinding")
                    .is_empty(),
            "{values}"
        );
    }
    Ok(())
}

#[test]
fn services_select_the_control_plane_pods_and_its_ports() -> Result<()> {
    let rendered = Rendered::of(&json!({"metrics": {"serviceMonitor": {"enabled": true}}}))?;
    let deployment = rendered.one("Deployment", "cairn-control-plane")?;
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .context("pod labels")?;
    let port_names: BTreeSet<String> = container(deployment, "control-plane")?["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    for service in rendered.of_kind("Service") {
        for (key, value) in service["spec"]["selector"]
            .as_object()
            .context("selector")?
        {
            ensure!(
                pod_labels.get(key) == Some(value),
                "Service {} selects {key}={value}, the pods do not carry it",
                service["metadata"]["name"]
            );
        }
        for port in service["spec"]["ports"].as_array().context("ports")? {
            let target = port["targetPort"].as_str().unwrap_or_default();
            ensure!(
                port_names.contains(target),
                "targetPort {target} is no container port"
            );
        }
    }
    let metrics = rendered.one("Service", "cairn-control-plane-metrics")?;
    ensure!(metrics["spec"]["publishNotReadyAddresses"] == true);
    let monitor = rendered.one("ServiceMonitor", "cairn-control-plane")?;
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("matchLabels")?
    {
        ensure!(
            metrics["metadata"]["labels"][key] == *value,
            "ServiceMonitor selects {key}={value}, the metrics Service lacks it"
        );
    }
    let agent_service = rendered.one("Service", "cairn-control-plane")?;
    ensure!(
        agent_service["metadata"]["labels"]["app.kubernetes.io/role"].is_null(),
        "the ServiceMonitor would also scrape the leader-only Service"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The Helm-generated TLS material with the real binaries.

/// The Secrets' data of a render, decoded by the Python standard library (no base64 crate here).
fn secret_files(rendered: &Rendered, dir: &Path) -> Result<()> {
    for secret in rendered.of_kind("Secret") {
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        let target = dir.join(name);
        std::fs::create_dir_all(&target)?;
        for (key, value) in secret["data"].as_object().context("secret data")? {
            let encoded = value.as_str().context("secret value")?;
            let output = run(Command::new(python()?).args([
                "-c",
                "import base64,sys; sys.stdout.buffer.write(base64.b64decode(sys.argv[1]))",
                encoded,
            ]))?;
            std::fs::write(target.join(key), &output.stdout)?;
        }
    }
    Ok(())
}

#[test]
fn init_container_command_issues_a_node_certificate_from_the_helm_generated_ca() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    let dir = tempfile::tempdir()?;
    secret_files(&rendered, dir.path())?;
    let ca_dir = dir.path().join("cairn-agent-ca");
    let issuer = container(
        rendered.one("DaemonSet", "cairn-agent")?,
        "issue-certificate",
    )?;
    // The init container's own arguments, with the paths of this test and NODE_NAME expanded.
    let out = dir.path().join("agent-tls");
    let args: Vec<String> = strs(&issuer["args"])
        .into_iter()
        .map(|a| {
            a.replace("/etc/cairn/agent-ca", &ca_dir.display().to_string())
                .replace("/etc/cairn/agent-tls", &out.display().to_string())
                .replace("$(NODE_NAME)", "worker-7")
        })
        .collect();
    let printed = stdout(&run(
        Command::new(binary("cairn-control-plane")?).args(&args)
    )?);
    ensure!(printed.contains("agent.pem"), "{printed}");
    let cert = std::fs::read_to_string(out.join("agent.pem"))?;
    ensure!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    ensure!(std::fs::read_to_string(out.join("agent-key.pem"))?.contains("PRIVATE KEY"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The chart installed into localkube, its pods running.

/// A child process stopped with SIGTERM (then SIGKILL) when dropped.
struct Process {
    child: Child,
    name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Localkube {
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    node: String,
    kubectl: PathBuf,
    _process: Process,
}

impl Localkube {
    fn start(data_dir: PathBuf, node: &str) -> Result<Localkube> {
        std::fs::create_dir_all(&data_dir)?;
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary("localkube")?)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0", "--node-name", node])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting localkube")?;
        let mut process = Process {
            child,
            name: "localkube",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let kubeconfig = loop {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(path) = output
                .lines()
                .find_map(|line| line.strip_prefix("kubeconfig: "))
            {
                break PathBuf::from(path.trim());
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("localkube exited ({status}) before serving:\n{output}");
            }
            ensure!(
                Instant::now() < deadline,
                "localkube did not start within 60 s:\n{output}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Ok(Localkube {
            kubeconfig,
            data_dir,
            node: node.to_string(),
            kubectl: tool("kubectl")?,
            _process: process,
        })
    }

    fn kubectl(&self, args: &[&str]) -> Result<Output> {
        run(Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args))
    }

    fn get(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_slice(&self.kubectl(&all)?.stdout).context("parsing kubectl output")
    }

    /// Polls `check` every 300 ms until it returns Some, or fails after `limit` with `what`.
    fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        let mut last_error = None;
        loop {
            match check() {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(err) => last_error = Some(format!("{err:#}")),
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {limit:?} waiting for {what}{}\n{}",
                    last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Pod statuses and logs of the test namespace, for failure messages.
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        if let Ok(pods) = self.get(&["get", "pods", "-n", NAMESPACE]) {
            for pod in pods["items"].as_array().into_iter().flatten() {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                out.push_str(&format!("--- pod {name} status: {}\n", pod["status"]));
                for (c, _) in containers(&json!({"spec": {"template": pod}})) {
                    let container = c["name"].as_str().unwrap_or_default();
                    if let Ok(logs) =
                        self.kubectl(&["logs", "-n", NAMESPACE, name, "-c", container])
                    {
                        out.push_str(&format!(
                            "--- logs of {name}/{container}:\n{}\n",
                            stdout(&logs)
                        ));
                    }
                }
            }
        }
        out
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET http://127.0.0.1:<port><path>` (HTTP/1.0, no client crate needed for a text endpoint).
fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// A Pod made from a workload's pod template, as its controller would (localkube stores
/// Deployments and DaemonSets but runs no controller for them). localkube runs containers as
/// host processes, so the image's `/usr/local/bin/<binary>` becomes the workspace build, and
/// it writes no ServiceAccount tokens, so the containers get its kubeconfig instead.
fn pod_from_template(workload: &Value, name: &str, node: &str, kube: &Localkube) -> Result<Value> {
    let mut template = workload["spec"]["template"].clone();
    let spec = template["spec"]
        .as_object_mut()
        .context("pod template spec")?;
    spec.insert("nodeName".into(), json!(node));
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let image_path = c["command"][0].as_str().unwrap_or_default().to_string();
            let binary_name = image_path
                .strip_prefix("/usr/local/bin/")
                .with_context(|| format!("unexpected command {image_path}"))?;
            c["command"][0] = json!(pod_binary(binary_name, kube)?.display().to_string());
            c["env"].as_array_mut().context("container env")?.push(
                json!({"name": "KUBECONFIG", "value": kube.kubeconfig.display().to_string()}),
            );
        }
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": template["metadata"]["labels"].clone(),
        },
        "spec": template["spec"].clone(),
    }))
}

/// The pods get an emptyDir at /tmp, which hides whatever the host has there (as a container's
/// would): a workspace built under /tmp (`CARGO_TARGET_DIR=/tmp/...`) has its binaries linked
/// into the cluster's data dir, which [`outside_tmp`] keeps elsewhere.
fn pod_binary(name: &str, kube: &Localkube) -> Result<PathBuf> {
    let built = binary(name)?;
    if !built.starts_with("/tmp") {
        return Ok(built);
    }
    let dir = kube.data_dir.join("bin");
    std::fs::create_dir_all(&dir)?;
    // The agent also runs `datasafed` from beside itself.
    for sibling in [name, "datasafed"] {
        let (from, to) = (binary(sibling)?, dir.join(sibling));
        if !to.exists() && std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(dir.join(name))
}

/// A temporary directory the pods can see: not under /tmp, where they get an emptyDir.
fn outside_tmp() -> Result<tempfile::TempDir> {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = if target_tmp.starts_with("/tmp") {
        Path::new("/var/tmp")
    } else {
        target_tmp
    };
    Ok(tempfile::tempdir_in(base)?)
}

fn secret_data(kube: &Localkube, name: &str) -> Result<Value> {
    Ok(kube.get(&["get", "secret", "-n", NAMESPACE, name])?["data"].clone())
}

#[test]
fn installed_chart_runs_in_localkube_and_its_agent_connects_over_mutual_tls() -> Result<()> {
    let tmp = outside_tmp()?;
    let kube = Localkube::start(tmp.path().join("kube"), "chart-node")?;
    let (agent_port, health_port) = (free_port()?, free_port()?);
    let agent_health_port = free_port()?;
    let values = json!({
        "controlPlane": {
            // One replica: localkube pods share the host network, so two would share ports.
            "replicas": 1,
            "listenAddress": "127.0.0.1",
            "ports": {"agent": agent_port, "health": health_port},
            "logFormat": "text",
            // localkube implements neither fsGroup nor supplemental groups, so a non-root
            // control plane could not read its Secret volume here.
            "podSecurityContext": {"runAsNonRoot": false, "runAsUser": 0, "runAsGroup": 0}
        },
        "agent": {
            // No Service routing in localkube: dial the port, check the Service's DNS name.
            "controlPlaneAddress": format!("https://127.0.0.1:{agent_port}"),
            "serverName": format!("cairn-control-plane.{NAMESPACE}.svc"),
            "listenAddress": "127.0.0.1",
            "healthPort": agent_health_port,
            "hostDir": tmp.path().join("host/cairn-agent").display().to_string(),
            "kubeletDir": kube.data_dir.join("kubelet").display().to_string(),
            // Pods share the host network here: a free port, not the default.
            "storagePort": free_port()?,
            "logFormat": "text"
        }
    });
    let file = values_file(tmp.path(), &values)?;
    let (chart, file) = (
        chart_dir().display().to_string(),
        file.display().to_string(),
    );
    let kubeconfig = kube.kubeconfig.display().to_string();
    let release_args = |command: &'static str| {
        let mut args = vec![
            command,
            chart.as_str(),
            "--name",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--kubeconfig",
            kubeconfig.as_str(),
            "-f",
            file.as_str(),
        ];
        if command == "install" {
            args.push("--create-namespace");
        }
        args
    };
    let installed = stdout(&helm_py(&release_args("install"))?);
    ensure!(installed.contains("deployed"), "{installed}");

    // The CRDs came with the release.
    let crds = kube.get(&["get", "crd"])?;
    ensure!(
        crds["items"].as_array().is_some_and(|items| items
            .iter()
            .any(|c| c["metadata"]["name"] == "backups.dataprotection.kubeblocks.io")),
        "the chart's CRDs were not installed"
    );

    let deployment = kube.get(&["get", "deployment", "-n", NAMESPACE, "cairn-control-plane"])?;
    let daemonset = kube.get(&["get", "daemonset", "-n", NAMESPACE, "cairn-agent"])?;
    let pods = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            pod_from_template(&deployment, "cairn-control-plane-0", &kube.node, &kube)?,
            pod_from_template(&daemonset, "cairn-agent-0", &kube.node, &kube)?,
        ]
    });
    let pods_file = tmp.path().join("pods.json");
    std::fs::write(&pods_file, serde_json::to_vec(&pods)?)?;
    // localkube serves no OpenAPI schemas for built-in kinds, so kubectl cannot validate
    // client-side; the pod templates passed strict validation in the tests above.
    kube.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        &pods_file.display().to_string(),
    ])?;

    // Ready means /readyz answered 200: the replica is healthy (leading or following).
    kube.wait_for(
        "the control plane to be Ready",
        Duration::from_secs(90),
        || {
            let pod = kube.get(&["get", "pod", "-n", NAMESPACE, "cairn-control-plane-0"])?;
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Ok(ready.then_some(()))
        },
    )?;
    // The only replica takes the Lease under its pod name.
    kube.wait_for(
        "the control plane to hold the Lease under its pod name (POD_NAME)",
        Duration::from_secs(30),
        || {
            let lease = kube.get(&["get", "lease", "-n", NAMESPACE, "cairn-control-plane"]);
            Ok(lease
                .ok()
                .filter(|l| l["spec"]["holderIdentity"] == "cairn-control-plane-0")
                .map(|_| ()))
        },
    )?;

    // The agent's certificate was issued by its init container for spec.nodeName, and the
    // control plane accepted it.
    kube.wait_for(
        "the agent to connect to the control plane",
        Duration::from_secs(90),
        || {
            let metrics = http_get(health_port, "/metrics")?;
            Ok(metrics
                .lines()
                .any(|l| l.trim() == "cairn_connected_agents 1")
                .then_some(()))
        },
    )?;
    // The agent's own endpoints: connected, so /readyz answers and its pod is Ready.
    let agent_ready = http_get(agent_health_port, "/readyz")?;
    ensure!(
        agent_ready.contains("connected"),
        "agent /readyz: {agent_ready}"
    );
    kube.wait_for(
        "the agent to be Ready (/readyz)",
        Duration::from_secs(90),
        || {
            let pod = kube.get(&["get", "pod", "-n", NAMESPACE, "cairn-agent-0"])?;
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Ok(ready.then_some(()))
        },
    )?;
    let agent_metrics = http_get(agent_health_port, "/metrics")?;
    ensure!(
        agent_metrics.contains("cairn_agent_session_connected 1"),
        "agent /metrics: {agent_metrics}"
    );
    let identity = tmp
        .path()
        .join("host/cairn-agent/state/storage-tls/storage.pem");
    ensure!(
        identity.is_file(),
        "the agent did not keep its storage endpoint's certificate in its state directory ({})",
        identity.display()
    );

    // An upgrade keeps the TLS material (lookup), which an offline render would replace.
    let before = secret_data(&kube, "cairn-agent-ca")?;
    let before_server = secret_data(&kube, "cairn-control-plane-tls")?;
    let upgraded = stdout(&helm_py(&release_args("upgrade"))?);
    ensure!(upgraded.contains("revision 2"), "{upgraded}");
    ensure!(
        secret_data(&kube, "cairn-agent-ca")? == before,
        "helm upgrade replaced the agent CA: every agent certificate is now untrusted"
    );
    ensure!(secret_data(&kube, "cairn-control-plane-tls")? == before_server);
    let offline = Rendered::of(&values)?;
    ensure!(
        offline.one("Secret", "cairn-agent-ca")?["data"] != before,
        "an offline render reproduced the installed CA, so the comparison above proves nothing"
    );
    Ok(())
}

#[test]
fn bundled_storage_providers_and_the_backup_repo_value_render_objects_cairnctl_accepts()
-> Result<()> {
    let values = json!({
        "storageProviders": {
            "s3": {"enabled": true},
            "minio": {"enabled": true},
            "azureblob": {"enabled": true},
            "gcs-s3comp": {"enabled": true}
        },
        "backupRepo": {
            "create": true,
            "name": "main",
            "pathPrefix": "prod",
            "config": {"bucket": "backups", "region": "eu-west-1"},
            "credential": {"data": {"accessKeyId": "AK", "secretAccessKey": "SK"}}
        }
    });
    let rendered = Rendered::of(&values)?;
    assert_valid(&rendered, &["StorageProvider", "BackupRepo"])?;
    for (name, field) in [
        ("s3", "accessKeyId"),
        ("minio", "accessKeyId"),
        ("azureblob", "accountKey"),
        ("gcs-s3comp", "accessKeyId"),
    ] {
        let provider = rendered.one("StorageProvider", name)?;
        let template = provider["spec"]["datasafedConfigTemplate"]
            .as_str()
            .context("datasafedConfigTemplate")?;
        ensure!(
            template.contains(&format!(r#"{{{{ index .Parameters "{field}" }}}}"#)),
            "the provider's template reached the cluster rendered by Helm: {template}"
        );
    }
    // `azureblob` and `gcs-s3comp` carry KubeBlocks' own datasafed templates, byte for byte.
    if let Some(dir) = std::env::var_os("CAIRN_KUBEBLOCKS_FIXTURES").filter(|d| !d.is_empty()) {
        let dir = root().join(dir);
        for (name, file) in [
            ("azureblob", "kb-0.9_helm_azureblob_azureblob.yaml"),
            ("gcs-s3comp", "kb-0.9_helm_gcs-s3comp_gcs-s3comp.yaml"),
        ] {
            let theirs = spec_literal_block(
                &std::fs::read_to_string(dir.join(file))?,
                "datasafedConfigTemplate",
            )
            .with_context(|| format!("{file} has no datasafedConfigTemplate"))?;
            let ours = rendered.one("StorageProvider", name)?["spec"]["datasafedConfigTemplate"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ensure!(
                ours == theirs,
                "{name}: the chart's datasafed template differs from KubeBlocks' {file}:\n{ours}\n---\n{theirs}"
            );
        }
    }
    let repo = rendered.one("BackupRepo", "main")?;
    ensure!(
        repo["metadata"]["annotations"]["dataprotection.kubeblocks.io/is-default-repo"] == "true"
    );
    ensure!(repo["spec"]["storageProviderRef"] == "s3");
    ensure!(repo["spec"]["config"] == json!({"bucket": "backups", "region": "eu-west-1"}));
    ensure!(
        repo["spec"]["credential"]
            == json!({"name": "cairn-backuprepo-credential", "namespace": NAMESPACE})
    );
    let secret = rendered.one("Secret", "cairn-backuprepo-credential")?;
    ensure!(secret["stringData"] == json!({"accessKeyId": "AK", "secretAccessKey": "SK"}));

    // Cairn's own validation: the API types, the CRD schema rules and the semantic checks.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered.yaml)?;
    let report = stdout(&run(Command::new(binary("cairnctl")?)
        .args(["validate", "-f"])
        .arg(&file))?);
    ensure!(
        report.contains("5 objects, 0 errors, 0 warnings"),
        "{report}"
    );

    // An existing Secret instead: the chart creates none and points the repository at it.
    let rendered = Rendered::of(&json!({
        "backupRepo": {"create": true, "credential": {"existingSecret": "s3-keys"}}
    }))?;
    ensure!(
        rendered
            .of_kind("Secret")
            .iter()
            .all(|s| s["metadata"]["name"] != "cairn-backuprepo-credential")
    );
    ensure!(rendered.one("BackupRepo", "backuprepo")?["spec"]["credential"]["name"] == "s3-keys");
    Ok(())
}

/// The text of the `key: |` literal block under a manifest's `spec:` (two-space keys, block
/// lines indented by four), as YAML reads it (no YAML parser in this crate).
fn spec_literal_block(manifest: &str, key: &str) -> Option<String> {
    let mut lines = manifest.lines().skip_while(|l| *l != format!("  {key}: |"));
    lines.next()?;
    let mut text = String::new();
    for line in lines {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        text.push_str(line.strip_prefix("    ").unwrap_or(""));
        text.push('\n');
    }
    // Clip chomping: one final newline.
    Some(format!("{}\n", text.trim_end_matches('\n')))
}

/// NOTES.txt as Helm renders it for `values`.
fn notes(values: &Value) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let file = values_file(dir.path(), values)?;
    Ok(stdout(&helm_py(&[
        "template",
        &chart_dir().display().to_string(),
        "--name",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "-f",
        &file.display().to_string(),
        "--output",
        "notes",
    ])?))
}

#[test]
fn notes_name_objects_the_chart_creates_and_commands_that_exist() -> Result<()> {
    for values in [json!({}), non_default_values()] {
        let rendered = Rendered::of(&values)?;
        let text = notes(&values)?;
        let commands: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("kubectl ") || l.starts_with("cairnctl "))
            .collect();
        ensure!(
            commands.len() >= 6,
            "NOTES.txt shows too few commands:\n{text}"
        );
        for command in &commands {
            let words: Vec<&str> = command.split_whitespace().collect();
            // kubectl -n NS ...: the release namespace, and every kind/name the chart renders.
            if words[0] == "kubectl" {
                ensure!(
                    words[1] == "-n" && words[2] == NAMESPACE,
                    "{command}: not in the release namespace"
                );
                for word in &words {
                    let Some((kind, name)) = word.split_once('/') else {
                        continue;
                    };
                    let kind = match kind {
                        "deployment" => "Deployment",
                        "daemonset" => "DaemonSet",
                        "svc" => "Service",
                        _ => continue,
                    };
                    rendered
                        .one(kind, name)
                        .with_context(|| format!("NOTES.txt: {command}"))?;
                }
                if let Some(at) = words.iter().position(|w| *w == "lease") {
                    let lease = words[at + 1];
                    let role = rendered
                        .of_kind("Role")
                        .into_iter()
                        .find(|r| r["rules"][0]["resources"] == json!(["leases"]))
                        .context("no Lease Role")?;
                    ensure!(
                        strs(&role["rules"][0]["resourceNames"]).contains(&lease.to_string()),
                        "NOTES.txt names Lease {lease}, the control plane uses {}",
                        role["rules"][0]["resourceNames"]
                    );
                }
            }
            // cairnctl subcommands that exist (their --help succeeds).
            if words[0] == "cairnctl" {
                let sub: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .take_while(|w| !w.starts_with('-') && *w != "|")
                    .collect();
                run(Command::new(binary("cairnctl")?).args(&sub).arg("--help"))
                    .with_context(|| format!("NOTES.txt: {command}"))?;
            }
        }
        let readme = std::fs::read_to_string(chart_dir().join("README.md"))?;
        let upgrade = commands
            .iter()
            .find(|c| c.starts_with("cairnctl crds |"))
            .context("NOTES.txt shows no CRD upgrade step")?;
        ensure!(
            readme.lines().any(|l| l.trim() == *upgrade),
            "NOTES.txt's upgrade step {upgrade:?} is not the README's"
        );
    }
    Ok(())
}

/// The README's CRD upgrade step (`helm upgrade` leaves `crds/` alone), run exactly as written
/// against a release whose CRDs are those of an older version: a changed CRD and a missing one.
#[test]
fn readme_crd_upgrade_step_brings_an_installed_release_to_the_generated_crds() -> Result<()> {
    let readme = std::fs::read_to_string(chart_dir().join("README.md"))?;
    let step = readme
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("cairnctl crds |"))
        .context("the chart README has no `cairnctl crds | ...` upgrade step")?
        .to_string();
    let tmp = outside_tmp()?;
    let kube = Localkube::start(tmp.path().join("kube"), "crd-node")?;
    let kubeconfig = kube.kubeconfig.display().to_string();
    let installed = stdout(&helm_py(&[
        "install",
        &chart_dir().display().to_string(),
        "--name",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--kubeconfig",
        &kubeconfig,
    ])?);
    ensure!(installed.contains("deployed"), "{installed}");
    let description = "/spec/versions/0/schema/openAPIV3Schema/description";
    let current = |name: &str| -> Result<Value> { kube.get(&["get", "crd", name]) };
    let wanted = current("backups.dataprotection.kubeblocks.io")?["spec"].clone();
    // What an older chart version could have installed.
    kube.kubectl(&[
        "patch",
        "crd",
        "backups.dataprotection.kubeblocks.io",
        "--type=json",
        "-p",
        &json!([{"op": "replace", "path": description, "value": "an older release"}]).to_string(),
    ])?;
    kube.kubectl(&["delete", "crd", "restorejobs.dataprotection.kubeblocks.io"])?;
    ensure!(current("backups.dataprotection.kubeblocks.io")?["spec"] != wanted);

    let path = std::env::join_paths(
        [
            bin_dir()?,
            kube.kubectl.parent().context("kubectl dir")?.to_path_buf(),
        ]
        .into_iter()
        .chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )?;
    run(Command::new("bash")
        .args(["-c", &format!("set -e -o pipefail; {step}")])
        .env("PATH", path)
        .env("KUBECONFIG", &kube.kubeconfig)
        .env("HOME", tmp.path()))?;
    ensure!(
        current("backups.dataprotection.kubeblocks.io")?["spec"] == wanted,
        "`{step}` did not restore the changed CRD"
    );
    current("restorejobs.dataprotection.kubeblocks.io")
        .with_context(|| format!("`{step}` did not create the missing CRD"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RBAC against what the code calls.

/// What the chart lets a ServiceAccount do: `(resource, verb)` pairs, the resource written as
/// localkube counts requests (`group/resource[/subresource]`, no group for the core group).
fn grants(rendered: &Rendered, service_account: &str) -> Result<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    for binding in rendered
        .of_kind("ClusterRoleBinding")
        .into_iter()
        .chain(rendered.of_kind("RoleBinding"))
    {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == service_account);
        if !bound {
            continue;
        }
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role = rendered.one(role_kind, role_name)?;
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in strs(&rule["apiGroups"]) {
                for resource in strs(&rule["resources"]) {
                    for verb in strs(&rule["verbs"]) {
                        let resource = if group.is_empty() {
                            resource.clone()
                        } else {
                            format!("{group}/{resource}")
                        };
                        out.insert((resource, verb));
                    }
                }
            }
        }
    }
    ensure!(
        !out.is_empty(),
        "the chart grants {service_account} nothing"
    );
    Ok(out)
}

/// What a client asked of localkube: `(resource, verb)` of every request whose User-Agent
/// starts with `agent`, from localkube's request counts.
fn calls(requests: &Value, agent: &str) -> BTreeSet<(String, String)> {
    requests["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["userAgent"]
                .as_str()
                .is_some_and(|u| u.starts_with(agent))
        })
        .map(|r| {
            (
                r["resource"].as_str().unwrap_or_default().to_string(),
                r["verb"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Runs a backup (a Job action), a restore, a claim populated from a Restore, a Delete-policy
/// deletion and snapshot backups
/// (one restored) deleted with Delete and Retain in localkube, reads the
/// API requests the control plane and the agent made (by User-Agent) and holds them against the
/// chart's RBAC: everything they called must be granted. The other direction (every grant is
/// called) needs a scenario for every code path (failures read pod logs, credentials read
/// Secrets, schedules create Backups...): the grants this scenario did not call are printed,
/// not enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_everything_the_control_plane_and_agent_call() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    let granted = [
        (
            "cairn-control-plane",
            grants(&rendered, "cairn-control-plane")?,
        ),
        ("cairn-agent", grants(&rendered, "cairn-agent")?),
    ];
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let seen = requests.clone();
    cairn_e2e::run("rbac", async move |stack| {
        const NS: &str = "rbac";
        let workload = cairn_e2e::scenario::workload(stack, NS, "db", 64 << 10).await?;
        let policy =
            cairn_e2e::scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        cairn_e2e::scenario::backup(stack, NS, "b1", &policy.name, &policy.method, "Delete")
            .await?;
        cairn_e2e::dp::backup_completed(&stack.client, NS, "b1", Duration::from_secs(90)).await?;
        cairn_e2e::scenario::restore(stack, NS, "r1", "b1", "restored").await?;
        cairn_e2e::dp::restore_completed(&stack.client, NS, "r1", Duration::from_secs(90)).await?;
        // A claim populated by a Restore that is a data source (the populator patches the
        // claim, its status and the volume, lists and deletes the claim's Jobs).
        cairn_e2e::scenario::data_source_restore(stack, NS, "r2", "b1").await?;
        cairn_e2e::scenario::populated_claim(stack, NS, "populated", NS, "r2").await?;
        cairn_e2e::dp::claim_populated(&stack.client, NS, "populated", Duration::from_secs(120))
            .await?;
        stack
            .kubectl
            .run(&["delete", "backup", "b1", "-n", NS, "--timeout=60s"])
            .await?;
        // A volume snapshot backup (the agent creates the snapshots), deleted with Delete and
        // with Retain (the control plane deletes or orphans them).
        let side = stack.scratch.join("rbac-snap-side");
        std::fs::create_dir_all(&side)?;
        let side = side.display().to_string();
        let vars = [
            ("NS", NS),
            ("APP", "snap"),
            ("SIDE_DIR", side.as_str()),
            ("TIMEOUT", "5m"),
        ];
        for manifest in ["snapshot-workload.yaml", "snapshot-policy.yaml"] {
            let vars: Vec<(&str, &str)> = vars
                .iter()
                .copied()
                .filter(|(k, _)| manifest == "snapshot-policy.yaml" || *k != "TIMEOUT")
                .filter(|(k, _)| manifest == "snapshot-workload.yaml" || *k != "SIDE_DIR")
                .collect();
            stack
                .kubectl
                .apply(&cairn_e2e::manifests::render(manifest, &vars)?)
                .await?;
        }
        cairn_e2e::dp::pod_ready(&stack.client, NS, "snap-0", Duration::from_secs(60)).await?;
        for (name, policy) in [("s1", "Delete"), ("s2", "Retain")] {
            cairn_e2e::scenario::backup(stack, NS, name, "snap-snapshots", "snap", policy).await?;
            cairn_e2e::dp::backup_completed(&stack.client, NS, name, Duration::from_secs(90))
                .await?;
            if name == "s1" {
                // A restore of it (the control plane lists the snapshots).
                stack
                    .kubectl
                    .create(&format!(
                        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Restore\nmetadata: {{name: rs1, namespace: {NS}}}\n\
                         spec:\n  backup: {{name: s1, namespace: {NS}}}\n  prepareDataConfig:\n    volumeClaims:\n\
                         \x20     - metadata: {{name: from-s1}}\n        volumeSource: data\n\
                         \x20       volumeClaimSpec: {{storageClassName: local-csi, accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
                    ))
                    .await?;
                cairn_e2e::dp::restore_completed(&stack.client, NS, "rs1", Duration::from_secs(90))
                    .await?;
            }
            stack
                .kubectl
                .run(&["delete", "backup", name, "-n", NS, "--timeout=60s"])
                .await?;
        }
        let text = stack
            .client
            .request_text(
                http::Request::get("/debug/requests")
                    .body(Vec::new())
                    .context("building the request")?,
            )
            .await?;
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::from_str(&text)?;
        Ok(())
    })
    .await?;
    let requests = requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut problems = Vec::new();
    for (who, granted) in &granted {
        let called = calls(&requests, &format!("{who}/"));
        ensure!(
            !called.is_empty(),
            "no request carried the User-Agent {who}/...: {requests}"
        );
        for call in called.difference(granted) {
            problems.push(format!(
                "{who} calls {} {} but the chart does not grant it",
                call.1, call.0
            ));
        }
        let unused: Vec<String> = granted
            .difference(&called)
            .map(|(resource, verb)| format!("{verb} {resource}"))
            .collect();
        eprintln!(
            "granted to {who} but not called by this scenario: {}",
            unused.join(", ")
        );
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The images: built without a registry by tools/build-images.sh, run in rootful podman.

/// Rootful podman confined to one directory: its storage, run state, events and temporary files
/// live there, its `containers.conf` (through `CONTAINERS_CONF`) selects runc with the cgroupfs
/// manager (crun refuses hybrid cgroup layouts such as this machine's) and default ulimits no
/// higher than the machine allows. It never pulls: every `run` says `--pull=never`.
struct Podman {
    podman: PathBuf,
    dir: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Result<Podman> {
        let podman = tool("podman")?;
        for sub in ["storage", "run", "tmp", "volumes"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let d = dir.display();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\n\
                 tmp_dir = \"{d}/tmp\"\n\
                 volume_path = \"{d}/volumes\"\n"
            ),
        )?;
        Ok(Podman {
            podman,
            dir: dir.to_path_buf(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.podman);
        command
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            // vfs works on any filesystem the test directory may be on (overlay cannot nest).
            .args(["--storage-driver", "vfs"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        run(&mut self.command(args))
    }

    /// `podman run --rm --pull=never ARGS`, whatever its exit status.
    fn output(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["run", "--rm", "--pull=never"];
        all.extend(args);
        let mut command = self.command(&all);
        let shown = format!("{command:?}");
        command
            .output()
            .with_context(|| format!("starting {shown}"))
    }

    fn logs(&self, name: &str) -> String {
        self.command(&["logs", name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|err| format!("(podman logs {name}: {err})"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Stops what a failed test left running; the directory goes with the TempDir.
        let _ = self
            .command(&["rm", "--all", "--force", "--time", "2"])
            .output();
    }
}

/// Runs tools/build-images.sh for this test build's profile (the control plane and agent as
/// built, a static datasafed built next to them) into `out`: `(archive, image name)` per image.
fn build_images(out: &Path) -> Result<BTreeMap<String, (PathBuf, String)>> {
    let bins = bin_dir()?;
    let profile = bins
        .file_name()
        .and_then(|n| n.to_str())
        .context("profile directory name")?
        .to_string();
    let target = bins.parent().context("target directory")?;
    let output = run(Command::new(root().join("tools/build-images.sh"))
        .args(["--profile", &profile, "--prebuilt", "--out"])
        .arg(out)
        .env("CARGO_TARGET_DIR", target))?;
    let mut images = BTreeMap::new();
    for line in stdout(&output).lines() {
        let (archive, name) = line
            .split_once(' ')
            .with_context(|| format!("unexpected output line {line:?}"))?;
        let short = name
            .rsplit('/')
            .next()
            .and_then(|n| n.split(':').next())
            .unwrap_or_default();
        images.insert(
            short.to_string(),
            (PathBuf::from(archive), name.to_string()),
        );
    }
    for wanted in ["cairn-control-plane", "cairn-agent"] {
        ensure!(
            images.contains_key(wanted),
            "tools/build-images.sh built no {wanted}: {images:?}"
        );
    }
    Ok(images)
}

/// Waits until `check` returns Some, polling every 300 ms; `diagnostics` explains a timeout.
fn poll<T>(
    what: &str,
    limit: Duration,
    diagnostics: impl Fn() -> String,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    let mut last_error = String::new();
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last_error = format!(" (last error: {err:#})"),
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {limit:?} waiting for {what}{last_error}\n{}",
                diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn images_built_without_a_registry_run_in_podman_and_the_agent_connects_over_mutual_tls()
-> Result<()> {
    let started = Instant::now();
    // Short paths: conmon's attach socket lives under the run root.
    let dir = tempfile::Builder::new().prefix("cairn-img").tempdir()?;
    let images = build_images(&dir.path().join("images"))?;
    let built = started.elapsed();
    let podman = Podman::new(&dir.path().join("podman"))?;
    let mut names = BTreeMap::new();
    for (short, (archive, name)) in &images {
        let loaded = stdout(&podman.run(&["load", "--input", &archive.display().to_string()])?);
        ensure!(loaded.contains(name.as_str()), "podman load: {loaded}");
        names.insert(short.as_str(), name.as_str());
    }
    let (control, agent) = (names["cairn-control-plane"], names["cairn-agent"]);

    // What each image is: its user, entrypoint and labels, and nothing but the binaries.
    for (image, user, title) in [
        (control, "65532:65532", "cairn-control-plane"),
        (agent, "0:0", "cairn-agent"),
    ] {
        let inspect: Value =
            serde_json::from_slice(&podman.run(&["image", "inspect", image])?.stdout)?;
        let config = &inspect[0]["Config"];
        ensure!(config["User"] == user, "{image} runs as {}", config["User"]);
        ensure!(
            config["Entrypoint"] == json!([format!("/usr/local/bin/{title}")]),
            "{image} entrypoint {}",
            config["Entrypoint"]
        );
        for label in [
            "org.opencontainers.image.title",
            "org.opencontainers.image.source",
            "org.opencontainers.image.licenses",
            "org.opencontainers.image.version",
            "org.opencontainers.image.revision",
        ] {
            ensure!(
                config["Labels"][label].is_string(),
                "{image} lacks the label {label}: {}",
                config["Labels"]
            );
        }
        ensure!(config["Labels"]["org.opencontainers.image.title"] == title);
        let shell = podman.output(&["--entrypoint", "/bin/sh", image, "-c", "true"])?;
        ensure!(
            !shell.status.success(),
            "{image} has a shell; it should hold only its binaries and their libraries"
        );
        // Each binary's --help runs: its libraries are all there.
        let help = podman.output(&[image, "--help"])?;
        ensure!(
            help.status.success() && stdout(&help).contains("Usage:"),
            "{image} --help failed ({}): {}{}",
            help.status,
            stdout(&help),
            String::from_utf8_lossy(&help.stderr)
        );
    }

    // A control plane in a container (non-root, as the image says), with its certificates
    // generated into a directory it owns and localkube's API reached over the host network.
    let kube = Localkube::start(dir.path().join("kube"), "image-node")?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(&kube.kubeconfig, &kubeconfig)?;
    // Readable by the control plane's non-root user (a Secret volume would be, through fsGroup).
    std::fs::set_permissions(
        &kubeconfig,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls)?;
    std::os::unix::fs::chown(&tls, Some(65532), Some(65532))?;
    let (agent_port, health_port) = (free_port()?, free_port()?);
    let mounts = |extra: &[String]| -> Vec<String> {
        let mut all = vec![
            "-v".into(),
            format!("{}:/etc/cairn/tls", tls.display()),
            "-v".into(),
            format!("{}:/etc/cairn/kubeconfig:ro", kubeconfig.display()),
            "-e".into(),
            "KUBECONFIG=/etc/cairn/kubeconfig".into(),
        ];
        all.extend_from_slice(extra);
        all
    };
    let mut args: Vec<String> = ["run", "-d", "--pull=never", "--name", "control-plane"]
        .map(String::from)
        .to_vec();
    args.extend(mounts(&["--network=host".into(), control.into()]));
    args.extend(
        [
            "--tls-generate",
            "--tls-server-name=localhost",
            "--leader-elect=false",
        ]
        .map(String::from),
    );
    args.push(format!("--agent-listen=127.0.0.1:{agent_port}"));
    args.push(format!("--health-listen=127.0.0.1:{health_port}"));
    podman.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    poll(
        "the containerised control plane to be ready",
        Duration::from_secs(60),
        || podman.logs("control-plane"),
        || {
            let response = http_get(health_port, "/readyz")?;
            let status = response.lines().next().unwrap_or_default();
            Ok(status.contains(" 200").then_some(()))
        },
    )?;

    // The agent's certificate, issued by the control-plane image as the chart's init container
    // does, then an agent in its own container dialling the control plane.
    let mut issue: Vec<String> = mounts(&[control.into()]);
    issue.extend(
        [
            "ca",
            "issue-agent",
            "--dir=/etc/cairn/tls",
            "--node=image-node",
            "--out=/etc/cairn/tls/agent",
        ]
        .map(String::from),
    );
    let issued = podman.output(&issue.iter().map(String::as_str).collect::<Vec<_>>())?;
    ensure!(
        issued.status.success(),
        "ca issue-agent in the image failed: {}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let kubelet_pods = kube.data_dir.join("kubelet/pods");
    std::fs::create_dir_all(&kubelet_pods)?;
    let mut args: Vec<String> = ["run", "-d", "--pull=never", "--name", "agent"]
        .map(String::from)
        .to_vec();
    args.extend(mounts(&[
        "--network=host".into(),
        "-v".into(),
        format!("{}:/var/lib/cairn-agent", agent_dir.display()),
        "-v".into(),
        format!("{}:/var/lib/kubelet/pods:ro", kubelet_pods.display()),
        agent.into(),
    ]));
    args.extend(
        [
            "--node-name=image-node",
            "--server-name=localhost",
            "--tls-ca=/etc/cairn/tls/ca.pem",
            "--tls-cert=/etc/cairn/tls/agent.pem",
            "--tls-key=/etc/cairn/tls/agent-key.pem",
            // The host's network: a free port on loopback for the storage endpoint.
            "--storage-listen=127.0.0.1:0",
        ]
        .map(String::from),
    );
    args.push(format!("--control-plane=https://127.0.0.1:{agent_port}"));
    podman.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    poll(
        "the containerised agent to connect to the containerised control plane",
        Duration::from_secs(90),
        || {
            format!(
                "--- control plane:\n{}\n--- agent:\n{}",
                podman.logs("control-plane"),
                podman.logs("agent")
            )
        },
        || {
            Ok(http_get(health_port, "/metrics")?
                .lines()
                .any(|l| l.trim() == "cairn_connected_agents 1")
                .then_some(()))
        },
    )?;

    ensure!(
        agent_dir.join("state/storage-tls/storage.pem").is_file(),
        "the containerised agent did not keep its storage endpoint's certificate in its state directory"
    );

    // What every action Job's init container runs: the agent image's own binary copies its
    // datasafed into the Job's emptyDir, as the unprivileged user, on a read-only root.
    let installed = dir.path().join("installed");
    std::fs::create_dir_all(&installed)?;
    std::os::unix::fs::chown(&installed, Some(65532), Some(65532))?;
    podman.run(&[
        "run",
        "--rm",
        "--pull=never",
        "--user=65532:65532",
        "--read-only",
        "--cap-drop=ALL",
        "-v",
        &format!("{}:/cairn-datasafed", installed.display()),
        agent,
        "install-datasafed",
        "--from",
        "/usr/local/bin/datasafed",
        "/cairn-datasafed",
    ])?;
    ensure!(
        installed.join("datasafed").is_file(),
        "the agent image's install-datasafed did not install datasafed into the emptyDir"
    );

    // datasafed, copied out of the agent image, works in a container whose image holds nothing
    // else at all (no libc): it is static, as action containers of any image need.
    podman.run(&["create", "--name", "agent-files", agent])?;
    let datasafed = dir.path().join("datasafed");
    podman.run(&[
        "cp",
        "agent-files:/usr/local/bin/datasafed",
        &datasafed.display().to_string(),
    ])?;
    let empty_tar = dir.path().join("empty.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&empty_tar)
        .args(["-T", "/dev/null"]))?;
    podman.run(&[
        "import",
        &empty_tar.display().to_string(),
        "localhost/cairn-test-empty:1",
    ])?;
    let (repo, data) = (dir.path().join("repo"), dir.path().join("data"));
    std::fs::create_dir_all(&repo)?;
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("in.txt"), "backed up from an empty container\n")?;
    let datasafed_in = |args: &[&str]| -> Result<Output> {
        let (d, r, i) = (
            format!("{}:/datasafed:ro", datasafed.display()),
            format!("{}:/repo", repo.display()),
            format!("{}:/data:ro", data.display()),
        );
        let mut all = vec![
            "-v",
            &d,
            "-v",
            &r,
            "-v",
            &i,
            "-e",
            "DATASAFED_LOCAL_BACKEND_PATH=/repo",
            "--entrypoint",
            "/datasafed",
            "localhost/cairn-test-empty:1",
        ];
        all.extend(args);
        let output = podman.output(&all)?;
        ensure!(
            output.status.success(),
            "datasafed {args:?} in an empty container failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(output)
    };
    datasafed_in(&["push", "/data/in.txt", "backup/in.txt"])?;
    let pulled = stdout(&datasafed_in(&["pull", "backup/in.txt", "-"])?);
    ensure!(
        pulled == "backed up from an empty container\n",
        "datasafed pulled {pulled:?}"
    );
    eprintln!(
        "images built in {built:?}; whole image test {:?}",
        started.elapsed()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Observability: the agent's probes, the PodMonitor, the PrometheusRule and the dashboard.

/// Values that turn on every monitoring object.
fn monitoring_values() -> Value {
    json!({"metrics": {
        "serviceMonitor": {"enabled": true},
        "podMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
        "prometheusRule": {
            "enabled": true,
            "labels": {"release": "prometheus"},
            "noSuccessfulBackup": {"intervals": 2, "marginMinutes": 90},
            "additionalAlertLabels": {"team": "dba"}
        },
        "grafanaDashboard": {"enabled": true}
    }})
}

/// The `cairn_*` metric names `text` mentions.
fn cairn_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("cairn_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every metric family the binaries export (control-plane/src/metrics.rs,
/// node-agent/src/metrics.rs), with their histogram series, plus the continuous-backup gauge the
/// PITR work defines.
const EXPORTED_METRICS: &[&str] = &[
    "cairn_reconciles_total",
    "cairn_reconcile_errors_total",
    "cairn_reconcile_duration_seconds_bucket",
    "cairn_action_results_total",
    "cairn_actions_dispatched_total",
    "cairn_backup_bytes_total",
    "cairn_connected_agents",
    "cairn_backups_total",
    "cairn_backup_duration_seconds_bucket",
    "cairn_backup_size_bytes_bucket",
    "cairn_restores_total",
    "cairn_restore_duration_seconds_bucket",
    "cairn_backup_last_success_timestamp_seconds",
    "cairn_backup_schedule_interval_seconds",
    "cairn_backup_schedule_start_timestamp_seconds",
    "cairn_certificate_expiry_timestamp_seconds",
    "cairn_continuous_backup_stalled",
    "cairn_agent_actions_running",
    "cairn_agent_actions_finished_total",
    "cairn_agent_bytes_moved_total",
    "cairn_agent_socket_requests_total",
    "cairn_agent_storage_errors_total",
    "cairn_agent_session_connected",
];

#[test]
fn monitoring_objects_are_off_by_default_and_the_agent_has_probes() -> Result<()> {
    let rendered = Rendered::of(&json!({}))?;
    for kind in ["PrometheusRule", "PodMonitor", "ServiceMonitor"] {
        ensure!(
            rendered.of_kind(kind).is_empty(),
            "{kind} rendered by default"
        );
    }
    ensure!(
        rendered
            .of_kind("ConfigMap")
            .iter()
            .all(|c| c["data"]["cairn.json"].is_null()),
        "the dashboard rendered by default"
    );
    let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
    let agent = container(daemonset, "agent")?;
    let args = strs(&agent["args"]);
    ensure!(
        args.iter().any(|a| a == "--health-listen=0.0.0.0:9090"),
        "the agent serves its health port: {args:?}"
    );
    ensure!(
        agent["ports"][0]["name"] == "http-metrics" && agent["ports"][0]["containerPort"] == 9090
    );
    ensure!(agent["readinessProbe"]["httpGet"]["path"] == "/readyz");
    ensure!(agent["readinessProbe"]["httpGet"]["port"] == 9090);
    ensure!(agent["livenessProbe"]["httpGet"]["path"] == "/healthz");
    ensure!(agent["livenessProbe"]["httpGet"]["port"] == 9090);
    Ok(())
}

#[test]
fn the_rules_dashboard_and_pod_monitor_render_and_name_only_exported_metrics() -> Result<()> {
    let rendered = Rendered::of(&monitoring_values())?;
    assert_valid(
        &rendered,
        &["ServiceMonitor", "PodMonitor", "PrometheusRule"],
    )?;
    let rule = rendered.one("PrometheusRule", "cairn")?;
    ensure!(rule["metadata"]["labels"]["release"] == "prometheus");
    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    let expected: BTreeSet<&str> = [
        "CairnNoSuccessfulBackup",
        "CairnBackupFailed",
        "CairnRestoreFailed",
        "CairnContinuousBackupStalled",
        "CairnAgentDown",
        "CairnAgentDisconnected",
        "CairnCertificateExpiring",
    ]
    .into();
    ensure!(alerts == expected, "alerts {alerts:?}");
    for rule in &rules {
        ensure!(
            rule["labels"]["team"] == "dba",
            "additionalAlertLabels: {rule}"
        );
    }
    let no_backup = rules
        .iter()
        .find(|r| r["alert"] == "CairnNoSuccessfulBackup")
        .context("CairnNoSuccessfulBackup")?;
    ensure!(
        no_backup["expr"]
            .as_str()
            .unwrap_or_default()
            .contains("(cairn_backup_schedule_interval_seconds) * 2 + 5400"),
        "noSuccessfulBackup: 2 intervals plus 90 min (5400 s): {}",
        no_backup["expr"]
    );

    let monitor = rendered.one("PodMonitor", "cairn-agent")?;
    let daemonset = rendered.one("DaemonSet", "cairn-agent")?;
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("matchLabels")?
    {
        ensure!(
            daemonset["spec"]["template"]["metadata"]["labels"][key] == *value,
            "PodMonitor selects {key}={value}, the agent pods lack it"
        );
    }
    ensure!(monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http-metrics");
    let down = rules
        .iter()
        .find(|r| r["alert"] == "CairnAgentDown")
        .context("CairnAgentDown")?;
    ensure!(
        down["expr"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("job=\"{NAMESPACE}/cairn-agent\"")),
        "CairnAgentDown reads the PodMonitor's job: {}",
        down["expr"]
    );

    let dashboard = rendered
        .of_kind("ConfigMap")
        .into_iter()
        .find(|c| !c["data"]["cairn.json"].is_null())
        .context("no dashboard ConfigMap")?;
    ensure!(dashboard["metadata"]["labels"]["grafana_dashboard"] == "1");
    let text = dashboard["data"]["cairn.json"].as_str().unwrap_or_default();
    let parsed: Value = serde_json::from_str(text).context("the dashboard is not JSON")?;
    ensure!(
        parsed["panels"].as_array().is_some_and(|p| p.len() >= 8),
        "the dashboard has its panels"
    );
    let exported: BTreeSet<String> = EXPORTED_METRICS.iter().map(|s| s.to_string()).collect();
    let rules_text = serde_json::to_string(&rule["spec"])?;
    for name in cairn_metric_names(text)
        .into_iter()
        .chain(cairn_metric_names(&rules_text))
    {
        ensure!(exported.contains(&name), "{name} is no exported metric");
    }
    Ok(())
}

/// `promtool check rules` on the rendered groups, then `promtool test rules`: the alerts fire on
/// the series that should fire them and stay silent otherwise.
#[test]
fn the_alert_rules_pass_promtool_and_fire_when_they_should() -> Result<()> {
    let promtool = tool("promtool")?;
    let rendered = Rendered::of(&json!({"metrics": {"prometheusRule": {
        "enabled": true,
        "additionalAlertLabels": {"team": "dba"}
    }}}))?;
    let rule = rendered.one("PrometheusRule", "cairn")?;
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, serde_json::to_vec_pretty(&rule["spec"])?)?;
    let checked = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules))?;
    ensure!(
        checked.status.success(),
        "promtool check rules: {}",
        stdout(&checked)
    );

    // `promtool test rules` cases (charts/cairn/ci/, left out of the packaged chart): an
    // hourly entry whose last success is 2 h 15 m old fires and a daily one 9 h old does not,
    // an entry that never succeeded fires 2 h after its start, a disabled entry (no interval
    // series) and a backup made by hand never do; a failed backup fires, completed ones do not; a certificate 29
    // days from expiry fires and 31 days does not; an agent down or disconnected for 5 m fires;
    // a continuous backup stalled for 10 m fires. Evaluation times count from unix time 0.
    let cases = chart_dir().join("ci/alert-rule-tests.json");
    std::fs::copy(&cases, dir.path().join("tests.json"))
        .with_context(|| format!("copying {}", cases.display()))?;
    let tested = Command::new(&promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "tests.json"])
        .output()
        .context("running promtool test rules")?;
    ensure!(
        tested.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    Ok(())
}
