//! Where operations go, from the config file and the KubeBlocks environment contract
//! (ARCHITECTURE.md §K5.6, docs/FORMAT.md §2.2).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_repo::config::Secret;
use cairn_repo::{CipherKind, StorageConfig, StreamKey, parse_datasafed_config};

/// The environment variables datasafed reads.
pub mod env {
    /// Replaces the config with a local directory (Mount repositories).
    pub const LOCAL_BACKEND_PATH: &str = "DATASAFED_LOCAL_BACKEND_PATH";
    /// Prefix of every remote path.
    pub const BACKEND_BASE_PATH: &str = "DATASAFED_BACKEND_BASE_PATH";
    /// Encrypt plain files (KubeBlocks names AES-*-CFB are accepted).
    pub const ENCRYPTION_ALGORITHM: &str = "DATASAFED_ENCRYPTION_ALGORITHM";
    /// The encryption passphrase (mandatory with the algorithm).
    pub const ENCRYPTION_PASS_PHRASE: &str = "DATASAFED_ENCRYPTION_PASS_PHRASE";
    /// Selects the deduplicating repository rooted at this path.
    pub const KOPIA_REPO_ROOT: &str = "DATASAFED_KOPIA_REPO_ROOT";
    /// The deduplicating repository's password.
    pub const KOPIA_PASSWORD: &str = "DATASAFED_KOPIA_PASSWORD";
    /// Run garbage collection after `rm`.
    pub const KOPIA_MAINTENANCE: &str = "DATASAFED_KOPIA_MAINTENANCE";
}

/// Which kind of repository the operations address.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Plain files, optionally encrypted.
    Plain {
        /// Encryption of plain files.
        encryption: Option<StreamKey>,
    },
    /// The deduplicating repository at `root` (inside the base path's store).
    Dedup {
        /// Repository root, relative to the storage root.
        root: String,
        /// Its password.
        password: Secret,
        /// Garbage-collect after `rm`.
        maintenance: bool,
    },
}

/// Everything a datasafed invocation needs to reach storage.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store.
    pub storage: StorageConfig,
    /// Where the store configuration came from (for `getconf`).
    pub storage_source: String,
    /// Prefix of every remote path (normalised, may be empty).
    pub base_path: String,
    /// Plain or dedup.
    pub mode: Mode,
}

/// Resolves settings from the `-c` file and an environment lookup.
pub fn resolve(config: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (storage, storage_source) = match get(env::LOCAL_BACKEND_PATH) {
        Some(path) => {
            let root = PathBuf::from(&path);
            if !root.is_dir() {
                bail!(
                    "{} = {path:?} is not an existing directory",
                    env::LOCAL_BACKEND_PATH
                );
            }
            (
                StorageConfig::local(root),
                format!("{} = {path}", env::LOCAL_BACKEND_PATH),
            )
        }
        None => {
            let text = std::fs::read_to_string(config)
                .with_context(|| format!("reading datasafed config {}", config.display()))?;
            let storage = parse_datasafed_config(&text)
                .with_context(|| format!("parsing datasafed config {}", config.display()))?;
            (storage, config.display().to_string())
        }
    };
    let base_path = cairn_repo::plain::normalize(&get(env::BACKEND_BASE_PATH).unwrap_or_default())
        .with_context(|| format!("reading {}", env::BACKEND_BASE_PATH))?;
    let mode = match get(env::KOPIA_REPO_ROOT) {
        Some(root) => {
            let password = get(env::KOPIA_PASSWORD).with_context(|| {
                format!(
                    "{} is set but {} is empty",
                    env::KOPIA_REPO_ROOT,
                    env::KOPIA_PASSWORD
                )
            })?;
            let root = cairn_repo::plain::normalize(&root)
                .with_context(|| format!("reading {}", env::KOPIA_REPO_ROOT))?;
            Mode::Dedup {
                root,
                password: Secret::new(password),
                maintenance: get(env::KOPIA_MAINTENANCE).is_some_and(|v| {
                    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
                }),
            }
        }
        None => {
            let encryption = match get(env::ENCRYPTION_ALGORITHM) {
                None => None,
                Some(algorithm) => {
                    CipherKind::parse(&algorithm)
                        .with_context(|| format!("reading {}", env::ENCRYPTION_ALGORITHM))?;
                    let passphrase = get(env::ENCRYPTION_PASS_PHRASE).with_context(|| {
                        format!(
                            "{} is set but {} is empty",
                            env::ENCRYPTION_ALGORITHM,
                            env::ENCRYPTION_PASS_PHRASE
                        )
                    })?;
                    Some(
                        StreamKey::for_algorithm(Secret::new(passphrase), &algorithm)
                            .with_context(|| format!("reading {}", env::ENCRYPTION_ALGORITHM))?,
                    )
                }
            };
            Mode::Plain { encryption }
        }
    };
    Ok(Settings {
        storage,
        storage_source,
        base_path,
        mode,
    })
}

