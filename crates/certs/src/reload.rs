//! Certificates that rotate under a running process: cert-manager renewing a Secret, the
//! kubelet swapping the mounted files, the agent's renewal sidecar writing a new certificate.
//!
//! [`Reloading`] keeps what was built from a set of PEM files and rebuilds it when their
//! contents change. It is asked at every use (each TLS handshake of a server, each dial of a
//! client), so a rotation takes effect at the next connection, with no restart and no timer;
//! connections already established keep the certificates they were made with. The files are a
//! few kilobytes: reading them costs far less than the handshake that follows.
//!
//! A set of files that does not build (a certificate written before its key, a truncated file)
//! is logged once and the previous material stays in use until the files are complete again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::ServerConfig;

use crate::server_config::{ServerConfigError, server_config};

/// A failure to load the files the first time.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError<E: std::error::Error + 'static> {
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The files were read but what they hold is not usable.
    #[error(transparent)]
    Build(E),
}

type Build<T, E> = dyn Fn(&[String]) -> Result<T, E> + Send + Sync;

/// A value built from PEM files, rebuilt when the files change (see the module comment).
pub struct Reloading<T, E> {
    what: &'static str,
    paths: Vec<PathBuf>,
    build: Box<Build<T, E>>,
    state: Mutex<State<T>>,
}

struct State<T> {
    contents: Vec<String>,
    value: T,
    /// The last contents that failed to build (or the path that failed to read), so that a
    /// broken rotation is logged once, not at every connection.
    refused: Option<Vec<String>>,
}

impl<T: Clone, E: std::error::Error + 'static> Reloading<T, E> {
    /// Reads `paths` and builds the first value with `build`, which receives the files'
    /// contents in the order of `paths`. `what` names the material in logs ("the agent port's
    /// TLS certificates").
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        build: impl Fn(&[String]) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, ReloadError<E>> {
        let contents = read_all(&paths).map_err(|(path, source)| ReloadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value = build(&contents).map_err(ReloadError::Build)?;
        Ok(Reloading {
            what,
            paths,
            build: Box::new(build),
            state: Mutex::new(State {
                contents,
                value,
                refused: None,
            }),
        })
    }

    /// The value built from the files as they are now; the previous value while they cannot
    /// be read or do not build.
    pub fn current(&self) -> T {
        let mut state = self.lock();
        let contents = match read_all(&self.paths) {
            Ok(contents) => contents,
            Err((path, err)) => {
                let marker = vec![format!("unreadable {}", path.display())];
                if state.refused.as_ref() != Some(&marker) {
                    tracing::warn!(
                        "{}: cannot read {} ({err}); still using the certificates loaded before",
                        self.what,
                        path.display()
                    );
                    state.refused = Some(marker);
                }
                return state.value.clone();
            }
        };
        if contents == state.contents {
            return state.value.clone();
        }
        if state.refused.as_ref() == Some(&contents) {
            return state.value.clone();
        }
        match (self.build)(&contents) {
            Ok(value) => {
                tracing::info!(
                    files = %self.shown_paths(),
                    "{}: the files changed, new connections use the new certificates",
                    self.what
                );
                state.value = value.clone();
                state.contents = contents;
                state.refused = None;
                value
            }
            Err(err) => {
                tracing::warn!(
                    files = %self.shown_paths(),
                    "{}: the files changed but are not usable ({}); still using the certificates loaded before",
                    self.what,
                    error_chain(&err)
                );
                state.refused = Some(contents);
                state.value.clone()
            }
        }
    }

    /// The files watched.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn shown_paths(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves a consistent state (fields are replaced
        // together after the build), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T, E> std::fmt::Debug for Reloading<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<String>, (&Path, std::io::Error)> {
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).map_err(|err| (path.as_path(), err)))
        .collect()
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A server's TLS configuration: fixed, or rebuilt from its files when they rotate.
#[derive(Clone, Debug)]
pub enum ServerTls {
    /// Built once (tests, or material that never rotates).
    Fixed(Arc<ServerConfig>),
    /// Read from files at each handshake.
    Reloading(Arc<Reloading<Arc<ServerConfig>, ServerConfigError>>),
}

impl ServerTls {
    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self {
            ServerTls::Fixed(config) => config.clone(),
            ServerTls::Reloading(reloading) => reloading.current(),
        }
    }
}

impl From<Arc<ServerConfig>> for ServerTls {
    fn from(config: Arc<ServerConfig>) -> Self {
        ServerTls::Fixed(config)
    }
}

/// The agent port's configuration from `--tls-ca` (the CA client certificates must chain to),
/// `--tls-cert` and `--tls-key`, reloaded when any of the three changes: a renewed server
/// certificate and a rotated CA both take effect at the next handshake.
pub fn reloading_server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<ServerTls, ReloadError<ServerConfigError>> {
    let reloading = Reloading::new(
        "the agent port's TLS certificates",
        vec![ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()],
        |pems: &[String]| server_config(&pems[0], &pems[1], &pems[2]),
    )?;
    Ok(ServerTls::Reloading(Arc::new(reloading)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Validity};
    use crate::pem_files::CertFiles;

    fn write_pki(dir: &Path, ca: &Ca) -> (PathBuf, CertFiles) {
        let server = ca
            .issue_server(&["localhost".into()], &[], Validity::days(1))
            .unwrap();
        let files = CertFiles::from_stem(&dir.join("server"));
        server.write(&files).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        (ca_path, files)
    }

    #[test]
    fn changed_files_build_a_new_config_and_broken_ones_keep_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_path, files) = write_pki(dir.path(), &Ca::generate(Validity::days(1)).unwrap());
        let tls = reloading_server_config(&ca_path, &files.cert, &files.key).unwrap();
        let first = tls.current();
        assert!(
            Arc::ptr_eq(&first, &tls.current()),
            "unchanged files reuse the config"
        );

        // A certificate whose key is not written yet: the old configuration stays.
        let other = Ca::generate(Validity::days(1)).unwrap();
        let next = other
            .issue_server(&["localhost".into()], &[], Validity::days(1))
            .unwrap();
        std::fs::write(&files.cert, &next.cert_pem).unwrap();
        assert!(
            Arc::ptr_eq(&first, &tls.current()),
            "a mismatched pair is not used"
        );

        std::fs::write(&files.key, &next.key_pem).unwrap();
        std::fs::write(&ca_path, other.cert_pem()).unwrap();
        let second = tls.current();
        assert!(!Arc::ptr_eq(&first, &second), "complete new files are used");

        std::fs::remove_file(&files.key).unwrap();
        assert!(
            Arc::ptr_eq(&second, &tls.current()),
            "a missing file keeps the last"
        );
    }

    #[test]
    fn the_first_load_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = reloading_server_config(&missing, &missing, &missing).unwrap_err();
        assert_eq!(err.to_string(), format!("reading {}", missing.display()));
    }
}
