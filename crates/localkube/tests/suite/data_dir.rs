//! The data directory holds every Secret (in the store and its WAL), the token, the CA key
//! and the pods' logs: no other local user may read any of it, also after an upgrade from a
//! version that wrote it world-readable.

use crate::common::{builder, install_crypto};
use crate::kubectl::{Kubectl, kubectls};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

/// What the unprivileged `nobody` user can read of `path` (None when refused).
fn read_as_nobody(path: &Path) -> Option<Vec<u8>> {
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(path)
        .output()
        .expect("setpriv runs");
    o.status.success().then_some(o.stdout)
}

/// The files localkube writes for itself: 0600, in 0700 directories.
fn assert_own_files_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "{}", data.display());
    for dir in ["pki", "kubelet", "volumes", "shared", "snapshots"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
    for file in [
        "store.db",
        "store.db-wal",
        "token",
        "kubeconfig",
        "pki/ca.crt",
        "pki/ca.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_other_user_can_read_the_store_the_keys_or_the_logs_even_after_an_upgrade() {
    install_crypto();
    let tmp = tempfile::tempdir().unwrap();
    // The data directory's parent is open to everyone, as a home directory usually is.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let home = tempfile::tempdir().unwrap();
    let server = builder(tmp.path()).kubelet(true).start().await.unwrap();
    let t = crate::common::TestServer {
        server: Some(server),
        _dir: tempfile::tempdir().unwrap(),
        home,
    };
    let k = Kubectl {
        binary: kubectls().remove(0),
        server: &t,
        env: Vec::new(),
    };
    k.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2-in-the-wal",
    ]);
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: main, image: debian, command: [sh, -c, 'echo log-line-of-the-pod']}\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/p",
        "--timeout=60s",
    ]);
    assert_eq!(k.ok(&["logs", "p"]), "log-line-of-the-pod\n");

    let mut all = Vec::new();
    walk(&data, &mut all);
    for path in all.iter().chain([&data]) {
        if std::fs::symlink_metadata(path).unwrap().is_file() {
            assert_eq!(
                read_as_nobody(path),
                None,
                "another user read {}",
                path.display()
            );
        }
    }
    assert_own_files_private(&data);
    let logs: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert!(
        !logs.is_empty(),
        "the pod's log is under the data directory"
    );
    for log in &logs {
        assert_eq!(mode(log), 0o600, "{}", log.display());
    }
    let wal = std::fs::read(data.join("store.db-wal")).unwrap();
    assert!(
        wal.windows(8).any(|w| w == b"aHVudGVy"),
        "the Secret is in the WAL (base64), which is why it must be private"
    );

    // A data directory written by an older version: everything world-readable.
    let mut t = t;
    t.server.take().unwrap().shutdown().await.unwrap();
    for path in all.iter().chain([&data]) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let open = if meta.is_dir() { 0o755 } else { 0o644 };
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(open)).unwrap();
        }
    }
    for file in ["store.db-wal", "store.db-shm"] {
        if !data.join(file).exists() {
            std::fs::write(data.join(file), b"").unwrap();
            std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
    }
    let server = builder(tmp.path()).kubelet(false).start().await.unwrap();
    assert_own_files_private(&data);
    assert_eq!(mode(&data.join("store.db-shm")), 0o600);
    assert_eq!(read_as_nobody(&data.join("store.db")), None);
    assert_eq!(read_as_nobody(&data.join("kubeconfig")), None);
    server.shutdown().await.unwrap();
}
