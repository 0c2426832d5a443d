//! How a storage grant becomes a repository: the datasafed configuration (or the local path of
//! a mount repository) parsed by the engine's own parser, the store opened, and plain files
//! keyed for encryption exactly as the direct `datasafed` keys them.
//!
//! The configuration and the passphrase are secrets: they are held as
//! [`Secret`](cairn_repo::config::Secret) (its `Debug` shows `***`) and never put into an
//! error message, because errors travel to the action container that must not see them.

use cairn_proto::agent::v1::{MountClaim, StorageGrant};
use cairn_repo::config::Secret;
use cairn_repo::dedup::{DedupFiles, InitOptions, Repository};
use cairn_repo::{
    CipherKind, PlainRepo, RepoFiles, StorageConfig, Store, StreamKey, parse_datasafed_config,
};

/// Why a grant's repository cannot be opened. Messages name the repository, never the
/// configuration text (a malformed line may hold a credential).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The grant names a Mount repository's PVC that has not been resolved to a directory.
    #[error(
        "the repository PVC {namespace}/{name} of repository {repo:?} has not been resolved to a directory on this node"
    )]
    UnresolvedClaim {
        /// BackupRepo name.
        repo: String,
        /// The PVC.
        namespace: String,
        name: String,
    },
    /// The Mount repository's PVC could not be resolved to a directory on this node.
    #[error("the repository PVC of repository {repo:?} cannot be reached: {reason}")]
    MountClaim {
        /// BackupRepo name.
        repo: String,
        /// Why (names the PVC and volume, never a credential).
        reason: String,
    },
    /// Neither `datasafed_config` nor `local_path` is set.
    #[error(
        "the storage grant for repository {repo:?} has neither a datasafed configuration nor a local path"
    )]
    NoStorage {
        /// BackupRepo name.
        repo: String,
    },
    /// `datasafed_config` does not parse; only the kind of failure is kept.
    #[error(
        "the datasafed configuration of repository {repo:?} is not valid ({kind}); the BackupRepo's pre-check shows the details"
    )]
    Config {
        /// BackupRepo name.
        repo: String,
        /// The engine's error kind label (`invalid_input`, `unsupported`).
        kind: &'static str,
    },
    /// The store could not be set up from the configuration.
    #[error("the store of repository {repo:?} cannot be opened ({kind})")]
    Store {
        /// BackupRepo name.
        repo: String,
        /// The engine's error kind label.
        kind: &'static str,
    },
    /// The encryption algorithm is not one the engine knows.
    #[error("the encryption algorithm of repository {repo:?} is not usable")]
    Cipher {
        /// BackupRepo name.
        repo: String,
        /// The engine's explanation (names the algorithm, which is not secret).
        #[source]
        source: cairn_repo::Error,
    },
    /// An algorithm without a passphrase.
    #[error(
        "the storage grant for repository {repo:?} sets encryption algorithm {algorithm:?} but no passphrase"
    )]
    MissingPassphrase {
        /// BackupRepo name.
        repo: String,
        /// The algorithm name.
        algorithm: String,
    },
    /// A deduplicating grant where only plain repositories can be opened.
    #[error(
        "repository {repo:?} is a deduplicating repository, which this operation cannot use yet"
    )]
    DedupUnsupported {
        /// BackupRepo name.
        repo: String,
    },
    /// `dedup_repo_root` is set without `dedup_password`.
    #[error(
        "the storage grant for repository {repo:?} names a deduplicating repository but no password"
    )]
    MissingDedupPassword {
        /// BackupRepo name.
        repo: String,
    },
    /// The deduplicating repository could not be opened or created.
    #[error("opening the deduplicating repository /{root} of repository {repo:?}")]
    Dedup {
        /// BackupRepo name.
        repo: String,
        /// Its root inside the store.
        root: String,
        /// The engine's error (a wrong password, a damaged config; never the password).
        #[source]
        source: cairn_repo::Error,
    },
}

/// Everything of a grant needed to open its repository.
#[derive(Debug, Clone)]
pub struct GrantStorage {
    repo_name: String,
    datasafed_config: Secret,
    local_path: String,
    mount_claim: Option<MountClaim>,
    encryption_algorithm: String,
    encryption_passphrase: Secret,
    dedup_repo_root: String,
    dedup_password: Secret,
    /// A deduplicating repository prunes what no snapshot uses after a removal.
    prune_after_removal: bool,
}

impl GrantStorage {
    /// The storage part of a grant.
    pub fn from_grant(grant: &StorageGrant) -> GrantStorage {
        GrantStorage {
            repo_name: grant.repo_name.clone(),
            datasafed_config: Secret::new(grant.datasafed_config.clone()),
            local_path: grant.local_path.clone(),
            mount_claim: grant.mount_claim.clone(),
            encryption_algorithm: grant.encryption_algorithm.clone(),
            encryption_passphrase: Secret::new(grant.encryption_passphrase.clone()),
            dedup_repo_root: grant.dedup_repo_root.clone(),
            dedup_password: Secret::new(grant.dedup_password.clone()),
            prune_after_removal: false,
        }
    }

