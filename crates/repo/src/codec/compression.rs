//! The compression names KubeBlocks scripts pass to `datasafed push -z` / `pull -d`, and
//! streaming encoders and decoders for them (docs/FORMAT.md §3.2).

use std::io::{self, BufRead, Read, Write};

use flate2::read::{DeflateDecoder, MultiGzDecoder};
use flate2::write::{DeflateEncoder, GzEncoder};

use crate::{Error, Result};

/// A supported compression algorithm and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd frames.
    Zstd {
        /// zstd level (1..=22).
        level: i32,
    },
    /// gzip members (RFC 1952).
    Gzip {
        /// deflate level (1..=9).
        level: u32,
    },
    /// raw deflate (RFC 1951).
    Deflate {
        /// deflate level (1..=9).
        level: u32,
    },
    /// LZ4 frames.
    Lz4,
    /// S2 streams (klauspost/compress/s2 framing, a Snappy extension), which datasafed's
    /// `s2-default`, `s2-better`, `s2-parallel-4` and `s2-parallel-8` all write (the
    /// parallelism is the writer's; the format is the same).
    S2,
}

const SUPPORTED: &str = "zstd, zstd-fastest, zstd-default, zstd-better, zstd-best, gzip*, pgzip*, deflate-*, lz4, s2-default, s2-better, s2-parallel-4, s2-parallel-8";

impl Compression {
    /// Parses a datasafed compression name (`zstd-fastest`, `gzip`, `lz4`, …).
    pub fn parse(name: &str) -> Result<Compression> {
        let lower = name.trim().to_ascii_lowercase();
        let parsed = match lower.as_str() {
            "zstd" | "zstd-default" => Compression::Zstd { level: 3 },
            s if s
                .strip_prefix("zstd-")
                .and_then(|l| l.parse::<i32>().ok())
                .is_some_and(|l| (1..=22).contains(&l)) =>
            {
                Compression::Zstd {
                    level: s[5..].parse().unwrap_or(3),
                }
            }
            "zstd-fastest" => Compression::Zstd { level: 1 },
            "zstd-better" | "zstd-better-compression" => Compression::Zstd { level: 7 },
            "zstd-best" | "zstd-best-compression" => Compression::Zstd { level: 19 },
            "gzip" | "gzip-default" | "pgzip" | "pgzip-default" => Compression::Gzip { level: 6 },
            "gzip-best-speed" | "pgzip-best-speed" => Compression::Gzip { level: 1 },
            "gzip-best-compression" | "pgzip-best-compression" => Compression::Gzip { level: 9 },
            "deflate" | "deflate-default" => Compression::Deflate { level: 6 },
            "deflate-best-speed" => Compression::Deflate { level: 1 },
            "deflate-best-compression" => Compression::Deflate { level: 9 },
            "lz4" => Compression::Lz4,
            "s2" | "s2-default" | "s2-better" | "s2-parallel-4" | "s2-parallel-8" => {
                Compression::S2
            }
            _ => {
                return Err(Error::invalid(format!(
                    "compression {name:?} is not known (supported: {SUPPORTED})"
                )));
            }
        };
        Ok(parsed)
    }

    /// The canonical datasafed name of this algorithm and level.
    pub fn name(self) -> String {
        match self {
            Compression::Zstd { level: 1 } => "zstd-fastest".into(),
            Compression::Zstd { level: 3 } => "zstd".into(),
            Compression::Zstd { level: 7 } => "zstd-better-compression".into(),
            Compression::Zstd { level: 19 } => "zstd-best-compression".into(),
            Compression::Zstd { level } => format!("zstd-{level}"),
            Compression::Gzip { level: 1 } => "gzip-best-speed".into(),
            Compression::Gzip { level: 9 } => "gzip-best-compression".into(),
            Compression::Gzip { .. } => "gzip".into(),
            Compression::Deflate { level: 1 } => "deflate-best-speed".into(),
            Compression::Deflate { level: 9 } => "deflate-best-compression".into(),
            Compression::Deflate { .. } => "deflate-default".into(),
            Compression::Lz4 => "lz4".into(),
            Compression::S2 => "s2-default".into(),
        }
    }

