//! The node agent's real storage socket, served in the test process (`#[path]`-included by
//! the datasafed socket tests).

use std::path::PathBuf;

use cairn_agent::socket::{Grants, SocketServer};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A storage socket server on its own runtime; stopped when dropped.
pub struct SocketAgent {
    _runtime: tokio::runtime::Runtime,
    /// The grants the server checks tokens against.
    pub grants: Grants,
    /// The socket path (`CAIRN_STORAGE_SOCKET`).
    pub socket: PathBuf,
    _socket_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl SocketAgent {
    /// Binds a socket in a temporary directory and serves it.
    pub fn start() -> SocketAgent {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let socket_dir = tempfile::tempdir().expect("tempdir");
        let grants = Grants::new();
        let server = runtime
            .block_on(async { SocketServer::bind(socket_dir.path()) })
            .expect("bind the socket");
        let socket = server.path().to_path_buf();
        let (stop, stopped) = oneshot::channel::<()>();
        runtime.spawn(server.run(grants.clone(), async {
            let _ = stopped.await;
        }));
        SocketAgent {
            _runtime: runtime,
            grants,
            socket,
            _socket_dir: socket_dir,
            stop: Some(stop),
        }
    }
}

impl Drop for SocketAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