    /// The same storage, whose deduplicating repository (if any) prunes after each removal, as
    /// `DATASAFED_KOPIA_MAINTENANCE=true` does: deleting a backup releases its chunks.
    pub fn pruning_after_removal(self) -> GrantStorage {
        GrantStorage {
            prune_after_removal: true,
            ..self
        }
    }

    /// The BackupRepo name.
    pub fn repo_name(&self) -> &str {
        &self.repo_name
    }

    /// The Mount repository PVC still to be resolved to a directory (set, and no local path).
    pub fn unresolved_claim(&self) -> Option<&MountClaim> {
        self.mount_claim
            .as_ref()
            .filter(|_| self.local_path.trim().is_empty())
    }

    /// The same storage, reached at a local directory (a resolved Mount repository PVC).
    pub fn with_local_path(&self, dir: &std::path::Path) -> GrantStorage {
        GrantStorage {
            local_path: dir.display().to_string(),
            ..self.clone()
        }
    }

    /// The store configuration: `local_path` wins over the datasafed configuration, as
    /// `DATASAFED_LOCAL_BACKEND_PATH` does for the direct client.
    pub fn storage_config(&self) -> Result<StorageConfig, OpenError> {
        let repo = || self.repo_name.clone();
        if !self.local_path.trim().is_empty() {
            return Ok(StorageConfig::local(self.local_path.trim()));
        }
        if let Some(claim) = &self.mount_claim {
            return Err(OpenError::UnresolvedClaim {
                repo: repo(),
                namespace: claim.namespace.clone(),
                name: claim.name.clone(),
            });
        }
        if self.datasafed_config.expose().trim().is_empty() {
            return Err(OpenError::NoStorage { repo: repo() });
        }
        parse_datasafed_config(self.datasafed_config.expose()).map_err(|e| OpenError::Config {
            repo: repo(),
            kind: e.kind().label(),
        })
    }

    /// The encryption of pushed files, as `settings.rs` of the direct client derives it
    /// (KubeBlocks' `AES-*-CFB` names select AES-256-GCM).
    pub fn encryption(&self) -> Result<Option<StreamKey>, OpenError> {
        let algorithm = self.encryption_algorithm.trim();
        if algorithm.is_empty() {
            return Ok(None);
        }
        let cipher = CipherKind::parse(algorithm).map_err(|source| OpenError::Cipher {
            repo: self.repo_name.clone(),
            source,
        })?;
        if self.encryption_passphrase.expose().trim().is_empty() {
            return Err(OpenError::MissingPassphrase {
                repo: self.repo_name.clone(),
                algorithm: algorithm.to_string(),
            });
        }
        // A CFB name also reads KubeBlocks' CFB files (FORMAT.md §3.3.1).
        Ok(Some(StreamKey {
            legacy_cfb: cairn_repo::codec::legacy_cfb::CfbKeySize::from_algorithm(algorithm),
            ..StreamKey::new(self.encryption_passphrase.clone(), cipher)
        }))
    }

    /// Opens a plain repository without I/O, addressed from its root (request paths are
    /// absolute). A deduplicating grant is refused: its repository must be read to be opened,
    /// which [`GrantStorage::open_files`] does.
    pub fn open(&self) -> Result<RepoFiles, OpenError> {
        if !self.dedup_repo_root.trim().is_empty() {
            return Err(OpenError::DedupUnsupported {
                repo: self.repo_name.clone(),
            });
        }
        let store = self.store()?;
        let encryption = self.encryption()?;
        Ok(RepoFiles::Plain(PlainRepo::new(store, encryption)))
    }

    fn store(&self) -> Result<Store, OpenError> {
        let config = self.storage_config()?;
        Store::open(&config).map_err(|e| OpenError::Store {
            repo: self.repo_name.clone(),
            kind: e.kind().label(),
        })
    }

