//! The segmented AEAD stream ("SAE1") that encrypts plain files: STREAM construction over
//! 64 KiB segments, so truncation, reordering and tampering are detected
//! (docs/FORMAT.md §3.3).

use std::io::{self, Read, Write};

use crate::codec::legacy_cfb::{CfbKey, CfbKeySize};
use crate::config::Secret;
use crate::crypto::{Aead, CipherKind, KdfParams, NONCE_LEN, TAG_LEN, random_bytes};
use crate::{Error, Result};

/// The magic at offset 0 of every encrypted plain file.
pub const MAGIC: &[u8; 8] = b"CAIRNSE1";
/// Header length in bytes.
pub const HEADER_LEN: usize = 48;
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const LOG2_SEGMENT: u8 = 16;

/// Settings for encrypting plain files.
#[derive(Debug, Clone)]
pub struct StreamKey {
    /// The passphrase (from `DATASAFED_ENCRYPTION_PASS_PHRASE` or the agent's grant).
    pub passphrase: Secret,
    /// The cipher written into new objects.
    pub cipher: CipherKind,
    /// Argon2id cost for new objects.
    pub kdf: KdfParams,
    /// The configured algorithm was one of KubeBlocks' AES-CFB names: files KubeBlocks'
    /// datasafed encrypted (`P.enc`) are read with this key length (FORMAT.md §3.3.1). New
    /// objects are still written with `cipher`.
    pub legacy_cfb: Option<CfbKeySize>,
}

impl StreamKey {
    /// Production settings: AES-256-GCM unless named otherwise, FORMAT.md's KDF cost.
    pub fn new(passphrase: Secret, cipher: CipherKind) -> Self {
        StreamKey {
            passphrase,
            cipher,
            kdf: KdfParams::PLAIN_FILE,
            legacy_cfb: None,
        }
    }

    /// The key for an algorithm as KubeBlocks names it (`DATASAFED_ENCRYPTION_ALGORITHM`, a
    /// BackupPolicy's `encryptionConfig.algorithm`): a CFB name writes AES-256-GCM and reads
    /// KubeBlocks' CFB files with its own key length.
    pub fn for_algorithm(passphrase: Secret, algorithm: &str) -> Result<Self> {
        let cipher = CipherKind::parse(algorithm)?;
        Ok(StreamKey {
            legacy_cfb: CfbKeySize::from_algorithm(algorithm),
            ..StreamKey::new(passphrase, cipher)
        })
    }

    /// The key of KubeBlocks' CFB files, when the configured algorithm is a CFB name.
    pub fn cfb(&self) -> Option<CfbKey> {
        self.legacy_cfb.map(|size| CfbKey {
            size,
            passphrase: self.passphrase.clone(),
        })
    }
}

struct Header {
    bytes: [u8; HEADER_LEN],
    cipher: CipherKind,
    kdf: KdfParams,
    log2_segment: u8,
}

impl Header {
    fn new(cipher: CipherKind, kdf: KdfParams) -> Header {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8] = VERSION;
        bytes[9] = cipher.code();
        bytes[10] = KDF_ARGON2ID;
        bytes[11] = LOG2_SEGMENT;
        bytes[12..16].copy_from_slice(&kdf.m_cost_kib.to_le_bytes());
        bytes[16..20].copy_from_slice(&kdf.t_cost.to_le_bytes());
        bytes[20..24].copy_from_slice(&kdf.p_cost.to_le_bytes());
        bytes[24..40].copy_from_slice(&random_bytes::<16>());
        bytes[40..47].copy_from_slice(&random_bytes::<7>());
        Header {
            bytes,
            cipher,
            kdf,
            log2_segment: LOG2_SEGMENT,
        }
    }

    fn parse(bytes: [u8; HEADER_LEN], name: &str) -> Result<Header> {
        if &bytes[..8] != MAGIC {
            return Err(Error::crypto(format!(
                "{name} is not a Cairn encrypted object (it may be unencrypted, or written by KubeBlocks' datasafed with AES-CFB, which Cairn cannot read)"
            )));
        }
        if bytes[8] != VERSION {
            return Err(Error::unsupported(format!(
                "{name} uses encryption format version {}, this build reads version {VERSION}",
                bytes[8]
            )));
        }
        let cipher = CipherKind::from_code(bytes[9])
            .ok_or_else(|| Error::corrupt(format!("{name}: unknown cipher code {}", bytes[9])))?;
        if bytes[10] != KDF_ARGON2ID {
            return Err(Error::corrupt(format!(
                "{name}: unknown kdf code {}",
                bytes[10]
            )));
        }
        let log2_segment = bytes[11];
        if !(10..=24).contains(&log2_segment) {
            return Err(Error::corrupt(format!(
                "{name}: segment size 2^{log2_segment} is out of range"
            )));
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Ok(Header {
            bytes,
            cipher,
            kdf: KdfParams {
                m_cost_kib: word(12),
                t_cost: word(16),
                p_cost: word(20),
            },
            log2_segment,
        })
    }

    fn aead(&self, passphrase: &Secret) -> Result<Aead> {
        let key = self.kdf.derive(passphrase, &self.bytes[24..40])?;
        Ok(Aead::new(self.cipher, &key))
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..7].copy_from_slice(&self.bytes[40..47]);
        nonce[7..11].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    fn segment_len(&self) -> usize {
        1 << self.log2_segment
    }
}

