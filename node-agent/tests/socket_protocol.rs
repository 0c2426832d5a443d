//! The storage socket's protocol as a gRPC client sees it, over a real unix socket: the socket
//! file, bearer-token authentication, Put's message order and aborts, Get's chunking, List's
//! absolute paths and agent-side filters, the status codes of failures.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use cairn_agent::socket::{CHUNK_SIZE, Grants, SocketServer, Token, Transferred};
use cairn_proto::agent::v1::StorageGrant;
use cairn_proto::datasafed::v1 as pb;
use cairn_proto::datasafed::v1::put_request::Msg;
use cairn_proto::datasafed::v1::storage_client::StorageClient;
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

const BACKUP: &str = "/ns/policy/b1";

struct Server {
    grants: Grants,
    socket: PathBuf,
    socket_dir: TempDir,
    repo: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start() -> Server {
        let socket_dir = tempfile::tempdir().expect("tempdir");
        let repo = tempfile::tempdir().expect("tempdir");
        let grants = Grants::new();
        let server = SocketServer::bind(socket_dir.path()).expect("bind");
        let socket = server.path().to_path_buf();
        let (stop, stopped) = oneshot::channel::<()>();
        let run_grants = grants.clone();
        let task = tokio::spawn(async move {
            server
                .run(run_grants, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Server {
            grants,
            socket,
            socket_dir,
            repo,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn grant(&self) -> StorageGrant {
        StorageGrant {
            repo_name: "local".into(),
            local_path: self.repo.path().display().to_string(),
            read_write_prefix: BACKUP.into(),
            read_only_prefixes: vec!["/ns/policy".into()],
            ..Default::default()
        }
    }

    fn token(&self) -> Token {
        self.grants.issue("action-1", &self.grant()).expect("issue")
    }

    async fn client(&self) -> StorageClient<Channel> {
        let channel = Endpoint::from_shared(format!("unix:{}", self.socket.display()))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        StorageClient::new(channel)
    }

    fn stored(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.repo.path().join(path.trim_start_matches('/'))).ok()
    }

    async fn stop(mut self) -> PathBuf {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.socket.clone()
    }
}

fn authed<T>(message: T, token: &Token) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token.expose())
            .parse()
            .expect("header value"),
    );
    request
}

fn header(path: &str, compression: &str) -> pb::PutRequest {
    pb::PutRequest {
        msg: Some(Msg::Header(pb::PutHeader {
            path: path.into(),
            compression: compression.into(),
        })),
    }
}

fn data(bytes: &[u8]) -> pb::PutRequest {
    pb::PutRequest {
        msg: Some(Msg::Data(bytes.to_vec())),
    }
}

async fn put(
    client: &mut StorageClient<Channel>,
    token: &Token,
    messages: Vec<pb::PutRequest>,
) -> Result<u64, tonic::Status> {
    let stream = tokio_stream::iter(messages);
    client
        .put(authed(stream, token))
        .await
        .map(|r| r.into_inner().bytes)
}

async fn get_chunks(
    client: &mut StorageClient<Channel>,
    token: &Token,
    path: &str,
) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let request = pb::GetRequest {
        path: path.into(),
        decompression: String::new(),
        client_decompresses: false,
    };
    let mut stream = client.get(authed(request, token)).await?.into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await? {
        chunks.push(chunk.data);
    }
    Ok(chunks)
}

#[tokio::test]
async fn the_socket_is_open_to_every_uid_and_removed_at_shutdown() {
    let server = Server::start().await;
    let meta = std::fs::metadata(&server.socket).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    assert_eq!(server.socket, server.socket_dir.path().join("storage.sock"));
    let dir = server.socket_dir.path().to_path_buf();
    let socket = server.stop().await;
    assert!(!socket.exists(), "shutdown removes the socket file");
    drop(dir);
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_another_file_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("storage.sock"))
        .expect("a previous agent's socket");
    drop(stale);
    let server = SocketServer::bind(dir.path()).expect("replaces a stale socket");
    drop(server);
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("storage.sock"), b"not a socket").expect("write");
    let err = SocketServer::bind(other.path()).expect_err("a regular file is in the way");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(
        std::fs::read(other.path().join("storage.sock")).expect("kept"),
        b"not a socket"
    );
}

