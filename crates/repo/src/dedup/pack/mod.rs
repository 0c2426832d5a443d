//! Packs: many encrypted blobs followed by an encrypted header that lists them
//! (docs/FORMAT.md §5.3). Building (in memory, sealed in one pass) and reading.

use bytes::Bytes;

use super::blobref::BlobRef;
use super::id::Id;
use super::keys::MasterKeys;
use crate::crypto::{Aead, NONCE_LEN, TAG_LEN};
use crate::{Error, ErrorKind, Result};

/// The trailer magic of every pack.
pub const MAGIC: &[u8; 8] = b"CAIRNPK1";
const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 48;
/// Bytes after the sealed header: its length (u32) and the magic.
pub const TRAILER_LEN: usize = 4 + MAGIC.len();

/// What a blob holds; bound into its AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobType {
    /// A chunk of file or stream data.
    Data = 1,
    /// A content list (refs of one segment).
    Content = 2,
    /// A directory tree.
    Tree = 3,
}

impl BlobType {
    fn from_code(code: u8) -> Option<BlobType> {
        match code {
            1 => Some(BlobType::Data),
            2 => Some(BlobType::Content),
            3 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// One line of a pack header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Blob type.
    pub kind: BlobType,
    /// Whether the plaintext is a zstd frame.
    pub compressed: bool,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length (ciphertext + tag).
    pub stored_len: u32,
    /// Plaintext chunk length.
    pub raw_len: u32,
    /// Chunk id.
    pub id: Id,
}

/// Per-pack totals recorded in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PackSummary {
    /// Number of blobs.
    pub blobs: u32,
    /// Size of the pack object.
    pub stored: u64,
    /// Sum of the blobs' raw lengths.
    pub raw: u64,
}

fn blob_nonce(index: u32) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&index.to_be_bytes());
    nonce
}

fn header_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&[0xFF; 4]);
    nonce
}

fn blob_aad(kind: BlobType, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind as u8;
    aad[1..].copy_from_slice(&id.0);
    aad
}

fn header_aad(pack: &Id) -> Vec<u8> {
    let mut aad = b"CAIRNPK1 header".to_vec();
    aad.extend_from_slice(&pack.0);
    aad
}

/// The object key of a pack.
pub fn pack_key(id: &Id) -> String {
    let hex = id.to_hex();
    format!("data/{}/{hex}", &hex[..2])
}

/// A pack being filled: plaintexts with room for their tags; sealed in one pass.
#[derive(Debug)]
pub struct PackBuilder {
    id: Id,
    buf: Vec<u8>,
    entries: Vec<HeaderEntry>,
    raw: u64,
}

impl PackBuilder {
    /// An empty pack with a fresh random id.
    pub fn new(capacity: usize) -> PackBuilder {
        PackBuilder {
            id: Id::random(),
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
            raw: 0,
        }
    }

    /// This pack's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a blob's plaintext (compressed or not); returns its ref. Encryption happens
    /// in [`PackBuilder::seal`].
    pub fn add(
        &mut self,
        kind: BlobType,
        id: Id,
        payload: &[u8],
        compressed: bool,
        raw_len: u32,
    ) -> BlobRef {
        let offset = self.buf.len() as u32;
        let index = self.entries.len() as u32;
        self.buf.extend_from_slice(payload);
        self.buf.extend_from_slice(&[0u8; TAG_LEN]);
        let stored_len = (payload.len() + TAG_LEN) as u32;
        self.entries.push(HeaderEntry {
            kind,
            compressed,
            offset,
            stored_len,
            raw_len,
            id,
        });
        self.raw += raw_len as u64;
        BlobRef {
            id,
            pack: self.id,
            index,
            offset,
            stored_len,
            raw_len,
        }
    }

    /// Encrypts every blob in place, appends the sealed header and trailer.
    pub fn seal(mut self, keys: &MasterKeys) -> (Id, Bytes, PackSummary) {
        let aead = keys.pack_aead(&self.id);
        for (index, entry) in self.entries.iter().enumerate() {
            let start = entry.offset as usize;
            let end = start + entry.stored_len as usize - TAG_LEN;
            let tag = aead.seal_detached(
                &blob_nonce(index as u32),
                &blob_aad(entry.kind, &entry.id),
                &mut self.buf[start..end],
            );
            self.buf[end..end + TAG_LEN].copy_from_slice(&tag);
        }
        let mut header = Vec::with_capacity(5 + self.entries.len() * ENTRY_LEN + TAG_LEN);
        header.push(HEADER_VERSION);
        header.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            header.push(e.kind as u8);
            header.push(u8::from(e.compressed));
            header.extend_from_slice(&[0, 0]);
            header.extend_from_slice(&e.offset.to_le_bytes());
            header.extend_from_slice(&e.stored_len.to_le_bytes());
            header.extend_from_slice(&e.raw_len.to_le_bytes());
            header.extend_from_slice(&e.id.0);
        }
        aead.seal(&header_nonce(), &header_aad(&self.id), &mut header);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(MAGIC);
        let summary = PackSummary {
            blobs: self.entries.len() as u32,
            stored: self.buf.len() as u64,
            raw: self.raw,
        };
        (self.id, Bytes::from(self.buf), summary)
    }
}

