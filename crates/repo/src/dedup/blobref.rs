//! Blob refs: 80 bytes naming a blob and where it lives, so readers need no index
//! (docs/FORMAT.md §5.4).

use super::id::Id;
use crate::{Error, Result};

/// Encoded length of a ref.
pub const REF_LEN: usize = 80;

/// A located blob: chunk id, pack, index in the pack, byte range, raw length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// Keyed BLAKE3 of the plaintext.
    pub id: Id,
    /// The pack holding the blob; all zeros for a zero run.
    pub pack: Id,
    /// Index of the blob in its pack.
    pub index: u32,
    /// Byte offset of the blob in its pack.
    pub offset: u32,
    /// Bytes of the blob in the pack (ciphertext + tag).
    pub stored_len: u32,
    /// Bytes of the plaintext chunk.
    pub raw_len: u32,
}

impl BlobRef {
    /// A run of `len` zero bytes (no blob).
    pub fn zero_run(len: u32) -> BlobRef {
        BlobRef {
            id: Id::ZERO,
            pack: Id::ZERO,
            index: 0,
            offset: 0,
            stored_len: 0,
            raw_len: len,
        }
    }

    /// Whether this ref is a zero run.
    pub fn is_zero_run(&self) -> bool {
        self.pack.is_zero()
    }

    /// Whether the stored plaintext is zstd-compressed (it is iff it is shorter than the chunk).
    pub fn is_compressed(&self) -> bool {
        (self.stored_len as usize).saturating_sub(crate::crypto::TAG_LEN) != self.raw_len as usize
    }

    /// End of the blob in its pack.
    pub fn end(&self) -> u64 {
        self.offset as u64 + self.stored_len as u64
    }

    /// Appends the 80-byte encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.pack.0);
        for word in [self.index, self.offset, self.stored_len, self.raw_len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// The 80-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REF_LEN);
        self.encode_into(&mut out);
        out
    }

    /// Decodes 80 bytes.
    pub fn decode(bytes: &[u8]) -> Result<BlobRef> {
        if bytes.len() != REF_LEN {
            return Err(Error::corrupt(format!(
                "a blob ref must be {REF_LEN} bytes, found {}",
                bytes.len()
            )));
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[..32]);
        let mut pack = [0u8; 32];
        pack.copy_from_slice(&bytes[32..64]);
        Ok(BlobRef {
            id: Id(id),
            pack: Id(pack),
            index: word(64),
            offset: word(68),
            stored_len: word(72),
            raw_len: word(76),
        })
    }

    /// Hex of the encoding (how trees and indexes carry refs in JSON).
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Parses the hex form.
    pub fn from_hex(text: &str) -> Result<BlobRef> {
        let bytes = hex::decode(text)
            .map_err(|_| Error::corrupt(format!("blob ref {text:?} is not hex")))?;
        BlobRef::decode(&bytes)
    }
}

impl serde::Serialize for BlobRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for BlobRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<BlobRef, D::Error> {
        let text = String::deserialize(d)?;
        BlobRef::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Encodes a content list: `count u32 LE ‖ refs`.
pub fn encode_content_list(refs: &[BlobRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + refs.len() * REF_LEN);
    out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
    for r in refs {
        r.encode_into(&mut out);
    }
    out
}

/// Files with at most this many content lists have them read together per directory, by a
/// backup checking unchanged files and by a restore, rather than file by file.
pub(crate) const SMALL_FILE_LISTS: usize = 2;

/// Decodes a content list.
pub fn decode_content_list(bytes: &[u8], name: &dyn Fn() -> String) -> Result<Vec<BlobRef>> {
    if bytes.len() < 4 {
        return Err(Error::corrupt(format!(
            "content list {} is truncated",
            name()
        )));
    }
    let count = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if bytes.len() != 4 + count * REF_LEN {
        return Err(Error::corrupt(format!(
            "content list {} says {count} refs but holds {} bytes",
            name(),
            bytes.len()
        )));
    }
    bytes[4..]
        .chunks_exact(REF_LEN)
        .map(BlobRef::decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_ref() -> impl Strategy<Value = BlobRef> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(id, pack, index, offset, stored_len, raw_len)| BlobRef {
                id: Id(id),
                pack: Id(pack),
                index,
                offset,
                stored_len,
                raw_len,
            })
    }

    proptest! {
        #[test]
        fn refs_and_content_lists_round_trip(refs in proptest::collection::vec(arb_ref(), 0..20)) {
            for r in &refs {
                prop_assert_eq!(BlobRef::decode(&r.to_bytes()).ok(), Some(*r));
                prop_assert_eq!(BlobRef::from_hex(&r.to_hex()).ok(), Some(*r));
            }
            let encoded = encode_content_list(&refs);
            prop_assert_eq!(decode_content_list(&encoded, &|| "x".into()).ok(), Some(refs));
        }

        #[test]
        fn garbage_content_lists_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_content_list(&bytes, &|| "x".into());
        }
    }

    #[test]
    fn zero_runs_and_compression_flag() {
        assert!(BlobRef::zero_run(8192).is_zero_run());
        let raw = BlobRef {
            id: Id::ZERO,
            pack: Id([1; 32]),
            index: 0,
            offset: 0,
            stored_len: 116,
            raw_len: 100,
        };
        assert!(!raw.is_compressed());
        assert!(
            BlobRef {
                stored_len: 60,
                ..raw
            }
            .is_compressed()
        );
    }
}