/// Encrypts everything written to it into `W`; [`SealWriter::finish`] writes the last
/// segment and returns `W`.
pub struct SealWriter<W: Write> {
    inner: W,
    header: Header,
    aead: Aead,
    buf: Vec<u8>,
    index: u32,
}

impl<W: Write> SealWriter<W> {
    /// Writes the header into `inner` and prepares the key (one Argon2id run).
    pub fn new(mut inner: W, key: &StreamKey) -> Result<SealWriter<W>> {
        let header = Header::new(key.cipher, key.kdf);
        let aead = header.aead(&key.passphrase)?;
        inner
            .write_all(&header.bytes)
            .map_err(|e| Error::from_io("writing the encryption header", e))?;
        let capacity = header.segment_len() + TAG_LEN;
        Ok(SealWriter {
            inner,
            header,
            aead,
            buf: Vec::with_capacity(capacity),
            index: 0,
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let nonce = self.header.nonce(self.index, last);
        self.aead.seal(&nonce, &self.header.bytes, &mut self.buf);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.index = self.index.checked_add(1).ok_or_else(|| {
            Error::invalid("encrypted stream exceeds 2^32 segments (256 TiB)").into_io()
        })?;
        Ok(())
    }

    /// Seals the final segment and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        let segment = self.header.segment_len();
        while !data.is_empty() {
            // A full segment is only sealed as "not last" once more data arrives.
            if self.buf.len() == segment {
                self.emit(false)?;
            }
            let take = (segment - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts an SAE1 object read from `R`, releasing each segment only after it
/// authenticated.
pub struct OpenReader<R: Read> {
    inner: R,
    header: Header,
    aead: Aead,
    name: String,
    /// Ciphertext read ahead (at most one segment + tag + 1 byte of look-ahead).
    pending: Vec<u8>,
    plain: Vec<u8>,
    plain_pos: usize,
    index: u32,
    finished: bool,
}

impl<R: Read> OpenReader<R> {
    /// Reads the header from `inner` and derives the key. `name` is used in errors.
    pub fn new(mut inner: R, passphrase: &Secret, name: &str) -> Result<OpenReader<R>> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut bytes)
            .map_err(|e| Error::from_io(format!("reading the encryption header of {name}"), e))?;
        if got < HEADER_LEN {
            if got >= 8 && &bytes[..8] == MAGIC {
                return Err(Error::corrupt(format!(
                    "{name} is truncated inside its encryption header"
                )));
            }
            return Err(Header::parse([0u8; HEADER_LEN], name)
                .err()
                .unwrap_or_else(|| Error::corrupt(format!("{name} is too short"))));
        }
        let header = Header::parse(bytes, name)?;
        let aead = header.aead(passphrase)?;
        let capacity = header.segment_len() + TAG_LEN + 1;
        Ok(OpenReader {
            inner,
            header,
            aead,
            name: name.to_string(),
            pending: Vec::with_capacity(capacity),
            plain: Vec::with_capacity(capacity),
            plain_pos: 0,
            index: 0,
            finished: false,
        })
    }

    /// Reads and authenticates the next segment into `plain`.
    fn next_segment(&mut self) -> io::Result<()> {
        let full = self.header.segment_len() + TAG_LEN;
        // Fill up to one full segment plus one byte, to learn whether this is the last.
        let want = full + 1;
        let start = self.pending.len();
        self.pending.resize(want, 0);
        let got = read_full(&mut self.inner, &mut self.pending[start..])?;
        self.pending.truncate(start + got);
        let last = self.pending.len() <= full;
        let take = self.pending.len().min(full);
        if take < TAG_LEN {
            return Err(Error::corrupt(format!(
                "{} is truncated: segment {} is missing or incomplete",
                self.name, self.index
            ))
            .into_io());
        }
        let rest = self.pending.split_off(take);
        let mut segment = std::mem::replace(&mut self.pending, rest);
        let nonce = self.header.nonce(self.index, last);
        if self
            .aead
            .open(&nonce, &self.header.bytes, &mut segment)
            .is_err()
        {
            let message = if last && self.index > 0 && take == full {
                format!(
                    "{} is truncated (segment {} is not marked as the last one) or tampered with",
                    self.name, self.index
                )
            } else if last {
                format!(
                    "segment {} of {} failed authentication: wrong passphrase, truncated or tampered data",
                    self.index, self.name
                )
            } else {
                format!(
                    "segment {} of {} failed authentication: wrong passphrase or tampered data",
                    self.index, self.name
                )
            };
            return Err(Error::crypto(message).into_io());
        }
        self.plain = segment;
        self.plain_pos = 0;
        self.index = self.index.wrapping_add(1);
        self.finished = last;
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.plain_pos < self.plain.len() {
                let n = (self.plain.len() - self.plain_pos).min(out.len());
                out[..n].copy_from_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
                self.plain_pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            self.next_segment()?;
        }
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn key() -> StreamKey {
        StreamKey {
            passphrase: Secret::new("correct horse"),
            cipher: CipherKind::Aes256Gcm,
            kdf: KdfParams::INSECURE_FAST,
            legacy_cfb: None,
        }
    }

    fn seal(data: &[u8], key: &StreamKey) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), key).expect("writer");
        w.write_all(data).expect("write");
        w.finish().expect("finish")
    }

    fn open(sealed: &[u8], pass: &str) -> std::result::Result<Vec<u8>, Error> {
        let mut r = OpenReader::new(sealed, &Secret::new(pass), "obj")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| Error::from_io("reading", e))?;
        Ok(out)
    }

