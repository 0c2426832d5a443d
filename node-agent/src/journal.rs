//! The agent's journal: a crash-safe record of every action id it accepted, so none runs twice.
//!
//! PROTOCOL.md §2.3.2: an action is written and fsynced *before* it starts and again when it
//! ends; an `Assign` for a journaled id is never run again, even after a `kill -9`.
//!
//! # Format
//! `<state-dir>/journal` is a JSON-lines file, one [`Record`] per line, appended and fsynced
//! (`fdatasync`) before the call returns. Actions and states are stored as base64 protobuf, so
//! fields added to the proto later survive a round trip. Compaction rewrites the live entries
//! to `journal.compact`, fsyncs it, renames it over `journal` and fsyncs the directory, so a
//! crash leaves either the old or the new file.
//!
//! Why not SQLite: the journal holds a few hundred small entries written by one task, in order;
//! an append-only text file gives the same crash safety with an `fsync` per record, stays
//! readable with `cat`/`jq` during an incident, and needs no C build in the agent.
//!
//! # Crash safety
//! A crash mid-append leaves a torn last line; opening ignores and truncates invalid lines at
//! the end of the file (nothing valid after them). An invalid line *followed by* valid ones is
//! not a torn write but damage, and opening fails naming the line rather than guessing (a
//! guess could run an action twice).
//!
//! # Retention
//! A running action keeps its full `Action` (the runner needs it to re-adopt the action after
//! a restart; this includes storage secrets, so the file is 0600 in a 0700 directory). Once
//! finished only the `ActionState` is kept, and compaction drops the `Action`. Acknowledged
//! entries stay as tombstones for [`ACKED_RETENTION`] so a late duplicate `Assign` is still
//! recognised, then compaction drops them: by then the owner's status shows the action
//! finished and the control plane never assigns it again.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn_proto::agent::v1::{Action, ActionPhase, ActionState};
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use serde::{Deserialize, Serialize};

/// File name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "journal";
/// How long an acknowledged id is remembered after its ack.
pub const ACKED_RETENTION: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Compaction runs when the file has grown by this much since it was last compacted (finished
/// actions keep their full `Action`, job JSON included, until compaction drops it).
pub const COMPACT_AFTER_GROWTH: u64 = 4 << 20;
/// How often expired acknowledged entries are looked for (compaction drops them).
const EXPIRY_CHECK_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// A failure of the journal. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The state directory could not be created.
    #[error("creating the state directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Opening, reading, writing, syncing or renaming failed.
    #[error("{doing} {path}")]
    Io {
        /// What was being done ("appending to", "reading", ...).
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line in the middle of the file is not a record.
    #[error(
        "journal {path} is damaged at line {line}: {reason}; move it aside to start afresh (actions in it may then run again)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why the line was rejected.
        reason: String,
    },
    /// `finish` for an id that was never accepted.
    #[error("action {action_id:?} finished but was never accepted in the journal")]
    NotAccepted {
        /// The action.
        action_id: String,
    },
    /// The task writing the journal was cancelled (the runtime is shutting down).
    #[error("the journal is unavailable: the agent is shutting down")]
    Unavailable,
    /// A previous write failed and the file could not be restored: refuse further writes.
    #[error("journal {path} is unusable after a failed write; restart the agent")]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

/// One line of the journal file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// The action was accepted; it starts after this record is durable.
    Accepted {
        /// Action id.
        id: String,
        /// When it was accepted.
        at: Timestamp,
        /// The `Action`, base64 protobuf; absent after compaction of a finished action.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    /// The action ended.
    Finished {
        /// Action id.
        id: String,
        /// When the record was written.
        at: Timestamp,
        /// The final `ActionState`, base64 protobuf.
        state: String,
    },
    /// The control plane acknowledged the result.
    Acked {
        /// Action id.
        id: String,
        /// When the ack arrived.
        at: Timestamp,
    },
}

/// Where an action stands in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    /// Accepted, not finished.
    Running,
    /// Finished; the result was not acknowledged yet.
    Finished,
    /// Finished and acknowledged.
    Acked,
}

