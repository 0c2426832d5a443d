//! The agent port's accept loop: TCP accept, mTLS handshake, one log line per refused peer.
//!
//! tonic's built-in TLS cannot report a failed handshake with the peer's address, so the
//! handshake happens here and tonic gets established TLS streams through
//! `serve_with_incoming`; tonic still exposes the peer certificates to handlers.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_certs::ServerTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::refusal::{HandshakeRefusal, TLS_HANDSHAKE_RECORD};

/// An established mTLS connection.
pub type TlsConnection = TlsStream<TcpStream>;

/// Established connections waiting for tonic; handshakes beyond this wait in their tasks.
const ESTABLISHED_BACKLOG: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts TCP connections on `listener` and yields those that complete the mTLS handshake
/// within `handshake_timeout`; every other one is logged (`agent refused: <reason>` with
/// `peer.addr`) and closed. Handshakes run concurrently, so a slow client delays nobody.
/// The loop ends when the returned stream is dropped.
pub fn tls_incoming(
    listener: TcpListener,
    config: impl Into<ServerTls>,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    tls_incoming_for("agent", listener, config, handshake_timeout)
}

/// [`tls_incoming`] for the peers of another port: refusals are logged as `<peer> refused`.
///
/// Each connection is accepted with the configuration `config` gives at that moment, so
/// certificates rotated on disk (a [`ServerTls::Reloading`]) apply from the next connection.
pub fn tls_incoming_for(
    what: &'static str,
    listener: TcpListener,
    config: impl Into<ServerTls>,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (tx, rx) = mpsc::channel(ESTABLISHED_BACKLOG);
    let config = config.into();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = TlsAcceptor::from(config.current());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Some(tls) =
                            handshake(what, tcp, peer, acceptor, handshake_timeout).await
                        {
                            let _ = tx.send(Ok(tls)).await;
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!("accepting a connection on the {what} port failed: {err}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    what: &'static str,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    timeout: Duration,
) -> Option<TlsConnection> {
    let _ = tcp.set_nodelay(true);
    let attempt = async {
        // A TLS client's first byte is a handshake record; anything else is plaintext (for
        // example an HTTP/2 preface), which rustls would only report as a bad record type.
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => return Err(None),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                return Err(Some(HandshakeRefusal::Plaintext));
            }
            Ok(_) => {}
            Err(err) => return Err(Some(HandshakeRefusal::from_io(&err))),
        }
        acceptor
            .accept(tcp)
            .await
            .map_err(|err| Some(HandshakeRefusal::from_io(&err)))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(tls)) => {
            tracing::debug!(peer.addr = %peer, "TLS session established");
            Some(tls)
        }
        // Connected and closed without a byte: a TCP probe or a port scan, not a client.
        Ok(Err(None)) => {
            tracing::debug!(peer.addr = %peer, "connection closed before TLS started");
            None
        }
        Ok(Err(Some(refusal))) => {
            tracing::warn!(peer.addr = %peer, "{what} refused: {refusal}");
            None
        }
        Err(_) => {
            tracing::warn!(peer.addr = %peer, "{what} refused: {}", HandshakeRefusal::TimedOut);
            None
        }
    }
}
