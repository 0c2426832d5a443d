//! The objects the quickstart applies: its namespace, the workload (a PostgreSQL pod, or a
//! pod writing a data set) with its PVC, and Cairn's demo ActionSets and BackupPolicies in
//! KubeBlocks' shape (a `backupData` job piping into `datasafed push`, a backup info file, a
//! `prepareData` restore job). Pure builders; the quickstart also saves them as YAML.

use std::path::Path;

use anyhow::Context as _;
use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::well_known;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The BackupSchedule keeping the continuous backup archiving (`--pitr`).
pub const CONTINUOUS_SCHEDULE: &str = "quickstart-continuous";
/// The namespace of every quickstart object.
pub const NAMESPACE: &str = "quickstart";
/// The volume name in the workload pods and in the methods' `targetVolumes`.
pub const DATA_VOLUME: &str = "data";
/// Where the workload pods (and the backup and restore jobs) mount the data volume.
pub const DATA_MOUNT: &str = "/data";

/// Names of the file-writer workload's objects.
pub mod files {
    pub const POD: &str = "files-writer";
    pub const PVC: &str = "files-data";
    pub const ACTIONSET: &str = "cairn-quickstart-files";
    pub const POLICY: &str = "quickstart-files";
    pub const METHOD: &str = "tar-zstd";
}

/// Names of the PostgreSQL workload's objects.
pub mod postgres {
    pub const POD: &str = "postgres";
    pub const RESTORED_POD: &str = "postgres-restored";
    pub const PVC: &str = "postgres-data";
    pub const SECRET: &str = "postgres-credential";
    pub const ACTIONSET: &str = "cairn-quickstart-pg-basebackup";
    pub const POLICY: &str = "quickstart-postgres";
    pub const METHOD: &str = "pg-basebackup";
    /// Point-in-time recovery (`--pitr`): the Continuous ActionSet, its method, the schedule
    /// that keeps it archiving, and the restored server.
    pub const WAL_ACTIONSET: &str = "cairn-quickstart-pg-wal-archive";
    pub const WAL_METHOD: &str = "wal-archive";
    pub const PITR_POD: &str = "postgres-pitr";
    /// PGDATA inside the data volume.
    pub const PGDATA: &str = "/data/pgdata";
}

fn typed<T: DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("building {what}"))
}

/// The `quickstart` namespace.
pub fn namespace() -> anyhow::Result<Namespace> {
    typed(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        "the namespace",
    )
}

/// A ReadWriteOnce claim of `bytes` (rounded up to whole MiB) on the default StorageClass.
pub fn claim(name: &str, bytes: u64) -> anyhow::Result<PersistentVolumeClaim> {
    let mib = bytes.div_ceil(1 << 20).max(1);
    typed(
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": format!("{mib}Mi")}}
            }
        }),
        "the PersistentVolumeClaim",
    )
}

/// The file-writer pod: `cairnctl quickstart write-dataset` writes the data set into its PVC,
/// then keeps running like a service; it is Ready once the manifest exists. `cairnctl`'s
/// directory is a read-only hostPath volume at the same path: a container sees only its
/// volumes and its own `/tmp`, so a `cairnctl` unpacked under `/tmp` would be missing.
pub fn files_pod(cairnctl: &Path, bytes: u64, seed: u64) -> anyhow::Result<Pod> {
    let bin_dir = cairnctl
        .parent()
        .unwrap_or(Path::new("/"))
        .display()
        .to_string();
    typed(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": files::POD, "namespace": NAMESPACE, "labels": {"app": files::POD}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "writer",
                    "image": "cairn/quickstart-writer",
                    "command": [
                        cairnctl.display().to_string(), "quickstart", "write-dataset",
                        "--dir", DATA_MOUNT, "--bytes", bytes.to_string(), "--seed", seed.to_string()
                    ],
                    "volumeMounts": [
                        {"name": DATA_VOLUME, "mountPath": DATA_MOUNT},
                        {"name": "cairn-bin", "mountPath": bin_dir, "readOnly": true}
                    ],
                    "readinessProbe": {
                        "exec": {"command": ["test", "-f", format!("{DATA_MOUNT}/{}", super::dataset::MANIFEST)]},
                        "periodSeconds": 1
                    }
                }],
                "volumes": [
                    {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": files::PVC}},
                    {"name": "cairn-bin", "hostPath": {"path": bin_dir, "type": "Directory"}}
                ]
            }
        }),
        "the file-writer pod",
    )
}

