//! The file backup and byte-for-byte restore through the agent with the StorageProviders
//! KubeBlocks ships for Azure Blob (`azureblob`, against Azurite) and for Google Cloud Storage's
//! S3-interoperable API (`gcs-s3comp`, against SeaweedFS: no GCS emulator serves that API), read
//! from `$CAIRN_KUBEBLOCKS_FIXTURES` and applied unchanged (skipped when it is unset), and with a
//! native GCS provider (JSON API, service-account key; KubeBlocks ships none, see
//! tests/manifests/gcs-provider.yaml) against fake-gcs-server. `cairn_repo::testing::emulators`
//! says what each emulator serves and what the emulators hide.

use std::time::Duration;

use cairn_e2e::db::fixtures;
use cairn_e2e::s3::SeaweedFs;
use cairn_e2e::stack::TestStack;
use cairn_e2e::{dp, files, manifests, run, scenario};
use cairn_repo::testing::emulators::{Azurite, GcsEmulator, ServiceAccount};

const NS: &str = "shop";

/// A repository `repo` on `provider`, then a backup of a fresh workload into it and a restore
/// into a new PVC compared byte for byte; `direct` is a datasafed config reaching the store
/// directly, to see what the backup stored. Returns the backup's path.
async fn round_trip(
    stack: &TestStack,
    repo: &str,
    provider: &str,
    config: &[(&str, &str)],
    credential: &[(&str, &str)],
    direct: &str,
) -> anyhow::Result<String> {
    let map = |pairs: &[(&str, &str)], indent: &str| {
        pairs
            .iter()
            .map(|(k, v)| format!("{indent}{k}: {v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    stack
        .kubectl
        .apply(&manifests::render(
            "cloud-repo.yaml",
            &[
                ("REPO", repo),
                ("PROVIDER", provider),
                ("CREDENTIAL_NS", "storage-keys"),
                ("CREDENTIAL_DATA", &map(credential, "  ")),
                ("CONFIG", &map(config, "    ")),
                ("PATH_PREFIX", "e2e"),
            ],
        )?)
        .await?;
    dp::repo_ready(&stack.client, repo, Duration::from_secs(90)).await?;

    let workload = scenario::workload(stack, NS, "db", 2 << 20).await?;
    let source = files::tree(&workload.data_dir)?;
    let policy = scenario::file_policy(stack, &workload, "db-cloud", "files", repo, "").await?;
    scenario::backup(
        stack,
        NS,
        "db-cloud-1",
        &policy.name,
        &policy.method,
        "Delete",
    )
    .await?;
    let backup =
        dp::backup_completed(&stack.client, NS, "db-cloud-1", Duration::from_secs(120)).await?;
    let status = backup.status.unwrap_or_default();
    anyhow::ensure!(
        status.backup_repo_name.as_deref() == Some(repo),
        "the policy's repository was used, got {:?}",
        status.backup_repo_name
    );
    let path = status.path.unwrap_or_default();
    anyhow::ensure!(path.starts_with("/e2e/shop/"), "the path: {path}");

    // What the store holds, seen with the keys directly (as an operator would).
    let config_file = stack.scratch.join("direct.conf");
    std::fs::write(&config_file, direct)?;
    let listing = std::process::Command::new(stack.stack.bin_dir.join("datasafed"))
        .arg("-c")
        .arg(&config_file)
        .args(["list", "-r", &path])
        .output()?;
    let listed = String::from_utf8_lossy(&listing.stdout);
    anyhow::ensure!(
        listing.status.success()
            && listed.contains("db-cloud-1.tar.zst")
            && listed.contains("kubeblocks-backup.json"),
        "the store holds the archive and the backup manifest under {path}: {listed} {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    anyhow::ensure!(
        !stack.local_repo().join("e2e").exists() && !stack.local_repo().join("shop").exists(),
        "nothing went to the local repository"
    );

    scenario::restore(
        stack,
        NS,
        "db-cloud-restore",
        "db-cloud-1",
        "data-db-restored",
    )
    .await?;
    dp::restore_completed(
        &stack.client,
        NS,
        "db-cloud-restore",
        Duration::from_secs(120),
    )
    .await?;
    let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
    let differences = files::differences(&source, &restored);
    anyhow::ensure!(
        differences.is_empty(),
        "the PVC restored from {provider} differs from the original:\n{}",
        differences.join("\n")
    );
    dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await?;
    Ok(path)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backup_to_azure_blob_through_kubeblocks_azureblob_provider_restores_byte_for_byte()
-> anyhow::Result<()> {
    let test = "backup_cloud_emulators::azureblob";
    let Some(kubeblocks) = fixtures::dir(test)? else {
        return Ok(());
    };
    run("backup-azureblob", async |stack| {
        // Fresh random credentials: a test that finds the key anywhere knows it leaked.
        let account = format!("e2e{}", random_hex(6));
        let key = base64_of(&random_hex(32));
        let azurite = Azurite::start(&stack.scratch.join("azurite"), &account, &key)
            .map_err(anyhow::Error::msg)?;
        azurite
            .create_container("backups")
            .map_err(anyhow::Error::msg)?;
        stack
            .kubectl
            .apply(&fixtures::read(
                &kubeblocks,
                "kb-0.9_helm_azureblob_azureblob.yaml",
            )?)
            .await?;
        round_trip(
            stack,
            "e2e-azure",
            "azureblob",
            &[("container", "backups"), ("endpoint", &azurite.endpoint)],
            &[("accountName", &account), ("accountKey", &key)],
            &azurite.datasafed_config("backups"),
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backup_through_kubeblocks_gcs_s3comp_provider_restores_byte_for_byte()
-> anyhow::Result<()> {
    let test = "backup_cloud_emulators::gcs_s3comp";
    let Some(kubeblocks) = fixtures::dir(test)? else {
        return Ok(());
    };
    run("backup-gcs-s3comp", async |stack| {
        // GCS's S3-interoperable XML API with HMAC keys: neither GCS emulator serves it (see
        // cairn_repo::testing::emulators), so the provider's rendered config talks to an S3
        // server, which is what the interop API is.
        let s3 = SeaweedFs::start(&stack.scratch.join("s3"))?;
        stack
            .kubectl
            .apply(&fixtures::read(
                &kubeblocks,
                "kb-0.9_helm_gcs-s3comp_gcs-s3comp.yaml",
            )?)
            .await?;
        round_trip(
            stack,
            "e2e-gcs-s3comp",
            "gcs-s3comp",
            &[
                ("bucket", &s3.bucket),
                ("region", "auto"),
                ("endpoint", &s3.endpoint),
            ],
            &[
                ("accessKeyId", &s3.access_key),
                ("secretAccessKey", &s3.secret_key),
            ],
            &s3.datasafed_config(),
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backup_to_native_gcs_with_a_service_account_key_restores_byte_for_byte()
-> anyhow::Result<()> {
    run("backup-gcs-native", async |stack| {
        let gcs = GcsEmulator::start(&stack.scratch.join("gcs"), "backups")
            .map_err(anyhow::Error::msg)?;
        // A fresh key, as Google's console downloads it (several lines): the agent signs
        // every request with it (the emulator accepts any; gcs_service_account.rs in
        // cairn-repo checks the signature).
        let account = ServiceAccount::generate(&stack.scratch.join("sa"), "cairn-e2e")
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(account.json.lines().count() > 3, "a multi-line key file");
        stack
            .kubectl
            .apply(&manifests::render(
                "gcs-provider.yaml",
                &[("NAME", "e2e-gcs")],
            )?)
            .await?;
        let endpoint = format!("{}/storage/v1/", gcs.endpoint);
        let path = round_trip(
            stack,
            "e2e-gcs-native",
            "e2e-gcs",
            &[("bucket", "backups"), ("endpoint", &endpoint)],
            &[("serviceAccountKey", &account.json)],
            &format!(
                "[storage]\ntype = gcs\nanonymous = true\nendpoint = {endpoint}\nroot = backups\n"
            ),
        )
        .await?;
        // The bucket holds the backup, seen through the emulator's JSON API listing.
        let listing = http_get(&format!(
            "{}/storage/v1/b/backups/o?prefix={}",
            gcs.endpoint,
            path.trim_start_matches('/').replace('/', "%2F")
        ))?;
        anyhow::ensure!(
            listing.contains("db-cloud-1.tar.zst"),
            "the bucket lists the archive under {path}: {listing}"
        );
        Ok(())
    })
    .await
}

/// The body of a plain HTTP GET on loopback.
fn http_get(url: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("not an http URL: {url}"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Standard base64 of `text`'s bytes (an Azure account key is base64).
fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}
