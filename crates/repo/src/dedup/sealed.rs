//! Sealed objects: config, index, snapshots, sessions, gc lists and forward records, each a
//! zstd-compressed JSON payload under AEAD with its object name bound (docs/FORMAT.md §5.2).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::MasterKeys;
use crate::crypto::{NONCE_LEN, TAG_LEN, random_bytes};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CAIRNOB1";

/// What a sealed object is; stored in its header and bound into the AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `config`.
    Config = 1,
    /// `index/*`.
    Index = 2,
    /// `snapshots/*`.
    Snapshot = 3,
    /// `sessions/*`.
    Session = 4,
    /// `gc/*`.
    GcList = 5,
    /// `forward/*`.
    Forward = 6,
}

fn aad(kind: Kind, name: &str) -> Vec<u8> {
    let mut aad = MAGIC.to_vec();
    aad.push(kind as u8);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Serialises, compresses and seals `value` as object `name`.
pub fn seal<T: Serialize>(keys: &MasterKeys, kind: Kind, name: &str, value: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(value)
        .map_err(|e| Error::invalid(format!("encoding {name}")).with_source(e))?;
    let mut buf =
        zstd::bulk::compress(&json, 3).map_err(|e| Error::io(format!("compressing {name}"), e))?;
    let nonce: [u8; NONCE_LEN] = random_bytes();
    keys.object_aead().seal(&nonce, &aad(kind, name), &mut buf);
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + NONCE_LEN + buf.len());
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens object `name`, checking its kind, and parses the payload.
pub fn open<T: DeserializeOwned>(
    keys: &MasterKeys,
    kind: Kind,
    name: &str,
    bytes: &[u8],
) -> Result<T> {
    let header = MAGIC.len() + 1 + NONCE_LEN;
    if bytes.len() < header + TAG_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::corrupt(format!(
            "{name} is not a Cairn repository object (bad header or truncated)"
        )));
    }
    if bytes[MAGIC.len()] != kind as u8 {
        return Err(Error::corrupt(format!(
            "{name} holds a kind {} object where kind {} was expected",
            bytes[MAGIC.len()],
            kind as u8
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[MAGIC.len() + 1..header]);
    let mut buf = bytes[header..].to_vec();
    keys.object_aead()
        .open(&nonce, &aad(kind, name), &mut buf)
        .map_err(|()| {
            Error::crypto(format!(
                "{name} failed authentication: damaged, renamed or written with another key"
            ))
        })?;
    let json = zstd::bulk::decompress(&buf, 256 << 20).map_err(|e| {
        Error::corrupt(format!("{name}: payload does not decompress")).with_source(e)
    })?;
    serde_json::from_slice(&json).map_err(|e| {
        Error::corrupt(format!("{name}: payload is not the expected JSON")).with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CipherKind;

    #[test]
    fn seal_open_and_name_binding() {
        let keys = MasterKeys::generate(CipherKind::Aes256Gcm);
        let sealed = seal(&keys, Kind::Snapshot, "snapshots/a", &vec![1, 2, 3]).expect("seal");
        let back: Vec<i32> = open(&keys, Kind::Snapshot, "snapshots/a", &sealed).expect("open");
        assert_eq!(back, [1, 2, 3]);
        let moved =
            open::<Vec<i32>>(&keys, Kind::Snapshot, "snapshots/b", &sealed).expect_err("renamed");
        assert_eq!(moved.kind(), crate::ErrorKind::Crypto);
        let wrong_kind =
            open::<Vec<i32>>(&keys, Kind::Index, "snapshots/a", &sealed).expect_err("kind");
        assert_eq!(wrong_kind.kind(), crate::ErrorKind::Corrupt);
        let truncated = open::<Vec<i32>>(&keys, Kind::Snapshot, "snapshots/a", &sealed[..10])
            .expect_err("short");
        assert!(truncated.to_string().contains("snapshots/a"), "{truncated}");
    }
}
