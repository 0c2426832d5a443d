//! A GCS repository configured with a service-account key signs its writes with that key:
//! every JSON API upload carries an RS256 JWT for the account (object_store's self-signed JWT,
//! scope `cloud-platform`), checked here with the key's public half. The emulators accept
//! anything, so a loopback server records what a write sends instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_repo::config::{BackendConfig, GcsConfig, Secret};
use cairn_repo::testing::emulators::ServiceAccount;
use cairn_repo::{StorageConfig, Store};

/// One request as the server read it: the request line and the `Authorization` header.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    authorization: Option<String>,
}

/// Answers every request with an object resource, one request per connection.
fn recorder() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut authorization = None;
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    let value = value.trim().to_string();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "authorization" => authorization = Some(value),
                        "content-length" => length = value.parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            record.lock().expect("lock").push(Seen {
                line: line.trim().to_string(),
                authorization,
            });
            let answer = r#"{"kind":"storage#object","etag":"CAE=","generation":"1"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_gcs_is_signed_with_the_service_account_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = ServiceAccount::generate(dir.path(), "backup-writer").expect("a key");
    let (port, seen) = recorder();
    let config = StorageConfig {
        backend: BackendConfig::Gcs(GcsConfig {
            bucket: "bk".into(),
            prefix: "pre".into(),
            service_account_key: Secret::new(&account.json),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            allow_http: true,
            ..GcsConfig::default()
        }),
        part_size: None,
    };
    let store = Store::open(&config).expect("store");
    store
        .put("ns/b 1/data.bin", Bytes::from_static(b"payload"))
        .await
        .expect("put");

    let seen = seen.lock().expect("lock").clone();
    let [upload] = seen.as_slice() else {
        panic!("one request: {seen:?}")
    };
    assert_eq!(
        upload.line,
        "POST /upload/storage/v1/b/bk/o?uploadType=media&name=pre%2Fns%2Fb%201%2Fdata.bin HTTP/1.1",
        "a JSON API media upload of the object"
    );
    let bearer = upload
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token");
    let claims = account.verify(bearer).expect("signed by the account's key");
    assert_eq!(claims["iss"], account.email.as_str());
    assert_eq!(claims["sub"], account.email.as_str());
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let now = jiff::Timestamp::now().as_second();
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        exp > now && exp <= now + 3700,
        "expires within the hour: {exp}"
    );

    // The check is real: the same signature over other claims does not verify.
    let mut parts: Vec<String> = bearer.split('.').map(str::to_string).collect();
    let mut forged = claims.clone();
    forged["iss"] = "someone-else@cairn-test.iam.gserviceaccount.com".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        forged.to_string(),
    );
    assert!(account.verify(&parts.join(".")).is_err());
}
