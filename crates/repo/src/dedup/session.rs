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
    pub async fn end(self) -> Result<()> {
        self.heartbeat.abort();
        self.store.delete(&session_key(&self.id)).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.heartbeat.abort();
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
