//! What the quickstart needs from a workload: how to start it, the ActionSet and BackupPolicy
//! that protect it, how to damage its data, and how to prove a restored copy equals it.

use std::path::{Path, PathBuf};

use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use jiff::Timestamp;

/// What every step works with.
pub struct Ctx {
    pub client: kube::Client,
    pub data_dir: PathBuf,
    /// Where localkube, the control plane, the agent and datasafed are.
    pub bin_dir: PathBuf,
    /// This executable (the file-writer pod runs it).
    pub cairnctl: PathBuf,
}

/// A workload the quickstart protects.
#[allow(async_fn_in_trait)] // used with generics only, on one thread
pub trait Workload {
    /// `a PostgreSQL 15 database`, for the opening line.
    fn noun(&self) -> String;
    /// The title of the step that starts it.
    fn start_title(&self) -> String;
    /// Creates its objects, waits until it is Ready and has its data.
    async fn start(&mut self, ctx: &Ctx) -> anyhow::Result<()>;
    /// The `app` label and the prefix of the Backup and Restore names.
    fn app(&self) -> &'static str;
    /// The claim holding its data.
    fn claim(&self) -> &'static str;
    fn actionset(&self) -> anyhow::Result<ActionSet>;
    fn policy(&self) -> anyhow::Result<BackupPolicy>;
    /// Records what the data looks like before the backup.
    async fn before_backup(&mut self, ctx: &Ctx, source_dir: &Path) -> anyhow::Result<()>;
    /// The title of the damage step.
    fn damage_title(&self) -> String;
    /// The accident: deletes or corrupts the data, and shows that it is gone.
    async fn damage(&mut self, ctx: &Ctx, source_dir: &Path) -> anyhow::Result<()>;
    /// Proves that the restored claim holds the original data; returns the one-line proof.
    async fn verify(
        &mut self,
        ctx: &Ctx,
        restored_claim: &str,
        restored_dir: &Path,
    ) -> anyhow::Result<String>;
    /// What was protected, for the summary.
    fn description(&self) -> String;
    /// Commands to look at this workload, for the summary.
    fn extra_commands(&self, ctx: &Ctx) -> Vec<String>;
    /// Point-in-time recovery (`--pitr`): the Continuous ActionSet archiving the workload and
    /// the name of its method in the policy, when the workload has them.
    fn continuous(&self) -> anyhow::Result<Option<(ActionSet, &'static str)>> {
        Ok(None)
    }
    /// Writes after the backup and before the accident: only the continuous archive holds them.
    async fn after_backup(&mut self, _ctx: &Ctx) -> anyhow::Result<()> {
        Ok(())
    }
    /// When the accident happened (known once `damage` ran).
    fn accident_at(&self) -> Option<Timestamp> {
        None
    }
    /// Proves that the claim a restore to `at` filled holds everything written up to `at`;
    /// returns the one-line proof. Called only for a workload with [`Workload::continuous`].
    async fn verify_point_in_time(
        &mut self,
        _ctx: &Ctx,
        _claim: &str,
        _at: Timestamp,
    ) -> anyhow::Result<String> {
        anyhow::bail!("{} has no continuous backup to restore", self.noun())
    }
}
