//! Writer sessions: a marker under `sessions/` written before a writer reads anything and
//! refreshed while it runs, which is what lets prune know who might still reference a
//! condemned pack (docs/FORMAT.md §7.1 W2).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::id::Id;
use super::keys::{MasterKeys, hostname};
use super::sealed::{self, Kind};
use crate::backend::Store;
use crate::{Error, ErrorKind, Result};

/// What a session marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMarker {
    /// Session id.
    pub id: Id,
    /// Host of the writer.
    pub host: String,
    /// Process id of the writer.
    pub pid: u32,
    /// When the session started (writer's clock).
    pub started: Timestamp,
    /// When the marker was last refreshed (writer's clock).
    pub refreshed: Timestamp,
}

/// The object key of a session marker.
pub fn session_key(id: &Id) -> String {
    format!("sessions/{id}")
}

/// A live session: its marker is refreshed by a background task until [`Session::end`].
#[derive(Debug)]
pub struct Session {
    id: Id,
    store: Store,
    last_refresh: Arc<Mutex<Instant>>,
    timeout: Duration,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The marker was deleted (or its deletion attempted) by [`Session::end`].
    ended: bool,
}

impl Session {
    /// Writes the marker and starts refreshing it every `heartbeat`.
    pub async fn start(
        store: &Store,
        keys: Arc<MasterKeys>,
        heartbeat: Duration,
        timeout: Duration,
    ) -> Result<Session> {
        let id = Id::random();
        let started = Timestamp::now();
        let write = {
            let store = store.clone();
            let keys = keys.clone();
            move || {
                let store = store.clone();
                let keys = keys.clone();
                async move {
                    let marker = SessionMarker {
                        id,
                        host: hostname(),
                        pid: std::process::id(),
                        started,
                        refreshed: Timestamp::now(),
                    };
                    let key = session_key(&id);
                    let bytes = sealed::seal(&keys, Kind::Session, &key, &marker)?;
                    store.put(&key, bytes.into()).await
                }
            }
        };
        write().await?;
        let last_refresh = Arc::new(Mutex::new(Instant::now()));
        let last = last_refresh.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(heartbeat).await;
                match write().await {
                    Ok(()) => *last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
                    Err(e) => tracing::warn!(error = %e, "refreshing the session marker failed"),
                }
            }
        });
        Ok(Session {
            id,
            store: store.clone(),
            last_refresh,
            timeout,
            heartbeat,
            ended: false,
        })
    }

    /// The session id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Fails if the marker was not refreshed within half the session timeout: prune may then
    /// consider this session gone, so committing now could reference deleted packs (W2).
    pub fn check_alive(&self) -> Result<()> {
        let age = self
            .last_refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if age > self.timeout / 2 {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "session {} could not refresh its marker for {}s (limit {}s); not committing, the uploaded data will be garbage-collected",
                    self.id.short(),
                    age.as_secs(),
                    (self.timeout / 2).as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Stops refreshing and deletes the marker.
    pub async fn end(mut self) -> Result<()> {
        self.heartbeat.abort();
        self.ended = true;
        self.store.delete(&session_key(&self.id)).await
    }
}

impl Drop for Session {
    /// A session dropped without [`Session::end`] (a panic, or a caller that dropped the
    /// backup future) still stops refreshing and deletes its marker in the background when a
    /// runtime is there to run it; otherwise the marker goes stale and `prune` removes it.
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.ended {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = session_key(&self.id);
            runtime.spawn(async move {
                if let Err(e) = store.delete(&key).await {
                    tracing::warn!(error = %e, "removing the marker of an abandoned session failed; prune removes it once it is stale");
                }
            });
        }
    }
}

/// A marker found in the store, with the store's modification time.
#[derive(Debug, Clone)]
pub struct ListedSession {
    /// Session id.
    pub id: Id,
    /// Last modification (store clock).
    pub modified: Timestamp,
}

/// Whether a marker last modified at `modified` (store clock) is stale at `now` (local clock):
/// older than `timeout`. The writer of a stale marker cannot commit any more (W2: it refuses
/// once its last refresh is half the timeout old), so its session is provably dead.
pub fn is_stale(modified: Timestamp, now: Timestamp, timeout: Duration) -> bool {
    let timeout = jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(modified) >= timeout
}

/// Lists session markers.
pub async fn list_sessions(store: &Store) -> Result<Vec<ListedSession>> {
    let mut out = Vec::new();
    for info in store.list_all("sessions").await? {
        if let Ok(id) = Id::parse(info.key.rsplit('/').next().unwrap_or("")) {
            out.push(ListedSession {
                id,
                modified: info.modified,
            });
        }
    }
    Ok(out)
}

/// What `check` says about session markers and staging files: open sessions, dead ones
/// (stale markers `prune` removes), and staging files of interrupted uploads (local stores),
/// each naming the object.
pub async fn leftover_warnings(store: &Store, timeout: Duration) -> Result<Vec<String>> {
    let now = Timestamp::now();
    let mut out = Vec::new();
    for session in list_sessions(store).await? {
        if is_stale(session.modified, now, timeout) {
            out.push(format!(
                "session {} is dead (marker {} last refreshed {}, more than {}s ago); `prune` removes the marker",
                session.id.short(),
                session_key(&session.id),
                session.modified,
                timeout.as_secs()
            ));
        } else {
            out.push(format!(
                "session {} is open (last seen {})",
                session.id.short(),
                session.modified
            ));
        }
    }
    let mut staging = store.list_staging("").await?;
    staging.sort_by(|a, b| a.key.cmp(&b.key));
    for file in staging {
        let stale = crate::backend::staging_is_older(file.modified, now, timeout);
        out.push(format!(
            "staging file {} ({} bytes, last written {}) of an interrupted upload; {}",
            file.key,
            file.size,
            file.modified,
            if stale {
                "`prune` removes it".to_string()
            } else {
                format!(
                    "`prune` removes it once it is {}s old (it may be an upload in progress)",
                    timeout.as_secs()
                )
            }
        ));
    }
    Ok(out)
}