    /// Wraps `inner` so that bytes written are compressed into it.
    pub(crate) fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::Zstd { level } => {
                Encoder::Zstd(Box::new(zstd::stream::write::Encoder::new(inner, level)?))
            }
            Compression::Gzip { level } => {
                Encoder::Gzip(GzEncoder::new(inner, flate2::Compression::new(level)))
            }
            Compression::Deflate { level } => {
                Encoder::Deflate(DeflateEncoder::new(inner, flate2::Compression::new(level)))
            }
            Compression::Lz4 => Encoder::Lz4(Box::new(lz4_flex::frame::FrameEncoder::new(inner))),
            Compression::S2 => Encoder::S2(Box::new(minlz::Writer::new(Slot(Some(inner))))),
        })
    }

    /// Wraps `inner` so that bytes read are decompressed from it (for callers outside the
    /// engine: a client decompressing what an agent sent still compressed).
    pub fn decompressing<R: BufRead + Send + 'static>(
        self,
        inner: R,
    ) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.decoder(inner)?))
    }

    /// Wraps `inner` so that bytes read are decompressed from it.
    pub(crate) fn decoder<R: BufRead>(self, inner: R) -> io::Result<Decoder<R>> {
        Ok(match self {
            Compression::Zstd { .. } => {
                Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(inner)?))
            }
            Compression::Gzip { .. } => Decoder::Gzip(MultiGzDecoder::new(inner)),
            Compression::Deflate { .. } => Decoder::Deflate(DeflateDecoder::new(inner)),
            Compression::Lz4 => Decoder::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(inner))),
            // The S2 writer writes nothing at all for an empty stream (no stream identifier),
            // and its reader refuses an empty input: empty input is the empty stream.
            Compression::S2 => {
                let mut inner = inner;
                if inner.fill_buf()?.is_empty() {
                    Decoder::Empty
                } else {
                    Decoder::S2(Box::new(minlz::Reader::new(inner)))
                }
            }
        })
    }
}

/// A streaming compressor writing into `W`; call [`Encoder::finish`] to get `W` back.
pub(crate) enum Encoder<W: Write> {
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
    Gzip(GzEncoder<W>),
    Deflate(DeflateEncoder<W>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<W>>),
    S2(Box<minlz::Writer<Slot<W>>>),
}

/// The writer under an S2 encoder, taken back out by [`Encoder::finish`] (the S2 writer has
/// no `into_inner`); writes after that fail.
pub(crate) struct Slot<W>(Option<W>);

