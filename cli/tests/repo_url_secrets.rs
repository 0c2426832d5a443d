//! `cairnctl repo --repo URL` never echoes a credential from the URL: not when the URL does not
//! parse, not when a parameter is wrong, not when the store refuses the credentials (real
//! SeaweedFS S3 server).

use std::process::{Command, Output};

use cairn_repo::testing::{ACCESS_KEY, BUCKET, SeaweedFs};

const SECRET: &str = "Sup3rSecretValue-9f4e";

fn cairnctl(repo: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .arg("repo")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("CAIRN_REPO_PASSWORD", "pw")
        .env_remove("CAIRN_REPO")
        .output()
        .expect("cairnctl runs")
}

/// Runs `cairnctl repo snapshots` on `repo`; it must fail without the secret in its output.
fn fails_without_the_secret(repo: &str) -> String {
    let out = cairnctl(repo, &["snapshots"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{repo}: {stdout}{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(SECRET),
            "{repo}: the secret is printed: {text}"
        );
        assert!(
            !text.contains("Sup3r"),
            "{repo}: part of the secret is printed: {text}"
        );
    }
    stderr.into_owned()
}

#[test]
fn urls_that_do_not_parse_are_shown_with_their_credentials_redacted() {
    for (repo, shown) in [
        // The case: no bucket.
        (
            format!("s3://?secret_access_key={SECRET}"),
            "s3://?secret_access_key=<redacted>",
        ),
        // Not a URL at all.
        (
            format!("s3 ://b/p?access_key_id=AK&secret_access_key={SECRET}"),
            "s3 ://b/p?access_key_id=AK&secret_access_key=<redacted>",
        ),
        (
            format!("s3://b:99999999/p?session_token={SECRET}"),
            "s3://b:99999999/p?session_token=<redacted>",
        ),
        (
            format!("az://?key={SECRET}&account=a"),
            "az://?key=<redacted>&account=a",
        ),
        // Percent-encoded names are read as the parser reads them.
        (
            format!("s3://?secret%5Faccess%5Fkey={SECRET}"),
            "s3://?secret%5Faccess%5Fkey=<redacted>",
        ),
        // User information is refused, and not shown.
        (
            format!("s3://AK:{SECRET}@bucket/p"),
            "s3://<redacted>@bucket/p",
        ),
        // An endpoint with user information.
        (
            format!("s3:///p?endpoint=https://u:{SECRET}@h:1"),
            "s3:///p?endpoint=<redacted>",
        ),
    ] {
        let stderr = fails_without_the_secret(&repo);
        assert!(stderr.contains(shown), "{repo}: {stderr}");
    }
}

#[test]
fn wrong_parameters_are_named_without_the_credentials() {
    for repo in [
        format!("s3://b/p?secret_access_key={SECRET}&insecure=maybe"),
        format!("s3://b/p?secret_access_key={SECRET}&part_size=lots"),
        format!("s3://b/p?secret_access_key={SECRET}&endpiont=x"),
        // A value typed where a name belongs.
        format!("s3://b/p?secret_access_key%3D{SECRET}"),
        format!("s3://b/p?{SECRET}"),
        format!("ftp://h/p?secret_access_key={SECRET}"),
    ] {
        fails_without_the_secret(&repo);
    }
}

#[test]
fn an_s3_store_refusing_the_credentials_is_reported_without_them() {
    let server = SeaweedFs::shared();
    let repo = format!(
        "s3://{BUCKET}/url-secrets-{}?endpoint={}&region=us-east-1&access_key_id={ACCESS_KEY}&secret_access_key={SECRET}",
        std::process::id(),
        server.endpoint
    );
    let out = cairnctl(&repo, &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let stderr = fails_without_the_secret(&repo);
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
}