/// `getconf section.field`: the value of one configuration item, read as datasafed reads it:
/// from the config file, or, when `DATASAFED_LOCAL_BACKEND_PATH` is set, from the
/// configuration that variable stands for (`type = local`, `copy_links = true`, `root`).
/// The value is printed as written, as datasafed prints it: the caller asked for this item of
/// a file it can read.
pub fn getconf(
    config: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    item: &str,
) -> anyhow::Result<String> {
    let Some((section, field)) = item.split_once('.') else {
        bail!("invalid config item name {item:?}");
    };
    let value = match env(env::LOCAL_BACKEND_PATH).filter(|v| !v.trim().is_empty()) {
        Some(path) => {
            let root = std::path::absolute(&path)
                .with_context(|| format!("reading {}", env::LOCAL_BACKEND_PATH))?;
            if !root.is_dir() {
                bail!(
                    "the path {:?} specified by {} is not an existing directory",
                    root.display().to_string(),
                    env::LOCAL_BACKEND_PATH
                );
            }
            match (section, field) {
                ("storage", "type") => Some("local".to_string()),
                ("storage", "copy_links") => Some("true".to_string()),
                ("storage", "root") => Some(root.display().to_string()),
                _ => None,
            }
        }
        None => {
            let text = std::fs::read_to_string(config)
                .with_context(|| format!("reading datasafed config {}", config.display()))?;
            cairn_repo::datasafed_config_value(&text, section, field)
                .with_context(|| format!("parsing datasafed config {}", config.display()))?
        }
    };
    value.with_context(|| format!("config item {item:?} not found"))
}

impl Settings {
    /// What `getconf` prints: the effective configuration, secrets redacted.
    pub fn describe(&self) -> String {
        let mut out = format!("# from {}\n{}", self.storage_source, self.storage);
        out.push_str(&format!("\n[datasafed]\nbase_path = /{}\n", self.base_path));
        match &self.mode {
            Mode::Plain { encryption: None } => out.push_str("mode = plain\nencryption = none\n"),
            Mode::Plain {
                encryption: Some(key),
            } => out.push_str(&format!(
                "mode = plain\nencryption = {:?} (segmented AEAD)\npass_phrase = ***\n",
                key.cipher
            )),
            Mode::Dedup {
                root, maintenance, ..
            } => out.push_str(&format!(
                "mode = dedup\nrepo_root = /{root}\npassword = ***\nmaintenance = {maintenance}\n"
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn getconf_prints_one_item_like_datasafed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("datasafed.conf");
        std::fs::write(
            &conf,
            "[storage]\ntype = s3\nprovider = Minio\nroot = bucket/kb\n",
        )
        .expect("write");
        let empty: [(&str, &str); 0] = [];
        let none = env_of(&empty);
        let none = &none;
        assert_eq!(getconf(&conf, none, "storage.type").expect("type"), "s3");
        assert_eq!(
            getconf(&conf, none, "storage.root").expect("root"),
            "bucket/kb"
        );
        assert_eq!(
            getconf(&conf, none, "storage.region")
                .expect_err("absent")
                .to_string(),
            "config item \"storage.region\" not found"
        );
        assert_eq!(
            getconf(&conf, none, "type").expect_err("bad").to_string(),
            "invalid config item name \"type\""
        );
        let path = dir.path().to_string_lossy().to_string();
        let pairs = [(env::LOCAL_BACKEND_PATH, path.as_str())];
        let local = env_of(&pairs);
        assert_eq!(
            getconf(Path::new("/nonexistent"), &local, "storage.type").expect("type"),
            "local"
        );
        assert_eq!(
            getconf(Path::new("/nonexistent"), &local, "storage.root").expect("root"),
            path
        );
    }

    #[test]
    fn local_backend_path_replaces_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_string_lossy().to_string();
        let settings = resolve(
            Path::new("/nonexistent/datasafed.conf"),
            &env_of(&[
                (env::LOCAL_BACKEND_PATH, &path),
                (env::BACKEND_BASE_PATH, "/ns//b1/"),
            ]),
        )
        .expect("resolves");
        assert_eq!(settings.storage, StorageConfig::local(dir.path()));
        assert_eq!(settings.base_path, "ns/b1");
        assert!(matches!(settings.mode, Mode::Plain { encryption: None }));
    }

    #[test]
    fn a_missing_config_file_is_named() {
        let err =
            resolve(Path::new("/nonexistent/datasafed.conf"), &env_of(&[])).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "reading datasafed config /nonexistent/datasafed.conf"
        );
    }

    #[test]
    fn encryption_needs_a_passphrase_and_kubeblocks_cfb_maps_to_gcm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_string_lossy().to_string();
        let err = resolve(
            Path::new("/x"),
            &env_of(&[
                (env::LOCAL_BACKEND_PATH, &path),
                (env::ENCRYPTION_ALGORITHM, "AES-256-CFB"),
            ]),
        )
        .expect_err("no passphrase");
        assert!(
            err.to_string().contains(env::ENCRYPTION_PASS_PHRASE),
            "{err}"
        );
        let settings = resolve(
            Path::new("/x"),
            &env_of(&[
                (env::LOCAL_BACKEND_PATH, &path),
                (env::ENCRYPTION_ALGORITHM, "AES-128-CFB"),
                (env::ENCRYPTION_PASS_PHRASE, "pw"),
            ]),
        )
        .expect("resolves");
        let Mode::Plain {
            encryption: Some(key),
        } = &settings.mode
        else {
            panic!("expected encryption")
        };
        assert_eq!(key.cipher, CipherKind::Aes256Gcm);
        assert!(!settings.describe().contains("pw\n"));
    }

    #[test]
    fn kopia_root_selects_the_dedup_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_string_lossy().to_string();
        let settings = resolve(
            Path::new("/x"),
            &env_of(&[
                (env::LOCAL_BACKEND_PATH, &path),
                (env::KOPIA_REPO_ROOT, "/repo/ns/kopia"),
                (env::KOPIA_PASSWORD, "secret-pw"),
                (env::KOPIA_MAINTENANCE, "true"),
            ]),
        )
        .expect("resolves");
        let Mode::Dedup {
            root, maintenance, ..
        } = &settings.mode
        else {
            panic!("expected dedup")
        };
        assert_eq!((root.as_str(), *maintenance), ("repo/ns/kopia", true));
        assert!(!settings.describe().contains("secret-pw"));
    }
}