/// Shell prelude of every action script: datasafed on PATH, rooted at the backup's path, and
/// the `.exit` marker on failure (KubeBlocks' convention, which tells the agent the action
/// failed).
const PRELUDE: &str = r#"set -eo pipefail
export PATH="$PATH:$DP_DATASAFED_BIN_PATH"
export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"
"#;

const BACKUP_TRAP: &str = r#"trap 'code=$?; if [ $code -ne 0 ]; then touch "${DP_BACKUP_INFO_FILE}.exit"; fi' EXIT
"#;

/// Writes the backup info file (`totalSize` = stored bytes, `timeRange`).
const SAVE_INFO: &str = r#"END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SIZE=$(datasafed stat / | awk '/TotalSize/ {print $2}')
printf '{"totalSize":"%s","timeRange":{"start":"%s","end":"%s"}}' "$SIZE" "$START" "$END" > "$DP_BACKUP_INFO_FILE"
"#;

/// The ActionSet backing up a directory with `tar | datasafed push -z zstd-fastest` and
/// restoring it with `datasafed pull | tar -x`.
pub fn files_actionset() -> anyhow::Result<ActionSet> {
    let backup = format!(
        "{PRELUDE}{BACKUP_TRAP}START=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
         cd \"$DATA_DIR\"\n\
         tar -cf - . | datasafed push -z zstd-fastest - \"/$DP_BACKUP_NAME.tar.zst\"\n\
         {SAVE_INFO}"
    );
    let restore = format!(
        "{PRELUDE}mkdir -p \"$DATA_DIR\"\n\
         datasafed pull -d zstd-fastest \"/$DP_BACKUP_NAME.tar.zst\" - | tar -xf - -C \"$DATA_DIR\"\n"
    );
    typed(
        json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "ActionSet",
            "metadata": {"name": files::ACTIONSET, "labels": {well_known::label::PART_OF: "cairn-quickstart"}},
            "spec": {
                "backupType": "Full",
                "env": [{"name": "DATA_DIR", "value": DATA_MOUNT}],
                "backup": {
                    "backupData": {
                        "image": "busybox",
                        "runOnTargetPodNode": true,
                        "command": ["bash", "-c", backup],
                        "syncProgress": {"enabled": true, "intervalSeconds": 1}
                    }
                },
                "restore": {
                    "prepareData": {"image": "busybox", "command": ["bash", "-c", restore]}
                }
            }
        }),
        "the files ActionSet",
    )
}

/// The ActionSet backing up PostgreSQL with `pg_basebackup` (tar format with the WAL it
/// needs, streamed into `datasafed push`) and restoring by unpacking it into a new PGDATA.
pub fn postgres_actionset(bin_dir: &Path) -> anyhow::Result<ActionSet> {
    let backup = format!(
        "{PRELUDE}{BACKUP_TRAP}START=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
         PGPASSWORD=\"$DP_DB_PASSWORD\" \"$PG_BIN/pg_basebackup\" -h \"$DP_DB_HOST\" -p \"$DP_DB_PORT\" -U \"$DP_DB_USER\" \\\n\
         \x20 -Ft -Xfetch -c fast -D - | datasafed push -z zstd-fastest - \"/$DP_BACKUP_NAME.tar.zst\"\n\
         {SAVE_INFO}"
    );
    // `-b 2048`: tar reads the pipe in 1 MiB records instead of 10 KiB ones, which took a
    // third of the restore's CPU time (bench/README.md "quickstart restore"); the image's tar
    // is GNU tar.
    let restore = format!(
        "{PRELUDE}mkdir -p \"$PGDATA\"\n\
         datasafed pull -d zstd-fastest \"/$DP_BACKUP_NAME.tar.zst\" - | tar -b 2048 -xf - -C \"$PGDATA\"\n"
    );
    typed(
        json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "ActionSet",
            "metadata": {"name": postgres::ACTIONSET, "labels": {well_known::label::PART_OF: "cairn-quickstart"}},
            "spec": {
                "backupType": "Full",
                "env": [
                    {"name": "PG_BIN", "value": bin_dir.display().to_string()},
                    {"name": "PGDATA", "value": postgres::PGDATA}
                ],
                "backup": {
                    "backupData": {
                        "image": "postgres:15",
                        "runOnTargetPodNode": true,
                        "command": ["bash", "-c", backup],
                        "syncProgress": {"enabled": true, "intervalSeconds": 1}
                    }
                },
                "restore": {
                    "prepareData": {"image": "postgres:15", "command": ["bash", "-c", restore]}
                }
            }
        }),
        "the PostgreSQL ActionSet",
    )
}