    #[test]
    fn round_trips_across_segment_boundaries() {
        for len in [0usize, 1, 65535, 65536, 65537, 3 * 65536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let sealed = seal(&data, &key());
            let segments = len.div_ceil(65536).max(1);
            assert_eq!(
                sealed.len(),
                HEADER_LEN + len + segments * TAG_LEN,
                "len {len}"
            );
            assert_eq!(
                open(&sealed, "correct horse").expect("open"),
                data,
                "len {len}"
            );
        }
    }

    #[test]
    fn chacha_round_trips() {
        let mut k = key();
        k.cipher = CipherKind::ChaCha20Poly1305;
        let sealed = seal(b"some data", &k);
        assert_eq!(open(&sealed, "correct horse").expect("open"), b"some data");
    }

    #[test]
    fn wrong_passphrase_is_a_crypto_error() {
        let sealed = seal(b"secret", &key());
        let err = open(&sealed, "wrong").expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::Crypto);
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
    }

    #[test]
    fn truncation_at_a_segment_boundary_is_detected() {
        let data = vec![7u8; 3 * 65536 + 10];
        let sealed = seal(&data, &key());
        let cut = HEADER_LEN + 2 * (65536 + TAG_LEN);
        let err = open(&sealed[..cut], "correct horse").expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = open(&sealed[..sealed.len() - 1], "correct horse").expect_err("truncated");
        assert_eq!(err.kind(), ErrorKind::Crypto);
    }

    #[test]
    fn reordered_segments_fail_authentication() {
        let data: Vec<u8> = (0..3 * 65536).map(|i| (i / 65536) as u8).collect();
        let mut sealed = seal(&data, &key());
        let seg = 65536 + TAG_LEN;
        let (a, b) = (HEADER_LEN, HEADER_LEN + seg);
        let first: Vec<u8> = sealed[a..a + seg].to_vec();
        let second: Vec<u8> = sealed[b..b + seg].to_vec();
        sealed[a..a + seg].copy_from_slice(&second);
        sealed[b..b + seg].copy_from_slice(&first);
        assert_eq!(
            open(&sealed, "correct horse")
                .expect_err("reordered")
                .kind(),
            ErrorKind::Crypto
        );
    }

    #[test]
    fn appended_bytes_are_detected() {
        let mut sealed = seal(b"data", &key());
        sealed.extend_from_slice(&[0u8; 40]);
        assert!(open(&sealed, "correct horse").is_err());
    }

    #[test]
    fn unencrypted_input_says_it_is_not_a_cairn_object() {
        let err = open(b"plain text that is long enough to hold a header....", "x")
            .expect_err("not encrypted");
        assert!(
            err.to_string().contains("not a Cairn encrypted object"),
            "{err}"
        );
        let err = open(b"short", "x").expect_err("not encrypted");
        assert!(
            err.to_string().contains("not a Cairn encrypted object"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_single_bit_flip_is_detected(data in proptest::collection::vec(any::<u8>(), 1..2000), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut sealed = seal(&data, &key());
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(open(&sealed, "correct horse").is_err());
        }
    }
}