#[tokio::test]
async fn calls_without_a_live_bearer_token_are_unauthenticated() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let stat = pb::StatRequest {
        path: BACKUP.into(),
    };
    let missing = client
        .stat(Request::new(stat.clone()))
        .await
        .expect_err("no token");
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(
        missing.message().contains("authorization: Bearer"),
        "{missing}"
    );

    let token = server.token();
    let mut basic = Request::new(stat.clone());
    basic.metadata_mut().insert(
        "authorization",
        format!("Basic {}", token.expose()).parse().expect("value"),
    );
    assert_eq!(
        client.stat(basic).await.expect_err("wrong scheme").code(),
        Code::Unauthenticated
    );
    assert!(client.stat(authed(stat.clone(), &token)).await.is_ok());
    server.grants.revoke(&token);
    let revoked = client
        .stat(authed(stat, &token))
        .await
        .expect_err("revoked");
    assert_eq!(revoked.code(), Code::Unauthenticated);
    assert!(
        !revoked.message().contains(token.expose()),
        "the token is never echoed"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_put_must_start_with_its_header_and_carry_only_one() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;
    let no_header = put(&mut client, &token, vec![data(b"x")])
        .await
        .expect_err("data first");
    assert_eq!(no_header.code(), Code::InvalidArgument);
    assert!(no_header.message().contains("PutHeader"), "{no_header}");

    let two = put(
        &mut client,
        &token,
        vec![
            header("/ns/policy/b1/two", ""),
            data(b"first part"),
            header("/ns/policy/b1/other", ""),
        ],
    )
    .await
    .expect_err("second header");
    assert_eq!(two.code(), Code::InvalidArgument);
    assert!(two.message().contains("second PutHeader"), "{two}");
    assert!(
        server.stored("ns/policy/b1/two").is_none(),
        "nothing stored"
    );
    assert!(server.stored("ns/policy/b1/other").is_none());

    let bytes = put(
        &mut client,
        &token,
        vec![
            header("/ns/policy/b1/ok", ""),
            data(b"hello "),
            data(b""),
            data(b"world"),
        ],
    )
    .await
    .expect("a well-formed put");
    assert_eq!(bytes, 11);
    assert_eq!(
        server.stored("ns/policy/b1/ok").as_deref(),
        Some(&b"hello world"[..])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_put_abandoned_by_its_client_stores_nothing() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(header("/ns/policy/b1/abandoned", ""))
        .await
        .expect("send");
    tx.send(data(&vec![7u8; 3 * CHUNK_SIZE / 2]))
        .await
        .expect("send");
    let call =
        tokio::spawn(async move { client.put(authed(ReceiverStream::new(rx), &token)).await });
    // Let the agent receive the first chunk, then the client goes away mid-upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    let _ = call.await;
    // Were the stream not reset, closing the body now would end the upload cleanly.
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.stored("ns/policy/b1/abandoned").is_none(),
        "a reset upload must not leave a truncated object"
    );
    let listed = std::fs::read_dir(server.repo.path().join("ns/policy/b1"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(listed, 0, "no staging files are left behind");
    server.stop().await;
}

#[tokio::test]
async fn get_streams_in_order_in_chunks_of_at_most_one_mebibyte() {
    let server = Server::start().await;
    let token = server.token();
    let content: Vec<u8> = (0..(3 * CHUNK_SIZE + 4321))
        .map(|i| (i % 251) as u8)
        .collect();
    let dir = server.repo.path().join("ns/policy/b1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("big"), &content).expect("write");
    let mut client = server.client().await;
    let chunks = get_chunks(&mut client, &token, "/ns/policy/b1/big")
        .await
        .expect("get");
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.len() <= CHUNK_SIZE));
    assert!(
        chunks.concat() == content,
        "the bytes arrive complete and in order"
    );
    assert_eq!(
        server.grants.transferred("action-1"),
        Some(Transferred {
            bytes_in: 0,
            bytes_out: content.len() as u64
        })
    );
    server.stop().await;
}

/// A compressed push pulled back with `decompression`: `(content-compression header, bytes)`.
async fn get_decompressed(
    client: &mut StorageClient<Channel>,
    token: &Token,
    path: &str,
    client_decompresses: bool,
) -> (Option<String>, Vec<u8>) {
    let request = pb::GetRequest {
        path: path.into(),
        decompression: "zstd-fastest".into(),
        client_decompresses,
    };
    let response = client.get(authed(request, token)).await.expect("get");
    let header = response
        .metadata()
        .get("cairn-content-compression")
        .map(|v| v.to_str().expect("ascii").to_string());
    let mut stream = response.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        bytes.extend_from_slice(&chunk.data);
    }
    (header, bytes)
}