impl<W: Write> Write for Slot<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("the S2 stream was already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Encoder<W> {
    /// Writes the trailer and returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Deflate(e) => e.finish(),
            Encoder::Lz4(e) => e.finish().map_err(io::Error::from),
            Encoder::S2(mut e) => {
                // The last block is written by flush; S2 streams have no trailer.
                e.flush()?;
                e.get_mut()
                    .0
                    .take()
                    .ok_or_else(|| io::Error::other("the S2 stream was already finished"))
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Deflate(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::S2(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Deflate(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::S2(e) => e.flush(),
        }
    }
}

/// A streaming decompressor reading from `R`.
pub(crate) enum Decoder<R: BufRead> {
    Zstd(Box<zstd::stream::read::Decoder<'static, R>>),
    Gzip(MultiGzDecoder<R>),
    Deflate(DeflateDecoder<R>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<R>>),
    S2(Box<minlz::Reader<R>>),
    /// An empty stream.
    Empty,
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Deflate(d) => d.read(buf),
            Decoder::Lz4(d) => d.read(buf),
            Decoder::S2(d) => d.read(buf),
            Decoder::Empty => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut enc = compression.encoder(Vec::new()).expect("encoder");
        enc.write_all(data).expect("write");
        let compressed = enc.finish().expect("finish");
        let mut out = Vec::new();
        compression
            .decoder(&compressed[..])
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("decode");
        out
    }

    #[test]
    fn every_kubeblocks_name_that_must_work_round_trips() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for name in [
            "zstd",
            "zstd-fastest",
            "zstd-default",
            "zstd-better",
            "zstd-best",
            "gzip",
            "pgzip",
            "gzip-best-speed",
            "deflate-default",
            "deflate-best-compression",
            "lz4",
            "s2-default",
            "s2-better",
            "s2-parallel-4",
            "s2-parallel-8",
        ] {
            let c = Compression::parse(name).expect(name);
            assert_eq!(round_trip(c, &data), data, "{name}");
        }
    }

    #[test]
    fn zstd_output_is_a_standard_frame_any_level_decodes() {
        let data = b"hello hello hello hello".repeat(100);
        let mut enc = Compression::parse("zstd-best")
            .expect("parse")
            .encoder(Vec::new())
            .expect("enc");
        enc.write_all(&data).expect("write");
        let compressed = enc.finish().expect("finish");
        assert_eq!(zstd::decode_all(&compressed[..]).expect("zstd"), data);
    }

    #[test]
    fn concatenated_gzip_members_decode_like_pgzip_output() {
        let c = Compression::parse("gzip").expect("parse");
        let mut both = Vec::new();
        for part in [b"first ".as_slice(), b"second"] {
            let mut enc = c.encoder(Vec::new()).expect("enc");
            enc.write_all(part).expect("write");
            both.extend(enc.finish().expect("finish"));
        }
        let mut out = String::new();
        c.decoder(&both[..])
            .expect("dec")
            .read_to_string(&mut out)
            .expect("read");
        assert_eq!(out, "first second");
    }

    #[test]
    fn canonical_names_parse_back_to_the_same_algorithm() {
        for name in [
            "zstd-fastest",
            "zstd",
            "zstd-better",
            "zstd-best",
            "zstd-5",
            "gzip",
            "pgzip-best-speed",
            "deflate-best-compression",
            "lz4",
            "s2-default",
            "s2-better",
            "s2-parallel-4",
            "s2-parallel-8",
        ] {
            let c = Compression::parse(name).expect(name);
            assert_eq!(Compression::parse(&c.name()).ok(), Some(c), "{name}");
        }
    }

    #[test]
    fn s2_writes_an_s2_stream_and_unknown_names_are_clear_errors() {
        let data = b"binlog event ".repeat(10_000);
        let mut enc = Compression::S2.encoder(Vec::new()).expect("encoder");
        enc.write_all(&data).expect("write");
        let compressed = enc.finish().expect("finish");
        // The stream identifier klauspost/compress/s2's reader expects, then compressed chunks.
        assert_eq!(&compressed[..10], b"\xff\x06\x00\x00S2sTwO");
        assert!(compressed.len() < data.len() / 10, "{}", compressed.len());
        let err = Compression::parse("brotli").expect_err("unknown");
        assert!(err.to_string().contains("\"brotli\""), "{err}");
        assert!(err.to_string().contains("s2-better"), "{err}");
    }

    #[test]
    fn an_empty_stream_round_trips_in_every_codec() {
        for c in [
            Compression::Zstd { level: 1 },
            Compression::Gzip { level: 1 },
            Compression::Lz4,
            Compression::Deflate { level: 1 },
            Compression::S2,
        ] {
            assert_eq!(round_trip(c, &[]), Vec::<u8>::new(), "{}", c.name());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            for c in [Compression::Zstd { level: 1 }, Compression::Gzip { level: 1 }, Compression::Lz4, Compression::Deflate { level: 1 }, Compression::S2] {
                prop_assert_eq!(round_trip(c, &data), data.clone());
            }
        }

        #[test]
        fn garbage_input_errors_instead_of_panicking(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for c in [Compression::Zstd { level: 1 }, Compression::Gzip { level: 1 }, Compression::Lz4, Compression::Deflate { level: 1 }, Compression::S2] {
                let mut out = Vec::new();
                if let Ok(mut d) = c.decoder(&data[..]) {
                    let _ = d.read_to_end(&mut out);
                }
            }
        }
    }
}