/// Where a pack's sealed header is, from its trailer: `(header offset, header length)`.
pub fn locate_header(tail: &[u8], pack_size: u64, name: &str) -> Result<(u64, u64)> {
    if tail.len() < TRAILER_LEN || &tail[tail.len() - MAGIC.len()..] != MAGIC {
        return Err(Error::corrupt(format!(
            "pack {name} has no pack trailer (truncated or not a pack)"
        )));
    }
    let at = tail.len() - TRAILER_LEN;
    let header_len =
        u32::from_le_bytes([tail[at], tail[at + 1], tail[at + 2], tail[at + 3]]) as u64;
    let trailer_start = pack_size - TRAILER_LEN as u64;
    if header_len > trailer_start || header_len < (5 + TAG_LEN) as u64 {
        return Err(Error::corrupt(format!(
            "pack {name}: header length {header_len} is impossible"
        )));
    }
    Ok((trailer_start - header_len, header_len))
}

/// Decrypts and parses a sealed pack header.
pub fn parse_header(
    keys: &MasterKeys,
    pack: &Id,
    sealed: &[u8],
    name: &str,
) -> Result<Vec<HeaderEntry>> {
    let mut buf = sealed.to_vec();
    keys.pack_aead(pack)
        .open(&header_nonce(), &header_aad(pack), &mut buf)
        .map_err(|()| Error::crypto(format!("pack {name}: header failed authentication")))?;
    if buf.len() < 5 || buf[0] != HEADER_VERSION {
        return Err(Error::corrupt(format!(
            "pack {name}: unknown header version"
        )));
    }
    let count = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() != 5 + count * ENTRY_LEN {
        return Err(Error::corrupt(format!(
            "pack {name}: header length does not match {count} entries"
        )));
    }
    buf[5..]
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .map(|(i, e)| {
            let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
            let kind = BlobType::from_code(e[0]).ok_or_else(|| {
                Error::corrupt(format!("pack {name}: blob {i} has unknown type {}", e[0]))
            })?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&e[16..48]);
            Ok(HeaderEntry {
                kind,
                compressed: e[1] != 0,
                offset: word(4),
                stored_len: word(8),
                raw_len: word(12),
                id: Id(id),
            })
        })
        .collect()
}

/// Opens every blob of a whole pack held in memory (its header found through its own
/// trailer) and returns the plaintext bytes: the decode work of a restore without its reads
/// and writes (the benchmark measures what that costs alone, bench/README.md).
pub fn open_pack(keys: &MasterKeys, pack: &Id, bytes: &[u8]) -> Result<u64> {
    let name = pack_key(pack);
    let (start, len) = locate_header(bytes, bytes.len() as u64, &name)?;
    let sealed = &bytes[start as usize..(start + len) as usize];
    let entries = parse_header(keys, pack, sealed, &name)?;
    let aead = keys.pack_aead(pack);
    let mut plain = Vec::new();
    let mut raw = 0u64;
    for (index, e) in entries.iter().enumerate() {
        let r = BlobRef {
            id: e.id,
            pack: *pack,
            index: index as u32,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        };
        let stored = bytes
            .get(r.offset as usize..r.end() as usize)
            .filter(|_| r.end() <= start)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "pack {name}: blob {index} lies beyond the end of the pack's blobs"
                ))
            })?;
        plain.clear();
        open_blob_into(&aead, e.kind, &r, stored, &mut plain)?;
        raw += plain.len() as u64;
    }
    Ok(raw)
}

/// Decrypts (and decompresses) one blob's stored bytes, proving it is `r.id` of `kind`.
pub(crate) fn open_blob(
    aead: &Aead,
    kind: BlobType,
    r: &BlobRef,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(r.raw_len as usize);
    open_blob_into(aead, kind, r, stored, &mut out)?;
    Ok(out)
}