/// Cairn's own PostgreSQL Continuous ActionSet, the one the end-to-end tests run
/// (`pg_receivewal` through a replication slot, WAL pushed with `datasafed`; restore to
/// `recovery_target_time`): one file for both, read at build time.
const WAL_ARCHIVE: &str =
    include_str!("../../../../tests/manifests/db/postgresql-wal-archive.yaml");

/// The Continuous ActionSet archiving PostgreSQL's WAL, with this install's binaries and the
/// quickstart's PGDATA.
pub fn postgres_wal_actionset(bin_dir: &Path) -> anyhow::Result<ActionSet> {
    let mut value: Value = serde_saphyr::from_str(WAL_ARCHIVE)
        .context("parsing Cairn's PostgreSQL WAL-archive ActionSet")?;
    value["metadata"] = json!({
        "name": postgres::WAL_ACTIONSET,
        "labels": {well_known::label::PART_OF: "cairn-quickstart"}
    });
    value["spec"]["env"] = json!([
        {"name": "PG_BIN", "value": bin_dir.display().to_string()},
        {"name": "DATA_DIR", "value": postgres::PGDATA}
    ]);
    typed(value, "the PostgreSQL WAL-archive ActionSet")
}

/// `policy` with one more method: the Continuous `method` of `actionset` on the same volume,
/// archiving every second.
pub fn with_continuous_method(
    policy: BackupPolicy,
    method: &str,
    actionset: &str,
) -> anyhow::Result<BackupPolicy> {
    let mut value = serde_json::to_value(&policy).context("rendering the BackupPolicy")?;
    let methods = value["spec"]["backupMethods"]
        .as_array_mut()
        .context("the BackupPolicy has no backupMethods")?;
    methods.push(json!({
        "name": method,
        "actionSetName": actionset,
        "env": [{"name": "ARCHIVE_SECONDS", "value": "1"}],
        "targetVolumes": {
            "volumes": [DATA_VOLUME],
            "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}]
        }
    }));
    typed(value, "the BackupPolicy")
}

/// A BackupSchedule whose one entry keeps the Continuous `method` of `policy` archiving.
pub fn continuous_schedule(
    name: &str,
    policy: &str,
    method: &str,
) -> anyhow::Result<BackupSchedule> {
    typed(
        json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "BackupSchedule",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "backupPolicyName": policy,
                "schedules": [{
                    "name": "wal", "backupMethod": method, "enabled": true,
                    "cronExpression": "*/5 * * * *", "retentionPeriod": "1d"
                }]
            }
        }),
        "the BackupSchedule",
    )
}

/// A BackupPolicy with one method on the pods labelled `app=<app>`, into the `local`
/// repository, with the data volume as the method's target volume.
pub fn policy(
    name: &str,
    app: &str,
    method: &str,
    actionset: &str,
    credential: Option<&str>,
) -> anyhow::Result<BackupPolicy> {
    let mut target = json!({"podSelector": {"matchLabels": {"app": app}}});
    if let Some(secret) = credential {
        target["connectionCredential"] = json!({
            "secretName": secret, "usernameKey": "username", "passwordKey": "password"
        });
    }
    typed(
        json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "BackupPolicy",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "annotations": {well_known::annotation::DEFAULT_POLICY: "true"}
            },
            "spec": {
                "backupRepoName": crate::standalone::manifests::LOCAL,
                "backoffLimit": 0,
                "target": target,
                "backupMethods": [{
                    "name": method,
                    "actionSetName": actionset,
                    "targetVolumes": {
                        "volumes": [DATA_VOLUME],
                        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}]
                    }
                }]
            }
        }),
        "the BackupPolicy",
    )
}

