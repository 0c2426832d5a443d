//! Bridges between blocking codec threads and async transfers: a `Write` that emits upload
//! parts, and a `Read` over a stream of downloaded buffers.

use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::Result;
use crate::backend::Part;

/// Marks the error a producer gets when the upload side went away first.
#[derive(Debug)]
pub(crate) struct UploadStopped;

impl std::fmt::Display for UploadStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upload stopped")
    }
}

impl std::error::Error for UploadStopped {}

/// A `Write` that cuts what it receives into parts of exactly `part_size` bytes and sends
/// them to an uploader; [`PartWriter::finish`] sends the rest and [`Part::End`].
pub(crate) struct PartWriter {
    tx: mpsc::Sender<Result<Part>>,
    buf: BytesMut,
    part_size: usize,
    sent: u64,
}

impl PartWriter {
    pub(crate) fn new(tx: mpsc::Sender<Result<Part>>, part_size: usize) -> PartWriter {
        PartWriter {
            tx,
            buf: BytesMut::with_capacity(part_size),
            part_size,
            sent: 0,
        }
    }

    fn send(&mut self, message: Result<Part>) -> io::Result<()> {
        self.tx
            .blocking_send(message)
            .map_err(|_| io::Error::other(UploadStopped))
    }

    /// Sends the last part and the end marker; returns the bytes written.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        if !self.buf.is_empty() {
            let part = self.buf.split().freeze();
            self.sent += part.len() as u64;
            self.send(Ok(Part::Data(part)))?;
        }
        self.send(Ok(Part::End))?;
        Ok(self.sent)
    }

    /// A handle to tell the uploader to abort.
    pub(crate) fn sender(&self) -> mpsc::Sender<Result<Part>> {
        self.tx.clone()
    }
}

impl Write for PartWriter {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        while !data.is_empty() {
            let take = (self.part_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.part_size {
                let part = self.buf.split().freeze();
                self.sent += part.len() as u64;
                self.buf.reserve(self.part_size);
                self.send(Ok(Part::Data(part)))?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blocking `Read` over an async stream of buffers (run on a blocking thread).
pub(crate) struct StreamReader {
    stream: BoxStream<'static, Result<Bytes>>,
    handle: tokio::runtime::Handle,
    current: Bytes,
    done: bool,
    pub(crate) bytes_read: u64,
}

impl StreamReader {
    pub(crate) fn new(
        stream: BoxStream<'static, Result<Bytes>>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        StreamReader {
            stream,
            handle,
            current: Bytes::new(),
            done: false,
            bytes_read: 0,
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.handle.block_on(self.stream.next()) {
                None => self.done = true,
                Some(Ok(bytes)) => {
                    self.bytes_read += bytes.len() as u64;
                    self.current = bytes;
                }
                Some(Err(e)) => return Err(e.into_io()),
            }
        }
        let n = self.current.len().min(out.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl io::BufRead for StreamReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() && !self.done {
            match self.handle.block_on(self.stream.next()) {
                None => self.done = true,
                Some(Ok(bytes)) => {
                    self.bytes_read += bytes.len() as u64;
                    self.current = bytes;
                }
                Some(Err(e)) => return Err(e.into_io()),
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        let _ = self.current.split_to(amount.min(self.current.len()));
    }
}

/// Which side of a copy failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading (the source, a decryptor, a decompressor).
    Read(io::Error),
    /// Writing (the destination, a compressor, the uploader).
    Write(io::Error),
}

/// Copies `reader` into `writer` with a 1 MiB buffer, reporting bytes to `on_bytes`.
pub(crate) fn copy_with_progress<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
    mut on_bytes: impl FnMut(u64),
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        on_bytes(n as u64);
    }
}
