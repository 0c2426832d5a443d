//! Opening and creating a deduplicating repository, its keys, snapshots and blob reads.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;

use super::blobref::{BlobRef, decode_content_list};
use super::config::{FORMAT_VERSION, InitOptions, RepoConfig, RepoOptions};
use super::id::Id;
use super::keys::{KeyFile, MasterKeys};
use super::pack::{BlobType, open_blob, pack_key};
use super::sealed::{self, Kind};
use super::snapshot::{Snapshot, Tree};
use crate::backend::{ObjectInfo, Store};
use crate::config::Secret;
use crate::crypto::KdfParams;
use crate::{Error, ErrorKind, Result};

const CONFIG: &str = "config";

/// An open repository: the store, the master keys, the config and the client's limits.
#[derive(Clone, Debug)]
pub struct Repository {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    keys: Arc<MasterKeys>,
    config: RepoConfig,
    options: RepoOptions,
    key_id: Id,
}

fn key_key(id: &Id) -> String {
    format!("keys/{id}")
}

impl Repository {
    /// Creates a repository: a random master key wrapped by `passphrase`, and the config.
    /// Fails if `store` already holds a repository.
    pub async fn init(
        store: Store,
        passphrase: &Secret,
        options: InitOptions,
    ) -> Result<Repository> {
        if passphrase.is_empty() {
            return Err(Error::invalid("the repository password is empty"));
        }
        if store.head(CONFIG).await?.is_some() {
            return Err(Error::invalid(format!(
                "{} already holds a repository",
                store.describe("")
            )));
        }
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id: Id::random(),
            created: Timestamp::now(),
            cipher: options.cipher,
            chunker: options.chunker,
            pack_size: options.pack_size,
            segment_refs: 2048,
            hook_bits: 7,
            zstd_level: options.zstd_level,
        };
        config.check()?;
        let keys = Arc::new(MasterKeys::generate(options.cipher));
        let key_file = KeyFile::wrap(&keys, passphrase, options.kdf, &options.key_label)?;
        let key_id = Id::random();
        let key_json = serde_json::to_vec_pretty(&key_file)
            .map_err(|e| Error::invalid("encoding the key file").with_source(e))?;
        store.put(&key_key(&key_id), key_json.into()).await?;
        let sealed = sealed::seal(&keys, Kind::Config, CONFIG, &config)?;
        store.put(CONFIG, sealed.into()).await?;
        Ok(Repository {
            inner: Arc::new(Inner {
                store,
                keys,
                config,
                options: RepoOptions::default(),
                key_id,
            }),
        })
    }

    /// Opens the repository, creating it first if the store holds none (datasafed's
    /// behaviour with `DATASAFED_KOPIA_REPO_ROOT`). Two clients racing to create it both end
    /// up with the one whose config landed.
    pub async fn open_or_init(
        store: Store,
        passphrase: &Secret,
        options: InitOptions,
    ) -> Result<Repository> {
        match Repository::open(store.clone(), passphrase).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        match Repository::init(store.clone(), passphrase, options).await {
            Ok(repo) => {
                // Verify that our config is the one in the store (a racing init may have won).
                match Repository::open(store.clone(), passphrase).await {
                    Ok(opened) if opened.config().id == repo.config().id => Ok(repo),
                    _ => {
                        let _ = store.delete(&key_key(&repo.key_id())).await;
                        Repository::open(store, passphrase).await
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                Repository::open(store, passphrase).await
            }
            Err(e) => Err(e),
        }
    }

    /// Opens a repository with a passphrase. A key file that is not a key (a stray file under
    /// `keys/`, a damaged key) is skipped, so one bad entry never hides a good key. When no
    /// key opens the repository the error says why for each: a wrong password is `Crypto`
    /// naming how many keys were tried; a key that the password unwraps but whose master key
    /// does not open `config` (a damaged `config`, or a key file of another repository) is
    /// `Corrupt` naming both objects; skipped files are listed.
    pub async fn open(store: Store, passphrase: &Secret) -> Result<Repository> {
        let config_bytes = match store.get(CONFIG).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::not_found(format!(
                    "there is no repository at {} (no config object; run init first)",
                    store.describe("")
                )));
            }
            Err(e) => return Err(e),
        };
        let listing = list_key_files(&store).await?;
        let mut skipped = listing.problems;
        if listing.keys.is_empty() {
            return Err(Error::corrupt(format!(
                "repository {} has no usable key file under keys/{}",
                store.describe(""),
                problems_suffix(&skipped)
            )));
        }
        let tried = listing.keys.len();
        // Keys the password unwraps but whose master key does not open `config`.
        let mut config_failures = Vec::new();
        for (key_id, file) in listing.keys {
            let name = key_key(&key_id);
            let keys = match file.unwrap(passphrase, &name) {
                Ok(Some(keys)) => keys,
                Ok(None) => continue,
                Err(e) => {
                    skipped.push(e.to_string());
                    continue;
                }
            };
            // A stale key of an interrupted init may open with the passphrase but not the config.
            let config =
                match sealed::open::<RepoConfig>(&keys, Kind::Config, CONFIG, &config_bytes) {
                    Ok(config) => config,
                    Err(e) => {
                        config_failures.push((name, e));
                        continue;
                    }
                };
            config
                .check()
                .map_err(|e| Error::new(e.kind(), format!("config: {e}")))?;
            return Ok(Repository {
                inner: Arc::new(Inner {
                    store,
                    keys: Arc::new(keys),
                    config,
                    options: RepoOptions::default(),
                    key_id,
                }),
            });
        }
        if let Some((name, e)) = config_failures.first() {
            let others = if config_failures.len() > 1 {
                format!(" (and {} more keys)", config_failures.len() - 1)
            } else {
                String::new()
            };
            return Err(Error::corrupt(format!(
                "the password opens key {name}{others}, but its master key does not open config ({e}): \
                 config is damaged, or {name} belongs to another repository{}",
                problems_suffix(&skipped)
            )));
        }
        Err(Error::crypto(format!(
            "wrong password: no key in keys/ matches it (tried {tried} key{}){}",
            if tried == 1 { "" } else { "s" },
            problems_suffix(&skipped)
        )))
    }

    /// The same repository with other client limits.
    pub fn with_options(self, options: RepoOptions) -> Repository {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            store: arc.store.clone(),
            keys: arc.keys.clone(),
            config: arc.config.clone(),
            options: arc.options.clone(),
            key_id: arc.key_id,
        });
        Repository {
            inner: Arc::new(Inner { options, ..inner }),
        }
    }

    /// The store (rooted at the repository).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The config.
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// The client limits.
    pub fn options(&self) -> &RepoOptions {
        &self.inner.options
    }

    /// The master keys.
    pub fn keys(&self) -> &Arc<MasterKeys> {
        &self.inner.keys
    }

    /// The key file the repository was opened with.
    pub fn key_id(&self) -> Id {
        self.inner.key_id
    }

    /// Key files that parse; files under `keys/` that are not key files are skipped (see
    /// [`Repository::key_problems`]).
    pub async fn list_keys(&self) -> Result<Vec<(Id, KeyFile)>> {
        Ok(list_key_files(&self.inner.store).await?.keys)
    }

    /// Ids of every object under `keys/` named by an id, key files that parse or not.
    pub async fn key_ids(&self) -> Result<Vec<Id>> {
        Ok(list_ids(&self.inner.store, "keys")
            .await?
            .ids
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Key files (objects under `keys/` named by an id) that do not parse, one message per
    /// object; stray entries are in [`Repository::stray_objects`].
    pub async fn key_problems(&self) -> Result<Vec<String>> {
        Ok(list_key_files(&self.inner.store).await?.damaged)
    }

    /// Wraps the master key under another passphrase; returns the new key's id.
    pub async fn add_key(&self, passphrase: &Secret, kdf: KdfParams, label: &str) -> Result<Id> {
        if passphrase.is_empty() {
            return Err(Error::invalid("the new password is empty"));
        }
        let file = KeyFile::wrap(&self.inner.keys, passphrase, kdf, label)?;
        let id = Id::random();
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::invalid("encoding the key file").with_source(e))?;
        self.inner.store.put(&key_key(&id), json.into()).await?;
        Ok(id)
    }

    /// Removes a key file. Refuses to remove the last key, and the key this client opened
    /// the repository with (open with another key to remove it).
    pub async fn remove_key(&self, id: &Id) -> Result<()> {
        let keys = self.list_keys().await?;
        if !keys.iter().any(|(k, _)| k == id) {
            // A damaged key file (it never unlocks anything) may always be removed.
            if self.inner.store.head(&key_key(id)).await?.is_some() {
                return self.inner.store.delete(&key_key(id)).await;
            }
            return Err(Error::not_found(format!("key {id} does not exist")));
        }
        if keys.len() == 1 {
            return Err(Error::invalid(
                "refusing to remove the only key: the repository would become unreadable",
            ));
        }
        if *id == self.inner.key_id {
            return Err(Error::invalid(format!(
                "refusing to remove key {} which opened this session; open the repository with another password to remove it",
                id.short()
            )));
        }
        self.inner.store.delete(&key_key(id)).await
    }

    /// Every snapshot, oldest first. A snapshot that cannot be read is an error naming it
    /// (what prune needs: it never deletes data because it could not read a snapshot).
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let (snapshots, mut failures) = self.load_snapshots().await?;
        match failures.pop() {
            Some(e) => Err(e),
            None => Ok(snapshots),
        }
    }

    /// Every snapshot that opens, oldest first, and one error (naming the object) per snapshot
    /// that does not: for listings, where one damaged snapshot must not hide the others.
    pub async fn list_snapshots_lenient(&self) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        self.load_snapshots().await
    }

    async fn load_snapshots(&self) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        let ids = self.snapshot_ids().await?;
        // A snapshot forgotten between list and get is skipped.
        let results: Vec<Result<Snapshot>> = futures::stream::iter(ids)
            .map(|id| async move { self.load_snapshot(&id).await })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut snapshots = Vec::new();
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(s) => snapshots.push(s),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => failures.push(e),
            }
        }
        // Backend failures (the store is down) stay errors of the whole listing.
        if let Some(pos) = failures
            .iter()
            .position(|e| !matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Crypto))
        {
            return Err(failures.swap_remove(pos));
        }
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok((snapshots, failures))
    }

    /// Ids of the snapshot objects. Entries under `snapshots/` not named by an id are not
    /// snapshots and are skipped ([`Repository::stray_objects`] reports them).
    pub async fn snapshot_ids(&self) -> Result<Vec<Id>> {
        Ok(list_ids(&self.inner.store, "snapshots")
            .await?
            .ids
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Objects under the repository's id-named directories (`keys/`, `index/`, `snapshots/`,
    /// `sessions/`, `gc/`, `forward/`, and `data/<xx>/`) that are not named by an id, and
    /// objects at the root other than `config`: not repository objects,
    /// ignored by every command. Each entry is the object's key.
    pub async fn stray_objects(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = match self.inner.store.list_dir("").await {
            Ok(root) => root
                .objects
                .into_iter()
                .map(|o| o.key)
                .filter(|k| k != CONFIG)
                .collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for dir in ["keys", "index", "snapshots", "sessions", "gc", "forward"] {
            out.extend(list_ids(&self.inner.store, dir).await?.strays);
        }
        // Packs live one level deeper: data/<first two hex digits>/<pack id>.
        for info in self.inner.store.list_all("data").await? {
            let is_pack = info
                .key
                .rsplit('/')
                .next()
                .and_then(|name| Id::parse(name).ok().filter(|id| id.to_hex() == name))
                .is_some_and(|id| super::pack::pack_key(&id) == info.key);
            if !is_pack {
                out.push(info.key);
            }
        }
        Ok(out)
    }

    /// The snapshot id a user means: a full id (even of a snapshot that no longer opens), a
    /// unique prefix of an existing snapshot object's id. Does not open the snapshot, so a
    /// damaged snapshot can still be forgotten.
    pub async fn resolve_snapshot_id(&self, spec: &str) -> Result<Id> {
        if let Ok(id) = Id::parse(spec) {
            return match self.inner.store.head(&Snapshot::key(&id)).await? {
                Some(_) => Ok(id),
                None => Err(Error::not_found(format!("snapshot {id} does not exist"))),
            };
        }
        let spec_lower = spec.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lower))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::not_found(format!(
                "no snapshot id starts with {spec:?}"
            ))),
            _ => Err(Error::invalid(format!(
                "{} snapshots start with {spec:?}; give more digits",
                matches.len()
            ))),
        }
    }

    /// Loads one snapshot.
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let key = Snapshot::key(id);
        let bytes = match self.inner.store.get(&key).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::not_found(format!("snapshot {id} does not exist")));
            }
            Err(e) => return Err(e),
        };
        let snapshot: Snapshot = sealed::open(&self.inner.keys, Kind::Snapshot, &key, &bytes)?;
        if snapshot.id != *id {
            return Err(Error::corrupt(format!(
                "{key} holds snapshot {}",
                snapshot.id
            )));
        }
        Ok(snapshot)
    }

    /// Finds a snapshot by id, unique id prefix, or `latest` (newest of all). `latest`
    /// refuses when a snapshot does not open, since that one may be the newest.
    pub async fn find_snapshot(&self, spec: &str) -> Result<Snapshot> {
        if spec == "latest" {
            let (mut snapshots, failures) = self.list_snapshots_lenient().await?;
            if let Some(e) = failures.first() {
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "cannot tell which snapshot is the latest: {e}{}; name a snapshot by id \
                         (`cairnctl repo snapshots` lists those that open), or forget the damaged one",
                        if failures.len() > 1 {
                            format!(" (and {} more snapshots do not open)", failures.len() - 1)
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
            return snapshots
                .pop()
                .ok_or_else(|| Error::not_found("the repository has no snapshots"));
        }
        let id = self.resolve_snapshot_id(spec).await?;
        self.load_snapshot(&id).await
    }

    /// Writes a snapshot object (the last step of a backup).
    pub(crate) async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<u64> {
        let key = Snapshot::key(&snapshot.id);
        let bytes = sealed::seal(&self.inner.keys, Kind::Snapshot, &key, snapshot)?;
        let len = bytes.len() as u64;
        self.inner.store.put(&key, bytes.into()).await?;
        Ok(len)
    }

    /// Reads and opens one blob.
    pub async fn read_blob(&self, kind: BlobType, r: &BlobRef) -> Result<Vec<u8>> {
        let key = pack_key(&r.pack);
        let stored = match self
            .inner
            .store
            .get_range(&key, r.offset as u64..r.end())
            .await
        {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::not_found(format!(
                    "pack {key} is missing (needed for blob {})",
                    r.id.short()
                )));
            }
            Err(e) => return Err(e),
        };
        let aead = self.inner.keys.pack_aead(&r.pack);
        open_blob(&aead, kind, r, &stored)
    }

    /// Reads a content list.
    pub async fn read_content_list(&self, r: &BlobRef) -> Result<Vec<BlobRef>> {
        let plain = self.read_blob(BlobType::Content, r).await?;
        decode_content_list(&plain, &|| {
            format!("{} in pack {}", r.id.short(), pack_key(&r.pack))
        })
    }

    /// Reads a tree.
    pub async fn read_tree(&self, r: &BlobRef) -> Result<Tree> {
        let plain = self.read_blob(BlobType::Tree, r).await?;
        serde_json::from_slice(&plain).map_err(|e| {
            Error::corrupt(format!(
                "tree {} in pack {} is not valid JSON",
                r.id.short(),
                pack_key(&r.pack)
            ))
            .with_source(e)
        })
    }
}

