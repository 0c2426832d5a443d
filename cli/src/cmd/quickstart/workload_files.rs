//! The fallback workload: a pod running `cairnctl quickstart write-dataset`, which fills its
//! PVC with a realistic data set; the proof is a BLAKE3 checksum of every file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use indicatif::HumanCount;

use super::dataset::{self, FileSum};
use super::manifests::{self, NAMESPACE, files};
use super::steps::detail;
use super::workload::{Ctx, Workload};
use super::{cluster, human};
use crate::progress::{Mode, RateMeter, Reporter, Snapshot};

/// The file-writer workload.
pub struct Files {
    bytes: u64,
    seed: u64,
    original: BTreeMap<String, FileSum>,
}

impl Files {
    /// A data set of `bytes`.
    pub fn new(bytes: u64) -> Files {
        Files {
            bytes,
            seed: 1,
            original: BTreeMap::new(),
        }
    }
}

impl Workload for Files {
    fn noun(&self) -> String {
        format!("a pod writing a {} data set", human(self.bytes))
    }

    fn start_title(&self) -> String {
        format!(
            "Start pod {NAMESPACE}/{} writing a {} data set to PVC {}",
            files::POD,
            human(self.bytes),
            files::PVC
        )
    }

    async fn start(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        cluster::create(&ctx.client, &manifests::claim(files::PVC, self.bytes * 2)?).await?;
        cluster::create(
            &ctx.client,
            &manifests::files_pod(&ctx.cairnctl, self.bytes, self.seed)?,
        )
        .await?;
        // Draw the writing as progress: bytes in the volume against the data set's size.
        let finder = cluster::VolumeFinder::start(&ctx.client, files::PVC);
        let mut reporter = Reporter::new(Mode::detect(false), Box::new(super::Indented::new()));
        let clock = Instant::now();
        let mut meter = RateMeter::new(2.0);
        let bytes = self.bytes;
        let mut look = move |dir: Option<std::path::PathBuf>| -> Snapshot {
            let mut s = Snapshot::phase("Dataset", files::PVC, "Writing");
            if let Some(dir) = dir {
                let done = dataset::tree_bytes(&dir);
                s.bytes_done = Some(done);
                s.bytes_per_second = meter.observe(clock.elapsed().as_secs_f64(), done);
            }
            s.elapsed_seconds = clock.elapsed().as_secs_f64();
            s.with_expected_total(Some(bytes))
        };
        let mut last_draw = Instant::now();
        let mut draw_error = None;
        let ready = cluster::wait_pod_ready(
            &ctx.client,
            files::POD,
            Duration::from_secs(600),
            &mut || {
                if last_draw.elapsed() >= Duration::from_millis(500) {
                    last_draw = Instant::now();
                    if let Err(err) = reporter.update(&look(finder.dir())) {
                        draw_error = Some(err);
                    }
                }
            },
        )
        .await;
        if let Err(err) = ready {
            reporter.clear();
            return Err(err);
        }
        if let Some(err) = draw_error {
            return Err(err).context("drawing progress");
        }
        let mut done = look(finder.dir());
        done.phase = "Written".into();
        done.bytes_per_second = None;
        done.eta_seconds = None;
        reporter.finish(&done)?;
        Ok(())
    }

    fn app(&self) -> &'static str {
        "files"
    }

    fn claim(&self) -> &'static str {
        files::PVC
    }

    fn actionset(&self) -> anyhow::Result<ActionSet> {
        manifests::files_actionset()
    }

    fn policy(&self) -> anyhow::Result<BackupPolicy> {
        manifests::policy(
            files::POLICY,
            files::POD,
            files::METHOD,
            files::ACTIONSET,
            None,
        )
    }

    async fn before_backup(&mut self, _ctx: &Ctx, source_dir: &Path) -> anyhow::Result<()> {
        let dir = source_dir.to_path_buf();
        self.original = tokio::task::spawn_blocking(move || dataset::checksum_tree(&dir))
            .await
            .context("the checksum thread panicked")??;
        Ok(())
    }

    fn damage_title(&self) -> String {
        format!(
            "The accident: delete and corrupt files in PVC {}",
            files::PVC
        )
    }

    async fn damage(&mut self, _ctx: &Ctx, source_dir: &Path) -> anyhow::Result<()> {
        let dir = source_dir.to_path_buf();
        let original = self.original.clone();
        let (done, now) = tokio::task::spawn_blocking(move || {
            let done = dataset::damage(&dir)?;
            let now = dataset::compare(&original, &dataset::checksum_tree(&dir)?);
            anyhow::Ok((done, now))
        })
        .await
        .context("the damage thread panicked")??;
        if now.is_identical() {
            bail!("the damage left the data unchanged");
        }
        detail(&format!(
            "deleted {} files and overwrote 4 KiB in {} others; the volume now differs from the original: {}",
            done.removed,
            done.corrupted,
            now.differences()
        ));
        Ok(())
    }

    async fn verify(
        &mut self,
        _ctx: &Ctx,
        _restored_claim: &str,
        restored_dir: &Path,
    ) -> anyhow::Result<String> {
        let dir = restored_dir.to_path_buf();
        let restored = tokio::task::spawn_blocking(move || dataset::checksum_tree(&dir))
            .await
            .context("the checksum thread panicked")??;
        let comparison = dataset::compare(&self.original, &restored);
        if !comparison.is_identical() {
            bail!(
                "the restored data differs from the original: {}",
                comparison.differences()
            );
        }
        let proof = format!(
            "{} of {} files identical ({}, BLAKE3 checksums)",
            HumanCount(comparison.identical as u64),
            HumanCount(self.original.len() as u64),
            human(comparison.identical_bytes)
        );
        detail(&proof);
        Ok(proof)
    }

    fn description(&self) -> String {
        format!(
            "pod {NAMESPACE}/{} with {} files ({}) on PVC {}",
            files::POD,
            HumanCount(self.original.len() as u64),
            human(self.original.values().map(|f| f.size).sum()),
            files::PVC
        )
    }

    fn extra_commands(&self, _ctx: &Ctx) -> Vec<String> {
        vec![format!("kubectl -n {NAMESPACE} logs {}", files::POD)]
    }
}
