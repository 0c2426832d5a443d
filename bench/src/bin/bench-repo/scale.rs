//! `bench-repo scale`: Cairn's restores at growing dataset sizes in one run, to show whether
//! their memory or rate grows with the data (issue 15: "restores at 10 GiB keep the same
//! memory and rate").
//!
//! Per size and target: a fresh dataset and repository, one backup, then from a cold page
//! cache the tree restore (compared with the source) and the streamed `datasafed pull` of a
//! tar of the same tree to `/dev/null` (compared with the tar afterwards, untimed), and the
//! disk's own write rate for the tree (`cp -a` + `sync`). A restore returns once its files are
//! written, not once they are on disk: up to the kernel's dirty limit (`vm.dirty_ratio`, 20 %
//! of memory by default) the disk writes them after the restore has returned. So each restore
//! is followed by a timed `sync`, and the restore's rate is also given with it (restore +
//! `sync`), the rate that compares across sizes and with `cp -a` + `sync`. Only one
//! dataset, one repository and one restored tree exist at a time, so a 10 GiB step needs about
//! 2.7× the size of free disk.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    Measure, cairn_s3_url, datasafed_dedup_env, drop_caches, du, generate, measure, parse_size, sh,
    verify_restore,
};

#[derive(Debug, clap::Args)]
pub(crate) struct ScaleArgs {
    /// Working directory (dataset, repository, restore; emptied first).
    #[arg(long, default_value = "/var/tmp/cairn-bench-scale")]
    work: PathBuf,
    /// Dataset sizes, smallest first.
    #[arg(long, value_delimiter = ',', default_value = "512MiB,2GiB,10GiB")]
    sizes: Vec<String>,
    /// Targets (local, s3).
    #[arg(long, value_delimiter = ',', default_value = "local,s3")]
    targets: Vec<String>,
    /// The cairnctl binary (default: next to this binary).
    #[arg(long)]
    cairnctl: Option<PathBuf>,
    /// The datasafed binary (default: next to this binary).
    #[arg(long)]
    datasafed: Option<PathBuf>,
}

/// One size on one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    size: String,
    target: String,
    dataset_bytes: u64,
    backup: Measure,
    restore: Measure,
    /// The `sync` right after the restore: writing what the restore left in the page cache.
    #[serde(default)]
    restore_sync: Option<Measure>,
    /// Bytes of the tar pulled.
    stream_bytes: u64,
    pull: Measure,
    /// The disk's own write rate for the same tree: `cp -a` of it from a warm page cache,
    /// then `sync`.
    #[serde(default)]
    disk_write: Option<Measure>,
}

pub(crate) fn run(args: ScaleArgs) -> Result<()> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cairnctl = args
        .cairnctl
        .clone()
        .unwrap_or_else(|| exe_dir.join("cairnctl"));
    let datasafed = args
        .datasafed
        .clone()
        .unwrap_or_else(|| exe_dir.join("datasafed"));
    for bin in [&cairnctl, &datasafed] {
        if !bin.is_file() {
            anyhow::bail!(
                "{} is missing: cargo build --release -p cairn-cli",
                bin.display()
            );
        }
    }
    let _ = fs::remove_dir_all(&args.work);
    fs::create_dir_all(&args.work)?;
    let mut steps = Vec::new();
    for size in &args.sizes {
        let bytes = parse_size(size)?;
        let data = args.work.join("data");
        let _ = fs::remove_dir_all(&data);
        eprintln!("generating {size} of data in {}", data.display());
        generate(&data, bytes, 1)?;
        let dataset_bytes = du(&data)?;
        for target in &args.targets {
            eprintln!("== {size} on {target}");
            let step = one_step(&args, &cairnctl, &datasafed, size, target, &data)
                .with_context(|| format!("{size} on {target}"))?;
            eprintln!("   {step:?}");
            steps.push(Step {
                dataset_bytes,
                ..step
            });
        }
        let _ = fs::remove_dir_all(&data);
    }
    fs::write(
        args.work.join("scale.json"),
        serde_json::to_string_pretty(&steps)?,
    )?;
    print(&steps);
    Ok(())
}

