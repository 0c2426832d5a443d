//! Garbage collection: forget (retention policies) and two-phase prune that is safe against
//! concurrent writers (docs/FORMAT.md §7).

mod list;
mod policy;
mod prune;

pub use list::{GcList, gc_key, load_condemned, load_gc_lists};
pub use policy::{Decision, ForgetPlan, GroupBy, GroupPlan, KeepPolicy, plan_forget};
pub use prune::{PruneOptions, PruneReport, prune, referenced_packs};

use super::id::Id;
use super::repository::Repository;
use super::snapshot::Snapshot;
use crate::Result;

/// Deletes snapshot objects (pure deletes: works when the store rejects writes). Data is
/// freed by a later `prune`.
pub async fn forget(repo: &Repository, ids: &[Id]) -> Result<()> {
    for id in ids {
        repo.store().delete(&Snapshot::key(id)).await?;
    }
    Ok(())
}
