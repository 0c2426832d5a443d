//! Byte-stream codecs of plain files: compression by datasafed name, and the segmented AEAD
//! stream.

pub mod compression;
pub mod legacy_cfb;
pub mod sealed_stream;