fn one_step(
    args: &ScaleArgs,
    cairnctl: &Path,
    datasafed: &Path,
    size: &str,
    target: &str,
    data: &Path,
) -> Result<Step> {
    let mut env = datasafed_dedup_env();
    env.insert(
        "CAIRN_REPO_PASSWORD".to_string(),
        "bench-password".to_string(),
    );
    let name = format!("scale-{}-{}", size.to_lowercase(), std::process::id());
    let local = args.work.join("repo");
    let _ = fs::remove_dir_all(&local);
    let (repo, ds_args) = if target == "local" {
        fs::create_dir_all(local.join("tree"))?;
        fs::create_dir_all(local.join("stream"))?;
        env.insert(
            "DATASAFED_LOCAL_BACKEND_PATH".to_string(),
            local.join("stream").display().to_string(),
        );
        (
            format!("file://{}", local.join("tree").display()),
            String::new(),
        )
    } else {
        let server = cairn_repo::testing::SeaweedFs::shared();
        let conf = args.work.join("stream.conf");
        fs::write(&conf, server.fresh_datasafed_config(&format!("{name}-s")))?;
        (cairn_s3_url(&name), format!("-c '{}'", conf.display()))
    };
    let ctl = cairnctl.display();
    measure(&format!("'{ctl}' repo --repo '{repo}' init"), &env)?;
    drop_caches();
    let backup = measure(
        &format!(
            "'{ctl}' repo --repo '{repo}' backup '{}' > /dev/null",
            data.display()
        ),
        &env,
    )?;
    let restore_dir = args.work.join("restore");
    let _ = fs::remove_dir_all(&restore_dir);
    fs::create_dir_all(&restore_dir)?;
    drop_caches();
    let restore = measure(
        &format!(
            "'{ctl}' repo --repo '{repo}' restore latest --target '{}' --no-owners > /dev/null",
            restore_dir.display()
        ),
        &env,
    )?;
    let restore_sync = measure("sync", &BTreeMap::new())?;
    verify_restore(data, &restore_dir)?;
    let _ = fs::remove_dir_all(&restore_dir);
    // The comparison just read the whole tree, so `cp -a` reads it from the page cache.
    let copy = args.work.join("copy");
    let _ = fs::remove_dir_all(&copy);
    sh("sync")?;
    let disk_write = measure(
        &format!("cp -a '{}' '{}' && sync", data.display(), copy.display()),
        &BTreeMap::new(),
    )?;
    let _ = fs::remove_dir_all(&copy);
    // The tree's repository goes before the stream's is written (disk).
    if target == "local" {
        let _ = fs::remove_dir_all(local.join("tree"));
    }
    // GNU tar writes the same bytes for the same unchanged tree, so the pull is compared with
    // a second tar of it instead of a copy on disk.
    let tar = format!("tar -cf - -C '{}' .", data.display());
    let ds = datasafed.display();
    measure(&format!("{tar} | '{ds}' {ds_args} push - /b1.tar"), &env)?;
    drop_caches();
    let pull = measure(&format!("'{ds}' {ds_args} pull b1.tar - > /dev/null"), &env)?;
    let stream_bytes: u64 = sh(&format!("{tar} | wc -c"))?.trim().parse().unwrap_or(0);
    measure(
        &format!("cmp <('{ds}' {ds_args} pull b1.tar -) <({tar})"),
        &env,
    )
    .context("the pulled stream differs from the tar of the dataset")?;
    let _ = fs::remove_dir_all(&local);
    Ok(Step {
        size: size.to_string(),
        target: target.to_string(),
        dataset_bytes: 0,
        backup,
        restore,
        restore_sync: Some(restore_sync),
        stream_bytes,
        pull,
        disk_write: Some(disk_write),
    })
}

fn print(steps: &[Step]) {
    println!(
        "\nCairn's restores by dataset size, one run, cold page cache; rates in MB/s of the dataset (tree) or the tar (stream); RSS = the process's peak; + sync = the restore and the `sync` after it (what the disk had still to write when the restore returned); of the disk = restore + sync against `cp -a` + `sync` of the same tree in the same step\n"
    );
    println!(
        "| size | target | dataset MB | backup s | restore s | restore MB/s | sync after s | restore + sync MB/s | `cp -a` + `sync` MB/s | of the disk | restore RSS MiB | restore CPU s | S3 server CPU s | pull s | pull MB/s | pull RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in steps {
        let mb = s.dataset_bytes as f64 / 1e6;
        let stream_mb = s.stream_bytes as f64 / 1e6;
        let rate = |secs: f64| mb / secs.max(0.001);
        let synced = s.restore_sync.map(|m| s.restore.seconds + m.seconds);
        let disk = s.disk_write.map(|d| rate(d.seconds));
        let dash = || "-".to_string();
        println!(
            "| {} | {} | {mb:.0} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            s.size,
            s.target,
            s.backup.seconds,
            s.restore.seconds,
            rate(s.restore.seconds),
            s.restore_sync
                .map_or_else(dash, |m| format!("{:.2}", m.seconds)),
            synced.map_or_else(dash, |t| format!("{:.0}", rate(t))),
            disk.map_or_else(dash, |d| format!("{d:.0}")),
            match (synced, disk) {
                (Some(t), Some(d)) => format!("{:.0} %", 100.0 * rate(t) / d.max(0.001)),
                _ => dash(),
            },
            s.restore.rss_kib / 1024,
            s.restore.cpu_s,
            s.restore.server_cpu_s,
            s.pull.seconds,
            stream_mb / s.pull.seconds.max(0.001),
            s.pull.rss_kib / 1024,
        );
    }
}