#[tokio::test]
async fn a_client_that_decompresses_gets_the_stored_bytes_and_reports_its_progress() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;
    let content: Vec<u8> = (0..(2 * CHUNK_SIZE + 999)).map(|i| (i % 7) as u8).collect();
    let path = "/ns/policy/b1/db.tar.zst";
    let pushed = put(
        &mut client,
        &token,
        vec![header(path, "zstd-fastest"), data(&content)],
    )
    .await
    .expect("push");
    assert_eq!(pushed, content.len() as u64);
    let stored = server.stored(path).expect("stored");
    assert!(stored.len() < content.len() / 10, "compressed in the agent");

    // An older client (no `client_decompresses`) gets the decompressed bytes and they count.
    let (header_old, old) = get_decompressed(&mut client, &token, path, false).await;
    assert_eq!(header_old, None);
    assert!(old == content, "an old client gets the original bytes");
    let counted = server.grants.transferred("action-1").expect("counters");
    assert_eq!(counted.bytes_out, content.len() as u64);

    // A client that decompresses gets the stored (compressed) bytes, named by the header,
    // and the agent counts nothing for them until the client reports what it decompressed.
    let (header_new, compressed) = get_decompressed(&mut client, &token, path, true).await;
    assert_eq!(header_new.as_deref(), Some("zstd-fastest"));
    assert!(compressed == stored, "the stored bytes, still compressed");
    assert_eq!(
        zstd::decode_all(&compressed[..]).expect("zstd"),
        content,
        "they decompress to the original"
    );
    let after_get = server.grants.transferred("action-1").expect("counters");
    assert_eq!(after_get.bytes_out, content.len() as u64);
    client
        .report_pulled(authed(
            pb::PulledReport {
                bytes: content.len() as u64,
            },
            &token,
        ))
        .await
        .expect("report");
    let reported = server.grants.transferred("action-1").expect("counters");
    assert_eq!(reported.bytes_out, 2 * content.len() as u64);

    // Without a decompression there is nothing to decompress: the bytes come as stored.
    let plain = get_chunks(&mut client, &token, path).await.expect("get");
    assert!(plain.concat() == stored);

    // A report needs a live token like every call.
    let refused = client
        .report_pulled(Request::new(pb::PulledReport { bytes: 1 }))
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn failures_carry_the_code_and_message_a_user_can_act_on() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;

    let missing = get_chunks(&mut client, &token, "/ns/policy/b1/none")
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "ns/policy/b1/none does not exist");

    let denied = put(
        &mut client,
        &token,
        vec![header("/ns/policy/b0/x", ""), data(b"x")],
    )
    .await
    .expect_err("read-only sibling");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message(),
        "writing /ns/policy/b0/x is not allowed: this action may write only under /ns/policy/b1"
    );

    let escape = client
        .stat(authed(
            pb::StatRequest {
                path: "/ns/policy/b1/../../../etc".into(),
            },
            &token,
        ))
        .await
        .expect_err("escape");
    assert_eq!(escape.code(), Code::InvalidArgument);

    let bad_codec = client
        .get(authed(
            pb::GetRequest {
                path: "/ns/policy/b1/x".into(),
                decompression: "snappy".into(),
                client_decompresses: false,
            },
            &token,
        ))
        .await
        .expect_err("unknown decompression");
    assert_eq!(bad_codec.code(), Code::InvalidArgument);

    put(
        &mut client,
        &token,
        vec![header("/ns/policy/b1/d/f", ""), data(b"f")],
    )
    .await
    .expect("put");
    let not_empty = client
        .remove(authed(
            pb::RemoveRequest {
                path: "/ns/policy/b1/d".into(),
                recursive: false,
                dir_only: true,
            },
            &token,
        ))
        .await
        .expect_err("rmdir of a full directory");
    assert_eq!(not_empty.code(), Code::InvalidArgument);
    assert!(not_empty.message().contains("is not empty"), "{not_empty}");
    server.stop().await;
}

