//! No secret value leaks: after an S3 backup with a credential Secret, an encryption passphrase
//! and a database password, a restore, a deletion, a repository whose pre-check fails on a
//! wrong key, and repositories whose StorageProvider template fails on a credential (one listed
//! in `credentialFields`, one only present in the Secret), none of those values appears in any process log, pod log, object status, event,
//! Pod or Job spec (every version seen by a watch, so deleted action pods count), env (pod specs
//! and the processes' own environments), ConfigMap, other Secret, or file of the data directory.
//!
//! Excluded, by design: the user's own Secrets holding the values; localkube's `store.db` (the
//! API server's storage, which holds those Secrets); and the agent's journal
//! (`agent/state/journal`, mode 0600 agent state that records each action with its storage
//! grant so a restarted agent can finish it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use cairn_api::backup::Backup;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_e2e::files;
use cairn_e2e::record::Recorder;
use cairn_e2e::s3::SeaweedFs;
use cairn_e2e::wait::{Check, until};
use cairn_e2e::{TestStack, dp, manifests, run, scenario};
use kube::api::Api;

const NS: &str = "shop";

fn random_word(prefix: &str) -> String {
    let suffix: String = (0..12)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    format!("{prefix}{suffix}")
}

/// What a value looks like wherever it may be stored: itself, and the characters of its base64
/// encodings (standard and URL-safe) that depend only on it, at each of the three alignments it
/// can have inside a longer encoded string.
fn needles(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for offset in 0..3usize {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&bytes);
            let first = (offset * 8).div_ceil(6);
            let last = (bytes.len() * 8) / 6;
            if let Some(part) = encoded.get(first..last) {
                out.push(part.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `text` holds `value` in any of its [`needles`].
fn holds(text: &[u8], value: &str) -> bool {
    needles(value)
        .iter()
        .any(|needle| files::contains(text, needle.as_bytes()))
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => stack.push(path),
                Ok(meta) if meta.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// The places a user or an attacker with read access to the cluster could look, as text.
async fn everything_visible(stack: &mut TestStack) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for kinds in [
        "all,events,events.events.k8s.io",
        "backups,restores,backuppolicies,backupschedules,backuprepos,storageproviders,actionsets",
        "pvc,pv,configmaps,serviceaccounts,nodes,leases,namespaces",
    ] {
        let text = stack
            .kubectl
            .run(&["get", kinds, "-A", "-o", "json"])
            .await?;
        out.push((format!("kubectl get {kinds} -A"), text));
    }
    for kind in ["backups", "restores", "backuppolicies"] {
        let text = stack.kubectl.run(&["describe", kind, "-n", NS]).await?;
        out.push((format!("kubectl describe {kind}"), text));
    }
    let repos = stack.kubectl.run(&["describe", "backuprepos"]).await?;
    out.push(("kubectl describe backuprepos".into(), repos));
    for (name, pid) in [
        ("control plane", stack.stack.control_plane().pid()),
        ("agent", stack.stack.agent().pid()),
    ] {
        if let Some(pid) = pid {
            let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
            out.push((
                format!("the {name} process's environment"),
                String::from_utf8_lossy(&environ).into_owned(),
            ));
        }
    }
    Ok(out)
}

/// Secrets other than `allowed` (namespace, name) whose decoded data holds one of `values`.
async fn other_secrets_holding(
    stack: &TestStack,
    allowed: &[(&str, &str)],
    values: &[(&str, String)],
) -> anyhow::Result<Vec<String>> {
    let list = stack.kubectl.get_json(&["secrets", "-A"]).await?;
    let mut found = Vec::new();
    for secret in list["items"].as_array().into_iter().flatten() {
        let namespace = secret["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        if allowed.contains(&(namespace, name)) {
            continue;
        }
        let mut text = serde_json::to_string(&secret["metadata"])?;
        for value in secret["data"]
            .as_object()
            .into_iter()
            .flat_map(|d| d.values())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap_or_default())
                .unwrap_or_default();
            text.push_str(&String::from_utf8_lossy(&decoded));
        }
        for (label, value) in values {
            if holds(text.as_bytes(), value) {
                found.push(format!("the {label} is in Secret {namespace}/{name}"));
            }
        }
    }
    Ok(found)
}

/// A StorageProvider whose datasafed template fails on a credential parameter: on
/// `sessionToken` (a Secret key the provider does not list as a credential) when `failOnToken`
/// is set, else on `secretAccessKey`.
const BROKEN_TEMPLATE_PROVIDER: &str = r#"
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: StorageProvider
metadata:
  name: e2e-broken-template
spec:
  datasafedConfigTemplate: |
    [storage]
    type = s3
    {{ if .Parameters.failOnToken }}{{ range .Parameters.sessionToken }}x{{ end }}{{ else }}{{ range .Parameters.secretAccessKey }}x{{ end }}{{ end }}
  parametersSchema:
    openAPIV3Schema:
      type: object
      properties:
        secretAccessKey:
          type: string
    credentialFields: [secretAccessKey]
---
apiVersion: v1
kind: Namespace
metadata:
  name: template-keys
"#;

/// A repository on [`BROKEN_TEMPLATE_PROVIDER`] whose credential Secret holds `key: value`.
fn broken_template_repo(name: &str, key: &str, value: &str, config: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: template-keys\n\
         stringData:\n  {key}: {value}\n---\n\
         apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: {name}\n\
         spec:\n  storageProviderRef: e2e-broken-template\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config: {config}\n  credential:\n    name: {name}\n    namespace: template-keys\n"
    )
}

