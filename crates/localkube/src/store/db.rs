//! The SQLite file behind the store: objects, the change log and the resourceVersion counter.
//!
//! WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9` of the
//! server (it is in the WAL, in the OS page cache), which is the durability localkube promises.
//! Each write is one transaction: object upsert or delete, one log row, the counter.

use super::object::EventType;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// Why the database could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("opening the store database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("making the store database {path} private (mode 0600)")]
    Private {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the store schema")]
    Schema(#[source] rusqlite::Error),
    #[error("writing to the store database")]
    Write(#[source] rusqlite::Error),
    #[error("reading the store database")]
    Read(#[source] rusqlite::Error),
}

/// A row of the objects table as loaded at start.
pub struct ObjectRow {
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    pub json: Vec<u8>,
}

/// A row of the change log as loaded at start.
pub struct LogRow {
    pub rv: u64,
    pub kind: EventType,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub json: Vec<u8>,
    pub prev: Option<Vec<u8>>,
}

/// One change to persist.
pub struct Change<'a> {
    pub rv: u64,
    pub kind: EventType,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub json: &'a [u8],
    pub prev: Option<&'a [u8]>,
}

pub struct Db {
    conn: Connection,
}

/// Creates the database file 0600 if it is missing and sets it, its WAL and its shared-memory
/// file to 0600.
fn private_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::private::FILE_MODE)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        crate::private::restrict(Path::new(&name), crate::private::FILE_MODE)?;
    }
    Ok(())
}

impl Db {
    /// Opens (or creates) the database at `path`. Its files are 0600: SQLite creates the
    /// `-wal` and `-shm` files with the mode of the database file, which is created here
    /// first; files of an older data directory are brought down to 0600.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        private_files(path).map_err(|source| DbError::Private {
            path: path.display().to_string(),
            source,
        })?;
        let conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS objects (
                 resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 rv INTEGER NOT NULL, json BLOB NOT NULL,
                 PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS log (
                 rv INTEGER PRIMARY KEY, type INTEGER NOT NULL, resource TEXT NOT NULL,
                 namespace TEXT NOT NULL, name TEXT NOT NULL, json BLOB NOT NULL, prev BLOB);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(DbError::Schema)?;
        Ok(Db { conn })
    }

    /// The persisted resourceVersion counter.
    pub fn counter(&self) -> Result<u64, DbError> {
        let rv: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'rv'", [], |r| r.get(0))
            .optional()
            .map_err(DbError::Read)?;
        Ok(rv.unwrap_or(0).max(0) as u64)
    }

    pub fn load_objects(&self) -> Result<Vec<ObjectRow>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT resource, namespace, name, rv, json FROM objects")
            .map_err(DbError::Read)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ObjectRow {
                    resource: r.get(0)?,
                    namespace: r.get(1)?,
                    name: r.get(2)?,
                    rv: r.get::<_, i64>(3)? as u64,
                    json: r.get(4)?,
                })
            })
            .map_err(DbError::Read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(DbError::Read)
    }

    /// The newest `limit` log rows, oldest first.
    pub fn load_log(&self, limit: usize) -> Result<Vec<LogRow>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT rv, type, resource, namespace, name, json, prev FROM log
                 ORDER BY rv DESC LIMIT ?1",
            )
            .map_err(DbError::Read)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(LogRow {
                    rv: r.get::<_, i64>(0)? as u64,
                    kind: EventType::from_code(r.get(1)?),
                    resource: r.get(2)?,
                    namespace: r.get(3)?,
                    name: r.get(4)?,
                    json: r.get(5)?,
                    prev: r.get(6)?,
                })
            })
            .map_err(DbError::Read)?;
        let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(DbError::Read)?;
        out.reverse();
        Ok(out)
    }

    /// Persists one change atomically.
    pub fn commit(&mut self, change: &Change<'_>) -> Result<(), DbError> {
        let tx = self.conn.transaction().map_err(DbError::Write)?;
        {
            if change.kind == EventType::Deleted {
                let mut del = tx
                    .prepare_cached(
                        "DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
                    )
                    .map_err(DbError::Write)?;
                del.execute(params![change.resource, change.namespace, change.name])
                    .map_err(DbError::Write)?;
            } else {
                let mut put = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO objects (resource, namespace, name, rv, json)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(DbError::Write)?;
                put.execute(params![
                    change.resource,
                    change.namespace,
                    change.name,
                    change.rv as i64,
                    change.json
                ])
                .map_err(DbError::Write)?;
            }
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO log (rv, type, resource, namespace, name, json, prev)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(DbError::Write)?;
            log.execute(params![
                change.rv as i64,
                change.kind.code(),
                change.resource,
                change.namespace,
                change.name,
                change.json,
                change.prev
            ])
            .map_err(DbError::Write)?;
            let mut counter = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?1)")
                .map_err(DbError::Write)?;
            counter
                .execute([change.rv as i64])
                .map_err(DbError::Write)?;
        }
        tx.commit().map_err(DbError::Write)
    }

    /// Drops log rows at or below `rv`.
    pub fn prune_log(&mut self, rv: u64) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM log WHERE rv <= ?1", [rv as i64])
            .map_err(DbError::Write)?;
        Ok(())
    }

    /// Moves the WAL into the main file (on shutdown).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(DbError::Write)
    }
}