#[tokio::test]
async fn a_grant_whose_configuration_is_broken_fails_without_echoing_it() {
    let server = Server::start().await;
    let grant = StorageGrant {
        repo_name: "s3-repo".into(),
        datasafed_config: "[storage]\ntype = s3\nsecret_access_key: HUNTER2SECRET\n".into(),
        read_write_prefix: BACKUP.into(),
        ..Default::default()
    };
    let token = server.grants.issue("action-2", &grant).expect("issue");
    let mut client = server.client().await;
    let err = client
        .stat(authed(
            pb::StatRequest {
                path: BACKUP.into(),
            },
            &token,
        ))
        .await
        .expect_err("broken config");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("\"s3-repo\""), "{err}");
    assert!(!err.message().contains("HUNTER2"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn list_returns_absolute_paths_filtered_by_the_agent() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;
    for (path, body) in [
        ("/ns/policy/b1/a.zst", &b"aaaa"[..]),
        ("/ns/policy/b1/b.json", b"{}"),
        ("/ns/policy/b1/sub/c.zst", b"c"),
    ] {
        put(&mut client, &token, vec![header(path, ""), data(body)])
            .await
            .expect("put");
    }
    let list = |request: pb::ListRequest| {
        let mut client = client.clone();
        let token = token.clone();
        async move {
            let mut stream = client.list(authed(request, &token)).await?.into_inner();
            let mut out = Vec::new();
            while let Some(entry) = stream.message().await? {
                out.push((
                    entry.path,
                    entry.is_dir,
                    entry.size,
                    !entry.modified.is_empty(),
                ));
            }
            Ok::<_, tonic::Status>(out)
        }
    };
    let all = list(pb::ListRequest {
        path: "ns//policy/b1/".into(),
        recursive: true,
        ..Default::default()
    })
    .await
    .expect("list");
    assert_eq!(
        all,
        [
            ("ns/policy/b1/a.zst".to_string(), false, 4, true),
            ("ns/policy/b1/b.json".to_string(), false, 2, true),
            ("ns/policy/b1/sub".to_string(), true, 0, false),
            ("ns/policy/b1/sub/c.zst".to_string(), false, 1, true),
        ]
    );
    let zst = list(pb::ListRequest {
        path: BACKUP.into(),
        recursive: true,
        files_only: true,
        sort_by: "size".into(),
        reverse: true,
        name_glob: "*.zst".into(),
        ..Default::default()
    })
    .await
    .expect("list");
    let paths: Vec<&str> = zst.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(paths, ["ns/policy/b1/a.zst", "ns/policy/b1/sub/c.zst"]);
    let bad = list(pb::ListRequest {
        path: BACKUP.into(),
        older_than: "last week".into(),
        ..Default::default()
    })
    .await
    .expect_err("bad time");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("older_than \"last week\""), "{bad}");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_actions_are_counted_apart() {
    let server = Server::start().await;
    let first = server
        .grants
        .issue("first", &server.grant())
        .expect("issue");
    let second = server
        .grants
        .issue("second", &server.grant())
        .expect("issue");
    let client = server.client().await;
    let push = |token: Token, path: &'static str, size: usize| {
        let mut client = client.clone();
        async move {
            let mut messages = vec![header(path, "zstd-fastest")];
            messages.extend(vec![data(&vec![1u8; size / 4]); 4]);
            put(&mut client, &token, messages).await
        }
    };
    let (a, b) = tokio::join!(
        push(first, "/ns/policy/b1/first", 4 * 1024 * 1024),
        push(second, "/ns/policy/b1/second", 1024 * 1024)
    );
    assert_eq!(a.expect("first"), 4 * 1024 * 1024);
    assert_eq!(b.expect("second"), 1024 * 1024);
    assert_eq!(server.grants.bytes("first"), 4 * 1024 * 1024);
    assert_eq!(server.grants.bytes("second"), 1024 * 1024);
    let stored = server.stored("ns/policy/b1/first").expect("stored");
    assert!(stored.len() < 1024 * 1024, "compressed in the agent");
    server.stop().await;
}

#[tokio::test]
async fn a_symbolic_link_in_the_repository_is_refused_on_every_call() {
    let server = Server::start().await;
    let token = server.token();
    let mut client = server.client().await;
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("s.txt"), b"outside").expect("write");
    let backup = server.repo.path().join("ns/policy/b1");
    std::fs::create_dir_all(&backup).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), backup.join("link")).expect("symlink");
    let refused = format!("{} is a symbolic link", backup.join("link").display());

    let read = get_chunks(&mut client, &token, "/ns/policy/b1/link/s.txt")
        .await
        .expect_err("read through a link");
    assert_eq!(read.code(), Code::InvalidArgument, "{read:?}");
    assert!(read.message().contains(&refused), "{}", read.message());

    let write = put(
        &mut client,
        &token,
        vec![header("/ns/policy/b1/link/new.txt", ""), data(b"planted")],
    )
    .await
    .expect_err("write through a link");
    assert_eq!(write.code(), Code::InvalidArgument, "{write:?}");
    assert!(write.message().contains(&refused), "{}", write.message());

    let remove = client
        .remove(authed(
            pb::RemoveRequest {
                path: "/ns/policy/b1/link".into(),
                recursive: true,
                dir_only: false,
            },
            &token,
        ))
        .await
        .expect_err("rm -r of a link");
    assert_eq!(remove.code(), Code::InvalidArgument, "{remove:?}");
    assert!(remove.message().contains(&refused), "{}", remove.message());

    let stat = client
        .stat(authed(
            pb::StatRequest {
                path: "/ns/policy/b1/link/s.txt".into(),
            },
            &token,
        ))
        .await
        .expect_err("stat through a link");
    assert_eq!(stat.code(), Code::InvalidArgument, "{stat:?}");

    assert_eq!(
        std::fs::read(outside.path().join("s.txt")).expect("still there"),
        b"outside"
    );
    assert!(!outside.path().join("new.txt").exists());
    server.stop().await;
}