/// The database credential (KubeBlocks' `connectionCredential` shape).
pub fn postgres_secret(password: &str) -> anyhow::Result<Secret> {
    typed(
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": postgres::SECRET, "namespace": NAMESPACE},
            "type": "Opaque",
            "stringData": {"username": "postgres", "password": password}
        }),
        "the PostgreSQL credential",
    )
}

/// How the PostgreSQL pods run.
#[derive(Debug, Clone)]
pub struct PostgresPod<'a> {
    pub name: &'a str,
    pub claim: &'a str,
    pub bin_dir: &'a Path,
    pub uid: u32,
    pub gid: u32,
    pub port: u16,
}

/// A PostgreSQL pod: an init container (root) hands the volume to the `postgres` user, then
/// the server runs as that user on `127.0.0.1:<port>`, creating the cluster with `initdb` when
/// PGDATA is empty (and recovering a restored base backup otherwise). Password authentication
/// over TCP; Ready when `pg_isready` says so.
pub fn postgres_pod(p: &PostgresPod<'_>) -> anyhow::Result<Pod> {
    let bin = p.bin_dir.display();
    let pgdata = postgres::PGDATA;
    let prepare = format!(
        "mkdir -p {pgdata} && chown -R {uid}:{gid} {DATA_MOUNT} && chmod 700 {pgdata}",
        uid = p.uid,
        gid = p.gid
    );
    let server = format!(
        "set -e\n\
         if [ ! -s {pgdata}/PG_VERSION ]; then\n\
         \x20 {bin}/initdb -D {pgdata} -U postgres -E UTF8 --no-sync --auth-local=trust --auth-host=scram-sha-256 \\\n\
         \x20   --pwfile=<(printf '%s\\n' \"$POSTGRES_PASSWORD\") >/dev/null\n\
         fi\n\
         exec {bin}/postgres -D {pgdata} -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= \\\n\
         \x20 -c shared_buffers=128MB -c max_wal_size=1GB -c synchronous_commit=off\n",
        port = p.port
    );
    typed(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": p.name, "namespace": NAMESPACE, "labels": {"app": p.name}},
            "spec": {
                "restartPolicy": "Always",
                "initContainers": [{
                    "name": "prepare-volume",
                    "image": "busybox",
                    "command": ["sh", "-c", prepare],
                    "securityContext": {"runAsUser": 0},
                    "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}]
                }],
                "containers": [{
                    "name": "postgres",
                    "image": "postgres:15",
                    "command": ["bash", "-c", server],
                    "ports": [{"name": "postgres", "containerPort": p.port}],
                    "env": [
                        {"name": "HOME", "value": "/tmp"},
                        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": postgres::SECRET, "key": "password"}}}
                    ],
                    "securityContext": {"runAsUser": p.uid, "runAsGroup": p.gid},
                    "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}],
                    "readinessProbe": {
                        "exec": {"command": [format!("{bin}/pg_isready"), "-h", "127.0.0.1", "-p", p.port.to_string(), "-U", "postgres"]},
                        "periodSeconds": 1
                    }
                }],
                "volumes": [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": p.claim}}]
            }
        }),
        "the PostgreSQL pod",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::validate::Severity;
    use cairn_api::validate::manifest::{Checker, UnknownFields};

    fn assert_valid<T: serde::Serialize>(object: &T) {
        let value = serde_json::to_value(object).expect("json");
        let checked = Checker::new()
            .expect("schemas")
            .check(&value, UnknownFields::Error);
        let errors: Vec<_> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {value:#}");
        assert!(checked.kind.is_some(), "checked as an object of the API");
    }

    #[test]
    fn the_demo_actionsets_and_policies_pass_cairnctl_validate() {
        assert_valid(&files_actionset().expect("actionset"));
        assert_valid(
            &postgres_actionset(Path::new("/usr/lib/postgresql/15/bin")).expect("actionset"),
        );
        assert_valid(
            &policy(
                files::POLICY,
                files::POD,
                files::METHOD,
                files::ACTIONSET,
                None,
            )
            .expect("policy"),
        );
        assert_valid(
            &policy(
                postgres::POLICY,
                postgres::POD,
                postgres::METHOD,
                postgres::ACTIONSET,
                Some(postgres::SECRET),
            )
            .expect("policy"),
        );
    }

    #[test]
    fn backup_scripts_stream_into_datasafed_and_write_the_info_file() {
        for set in [
            files_actionset().expect("files"),
            postgres_actionset(Path::new("/pg")).expect("pg"),
        ] {
            let value = serde_json::to_value(&set).expect("json");
            let backup = value["spec"]["backup"]["backupData"]["command"][2]
                .as_str()
                .expect("script");
            assert!(
                backup.contains("| datasafed push -z zstd-fastest - \"/$DP_BACKUP_NAME.tar.zst\"")
            );
            assert!(backup.contains("> \"$DP_BACKUP_INFO_FILE\""));
            assert!(backup.contains("${DP_BACKUP_INFO_FILE}.exit"));
            assert!(
                backup.starts_with("set -eo pipefail"),
                "a failed tar or pg_basebackup fails the pipe"
            );
            let restore = value["spec"]["restore"]["prepareData"]["command"][2]
                .as_str()
                .expect("script");
            assert!(
                restore.contains(
                    "datasafed pull -d zstd-fastest \"/$DP_BACKUP_NAME.tar.zst\" - | tar -xf -"
                ) || restore.contains(
                    "datasafed pull -d zstd-fastest \"/$DP_BACKUP_NAME.tar.zst\" - | tar -b 2048 -xf -"
                ),
                "{restore}"
            );
        }
    }

    #[test]
    fn the_policy_targets_the_workload_and_its_data_volume() {
        let p = serde_json::to_value(
            policy(
                postgres::POLICY,
                postgres::POD,
                postgres::METHOD,
                postgres::ACTIONSET,
                Some(postgres::SECRET),
            )
            .expect("policy"),
        )
        .expect("json");
        assert_eq!(
            p["spec"]["target"]["podSelector"]["matchLabels"]["app"],
            "postgres"
        );
        assert_eq!(
            p["spec"]["target"]["connectionCredential"]["secretName"],
            "postgres-credential"
        );
        assert_eq!(p["spec"]["backupRepoName"], "local");
        assert_eq!(
            p["spec"]["backupMethods"][0]["targetVolumes"]["volumeMounts"][0],
            json!({"name": "data", "mountPath": "/data"})
        );
    }

    #[test]
    fn the_postgres_pod_runs_as_the_postgres_user_on_its_port() {
        let pod = postgres_pod(&PostgresPod {
            name: postgres::POD,
            claim: postgres::PVC,
            bin_dir: Path::new("/usr/lib/postgresql/15/bin"),
            uid: 105,
            gid: 110,
            port: 45432,
        })
        .expect("pod");
        let v = serde_json::to_value(&pod).expect("json");
        let container = &v["spec"]["containers"][0];
        assert_eq!(
            container["securityContext"],
            json!({"runAsUser": 105, "runAsGroup": 110})
        );
        assert_eq!(container["ports"][0]["containerPort"], 45432);
        let script = container["command"][2].as_str().expect("script");
        assert!(
            script.contains("exec /usr/lib/postgresql/15/bin/postgres -D /data/pgdata -p 45432")
        );
        assert!(script.contains("--auth-host=scram-sha-256"));
        assert_eq!(
            v["spec"]["initContainers"][0]["command"][2],
            "mkdir -p /data/pgdata && chown -R 105:110 /data && chmod 700 /data/pgdata"
        );
        assert_eq!(
            v["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "postgres-data"
        );
    }

    #[test]
    fn claims_are_rounded_up_to_whole_mebibytes() {
        let c = serde_json::to_value(claim("c", (1 << 20) + 1).expect("claim")).expect("json");
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "2Mi");
        let pod = serde_json::to_value(files_pod(Path::new("/bin/cairnctl"), 5, 9).expect("pod"))
            .expect("json");
        assert_eq!(
            pod["spec"]["containers"][0]["command"],
            json!([
                "/bin/cairnctl",
                "quickstart",
                "write-dataset",
                "--dir",
                "/data",
                "--bytes",
                "5",
                "--seed",
                "9"
            ])
        );
        assert_eq!(
            pod["spec"]["volumes"][1]["hostPath"]["path"], "/bin",
            "cairnctl's directory is a volume"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][1]["mountPath"],
            "/bin"
        );
    }
}