/// Objects of one directory named `<dir>/<id>`, and the keys of everything else there.
pub(crate) struct IdListing {
    /// Objects named by an id.
    pub ids: Vec<(Id, ObjectInfo)>,
    /// Keys of entries that are not repository objects.
    pub strays: Vec<String>,
}

/// Lists `dir`, separating objects named by an id from stray entries.
pub(crate) async fn list_ids(store: &Store, dir: &str) -> Result<IdListing> {
    let mut listing = IdListing {
        ids: Vec::new(),
        strays: Vec::new(),
    };
    for info in store.list_all(dir).await? {
        let rest = info.key.strip_prefix(dir).and_then(|r| r.strip_prefix('/'));
        match rest.and_then(|name| Id::parse(name).ok().filter(|id| id.to_hex() == name)) {
            Some(id) => listing.ids.push((id, info)),
            None => listing.strays.push(info.key),
        }
    }
    Ok(listing)
}

/// Parsed key files, and one message per object under `keys/` that is not one.
struct KeyListing {
    keys: Vec<(Id, KeyFile)>,
    /// Strays and damaged key files.
    problems: Vec<String>,
    /// Damaged key files only.
    damaged: Vec<String>,
}

fn problems_suffix(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!("; skipped: {}", problems.join("; "))
    }
}

async fn list_key_files(store: &Store) -> Result<KeyListing> {
    let listing = list_ids(store, "keys").await?;
    let mut problems: Vec<String> = listing
        .strays
        .iter()
        .map(|key| format!("{key} is not a key file (not named by an id)"))
        .collect();
    let results: Vec<Result<(Id, KeyFile)>> = futures::stream::iter(listing.ids)
        .map(|(id, info)| async move {
            let bytes = store.get(&info.key).await?;
            let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                Error::corrupt(format!("key file {} is not valid JSON: {e}", info.key))
            })?;
            Ok::<_, Error>((id, file))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut keys = Vec::new();
    let mut damaged = Vec::new();
    for result in results {
        match result {
            Ok(key) => keys.push(key),
            // A key deleted between list and get is simply gone.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt) => damaged.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    keys.sort_by_key(|(id, _)| *id);
    damaged.sort();
    problems.extend(damaged.iter().cloned());
    Ok(KeyListing {
        keys,
        problems,
        damaged,
    })
}
