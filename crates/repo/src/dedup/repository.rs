//! Opening and creating a deduplicating repository, its keys, snapshots and blob reads.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;

use super::blobref::{BlobRef, decode_content_list};
use super::config::{FORMAT_VERSION, InitOptions, RepoConfig, RepoOptions};
use super::id::Id;
use super::keys::{KeyFile, MasterKeys};
use super::pack::{BlobType, open_blob, pack_key};
use super::sealed::{self, Kind};
use super::snapshot::{Snapshot, Tree};
use crate::backend::Store;
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

    /// Opens a repository with a passphrase; a wrong passphrase is a `Crypto` error naming
    /// how many keys were tried.
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
        let key_files = list_key_files(&store).await?;
        if key_files.is_empty() {
            return Err(Error::corrupt(format!(
                "repository {} has no key files under keys/",
                store.describe("")
            )));
        }
        let tried = key_files.len();
        for (key_id, file) in key_files {
            let Some(keys) = file.unwrap(passphrase, &key_key(&key_id))? else {
                continue;
            };
            // A stale key of an interrupted init may open with the passphrase but not the config.
            let Ok(config) = sealed::open::<RepoConfig>(&keys, Kind::Config, CONFIG, &config_bytes)
            else {
                continue;
            };
            config.check()?;
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
        Err(Error::crypto(format!(
            "wrong password: no key in keys/ matches it (tried {tried} key{})",
            if tried == 1 { "" } else { "s" }
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

    /// Key files.
    pub async fn list_keys(&self) -> Result<Vec<(Id, KeyFile)>> {
        list_key_files(&self.inner.store).await
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

    /// Every snapshot, oldest first. A snapshot that cannot be read is an error naming it.
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let ids = self.snapshot_ids().await?;
        // A snapshot forgotten between list and get is skipped; any other failure is an error.
        let mut snapshots: Vec<Snapshot> = futures::stream::iter(ids)
            .map(|id| async move {
                match self.load_snapshot(&id).await {
                    Ok(s) => Ok(Some(s)),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .try_filter_map(|s| async move { Ok(s) })
            .try_collect()
            .await?;
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(snapshots)
    }

    /// Ids of the snapshot objects.
    pub async fn snapshot_ids(&self) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        for info in self.inner.store.list_all("snapshots").await? {
            let name = info.key.rsplit('/').next().unwrap_or("");
            ids.push(
                Id::parse(name)
                    .map_err(|_| Error::corrupt(format!("{} is not named by an id", info.key)))?,
            );
        }
        Ok(ids)
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

    /// Finds a snapshot by id, unique id prefix, or `latest` (newest of all).
    pub async fn find_snapshot(&self, spec: &str) -> Result<Snapshot> {
        if spec == "latest" {
            return self
                .list_snapshots()
                .await?
                .pop()
                .ok_or_else(|| Error::not_found("the repository has no snapshots"));
        }
        if let Ok(id) = Id::parse(spec) {
            return self.load_snapshot(&id).await;
        }
        let spec_lower = spec.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lower))
            .collect();
        match matches.as_slice() {
            [one] => self.load_snapshot(one).await,
            [] => Err(Error::not_found(format!(
                "no snapshot id starts with {spec:?}"
            ))),
            _ => Err(Error::invalid(format!(
                "{} snapshots start with {spec:?}; give more digits",
                matches.len()
            ))),
        }
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

async fn list_key_files(store: &Store) -> Result<Vec<(Id, KeyFile)>> {
    let infos = store.list_all("keys").await?;
    futures::stream::iter(infos)
        .map(|info| async move {
            let id = Id::parse(info.key.rsplit('/').next().unwrap_or(""))
                .map_err(|_| Error::corrupt(format!("{} is not named by an id", info.key)))?;
            let bytes = store.get(&info.key).await?;
            let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                Error::corrupt(format!("key file {} is not valid JSON", info.key)).with_source(e)
            })?;
            Ok::<_, Error>((id, file))
        })
        .buffer_unordered(8)
        .try_collect()
        .await
}