#[test]
fn needles_find_a_value_inside_longer_base64_at_any_alignment() {
    let value = "s3secret0123abcd";
    for prefix in ["", "x", "xy", "xyz"] {
        let plain = format!("{prefix}{value}{prefix}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&plain);
        assert!(holds(encoded.as_bytes(), value), "{prefix:?}: {encoded}");
        assert!(holds(plain.as_bytes(), value));
    }
    let other = base64::engine::general_purpose::STANDARD.encode("s3secreT0123abcd-xx");
    assert!(!holds(other.as_bytes(), value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_appears_in_logs_statuses_events_pod_specs_or_env() -> anyhow::Result<()> {
    run("secrets-scan", async |stack| {
        let recorder = Recorder::start(&stack.client);
        let s3 = SeaweedFs::start(&stack.scratch.join("s3"))?;
        let wrong_key = random_word("wrongkey");
        let db_password = random_word("dbpw");
        let passphrase = random_word("passphrase");
        let template_key = random_word("templatekey");
        let template_token = random_word("templatetoken");
        let secrets: Vec<(&str, String)> = vec![
            ("S3 secret key", s3.secret_key.clone()),
            ("wrong S3 secret key", wrong_key.clone()),
            ("secret key a template fails on", template_key.clone()),
            ("session token a template fails on", template_token.clone()),
            ("database password", db_password.clone()),
            ("encryption passphrase", passphrase.clone()),
        ];

        for (repo, namespace, key) in [
            ("e2e-s3", "storage-keys", s3.secret_key.as_str()),
            ("bad-s3", "bad-keys", wrong_key.as_str()),
        ] {
            stack
                .kubectl
                .apply(&manifests::render(
                    "s3-repo.yaml",
                    &[
                        ("REPO", repo),
                        ("CREDENTIAL_NS", namespace),
                        ("ACCESS_KEY", &s3.access_key),
                        ("SECRET_KEY", key),
                        ("BUCKET", &s3.bucket),
                        ("ENDPOINT", &s3.endpoint),
                        ("PATH_PREFIX", repo),
                    ],
                )?)
                .await?;
        }
        dp::repo_ready(&stack.client, "e2e-s3", Duration::from_secs(60)).await?;
        let repos: Api<BackupRepo> = Api::all(stack.client.clone());
        until(
            "the repository with a wrong key to fail its pre-check",
            Duration::from_secs(60),
            async || {
                let repo = repos.get("bad-s3").await?;
                Ok(match repo.status.and_then(|s| s.phase) {
                    Some(BackupRepoPhase::Failed) => Check::Done(()),
                    phase => Check::Pending(format!("phase {phase:?}")),
                })
            },
        )
        .await?;

        // Templates that fail on a credential: the engine's message would quote the value.
        stack.kubectl.apply(BROKEN_TEMPLATE_PROVIDER).await?;
        for (repo, key, value, config) in [
            ("tmpl-key", "secretAccessKey", &template_key, "{}"),
            ("tmpl-token", "sessionToken", &template_token, "{failOnToken: \"yes\"}"),
        ] {
            stack
                .kubectl
                .apply(&broken_template_repo(repo, key, value, config))
                .await?;
        }
        for repo in ["tmpl-key", "tmpl-token"] {
            until(
                &format!("{repo} to fail its pre-check on the template"),
                Duration::from_secs(60),
                async || {
                    let status = repos.get(repo).await?.status.unwrap_or_default();
                    let message = status
                        .conditions
                        .unwrap_or_default()
                        .into_iter()
                        .find(|c| c.type_ == "PreCheckPassed")
                        .map(|c| c.message)
                        .unwrap_or_default();
                    Ok(
                        match (status.phase, message.contains("rendering datasafedConfigTemplate")) {
                            (Some(BackupRepoPhase::Failed), true) => Check::Done(()),
                            (phase, _) => Check::Pending(format!("phase {phase:?}: {message}")),
                        },
                    )
                },
            )
            .await?;
        }

        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let source = files::tree(&workload.data_dir)?;
        stack
            .kubectl
            .apply(&format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credential\n  namespace: {NS}\n\
                 stringData:\n  username: root\n  password: {db_password}\n---\n\
                 apiVersion: v1\nkind: Secret\nmetadata:\n  name: backup-encryption\n  namespace: {NS}\n\
                 stringData:\n  passphrase: {passphrase}\n"
            ))
            .await?;
        let policy = scenario::file_policy(stack, &workload, "db", "files", "e2e-s3", "").await?;
        stack
            .kubectl
            .run(&[
                "patch",
                "backuppolicy",
                "db",
                "-n",
                NS,
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"encryptionConfig":{"algorithm":"AES-256-CFB","passPhraseSecretKeyRef":{"name":"backup-encryption","key":"passphrase"}},"target":{"connectionCredential":{"secretName":"db-credential","usernameKey":"username","passwordKey":"password"}}}}"#,
            ])
            .await?;
        scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
        dp::backup_completed(&stack.client, NS, "db-1", Duration::from_secs(60)).await?;
        scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(60)).await?;
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
        anyhow::ensure!(
            files::differences(&source, &restored).is_empty(),
            "the encrypted S3 backup restores byte for byte"
        );
        stack
            .kubectl
            .run(&["delete", "backup", "db-1", "-n", NS, "--timeout=60s"])
            .await?;
        dp::gone(
            &Api::<Backup>::namespaced(stack.client.clone(), NS),
            "db-1",
            Duration::from_secs(30),
        )
        .await?;
        // Let the last status and log writes land before looking.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let mut leaks = Vec::new();
        let watched = recorder.stop();
        anyhow::ensure!(
            watched.iter().any(|pod| pod.contains("CAIRN_STORAGE_TOKEN")),
            "the watch saw the action pods (else this scan proves nothing)"
        );
        let mut places: Vec<(String, String)> = watched
            .into_iter()
            .map(|object| ("a Pod or Job seen by the watch".to_string(), object))
            .collect();
        places.extend(everything_visible(stack).await?);
        for (place, text) in &places {
            for (label, value) in &secrets {
                if holds(text.as_bytes(), value) {
                    leaks.push(format!("the {label} is in {place}"));
                }
            }
        }
        // The search itself works: it finds the values where they are meant to be.
        let in_user_secrets = other_secrets_holding(stack, &[], &secrets).await?;
        for expected in [
            "the S3 secret key is in Secret storage-keys/s3-credential",
            "the wrong S3 secret key is in Secret bad-keys/s3-credential",
            "the secret key a template fails on is in Secret template-keys/tmpl-key",
            "the session token a template fails on is in Secret template-keys/tmpl-token",
            "the database password is in Secret shop/db-credential",
            "the encryption passphrase is in Secret shop/backup-encryption",
        ] {
            anyhow::ensure!(
                in_user_secrets.iter().any(|found| found == expected),
                "the scan finds each value in the user's own Secret: {in_user_secrets:?}"
            );
        }
        leaks.extend(
            other_secrets_holding(
                stack,
                &[
                    ("storage-keys", "s3-credential"),
                    ("bad-keys", "s3-credential"),
                    ("template-keys", "tmpl-key"),
                    ("template-keys", "tmpl-token"),
                    (NS, "db-credential"),
                    (NS, "backup-encryption"),
                ],
                &secrets,
            )
            .await?,
        );

        let store = stack.data_dir.join("kube/store.db");
        let journal_dir = stack.data_dir.join("agent/state");
        let mut journal_holds = Vec::new();
        for file in all_files(&stack.data_dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for (label, value) in &secrets {
                if !holds(&bytes, value) {
                    continue;
                }
                let name = file.display().to_string();
                if name.starts_with(&store.display().to_string()) {
                    continue;
                }
                if file.starts_with(&journal_dir) {
                    journal_holds.push(*label);
                    continue;
                }
                leaks.push(format!("the {label} is in the file {name}"));
            }
        }
        eprintln!(
            "the agent journal (excluded from the scan) holds: {}",
            if journal_holds.is_empty() {
                "none of the values".to_string()
            } else {
                journal_holds.join(", ")
            }
        );
        anyhow::ensure!(
            leaks.is_empty(),
            "secret values leaked:\n{}",
            leaks.join("\n")
        );
        Ok(())
    })
    .await
}
