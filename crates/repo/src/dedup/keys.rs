//! The master key, its sub-keys, and key files that wrap it under passphrases
//! (docs/FORMAT.md §5.1).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::id::Id;
use crate::config::Secret;
use crate::crypto::{Aead, CipherKind, KdfParams, NONCE_LEN, random_bytes};
use crate::{Error, Result};

const WRAP_AAD: &[u8] = b"cairn key v1";

/// The keys derived from a repository's master key.
pub struct MasterKeys {
    /// The repository cipher.
    pub cipher: CipherKind,
    master: [u8; 32],
    data_key: [u8; 32],
    chunk_id_key: [u8; 32],
    chunker_key: [u8; 32],
    object_aead: Aead,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl MasterKeys {
    /// Derives the sub-keys of a master key.
    pub fn new(master: [u8; 32], cipher: CipherKind) -> MasterKeys {
        let data_key = blake3::derive_key("cairn repository v1 data key", &master);
        MasterKeys {
            cipher,
            master,
            chunk_id_key: blake3::derive_key("cairn repository v1 chunk id key", &master),
            chunker_key: blake3::derive_key("cairn repository v1 chunker key", &master),
            object_aead: Aead::new(cipher, &data_key),
            data_key,
        }
    }

    /// A fresh random master key.
    pub fn generate(cipher: CipherKind) -> MasterKeys {
        MasterKeys::new(random_bytes(), cipher)
    }

    /// The keyed BLAKE3 id of a chunk's plaintext.
    pub fn chunk_id(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.chunk_id_key, data).as_bytes())
    }

    /// The key that seeds the chunker's boundary decisions.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker_key
    }

    /// The AEAD of sealed objects (config, index, snapshots, …).
    pub(crate) fn object_aead(&self) -> &Aead {
        &self.object_aead
    }

    /// The AEAD of one pack: `keyed_hash(data key, "pack" ‖ pack id)`.
    pub(crate) fn pack_aead(&self, pack: &Id) -> Aead {
        let mut hasher = blake3::Hasher::new_keyed(&self.data_key);
        hasher.update(b"pack");
        hasher.update(&pack.0);
        Aead::new(self.cipher, hasher.finalize().as_bytes())
    }
}

/// Argon2id settings in a key file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyKdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Cost parameters.
    #[serde(flatten)]
    pub params: KdfParams,
    /// Salt, hex.
    pub salt: String,
}

/// A key file `keys/<id>`: the master key wrapped under one passphrase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyFile {
    /// Format version (1).
    pub version: u32,
    /// When the key was added.
    pub created: Timestamp,
    /// The host that added it.
    pub host: String,
    /// A label (`initial`, `ops-team`, …).
    pub label: String,
    /// How the passphrase becomes the wrapping key.
    pub kdf: KeyKdf,
    /// The repository cipher.
    pub cipher: CipherKind,
    /// hex(nonce ‖ AEAD(master) ‖ tag).
    pub wrapped: String,
}

impl KeyFile {
    /// Wraps `keys`' master key under `passphrase`.
    pub fn wrap(
        keys: &MasterKeys,
        passphrase: &Secret,
        params: KdfParams,
        label: &str,
    ) -> Result<KeyFile> {
        let salt: [u8; 16] = random_bytes();
        let kek = params.derive(passphrase, &salt)?;
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut buf = keys.master.to_vec();
        Aead::new(CipherKind::Aes256Gcm, &kek).seal(&nonce, WRAP_AAD, &mut buf);
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&buf);
        Ok(KeyFile {
            version: 1,
            created: Timestamp::now(),
            host: hostname(),
            label: label.to_string(),
            kdf: KeyKdf {
                algorithm: "argon2id".into(),
                params,
                salt: hex::encode(salt),
            },
            cipher: keys.cipher,
            wrapped: hex::encode(wrapped),
        })
    }

    /// Unwraps the master key; `Ok(None)` when the passphrase does not fit this key.
    pub fn unwrap(&self, passphrase: &Secret, name: &str) -> Result<Option<MasterKeys>> {
        if self.kdf.algorithm != "argon2id" {
            return Err(Error::unsupported(format!(
                "key {name} uses kdf {:?}; this build supports argon2id",
                self.kdf.algorithm
            )));
        }
        let salt = hex::decode(&self.kdf.salt)
            .map_err(|_| Error::corrupt(format!("key {name}: salt is not hex")))?;
        let wrapped = hex::decode(&self.wrapped)
            .map_err(|_| Error::corrupt(format!("key {name}: wrapped key is not hex")))?;
        if wrapped.len() != NONCE_LEN + 32 + crate::crypto::TAG_LEN {
            return Err(Error::corrupt(format!(
                "key {name}: wrapped key has the wrong length"
            )));
        }
        let kek = self.kdf.params.derive(passphrase, &salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = wrapped[NONCE_LEN..].to_vec();
        if Aead::new(CipherKind::Aes256Gcm, &kek)
            .open(&nonce, WRAP_AAD, &mut buf)
            .is_err()
        {
            return Ok(None);
        }
        let mut master = [0u8; 32];
        master.copy_from_slice(&buf);
        Ok(Some(MasterKeys::new(master, self.cipher)))
    }
}

/// This machine's host name (for key files and snapshots).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_with_the_right_and_wrong_passphrase() {
        let keys = MasterKeys::generate(CipherKind::ChaCha20Poly1305);
        let file =
            KeyFile::wrap(&keys, &Secret::new("pw"), KdfParams::INSECURE_FAST, "t").expect("wrap");
        let opened = file
            .unwrap(&Secret::new("pw"), "k")
            .expect("unwrap")
            .expect("matches");
        assert_eq!(opened.chunk_id(b"x"), keys.chunk_id(b"x"));
        assert_eq!(opened.cipher, CipherKind::ChaCha20Poly1305);
        assert!(
            file.unwrap(&Secret::new("nope"), "k")
                .expect("unwrap")
                .is_none()
        );
        let json = serde_json::to_string(&file).expect("json");
        assert!(json.contains("\"m_cost_kib\""), "{json}");
    }

    #[test]
    fn chunk_ids_are_keyed() {
        let a = MasterKeys::generate(CipherKind::Aes256Gcm);
        let b = MasterKeys::generate(CipherKind::Aes256Gcm);
        assert_ne!(a.chunk_id(b"same"), b.chunk_id(b"same"));
        assert_ne!(a.chunk_id(b"same").0, *blake3::hash(b"same").as_bytes());
    }
}
