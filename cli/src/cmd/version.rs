//! `cairnctl version`: the client's version and the control plane's, read from the cluster.
//!
//! Where the control plane's version comes from (no endpoint of its own is needed): on a
//! cluster installed with the chart, the control plane's Deployments (labelled
//! `app.kubernetes.io/part-of=cairn`, `app.kubernetes.io/component=control-plane`, in every
//! namespace, or in `-n`): their `app.kubernetes.io/version` label (the chart's appVersion),
//! their image, and how many replicas are ready. On a standalone stack (`cairnctl up`, whose
//! kubeconfig sits beside its `stack.json`), the control plane is a local process started from
//! the binaries beside `cairnctl`: its `--version`. `-o json|yaml` print the same as an object.

use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use serde::Serialize;

use crate::cmd::backup::ObjectArgs;
use crate::cmd::backup::table::{fetch_list, typed};
use crate::exit::Usage;
use crate::output::{self, Format};

/// The labels the chart puts on the control plane's Deployment.
pub const CONTROL_PLANE_SELECTOR: &str =
    "app.kubernetes.io/part-of=cairn,app.kubernetes.io/component=control-plane";
const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// Arguments of `cairnctl version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the client's version (no cluster needed).
    #[arg(long)]
    pub client: bool,
}

/// The client's version.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: String,
}

/// One control plane found in the cluster.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    /// `deployment/<namespace>/<name>`, or `standalone <data dir>`.
    pub source: String,
    /// The version label (chart appVersion), or the binary's `--version`.
    pub version: Option<String>,
    pub images: Vec<String>,
    /// `<ready>/<wanted>` replicas of a Deployment.
    pub ready: Option<String>,
}

/// What `version` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub client_version: ClientVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_planes: Option<Vec<ControlPlane>>,
}

/// The control planes of `deployments`.
pub fn from_deployments(deployments: &[Deployment]) -> Vec<ControlPlane> {
    deployments
        .iter()
        .map(|d| {
            let images = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            ControlPlane {
                source: format!(
                    "deployment/{}/{}",
                    d.metadata.namespace.clone().unwrap_or_default(),
                    d.metadata.name.clone().unwrap_or_default()
                ),
                version: d
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(VERSION_LABEL).cloned()),
                images,
                ready: Some(format!("{ready}/{wanted}")),
            }
        })
        .collect()
}

/// The text `version` prints.
pub fn text(versions: &Versions) -> String {
    let mut out = format!("Client Version: {}\n", versions.client_version.version);
    match versions.control_planes.as_deref() {
        None => {}
        Some([]) => out.push_str(&format!(
            "Control Plane Version: not found (no Deployment labelled {CONTROL_PLANE_SELECTOR}, and the kubeconfig is not a standalone stack's)\n"
        )),
        Some(planes) => {
            for plane in planes {
                out.push_str(&format!(
                    "Control Plane Version: {} ({}",
                    plane.version.as_deref().unwrap_or("unknown"),
                    plane.source
                ));
                if !plane.images.is_empty() {
                    out.push_str(&format!(", image {}", plane.images.join(", ")));
                }
                if let Some(ready) = &plane.ready {
                    out.push_str(&format!(", {ready} ready"));
                }
                out.push_str(")\n");
            }
        }
    }
    out
}

/// The standalone stack the kubeconfig belongs to: its data directory holds `stack.json`.
fn standalone_dir(globals: &ObjectArgs) -> Option<std::path::PathBuf> {
    let kubeconfig = globals
        .kube
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(Into::into))?;
    let dir = kubeconfig.parent()?.to_path_buf();
    dir.join("stack.json").is_file().then_some(dir)
}

/// The version the standalone control plane binary reports.
fn standalone(dir: &std::path::Path) -> anyhow::Result<ControlPlane> {
    let binary = crate::standalone::default_bin_dir()?.join("cairn-control-plane");
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(ControlPlane {
        source: format!("standalone {}", dir.display()),
        version: text.split_whitespace().nth(1).map(str::to_string),
        images: Vec::new(),
        ready: None,
    })
}

/// Runs `cairnctl version`.
pub async fn run(globals: &ObjectArgs, args: Args) -> anyhow::Result<ExitCode> {
    if globals.selector.is_some() || globals.all_namespaces {
        return Err(Usage(
            "cairnctl version does not take -l or -A (it looks in every namespace unless -n names one)"
                .into(),
        )
        .into());
    }
    let mut versions = Versions {
        client_version: ClientVersion {
            version: env!("CARGO_PKG_VERSION").into(),
        },
        control_planes: None,
    };
    if !args.client {
        let connection = globals.kube.connect().await?;
        let items = fetch_list::<Deployment>(
            &connection.client,
            globals.namespace.as_deref(),
            Some(CONTROL_PLANE_SELECTOR),
        )
        .await
        .context("looking for the control plane")?;
        let mut planes = from_deployments(&typed(&items)?);
        if planes.is_empty()
            && let Some(dir) = standalone_dir(globals)
        {
            planes.push(standalone(&dir)?);
        }
        versions.control_planes = Some(planes);
    }
    let value = serde_json::to_value(&versions)?;
    match &globals.output {
        None | Some(Format::Wide) if !globals.json => print!("{}", text(&versions)),
        None | Some(Format::Json) => print!("{}", output::json_text(&value)?),
        Some(Format::Yaml) => print!("{}", output::yaml_text(&value)?),
        Some(Format::JsonPath(template)) => print!("{}", template.render(&value)),
        Some(other) => {
            return Err(Usage(format!(
                "cairnctl version takes -o json, yaml or jsonpath=..., not {other:?}"
            ))
            .into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_version_comes_from_its_deployment() {
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cairn-control-plane", "namespace": "cairn-system",
                         "labels": {"app.kubernetes.io/version": "0.1.0"}},
            "spec": {"replicas": 2, "selector": {},
                     "template": {"spec": {"containers": [{"name": "control-plane",
                         "image": "ghcr.io/cairn/control-plane:0.1.0"}]}}},
            "status": {"readyReplicas": 1}
        }))
        .unwrap();
        let versions = Versions {
            client_version: ClientVersion {
                version: "0.1.0".into(),
            },
            control_planes: Some(from_deployments(&[deployment])),
        };
        assert_eq!(
            text(&versions),
            "Client Version: 0.1.0\nControl Plane Version: 0.1.0 (deployment/cairn-system/cairn-control-plane, image ghcr.io/cairn/control-plane:0.1.0, 1/2 ready)\n"
        );
        let none = Versions {
            control_planes: Some(Vec::new()),
            ..versions
        };
        assert!(text(&none).contains("Control Plane Version: not found"));
    }
}