/// What the journal knows about one action id.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// When the action was accepted.
    pub accepted_at: Timestamp,
    /// The action, while it runs.
    pub action: Option<Action>,
    /// The final state, once finished.
    pub result: Option<ActionState>,
    /// When the result was acknowledged.
    pub acked_at: Option<Timestamp>,
}

impl Entry {
    /// Where the action stands.
    pub fn status(&self) -> EntryStatus {
        match (&self.result, self.acked_at) {
            (None, _) => EntryStatus::Running,
            (Some(_), None) => EntryStatus::Finished,
            (Some(_), Some(_)) => EntryStatus::Acked,
        }
    }
}

/// The outcome of [`Journal::accept`].
#[derive(Clone, Debug, PartialEq)]
pub enum Acceptance {
    /// Newly journaled: start it.
    New,
    /// Already journaled: do not start it again.
    Known(Box<Entry>),
}

/// The journal of one agent. One writer: the session task owns it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    compacted_len: u64,
    expiry_checked_at: Timestamp,
    entries: BTreeMap<String, Entry>,
    poisoned: bool,
}

impl Journal {
    /// Opens (or creates) `<state_dir>/journal`, replays it, drops a torn last line, and
    /// compacts it when it has grown.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| JournalError::CreateDir {
                path: state_dir.to_path_buf(),
                source,
            })?;
        let path = state_dir.join(JOURNAL_FILE);
        let io_err = |doing: &'static str| {
            let path = path.clone();
            move |source| JournalError::Io {
                doing,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("opening"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("reading"))?;
        let replay = replay(&bytes).map_err(|(line, reason)| JournalError::Corrupt {
            path: path.clone(),
            line,
            reason,
        })?;
        if replay.valid_len < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() as u64 - replay.valid_len,
                "journal ends with an incomplete record (a crash during a write); dropping it"
            );
            file.set_len(replay.valid_len)
                .map_err(io_err("truncating"))?;
            file.sync_all().map_err(io_err("syncing"))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err("seeking"))?;
        let mut journal = Journal {
            path,
            file,
            len: replay.valid_len,
            compacted_len: 0,
            expiry_checked_at: Timestamp::UNIX_EPOCH,
            entries: replay.entries,
            poisoned: false,
        };
        let now = Timestamp::now();
        if journal.needs_compaction(now) {
            journal.compact(now)?;
        }
        Ok(journal)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the journal knows about `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every entry, by id.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Records `action` as accepted (durably) unless its id is already known.
    pub fn accept(&mut self, action: &Action, now: Timestamp) -> Result<Acceptance, JournalError> {
        if let Some(entry) = self.entries.get(&action.id) {
            return Ok(Acceptance::Known(Box::new(entry.clone())));
        }
        self.append(&Record::Accepted {
            id: action.id.clone(),
            at: now,
            action: Some(BASE64.encode(action.encode_to_vec())),
        })?;
        self.entries.insert(
            action.id.clone(),
            Entry {
                accepted_at: now,
                action: Some(action.clone()),
                result: None,
                acked_at: None,
            },
        );
        Ok(Acceptance::New)
    }

    /// Records the final `state` of an accepted action (durably). Returns `false` and keeps
    /// the first result when the action had finished already.
    pub fn finish(&mut self, state: &ActionState, now: Timestamp) -> Result<bool, JournalError> {
        match self.entries.get(&state.action_id) {
            None => {
                return Err(JournalError::NotAccepted {
                    action_id: state.action_id.clone(),
                });
            }
            Some(entry) if entry.result.is_some() => return Ok(false),
            Some(_) => {}
        }
        self.append(&Record::Finished {
            id: state.action_id.clone(),
            at: now,
            state: BASE64.encode(state.encode_to_vec()),
        })?;
        if let Some(entry) = self.entries.get_mut(&state.action_id) {
            entry.result = Some(state.clone());
        }
        Ok(true)
    }

    /// Records that the control plane acknowledged the result of `id`. Returns `false` (and
    /// writes nothing) for an unknown, running or already acknowledged id.
    pub fn ack(&mut self, id: &str, now: Timestamp) -> Result<bool, JournalError> {
        if self.entries.get(id).map(Entry::status) != Some(EntryStatus::Finished) {
            return Ok(false);
        }
        self.append(&Record::Acked {
            id: id.to_owned(),
            at: now,
        })?;
        if let Some(entry) = self.entries.get_mut(id) {
            entry.acked_at = Some(now);
        }
        if self.needs_compaction(now) {
            self.compact(now)?;
        }
        Ok(true)
    }

    /// Actions accepted and not finished (a restarted agent re-adopts them).
    pub fn running(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.status() == EntryStatus::Running)
            .map(|(id, entry)| (id.as_str(), entry))
    }

    /// Final states not yet acknowledged (resent until acknowledged).
    pub fn unacked_results(&self) -> impl Iterator<Item = &ActionState> {
        self.entries
            .values()
            .filter(|entry| entry.status() == EntryStatus::Finished)
            .filter_map(|entry| entry.result.as_ref())
    }

    /// The `ActionState`s for `Hello`: every running action as `RUNNING` and every
    /// unacknowledged result.
    pub fn hello_states(&self) -> Vec<ActionState> {
        let mut states = Vec::new();
        for (id, entry) in &self.entries {
            match entry.status() {
                EntryStatus::Running => states.push(ActionState {
                    action_id: id.clone(),
                    phase: ActionPhase::Running as i32,
                    started_at: entry.accepted_at.to_string(),
                    exit_code: -1,
                    owner: entry.action.as_ref().and_then(|a| a.owner.clone()),
                    ..ActionState::default()
                }),
                EntryStatus::Finished => states.extend(entry.result.clone()),
                EntryStatus::Acked => {}
            }
        }
        states
    }

    /// Rewrites the file with only what is live: running actions, unacknowledged results and
    /// acknowledged ids younger than [`ACKED_RETENTION`].
    pub fn compact(&mut self, now: Timestamp) -> Result<(), JournalError> {
        self.check_usable()?;
        self.entries.retain(|_, entry| {
            entry
                .acked_at
                .is_none_or(|acked| acked + ACKED_RETENTION > now)
        });
        let mut records = Vec::new();
        let mut ordered: Vec<(&String, &Entry)> = self.entries.iter().collect();
        ordered.sort_by_key(|(id, entry)| (entry.accepted_at, (*id).clone()));
        for (id, entry) in ordered {
            let running = entry.result.is_none();
            records.push(Record::Accepted {
                id: id.clone(),
                at: entry.accepted_at,
                action: entry
                    .action
                    .as_ref()
                    .filter(|_| running)
                    .map(|a| BASE64.encode(a.encode_to_vec())),
            });
            if let Some(result) = &entry.result {
                records.push(Record::Finished {
                    id: id.clone(),
                    at: now,
                    state: BASE64.encode(result.encode_to_vec()),
                });
            }
            if let Some(at) = entry.acked_at {
                records.push(Record::Acked { id: id.clone(), at });
            }
        }
        for entry in self.entries.values_mut() {
            if entry.result.is_some() {
                entry.action = None;
            }
        }
        let mut text = String::new();
        for record in &records {
            text.push_str(&record_line(record));
        }
        let tmp = self.path.with_extension("compact");
        let io_err = |doing: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io {
                doing,
                path,
                source,
            }
        };
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        out.write_all(text.as_bytes())
            .map_err(io_err("writing", &tmp))?;
        out.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("replacing", &self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("syncing", dir))?;
        }
        // `out` is the file now at `self.path`; reopen for appending so the handle and the
        // name agree.
        drop(out);
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(io_err("reopening", &self.path))?;
        self.len = text.len() as u64;
        self.compacted_len = self.len;
        self.expiry_checked_at = now;
        Ok(())
    }

    /// Whether the file grew by [`COMPACT_AFTER_GROWTH`] since the last compaction, or an
    /// acknowledged entry has outlived [`ACKED_RETENTION`] (checked at most hourly).
    fn needs_compaction(&mut self, now: Timestamp) -> bool {
        if self.len > self.compacted_len + COMPACT_AFTER_GROWTH {
            return true;
        }
        if now < self.expiry_checked_at + EXPIRY_CHECK_EVERY {
            return false;
        }
        self.expiry_checked_at = now;
        self.entries.values().any(|entry| {
            entry
                .acked_at
                .is_some_and(|acked| acked + ACKED_RETENTION <= now)
        })
    }

    fn check_usable(&self) -> Result<(), JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.check_usable()?;
        let line = record_line(record);
        let result = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Remove whatever part of the line reached the file, so that the next append
                // does not follow a torn line (which a later open would call damage).
                if self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_all())
                    .is_err()
                {
                    self.poisoned = true;
                }
                Err(JournalError::Io {
                    doing: "appending to",
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

fn record_line(record: &Record) -> String {
    // Serialising a plain enum of strings and timestamps cannot fail.
    let mut line = serde_json::to_string(record).unwrap_or_default();
    line.push('\n');
    line
}

struct Replay {
    entries: BTreeMap<String, Entry>,
    valid_len: u64,
}

/// Replays a journal's bytes; `Err((line, reason))` for damage before the last valid record.
fn replay(bytes: &[u8]) -> Result<Replay, (usize, String)> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut valid_len = 0u64;
    let mut first_invalid: Option<(usize, String)> = None;
    let mut offset = 0usize;
    for (index, chunk) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        offset += chunk.len();
        let complete = chunk.ends_with(b"\n");
        let parsed = if complete {
            parse_record(&chunk[..chunk.len() - 1])
        } else {
            Err("incomplete last line".to_owned())
        };
        match parsed {
            Ok(record) => {
                if let Some(invalid) = first_invalid.take() {
                    return Err(invalid);
                }
                apply(&mut entries, record).map_err(|reason| (line_no, reason))?;
                valid_len = offset as u64;
            }
            Err(reason) => {
                first_invalid.get_or_insert((line_no, reason));
            }
        }
    }
    Ok(Replay { entries, valid_len })
}

fn parse_record(line: &[u8]) -> Result<Record, String> {
    serde_json::from_slice::<Record>(line).map_err(|err| err.to_string())
}

fn apply(entries: &mut BTreeMap<String, Entry>, record: Record) -> Result<(), String> {
    match record {
        Record::Accepted { id, at, action } => {
            let action = action
                .map(|b64| decode::<Action>(&b64).map_err(|e| format!("action of {id:?}: {e}")))
                .transpose()?;
            entries.entry(id).or_insert(Entry {
                accepted_at: at,
                action,
                result: None,
                acked_at: None,
            });
        }
        Record::Finished { id, at, state } => {
            let state =
                decode::<ActionState>(&state).map_err(|e| format!("state of {id:?}: {e}"))?;
            let entry = entries.entry(id).or_insert(Entry {
                accepted_at: at,
                action: None,
                result: None,
                acked_at: None,
            });
            if entry.result.is_none() {
                entry.result = Some(state);
            }
        }
        Record::Acked { id, at } => {
            if let Some(entry) = entries.get_mut(&id)
                && entry.result.is_some()
            {
                entry.acked_at.get_or_insert(at);
            }
        }
    }
    Ok(())
}

fn decode<M: prost::Message + Default>(b64: &str) -> Result<M, String> {
    let bytes = BASE64.decode(b64).map_err(|e| e.to_string())?;
    M::decode(bytes.as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::agent::v1::{JobAction, ObjectRef, StorageGrant, action};
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn action(id: &str) -> Action {
        Action {
            id: id.to_owned(),
            name: "dp-backup-0".to_owned(),
            owner: Some(ObjectRef {
                kind: "Backup".into(),
                name: "b1".into(),
                uid: "u1".into(),
                ..ObjectRef::default()
            }),
            kind: Some(action::Kind::Job(JobAction {
                job_json: "{}".into(),
                storage: Some(StorageGrant {
                    repo_name: "r".into(),
                    ..StorageGrant::default()
                }),
                ..JobAction::default()
            })),
            ..Action::default()
        }
    }

    fn done(id: &str, phase: ActionPhase) -> ActionState {
        ActionState {
            action_id: id.to_owned(),
            phase: phase as i32,
            exit_code: 0,
            bytes_done: 7,
            ..ActionState::default()
        }
    }

    /// `secs` after this test process started (recent, so the retention never expires it).
    fn t(secs: i64) -> Timestamp {
        static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| Timestamp::now().as_second());
        Timestamp::from_second(base + secs).unwrap()
    }

    #[test]
    fn an_accepted_id_is_known_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.accept(&action("a"), t(0)).unwrap(), Acceptance::New);
        drop(journal);
        let mut journal = Journal::open(dir.path()).unwrap();
        match journal.accept(&action("a"), t(1)).unwrap() {
            Acceptance::Known(entry) => {
                assert_eq!(entry.status(), EntryStatus::Running);
                assert_eq!(entry.action.unwrap(), action("a"));
                assert_eq!(entry.accepted_at, t(0));
            }
            Acceptance::New => panic!("accepted twice"),
        }
        assert_eq!(journal.running().count(), 1);
    }

    #[test]
    fn hello_lists_running_as_running_and_unacked_results_but_not_acked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        for id in ["run", "fin", "ack"] {
            journal.accept(&action(id), t(0)).unwrap();
        }
        journal
            .finish(&done("fin", ActionPhase::Failed), t(1))
            .unwrap();
        journal
            .finish(&done("ack", ActionPhase::Succeeded), t(1))
            .unwrap();
        assert!(journal.ack("ack", t(2)).unwrap());
        let hello = journal.hello_states();
        let by_id: HashMap<&str, &ActionState> =
            hello.iter().map(|s| (s.action_id.as_str(), s)).collect();
        assert_eq!(by_id.len(), 2);
        assert_eq!(by_id["run"].phase, ActionPhase::Running as i32);
        assert_eq!(by_id["run"].owner.as_ref().unwrap().name, "b1");
        assert_eq!(by_id["run"].started_at, t(0).to_string());
        assert_eq!(by_id["fin"].phase, ActionPhase::Failed as i32);
    }

    #[test]
    fn finishing_twice_keeps_the_first_result_and_unknown_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.accept(&action("a"), t(0)).unwrap();
        assert!(
            journal
                .finish(&done("a", ActionPhase::Succeeded), t(1))
                .unwrap()
        );
        assert!(
            !journal
                .finish(&done("a", ActionPhase::Failed), t(2))
                .unwrap()
        );
        assert_eq!(
            journal.get("a").unwrap().result.as_ref().unwrap().phase,
            ActionPhase::Succeeded as i32
        );
        let err = journal
            .finish(&done("zz", ActionPhase::Failed), t(2))
            .unwrap_err();
        assert!(matches!(err, JournalError::NotAccepted { .. }), "{err}");
        assert!(!journal.ack("zz", t(3)).unwrap());
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_the_journal_stays_writable() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.accept(&action("a"), t(0)).unwrap();
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"op":"accepted","id":"b","at":"2027-01"#)
            .unwrap();
        drop(file);
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(journal.get("b").is_none());
        assert_eq!(journal.accept(&action("b"), t(1)).unwrap(), Acceptance::New);
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.entries().len(), 2);
    }

    #[test]
    fn zero_filled_tail_after_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.accept(&action("a"), t(0)).unwrap();
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 64]).unwrap();
        file.write_all(b"\n\0\0\n").unwrap();
        drop(file);
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.entries().len(), 1);
        assert!(fs::read(&path).unwrap().ends_with(b"}\n"));
    }

    #[test]
    fn damage_before_valid_records_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.accept(&action("a"), t(0)).unwrap();
        journal.accept(&action("b"), t(0)).unwrap();
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let text = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(1, "garbage");
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        match &err {
            JournalError::Corrupt { line, .. } => assert_eq!(*line, 2),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn compaction_drops_old_acks_and_finished_actions_but_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        for id in ["old", "new", "fin", "run"] {
            journal.accept(&action(id), t(0)).unwrap();
        }
        for id in ["old", "new", "fin"] {
            journal
                .finish(&done(id, ActionPhase::Succeeded), t(1))
                .unwrap();
        }
        journal.ack("old", t(2)).unwrap();
        let later = t(2) + ACKED_RETENTION + SignedDuration::from_secs(1);
        journal.ack("new", later).unwrap();
        journal.compact(later).unwrap();
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        let ids: BTreeSet<&str> = journal.entries().keys().map(String::as_str).collect();
        assert_eq!(ids, BTreeSet::from(["new", "fin", "run"]));
        assert!(
            journal.get("fin").unwrap().action.is_none(),
            "finished action kept its secrets"
        );
        assert_eq!(
            journal.get("run").unwrap().action.as_ref().unwrap(),
            &action("run")
        );
        assert_eq!(journal.get("new").unwrap().status(), EntryStatus::Acked);
        let text = fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(text.lines().count(), 3 + 2 + 1);
    }

    #[test]
    fn acks_older_than_the_retention_are_dropped_when_the_journal_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        let long_ago = Timestamp::now() - ACKED_RETENTION - SignedDuration::from_hours(1);
        let recently = Timestamp::now() - SignedDuration::from_hours(1);
        for (id, at) in [("old", long_ago), ("recent", recently)] {
            journal.accept(&action(id), at).unwrap();
            journal
                .finish(&done(id, ActionPhase::Succeeded), at)
                .unwrap();
            journal.ack(id, at).unwrap();
        }
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        assert!(journal.get("old").is_none());
        assert_eq!(journal.get("recent").unwrap().status(), EntryStatus::Acked);
    }

    #[test]
    fn a_journal_grown_by_finished_actions_is_compacted_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        let big = |id: &str| {
            let mut a = action(id);
            a.kind = Some(action::Kind::Job(JobAction {
                job_json: "x".repeat(600 << 10),
                ..JobAction::default()
            }));
            a
        };
        for i in 0..8 {
            let id = format!("big-{i}");
            journal.accept(&big(&id), t(0)).unwrap();
            journal
                .finish(&done(&id, ActionPhase::Succeeded), t(1))
                .unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let before = fs::metadata(&path).unwrap().len();
        assert!(before > COMPACT_AFTER_GROWTH, "{before}");
        journal.ack("big-0", t(2)).unwrap();
        let after = fs::metadata(&path).unwrap().len();
        assert!(after < 16 << 10, "not compacted: {after} bytes");
        assert_eq!(journal.entries().len(), 8);
    }

    #[test]
    fn the_journal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut journal = Journal::open(&state).unwrap();
        journal.accept(&action("a"), t(0)).unwrap();
        journal.compact(t(1)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state.join(JOURNAL_FILE)), 0o600);
        assert_eq!(mode(&state), 0o700);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Accept(u8),
        Finish(u8, bool),
        Ack(u8),
        Compact,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8).prop_map(Op::Accept),
            3 => ((0u8..8), any::<bool>()).prop_map(|(i, ok)| Op::Finish(i, ok)),
            2 => (0u8..8).prop_map(Op::Ack),
            1 => Just(Op::Compact),
            1 => Just(Op::Reopen),
        ]
    }

    /// The model: id -> (finished phase, acked).
    type Model = BTreeMap<String, (Option<i32>, bool)>;

    fn apply_op(journal: &mut Journal, model: &mut Model, op: &Op, now: Timestamp) {
        match op {
            Op::Accept(i) => {
                let id = format!("id-{i}");
                let outcome = journal.accept(&action(&id), now).unwrap();
                assert_eq!(outcome == Acceptance::New, !model.contains_key(&id), "{id}");
                model.entry(id).or_insert((None, false));
            }
            Op::Finish(i, ok) => {
                let id = format!("id-{i}");
                let phase = if *ok {
                    ActionPhase::Succeeded
                } else {
                    ActionPhase::Failed
                };
                match model.get_mut(&id) {
                    None => assert!(journal.finish(&done(&id, phase), now).is_err()),
                    Some((result, _)) => {
                        let fresh = journal.finish(&done(&id, phase), now).unwrap();
                        assert_eq!(fresh, result.is_none());
                        result.get_or_insert(phase as i32);
                    }
                }
            }
            Op::Ack(i) => {
                let id = format!("id-{i}");
                let acked = journal.ack(&id, now).unwrap();
                let expected = matches!(model.get(&id), Some((Some(_), false)));
                assert_eq!(acked, expected, "{id}");
                if let Some(entry) = model.get_mut(&id).filter(|e| e.0.is_some()) {
                    entry.1 = true;
                }
            }
            Op::Compact => journal.compact(now).unwrap(),
            Op::Reopen => {}
        }
    }

    fn assert_matches(journal: &Journal, model: &Model) {
        let seen: Model = journal
            .entries()
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    (e.result.as_ref().map(|r| r.phase), e.acked_at.is_some()),
                )
            })
            .collect();
        assert_eq!(&seen, model);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn replaying_the_file_gives_back_every_acknowledged_step(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::open(dir.path()).unwrap();
            let mut model = Model::new();
            for (step, op) in ops.iter().enumerate() {
                apply_op(&mut journal, &mut model, op, t(step as i64));
                if matches!(op, Op::Reopen) {
                    journal = Journal::open(dir.path()).unwrap();
                }
                assert_matches(&journal, &model);
            }
            drop(journal);
            assert_matches(&Journal::open(dir.path()).unwrap(), &model);
        }

        #[test]
        fn a_crash_in_the_middle_of_a_write_loses_only_that_write(
            ops in proptest::collection::vec(op(), 0..20),
            torn in 0u8..8,
            cut in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::open(dir.path()).unwrap();
            let mut model = Model::new();
            for (step, op) in ops.iter().enumerate() {
                apply_op(&mut journal, &mut model, op, t(step as i64));
            }
            drop(journal);
            // The write that was cut short: a prefix of one more record, without its newline.
            let line = record_line(&Record::Accepted {
                id: format!("id-{torn}-torn"),
                at: t(99),
                action: Some(BASE64.encode(action("x").encode_to_vec())),
            });
            let keep = ((line.len() - 1) as f64 * cut) as usize;
            let path = dir.path().join(JOURNAL_FILE);
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(&line.as_bytes()[..keep]).unwrap();
            drop(file);

            let mut journal = Journal::open(dir.path()).unwrap();
            assert_matches(&journal, &model);
            // Every id accepted before the crash is still refused a second start.
            for id in model.keys() {
                let known = matches!(journal.accept(&action(id), t(100)).unwrap(), Acceptance::Known(_));
                prop_assert!(known, "{} would run twice", id);
            }
            // And the journal keeps working after the repair.
            journal.accept(&action("after"), t(101)).unwrap();
            drop(journal);
            prop_assert!(Journal::open(dir.path()).unwrap().get("after").is_some());
        }
    }
}