thread_local! {
    /// Decompression context and ciphertext buffer of this thread: creating a zstd context per
    /// blob cost a tenth of a restore's CPU.
    static OPENER: std::cell::RefCell<Option<(zstd::bulk::Decompressor<'static>, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Like [`open_blob`], appending the plaintext to `out` (left as it was on error).
pub(crate) fn open_blob_into(
    aead: &Aead,
    kind: BlobType,
    r: &BlobRef,
    stored: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let name = || {
        format!(
            "blob {} (index {}) of pack {}",
            r.id.short(),
            r.index,
            pack_key(&r.pack)
        )
    };
    if stored.len() != r.stored_len as usize || stored.len() < TAG_LEN {
        return Err(Error::corrupt(format!(
            "{}: expected {} bytes, got {}",
            name(),
            r.stored_len,
            stored.len()
        )));
    }
    let split = stored.len() - TAG_LEN;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&stored[split..]);
    let authentication = || {
        Error::crypto(format!(
            "{} failed authentication: the pack is damaged or the ref is wrong",
            name()
        ))
    };
    let start = out.len();
    if !r.is_compressed() {
        out.extend_from_slice(&stored[..split]);
        if aead
            .open_detached(
                &blob_nonce(r.index),
                &blob_aad(kind, &r.id),
                &mut out[start..],
                &tag,
            )
            .is_err()
        {
            out.truncate(start);
            return Err(authentication());
        }
        return Ok(());
    }
    OPENER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let decompressor = zstd::bulk::Decompressor::new()
                .map_err(|e| Error::io("creating a zstd decompressor", e))?;
            *cell = Some((decompressor, Vec::new()));
        }
        let Some((decompressor, ciphertext)) = cell.as_mut() else {
            return Err(Error::new(ErrorKind::Io, "no zstd decompressor"));
        };
        ciphertext.clear();
        ciphertext.extend_from_slice(&stored[..split]);
        aead.open_detached(
            &blob_nonce(r.index),
            &blob_aad(kind, &r.id),
            ciphertext,
            &tag,
        )
        .map_err(|()| authentication())?;
        // Decompress into the spare capacity after `start` (a cursor there), not zeroed first.
        out.reserve(r.raw_len as usize);
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(start as u64);
        let result = decompressor.decompress_to_buffer(ciphertext.as_slice(), &mut cursor);
        *out = cursor.into_inner();
        match result {
            Ok(n) if n == r.raw_len as usize => Ok(()),
            Ok(n) => {
                out.truncate(start);
                Err(Error::corrupt(format!(
                    "{}: decompressed to {n} bytes, expected {}",
                    name(),
                    r.raw_len
                )))
            }
            Err(e) => {
                out.truncate(start);
                Err(Error::corrupt(format!("{}: does not decompress", name())).with_source(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CipherKind;

    /// A sealed pack of two data blobs: a compressed page of `fill` bytes and `raw` as it is.
    struct TwoBlobPack {
        keys: MasterKeys,
        id: Id,
        bytes: Bytes,
        page: Vec<u8>,
        raw: Vec<u8>,
        refs: [BlobRef; 2],
    }

    fn two_blob_pack(cipher: CipherKind, fill: u8, raw: &[u8]) -> TwoBlobPack {
        let keys = MasterKeys::generate(cipher);
        let mut builder = PackBuilder::new(1024);
        let page = vec![fill; 8192];
        let page_z = zstd::bulk::compress(&page, 1).expect("zstd");
        let rz = builder.add(
            BlobType::Data,
            keys.chunk_id(&page),
            &page_z,
            true,
            page.len() as u32,
        );
        let raw = raw.to_vec();
        let rr = builder.add(
            BlobType::Data,
            keys.chunk_id(&raw),
            &raw,
            false,
            raw.len() as u32,
        );
        let (id, bytes, _) = builder.seal(&keys);
        TwoBlobPack {
            keys,
            id,
            bytes,
            page,
            raw,
            refs: [rz, rr],
        }
    }

    #[test]
    fn opening_into_a_buffer_appends_and_leaves_it_unchanged_on_damage() {
        let TwoBlobPack {
            keys,
            id,
            bytes,
            page,
            raw,
            refs: [rz, rr],
        } = two_blob_pack(CipherKind::ChaCha20Poly1305, 7, b"not compressed");
        let aead = keys.pack_aead(&id);
        let slice = |r: &BlobRef| bytes[r.offset as usize..r.end() as usize].to_vec();
        let mut out = b"head".to_vec();
        open_blob_into(&aead, BlobType::Data, &rz, &slice(&rz), &mut out).expect("page");
        open_blob_into(&aead, BlobType::Data, &rr, &slice(&rr), &mut out).expect("raw");
        assert_eq!(out, [&b"head"[..], &page, &raw].concat());

        for r in [rz, rr] {
            let mut damaged = slice(&r);
            damaged[3] ^= 1;
            let before = out.clone();
            let err = open_blob_into(&aead, BlobType::Data, &r, &damaged, &mut out)
                .expect_err("damaged blob");
            assert_eq!(err.kind(), crate::ErrorKind::Crypto);
            assert!(err.to_string().contains(&r.id.short()), "{err}");
            assert_eq!(out, before, "a failed open must not leave bytes behind");
        }
        let mut lying = rz;
        lying.raw_len += 1;
        let err = open_blob_into(&aead, BlobType::Data, &lying, &slice(&rz), &mut out)
            .expect_err("wrong raw length");
        assert!(
            matches!(
                err.kind(),
                crate::ErrorKind::Corrupt | crate::ErrorKind::Crypto
            ),
            "{err}"
        );
    }

    #[test]
    fn a_whole_pack_opens_to_its_plaintext_bytes_and_damage_fails_it() {
        let TwoBlobPack {
            keys,
            id,
            bytes,
            page,
            raw,
            refs: [_, r],
        } = two_blob_pack(CipherKind::Aes256Gcm, 3, b"stored as it is");
        let opened = open_pack(&keys, &id, &bytes).expect("an intact pack opens");
        assert_eq!(opened, (page.len() + raw.len()) as u64);

        let mut damaged = bytes.to_vec();
        damaged[r.offset as usize] ^= 1;
        let err = open_pack(&keys, &id, &damaged).expect_err("a damaged blob");
        assert_eq!(err.kind(), crate::ErrorKind::Crypto, "{err}");
        let err = open_pack(&keys, &Id::random(), &bytes).expect_err("another pack's id");
        assert_eq!(err.kind(), crate::ErrorKind::Crypto, "{err}");
    }

    #[test]
    fn built_packs_open_blob_by_blob_and_list_their_header() {
        let keys = MasterKeys::generate(CipherKind::Aes256Gcm);
        let mut builder = PackBuilder::new(1024);
        let a = b"hello hello hello hello hello".to_vec();
        let a_id = keys.chunk_id(&a);
        let a_z = zstd::bulk::compress(&a, 1).expect("zstd");
        let ra = builder.add(BlobType::Data, a_id, &a_z, true, a.len() as u32);
        let b = b"raw".to_vec();
        let rb = builder.add(BlobType::Tree, keys.chunk_id(&b), &b, false, 3);
        let (id, bytes, summary) = builder.seal(&keys);
        assert_eq!(summary.blobs, 2);
        assert_eq!(summary.stored, bytes.len() as u64);
        let aead = keys.pack_aead(&id);
        let slice = |r: &BlobRef| &bytes[r.offset as usize..r.end() as usize];
        assert_eq!(
            open_blob(&aead, BlobType::Data, &ra, slice(&ra)).expect("a"),
            a
        );
        assert_eq!(
            open_blob(&aead, BlobType::Tree, &rb, slice(&rb)).expect("b"),
            b
        );
        let wrong = open_blob(&aead, BlobType::Data, &rb, slice(&rb)).expect_err("wrong type");
        assert_eq!(wrong.kind(), crate::ErrorKind::Crypto);

        let (start, len) = locate_header(&bytes, bytes.len() as u64, "p").expect("trailer");
        let entries = parse_header(
            &keys,
            &id,
            &bytes[start as usize..(start + len) as usize],
            "p",
        )
        .expect("header");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, a_id);
        assert!(entries[0].compressed && !entries[1].compressed);
        assert_eq!(
            (entries[1].offset, entries[1].stored_len),
            (rb.offset, rb.stored_len)
        );
    }

    #[test]
    fn a_flipped_bit_in_a_blob_is_detected() {
        let keys = MasterKeys::generate(CipherKind::ChaCha20Poly1305);
        let mut builder = PackBuilder::new(64);
        let r = builder.add(BlobType::Data, Id([7; 32]), b"payload", false, 7);
        let (id, bytes, _) = builder.seal(&keys);
        let mut damaged = bytes.to_vec();
        damaged[2] ^= 1;
        let err = open_blob(
            &keys.pack_aead(&id),
            BlobType::Data,
            &r,
            &damaged[..r.end() as usize],
        )
        .expect_err("flip");
        assert!(err.to_string().contains("failed authentication"), "{err}");
        assert!(
            locate_header(&damaged[..damaged.len() - 3], damaged.len() as u64 - 3, "p").is_err()
        );
    }
}
