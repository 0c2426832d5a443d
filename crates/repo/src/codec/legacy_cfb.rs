//! Reading files KubeBlocks' datasafed encrypted with AES-128/192/256-CFB (FORMAT.md §3.3.1):
//! the object `P.enc` is a 16-byte IV followed by the AES-CFB ciphertext, keyed with
//! HKDF-SHA256(passphrase, salt "encryption") truncated to the key length. Read only: Cairn
//! writes its authenticated format (§3.3).

use std::io::{self, Read};

use aes::{Aes128, Aes192, Aes256};
use cfb_mode::BufDecryptor;
use cfb_mode::cipher::KeyIvInit;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::config::Secret;
use crate::{Error, ErrorKind, Result};

/// The suffix datasafed appends to the objects it encrypts.
pub const SUFFIX: &str = ".enc";
/// Bytes an encrypted object has beyond its plaintext (the IV).
pub const OVERHEAD: u64 = 16;
/// The HKDF salt datasafed uses ("purpose").
const PURPOSE: &[u8] = b"encryption";

/// The AES key length of a KubeBlocks CFB algorithm name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfbKeySize {
    /// `AES-128-CFB`.
    Aes128,
    /// `AES-192-CFB`.
    Aes192,
    /// `AES-256-CFB`.
    Aes256,
}

impl CfbKeySize {
    /// The CFB algorithm a `DATASAFED_ENCRYPTION_ALGORITHM` value names (case-insensitive), or
    /// `None` for any other name.
    pub fn from_algorithm(name: &str) -> Option<CfbKeySize> {
        match name.trim().to_ascii_uppercase().as_str() {
            "AES-128-CFB" => Some(CfbKeySize::Aes128),
            "AES-192-CFB" => Some(CfbKeySize::Aes192),
            "AES-256-CFB" => Some(CfbKeySize::Aes256),
            _ => None,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CfbKeySize::Aes128 => 16,
            CfbKeySize::Aes192 => 24,
            CfbKeySize::Aes256 => 32,
        }
    }

    /// The name as datasafed spells it.
    pub fn name(self) -> &'static str {
        match self {
            CfbKeySize::Aes128 => "AES-128-CFB",
            CfbKeySize::Aes192 => "AES-192-CFB",
            CfbKeySize::Aes256 => "AES-256-CFB",
        }
    }
}

/// The key of a KubeBlocks CFB configuration: the algorithm and the passphrase.
#[derive(Debug, Clone)]
pub struct CfbKey {
    /// Key length.
    pub size: CfbKeySize,
    /// The passphrase (`DATASAFED_ENCRYPTION_PASS_PHRASE`).
    pub passphrase: Secret,
}

impl CfbKey {
    /// The AES key: the first `key_len` bytes of a 32-byte HKDF-SHA256 output.
    fn derive(&self) -> Result<Vec<u8>> {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(PURPOSE), self.passphrase.expose().as_bytes())
            .expand(&[], &mut okm)
            .map_err(|_| Error::new(ErrorKind::Crypto, "deriving the AES-CFB key failed"))?;
        Ok(okm[..self.size.key_len()].to_vec())
    }
}

enum Cipher {
    Aes128(BufDecryptor<Aes128>),
    Aes192(BufDecryptor<Aes192>),
    Aes256(BufDecryptor<Aes256>),
}

impl Cipher {
    fn decrypt(&mut self, data: &mut [u8]) {
        match self {
            Cipher::Aes128(c) => c.decrypt(data),
            Cipher::Aes192(c) => c.decrypt(data),
            Cipher::Aes256(c) => c.decrypt(data),
        }
    }
}

/// Decrypts a datasafed `.enc` object as it is read: reads the IV first, then yields the
/// plaintext of every byte after it.
pub struct CfbReader<R> {
    inner: R,
    key: CfbKey,
    cipher: Option<Cipher>,
}

impl<R: Read> CfbReader<R> {
    /// A reader of the plaintext of `inner`.
    pub fn new(inner: R, key: CfbKey) -> Self {
        CfbReader {
            inner,
            key,
            cipher: None,
        }
    }

    fn start(&mut self) -> io::Result<()> {
        let mut iv = [0u8; OVERHEAD as usize];
        self.inner.read_exact(&mut iv).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the object is shorter than the 16-byte IV of a datasafed AES-CFB file",
                )
            } else {
                e
            }
        })?;
        let key = self.key.derive().map_err(io::Error::other)?;
        let bad = |_| io::Error::other("the AES-CFB key or IV has the wrong length");
        self.cipher = Some(match self.key.size {
            CfbKeySize::Aes128 => {
                Cipher::Aes128(BufDecryptor::new_from_slices(&key, &iv).map_err(bad)?)
            }
            CfbKeySize::Aes192 => {
                Cipher::Aes192(BufDecryptor::new_from_slices(&key, &iv).map_err(bad)?)
            }
            CfbKeySize::Aes256 => {
                Cipher::Aes256(BufDecryptor::new_from_slices(&key, &iv).map_err(bad)?)
            }
        });
        Ok(())
    }
}

impl<R: Read> Read for CfbReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cipher.is_none() {
            self.start()?;
        }
        let n = self.inner.read(buf)?;
        if let Some(cipher) = &mut self.cipher {
            cipher.decrypt(&mut buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(size: CfbKeySize, passphrase: &str) -> CfbKey {
        CfbKey {
            size,
            passphrase: Secret::new(passphrase),
        }
    }

    #[test]
    fn algorithm_names_are_datasafeds_in_any_case() {
        assert_eq!(
            CfbKeySize::from_algorithm("aes-128-cfb"),
            Some(CfbKeySize::Aes128)
        );
        assert_eq!(
            CfbKeySize::from_algorithm("AES-192-CFB"),
            Some(CfbKeySize::Aes192)
        );
        assert_eq!(
            CfbKeySize::from_algorithm(" Aes-256-Cfb "),
            Some(CfbKeySize::Aes256)
        );
        assert_eq!(CfbKeySize::from_algorithm("AES-256-GCM"), None);
    }

    #[test]
    fn the_key_is_hkdf_sha256_of_the_passphrase_with_salt_encryption() {
        // RFC 5869 HKDF-SHA256(ikm = "kb-secret", salt = "encryption", info = ""), computed
        // with Python's `hmac` module: PRK = HMAC(salt, ikm), OKM = HMAC(PRK, 0x01).
        let derived = key(CfbKeySize::Aes256, "kb-secret")
            .derive()
            .expect("derive");
        assert_eq!(
            hex::encode(&derived),
            "64e7ed5068d5618524998eccef2953471a365167b1d512d6b12d004ea019d574"
        );
        let short = key(CfbKeySize::Aes128, "kb-secret")
            .derive()
            .expect("derive");
        assert_eq!(short, derived[..16]);
    }

    #[test]
    fn an_object_shorter_than_the_iv_is_an_error() {
        let mut out = Vec::new();
        let err = CfbReader::new(&b"short"[..], key(CfbKeySize::Aes128, "x"))
            .read_to_end(&mut out)
            .expect_err("too short");
        assert!(err.to_string().contains("16-byte IV"), "{err}");
    }
}
