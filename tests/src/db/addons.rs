//! KubeBlocks addon manifests that `$CAIRN_KUBEBLOCKS_FIXTURES` does not hold, rendered when the
//! test runs from a kubeblocks-addons git directory named by `$CAIRN_KUBEBLOCKS_ADDONS` (test data
//! outside the project, never committed): `git archive` of one addon at a pinned commit, then
//! Helm's own engine (helm-python-sdk, as the chart tests use it) with the chart's defaults,
//! release `demo` in namespace `default`. Each document is returned byte for byte as rendered.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// The variable naming a kubeblocks-addons git directory (`./test.sh` sets it to the fetched
/// mirror beside the project when there is one).
pub const VARIABLE: &str = "CAIRN_KUBEBLOCKS_ADDONS";

/// The git directory, or `None` (after one line saying the test is skipped) when the variable
/// is unset. A set variable naming no directory is an error, not a skip.
pub fn git_dir(test: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(VARIABLE).filter(|v| !v.is_empty()) else {
        println!(
            "{test}: skipped: {VARIABLE} is unset (it names a kubeblocks-addons git directory)"
        );
        return Ok(None);
    };
    let dir = PathBuf::from(value);
    anyhow::ensure!(
        dir.is_dir(),
        "{VARIABLE}={} names no directory",
        dir.display()
    );
    Ok(Some(dir))
}

/// The documents of `template` (e.g. `redis/templates/backupactionset.yaml`) of addon `addon`
/// (e.g. `redis`) at `commit`, rendered into `work`.
pub fn render(
    git_dir: &Path,
    commit: &str,
    addon: &str,
    template: &str,
    work: &Path,
) -> anyhow::Result<Vec<String>> {
    let tree = work.join("kubeblocks-addons");
    std::fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    let archive = Command::new("sh")
        .arg("-c")
        .arg(r#"git --git-dir="$1" archive "$2" "addons/$3" | tar -x -C "$4""#)
        .args(["sh", &git_dir.display().to_string(), commit, addon])
        .arg(&tree)
        .output()
        .context("running git archive | tar")?;
    anyhow::ensure!(
        archive.status.success(),
        "git archive of addons/{addon} at {commit} from {}: {}",
        git_dir.display(),
        String::from_utf8_lossy(&archive.stderr).trim()
    );
    let chart = tree.join("addons").join(addon);
    let script = "import sys\nfrom helm_python.chart import Chart\n\
                  sys.stdout.write(Chart.load(sys.argv[1]).render(name='demo', namespace='default')[sys.argv[2]])\n";
    let rendered = Command::new("python3")
        .args(["-c", script])
        .arg(&chart)
        .arg(template)
        .output()
        .context("running python3 (helm-python-sdk, from .ci/requirements.txt)")?;
    anyhow::ensure!(
        rendered.status.success(),
        "rendering {template} of {}: {}",
        chart.display(),
        String::from_utf8_lossy(&rendered.stderr).trim()
    );
    let text = String::from_utf8(rendered.stdout).context("rendered text is not UTF-8")?;
    Ok(text
        .split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n").to_string())
        .filter(|doc| doc.contains("kind:"))
        .collect())
}