    /// Opens the repository of either kind, addressed from its root: plain files, or with
    /// `dedup_repo_root` the deduplicating repository there, created on first use as the
    /// direct client's kopia mode does.
    pub async fn open_files(&self) -> Result<RepoFiles, OpenError> {
        let dedup_root = self.dedup_repo_root.trim();
        if dedup_root.is_empty() {
            return self.open();
        }
        let store = self.store()?;
        if self.dedup_password.expose().is_empty() {
            return Err(OpenError::MissingDedupPassword {
                repo: self.repo_name.clone(),
            });
        }
        let dedup_error = |source| OpenError::Dedup {
            repo: self.repo_name.clone(),
            root: dedup_root.trim_start_matches('/').to_string(),
            source,
        };
        let root = cairn_repo::plain::normalize(dedup_root).map_err(dedup_error)?;
        let repository = Repository::open_or_init(
            store.sub(&root),
            &self.dedup_password,
            InitOptions::default(),
        )
        .await
        .map_err(dedup_error)?;
        let files =
            DedupFiles::new(repository, "", self.prune_after_removal).map_err(dedup_error)?;
        Ok(RepoFiles::Dedup(files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> StorageGrant {
        StorageGrant {
            repo_name: "repo-1".into(),
            datasafed_config: "[storage]\ntype = s3\nroot = bucket/prefix\naccess_key_id = AKIA\nsecret_access_key = TOPSECRET\nendpoint = http://127.0.0.1:1\n".into(),
            read_write_prefix: "/ns/b1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn debug_output_never_shows_the_configuration_or_the_passphrase() {
        let mut g = grant();
        g.encryption_algorithm = "AES-256-CFB".into();
        g.encryption_passphrase = "hunter2-passphrase".into();
        let text = format!("{:?}", GrantStorage::from_grant(&g));
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("repo-1"), "{text}");
    }

    #[tokio::test]
    async fn a_malformed_configuration_line_is_not_echoed_in_the_error() {
        let mut g = grant();
        g.datasafed_config = "[storage]\nsecret_access_key: TOPSECRET\n".into();
        let err = GrantStorage::from_grant(&g)
            .open_files()
            .await
            .expect_err("malformed");
        let text = err.to_string();
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(text.contains("\"repo-1\""), "{text}");
        assert!(matches!(err, OpenError::Config { .. }));
    }

    #[test]
    fn local_path_wins_over_the_configuration() {
        let mut g = grant();
        g.local_path = "/mnt/repo".into();
        assert_eq!(
            GrantStorage::from_grant(&g)
                .storage_config()
                .expect("config"),
            StorageConfig::local("/mnt/repo")
        );
    }

    #[tokio::test]
    async fn a_grant_without_storage_is_refused() {
        let g = StorageGrant {
            repo_name: "empty".into(),
            ..Default::default()
        };
        assert!(matches!(
            GrantStorage::from_grant(&g).open_files().await,
            Err(OpenError::NoStorage { .. })
        ));
    }

    #[test]
    fn kubeblocks_cfb_names_select_aes_gcm_and_need_a_passphrase() {
        let mut g = grant();
        g.encryption_algorithm = "AES-128-CFB".into();
        let missing = GrantStorage::from_grant(&g)
            .encryption()
            .expect_err("no passphrase");
        assert!(missing.to_string().contains("AES-128-CFB"), "{missing}");
        g.encryption_passphrase = "pw".into();
        let key = GrantStorage::from_grant(&g)
            .encryption()
            .expect("key")
            .expect("encrypted");
        assert_eq!(key.cipher, CipherKind::Aes256Gcm);
        g.encryption_algorithm = "rot13".into();
        assert!(matches!(
            GrantStorage::from_grant(&g).encryption(),
            Err(OpenError::Cipher { .. })
        ));
    }

    #[tokio::test]
    async fn a_dedup_grant_needs_its_password_and_opens_the_dedup_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = grant();
        g.local_path = dir.path().display().to_string();
        g.dedup_repo_root = "/ns/kopia".into();
        let err = GrantStorage::from_grant(&g)
            .open_files()
            .await
            .expect_err("no password");
        assert!(
            matches!(err, OpenError::MissingDedupPassword { .. }),
            "{err}"
        );
        g.dedup_password = "dedup-pw".into();
        assert!(matches!(
            GrantStorage::from_grant(&g).open(),
            Err(OpenError::DedupUnsupported { .. })
        ));
        let files = GrantStorage::from_grant(&g)
            .open_files()
            .await
            .expect("created on first use");
        assert!(matches!(files, RepoFiles::Dedup(_)));
        g.dedup_password = "wrong-pw".into();
        let err = GrantStorage::from_grant(&g)
            .open_files()
            .await
            .expect_err("wrong password");
        assert!(err.to_string().contains("/ns/kopia"), "{err}");
        assert!(!format!("{err:?}").contains("wrong-pw"), "{err:?}");
    }

    /// Bytes of the files under `dir`, recursively.
    fn stored_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => stored_bytes(&e.path()),
                        _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn deleting_from_a_dedup_repository_releases_its_chunks_only_when_pruning() {
        for prune in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut g = grant();
            g.local_path = dir.path().display().to_string();
            g.dedup_repo_root = "/ns/kopia".into();
            g.dedup_password = "dedup-pw".into();
            let mut storage = GrantStorage::from_grant(&g);
            if prune {
                storage = storage.pruning_after_removal();
            }
            let files = storage.open_files().await.expect("open");
            // Incompressible: the repository compresses what it stores.
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let data: Vec<u8> = (0..4 << 20)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            files
                .put(
                    "/ns/b1/dump",
                    std::io::Cursor::new(data),
                    None,
                    cairn_repo::progress::no_progress(),
                )
                .await
                .expect("push");
            let before = stored_bytes(dir.path());
            assert!(before > 4 << 20, "stored {before} bytes");
            files.remove("/ns/b1", true).await.expect("rm -r");
            let after = stored_bytes(dir.path());
            if prune {
                assert!(after < 1 << 20, "pruned down to {after} bytes of {before}");
            } else {
                assert!(after > 4 << 20, "kept {after} bytes of {before}");
            }
        }
    }
}
