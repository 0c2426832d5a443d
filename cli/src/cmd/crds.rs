//! `cairnctl crds`: print the CustomResourceDefinitions generated from the API types, or write them
//! one file per CRD (how `charts/cairn/crds/` is produced).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Arguments of `cairnctl crds`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one `<group>_<plural>.yaml` file per CRD into this directory instead of printing
    /// all of them as multi-document YAML.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `cairnctl crds`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let crds = cairn_api::crds::all();
    match args.dir {
        None => {
            let mut out = String::new();
            for crd in &crds {
                out.push_str("---\n");
                out.push_str(&to_yaml(crd)?);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            print!("{out}");
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(cairn_api::crds::file_name(crd));
                std::fs::write(&path, to_yaml(crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_yaml(crd: &CustomResourceDefinition) -> anyhow::Result<String> {
    let name = crd.metadata.name.as_deref().unwrap_or("?");
    cairn_api::crds::to_yaml(crd).with_context(|| format!("serializing CRD {name} to YAML"))
}
