//! Condemned lists (`gc/<id>`): packs awaiting deletion and the sessions that must end first.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::super::id::Id;
use super::super::repository::{Repository, list_ids};
use super::super::sealed::{self, Kind};
use crate::{Error, Result};

/// A condemned list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcList {
    /// Format version (1).
    pub version: u32,
    /// List id (also the object name).
    pub id: Id,
    /// When prune wrote it.
    pub created: Timestamp,
    /// The packs to delete.
    pub packs: Vec<Id>,
    /// Sessions live when the list was written; `None` until the list is complete.
    pub blocking: Option<Vec<Id>>,
}

/// The object key of a condemned list.
pub fn gc_key(id: &Id) -> String {
    format!("gc/{id}")
}

/// Every condemned list. Entries under `gc/` not named by an id are not condemned lists and
/// are skipped; a list that does not open is an error naming it (a writer that cannot read a
/// condemned list cannot keep away from its packs, W3).
pub async fn load_gc_lists(repo: &Repository) -> Result<Vec<GcList>> {
    let infos = list_ids(repo.store(), "gc").await?.ids;
    futures::stream::iter(infos)
        .map(|(_, info)| async move {
            let bytes = repo.store().get(&info.key).await?;
            let list: GcList = sealed::open(repo.keys(), Kind::GcList, &info.key, &bytes)?;
            if gc_key(&list.id) != info.key {
                return Err(Error::corrupt(format!(
                    "{} holds condemned list {}",
                    info.key, list.id
                )));
            }
            Ok(list)
        })
        .buffer_unordered(8)
        .try_collect()
        .await
}

/// Every condemned pack (writers never reuse refs into them, W3).
pub async fn load_condemned(repo: &Repository) -> Result<HashSet<Id>> {
    Ok(load_gc_lists(repo)
        .await?
        .into_iter()
        .flat_map(|l| l.packs)
        .collect())
}
