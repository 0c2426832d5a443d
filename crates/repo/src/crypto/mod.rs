//! Authenticated encryption (AES-256-GCM, ChaCha20-Poly1305) and key derivation
//! (Argon2id) used by both repository kinds (docs/FORMAT.md §3.3, §5.1-5.3).

mod kdf;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Serialize};

pub use kdf::KdfParams;

use crate::{Error, Result};

/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of an AEAD nonce.
pub const NONCE_LEN: usize = 12;

/// The AEAD cipher of a repository or an encrypted plain file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CipherKind {
    /// AES-256 in Galois/Counter Mode (fast with AES-NI).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (fast without AES hardware).
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl CipherKind {
    /// The byte that identifies the cipher in binary headers.
    pub(crate) fn code(self) -> u8 {
        match self {
            CipherKind::Aes256Gcm => 1,
            CipherKind::ChaCha20Poly1305 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<CipherKind> {
        match code {
            1 => Some(CipherKind::Aes256Gcm),
            2 => Some(CipherKind::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Parses a cipher name as users and KubeBlocks write it. KubeBlocks' CFB names are
    /// accepted and mapped to AES-256-GCM (FORMAT.md §3.3: CFB is not authenticated).
    pub fn parse(name: &str) -> Result<CipherKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "aes-128-cfb" | "aes-192-cfb" | "aes-256-cfb" | "aes-256-gcm" | "aes256gcm" | "aes" => {
                Ok(CipherKind::Aes256Gcm)
            }
            "chacha20-poly1305" | "chacha20poly1305" | "chacha20" => {
                Ok(CipherKind::ChaCha20Poly1305)
            }
            other => Err(Error::invalid(format!(
                "encryption algorithm {other:?} is not supported (supported: AES-256-GCM, ChaCha20-Poly1305; the KubeBlocks names AES-128-CFB, AES-192-CFB, AES-256-CFB select AES-256-GCM)"
            ))),
        }
    }
}

/// A keyed AEAD instance.
#[derive(Clone)]
pub(crate) enum Aead {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Aead::Aes(_) => "Aead(aes-256-gcm)",
            Aead::ChaCha(_) => "Aead(chacha20-poly1305)",
        })
    }
}

impl Aead {
    pub(crate) fn new(kind: CipherKind, key: &[u8; 32]) -> Aead {
        match kind {
            CipherKind::Aes256Gcm => Aead::Aes(Box::new(Aes256Gcm::new(&(*key).into()))),
            CipherKind::ChaCha20Poly1305 => {
                Aead::ChaCha(Box::new(ChaCha20Poly1305::new(&(*key).into())))
            }
        }
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) {
        let nonce = (*nonce).into();
        // Encryption only fails for messages longer than the cipher's limit (64 GiB), which
        // no caller produces: segments, blobs and objects are at most a few hundred MiB.
        let result = match self {
            Aead::Aes(c) => c.encrypt_in_place(&nonce, aad, buf),
            Aead::ChaCha(c) => c.encrypt_in_place(&nonce, aad, buf),
        };
        debug_assert!(result.is_ok(), "AEAD encryption of a bounded buffer failed");
    }

    /// Authenticates and decrypts `buf` (ciphertext ‖ tag) in place, removing the tag.
    /// `Err(())` means the data or the key is wrong; callers name the object.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> std::result::Result<(), ()> {
        if buf.len() < TAG_LEN {
            return Err(());
        }
        let nonce = (*nonce).into();
        let result = match self {
            Aead::Aes(c) => c.decrypt_in_place(&nonce, aad, buf),
            Aead::ChaCha(c) => c.decrypt_in_place(&nonce, aad, buf),
        };
        result.map_err(|_| ())
    }
}

impl Aead {
    /// Encrypts `buf` in place and returns the tag (for blobs laid out inside a pack buffer).
    pub(crate) fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let nonce = (*nonce).into();
        let tag = match self {
            Aead::Aes(c) => c
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map(|t| t.into()),
            Aead::ChaCha(c) => c
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map(|t| t.into()),
        };
        // Only messages beyond the cipher's length limit fail; blobs are < 4 GiB.
        tag.unwrap_or([0u8; TAG_LEN])
    }

    /// Authenticates and decrypts `buf` in place against `tag`.
    pub(crate) fn open_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> std::result::Result<(), ()> {
        let nonce = (*nonce).into();
        let tag = (*tag).into();
        let result = match self {
            Aead::Aes(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Aead::ChaCha(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        };
        result.map_err(|_| ())
    }
}

/// Fills a fresh array with random bytes from the thread-local CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::fill(&mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_for_both_ciphers() {
        for kind in [CipherKind::Aes256Gcm, CipherKind::ChaCha20Poly1305] {
            let aead = Aead::new(kind, &[7u8; 32]);
            let mut buf = b"hello world".to_vec();
            aead.seal(&[1u8; 12], b"aad", &mut buf);
            assert_eq!(buf.len(), 11 + TAG_LEN);
            let mut tampered = buf.clone();
            tampered[0] ^= 1;
            assert!(aead.open(&[1u8; 12], b"aad", &mut tampered).is_err());
            assert!(aead.open(&[1u8; 12], b"other", &mut buf.clone()).is_err());
            aead.open(&[1u8; 12], b"aad", &mut buf).expect("opens");
            assert_eq!(buf, b"hello world");
        }
    }

    #[test]
    fn kubeblocks_cfb_names_select_authenticated_aes() {
        for name in ["AES-128-CFB", "AES-192-CFB", "AES-256-CFB", "aes-256-gcm"] {
            assert_eq!(CipherKind::parse(name).ok(), Some(CipherKind::Aes256Gcm));
        }
        let err = CipherKind::parse("DES").expect_err("unsupported");
        assert!(err.to_string().contains("\"des\""), "{err}");
    }
}
