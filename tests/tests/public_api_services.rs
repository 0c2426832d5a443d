//! The public gRPC API's Restore, Schedule and Repository services and its client-certificate
//! path, across processes (docs/API.md): tokens from the real `kubectl create token`, a client
//! certificate from the CA `--api-client-ca` names (CN the user, O the groups), authorised by
//! RBAC in localkube; everything done through the API seen with kubectl; the refusals of each
//! service (UNAUTHENTICATED, PERMISSION_DENIED with the reason, INVALID_ARGUMENT naming the
//! field and the value). Also the source side's consent to a cross-namespace restore given on
//! the source namespace (docs/API.md §9).

use std::time::Duration;

use cairn_e2e::grpc_api::{
    ClientCa, backups, channel, channel_as, repositories, restores, schedules, token, with_token,
};
use cairn_e2e::stack::run_with;
use cairn_e2e::{TestStack, dp, files, scenario};
use cairn_proto::api::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

const NS: &str = "team-a";
/// Restores into this namespace read team-a's backups.
const INTO: &str = "team-c";
/// Nobody here has any right.
const OTHER: &str = "team-b";
const ANNOTATION: &str = "cairn.io/restore-allowed-namespaces";
const WAIT: Duration = Duration::from_secs(180);

/// The orchestrator `team-a/orch`: Backups, Restores and BackupSchedules in team-a, Restores in
/// team-c, listing repositories; `team-a/nobody` has no right. The group `dba` (client
/// certificates) reads Backups in team-a through an aggregated ClusterRole.
fn rbac() -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: orch, namespace: {NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: orch, namespace: {NS}}}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [backups, restores, backupschedules]
  verbs: [create, get, list, watch, delete, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: orch, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: orch}}
subjects:
- {{kind: ServiceAccount, name: orch}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: orch-restores, namespace: {INTO}}}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [restores]
  verbs: [create, get, list, watch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: orch-restores, namespace: {INTO}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: orch-restores}}
subjects:
- {{kind: ServiceAccount, name: orch, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: repo-lister}}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [backuprepos]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: orch-repo-lister}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: repo-lister}}
subjects:
- {{kind: ServiceAccount, name: orch, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: dp-viewer}}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {{example.io/aggregate-to-dp-viewer: "true"}}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: dp-backup-reader
  labels: {{example.io/aggregate-to-dp-viewer: "true"}}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [backups]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: dba-viewer, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dp-viewer}}
subjects:
- {{kind: Group, name: dba}}
"#
    )
}

fn schedule(policy: &str, method: &str) -> String {
    format!(
        r#"apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupSchedule
metadata: {{name: nightly, namespace: {NS}}}
spec:
  backupPolicyName: {policy}
  schedules:
    - name: nightly-files
      backupMethod: {method}
      enabled: false
      cronExpression: "0 3 * * *"
      retentionPeriod: 7d
"#
    )
}

/// Asserts `err` is `code`; returns it for more checks.
fn refused(result: Result<impl std::fmt::Debug, Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(answer) => panic!("{what}: expected {code:?}, got {answer:?}"),
        Err(err) => {
            assert_eq!(err.code(), code, "{what}: {err:?}");
            err
        }
    }
}

/// Asserts a PERMISSION_DENIED names the user, the verb and the resource, with RBAC details.
fn denied(err: &Status, user: &str, verb: &str, resource: &str) {
    let message = err.message();
    assert!(
        message.contains(&format!("{user:?}"))
            && message.contains(&format!("cannot {verb} {resource}")),
        "the refusal says who may not do what: {message}"
    );
    let info = err.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, "RBAC_DENIED");
    assert_eq!(info.metadata.get("verb").map(String::as_str), Some(verb));
    assert_eq!(
        info.metadata.get("resource").map(String::as_str),
        Some(resource)
    );
}

/// Asserts an INVALID_ARGUMENT has a field violation for `field` naming `value`.
fn invalid(err: &Status, field: &str, value: &str) {
    let bad = err.get_details_bad_request().expect("BadRequest details");
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && v.description.contains(value)),
        "a violation of {field} naming {value:?}: {:?}",
        bad.field_violations
    );
}

async fn jsonpath(stack: &TestStack, args: &[&str]) -> anyhow::Result<String> {
    Ok(stack.kubectl.run(args).await?.trim().to_owned())
}

/// Watches a Restore through the API to its final event.
async fn watch_restore(
    client: &mut cairn_proto::api::v1::restore_service_client::RestoreServiceClient<
        tonic::transport::Channel,
    >,
    token: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<pb::RestoreEvent>> {
    let mut stream = client
        .watch_restore(with_token(
            pb::WatchRestoreRequest {
                namespace: namespace.into(),
                name: name.into(),
                resource_version: String::new(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, stream.message()).await?? {
        let last = event.r#final;
        events.push(event);
        if last {
            break;
        }
    }
    Ok(events)
}

fn restore_status(events: &[pb::RestoreEvent]) -> pb::RestoreStatus {
    events
        .last()
        .and_then(|e| e.restore.clone())
        .and_then(|r| r.status)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_schedules_repositories_and_client_certificates_through_the_api()
-> anyhow::Result<()> {
    let client_ca = ClientCa::generate("orchestrators' CA")?;
    let stranger_ca = ClientCa::generate("another CA")?;
    let ca_dir = tempfile::tempdir()?;
    let ca_file = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &client_ca.cert_pem)?;
    let ca_path = ca_file.display().to_string();
    run_with(
        "public-api-services",
        |options| {
            options
                .env
                .push(("CAIRN_API_CLIENT_CA".into(), ca_path.clone()))
        },
        async |stack| {
            let workload = scenario::workload(stack, NS, "db", 1 << 20).await?;
            let source = files::tree(&workload.data_dir)?;
            let policy =
                scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
            stack.ensure_namespace(INTO).await?;
            stack.ensure_namespace(OTHER).await?;
            stack.kubectl.apply(&rbac()).await?;
            scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
            dp::backup_completed(&stack.client, NS, "db-1", WAIT).await?;
            let token = token(&stack.kubectl, NS, "orch").await?;
            let nobody = self::token(&stack.kubectl, NS, "nobody").await?;
            let orch = "system:serviceaccount:team-a:orch";
            let channel = channel(&stack.data_dir).await?;
            let mut rs = restores(&channel);

            // --- Cross-namespace consent, on the source namespace (docs/API.md §9). ---
            let restore = |name: &str, ns: &str, backup_ns: &str, claim: &str, at: &str| {
                pb::CreateRestoreRequest {
                    namespace: ns.into(),
                    name: name.into(),
                    labels: [("app".to_string(), "api-test".to_string())].into(),
                    spec: Some(pb::RestoreSpec {
                        backup_name: "db-1".into(),
                        backup_namespace: backup_ns.into(),
                        restore_time: at.into(),
                        volume_claims: vec![pb::VolumeClaim {
                            name: claim.into(),
                            storage: "1Gi".into(),
                            volume_source: "data".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            };
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            // Without consent the Restore is created and fails, saying what is missing.
            rs.create_restore(with_token(
                restore("r-refused", INTO, NS, "refused-data", ""),
                &token,
            )?)
            .await?;
            let events = watch_restore(&mut rs, &token, INTO, "r-refused").await?;
            let status = restore_status(&events);
            anyhow::ensure!(
                status.phase == "Failed"
                    && status
                        .failure_reason
                        .contains("does not allow restores into namespace \"team-c\"")
                    && status
                        .failure_reason
                        .contains(&format!("the Backup or its namespace team-a with {ANNOTATION}=team-c")),
                "refused without consent: {status:?}"
            );
            // The source namespace consents for all its Backups.
            stack
                .kubectl
                .run(&["annotate", "namespace", NS, &format!("{ANNOTATION}=team-c")])
                .await?;
            let made = rs
                .create_restore(with_token(
                    restore("r-1", INTO, NS, "restored-data", &now),
                    &token,
                )?)
                .await?
                .into_inner();
            let spec = made.spec.clone().unwrap_or_default();
            anyhow::ensure!(
                spec.restore_time == now && spec.volume_claims.len() == 1,
                "{spec:?}"
            );
            let events = watch_restore(&mut rs, &token, INTO, "r-1").await?;
            let status = restore_status(&events);
            anyhow::ensure!(status.phase == "Completed", "r-1: {status:?}");
            anyhow::ensure!(
                events.first().map(|e| e.r#type) == Some(pb::EventType::Initial as i32)
                    && events.len() >= 2,
                "the watch saw the restore run: {} events",
                events.len()
            );
            // kubectl sees what the API created: restoreTime, the claim, the restored data.
            anyhow::ensure!(
                jsonpath(stack, &["get", "restore", "r-1", "-n", INTO, "-o", "jsonpath={.spec.restoreTime}"]).await? == now
            );
            let restored = dp::pvc_dir(&stack.client, INTO, "restored-data").await?;
            let differences = files::differences(&source, &files::tree(&restored)?);
            anyhow::ensure!(differences.is_empty(), "restored data: {differences:?}");

            // Get, List (label selector), Delete.
            let got = rs
                .get_restore(with_token(
                    pb::GetRestoreRequest {
                        namespace: INTO.into(),
                        name: "r-1".into(),
                    },
                    &token,
                )?)
                .await?
                .into_inner();
            anyhow::ensure!(got.status.unwrap_or_default().phase == "Completed");
            let listed = rs
                .list_restores(with_token(
                    pb::ListRestoresRequest {
                        namespace: INTO.into(),
                        label_selector: "app=api-test".into(),
                        ..Default::default()
                    },
                    &token,
                )?)
                .await?
                .into_inner();
            let names: Vec<String> = listed
                .restores
                .iter()
                .filter_map(|r| r.metadata.as_ref().map(|m| m.name.clone()))
                .collect();
            anyhow::ensure!(names == ["r-1", "r-refused"], "{names:?}");
            rs.delete_restore(with_token(
                pb::DeleteRestoreRequest {
                    namespace: INTO.into(),
                    name: "r-refused".into(),
                },
                &token,
            )?)
            .await?;
            let restores_api: kube::Api<cairn_api::Restore> =
                kube::Api::namespaced(stack.client.clone(), INTO);
            dp::gone(&restores_api, "r-refused", WAIT).await?;

            // RestoreService refusals.
            let err = refused(
                rs.get_restore(pb::GetRestoreRequest {
                    namespace: INTO.into(),
                    name: "r-1".into(),
                })
                .await,
                Code::Unauthenticated,
                "GetRestore without credentials",
            );
            assert!(err.message().contains("no credentials"), "{err:?}");
            let err = refused(
                rs.create_restore(with_token(
                    restore("r-2", OTHER, NS, "x", ""),
                    &token,
                )?)
                .await,
                Code::PermissionDenied,
                "CreateRestore in a namespace without rights",
            );
            denied(&err, orch, "create", "restores");
            let err = refused(
                rs.create_restore(with_token(
                    restore("r-2", INTO, OTHER, "x", ""),
                    &token,
                )?)
                .await,
                Code::PermissionDenied,
                "CreateRestore from a Backup the caller may not read",
            );
            denied(&err, orch, "get", "backups");
            let err = refused(
                rs.create_restore(with_token(
                    restore("r-2", INTO, NS, "x", "yesterday"),
                    &token,
                )?)
                .await,
                Code::InvalidArgument,
                "CreateRestore with an invalid restore time",
            );
            invalid(&err, "spec.restore_time", "yesterday");
            let err = refused(
                rs.watch_restore(with_token(
                    pb::WatchRestoreRequest {
                        namespace: INTO.into(),
                        name: "r-1".into(),
                        resource_version: String::new(),
                    },
                    &nobody,
                )?)
                .await,
                Code::PermissionDenied,
                "WatchRestore without rights",
            );
            denied(&err, "system:serviceaccount:team-a:nobody", "watch", "restores");

            // --- ScheduleService: list, get, enable/disable an entry, seen with kubectl. ---
            stack
                .kubectl
                .apply(&schedule(&policy.name, &policy.method))
                .await?;
            let mut ss = schedules(&channel);
            let listed = ss
                .list_schedules(with_token(
                    pb::ListSchedulesRequest {
                        namespace: NS.into(),
                        ..Default::default()
                    },
                    &token,
                )?)
                .await?
                .into_inner();
            anyhow::ensure!(listed.schedules.len() == 1, "{listed:?}");
            let enabled_by_kubectl = async || {
                jsonpath(
                    stack,
                    &[
                        "get",
                        "backupschedule",
                        "nightly",
                        "-n",
                        NS,
                        "-o",
                        "jsonpath={.spec.schedules[0].enabled}",
                    ],
                )
                .await
            };
            anyhow::ensure!(enabled_by_kubectl().await? == "false");
            let entry = |ns: &str, entry: &str| pb::SetScheduleEntryRequest {
                namespace: ns.into(),
                name: "nightly".into(),
                entry: entry.into(),
            };
            let enabled = ss
                .enable_schedule_entry(with_token(entry(NS, "nightly-files"), &token)?)
                .await?
                .into_inner();
            anyhow::ensure!(
                enabled.entries.first().is_some_and(|e| e.enabled),
                "{enabled:?}"
            );
            anyhow::ensure!(enabled_by_kubectl().await? == "true");
            ss.disable_schedule_entry(with_token(entry(NS, "nightly-files"), &token)?)
                .await?;
            anyhow::ensure!(enabled_by_kubectl().await? == "false");
            let got = ss
                .get_schedule(with_token(
                    pb::GetScheduleRequest {
                        namespace: NS.into(),
                        name: "nightly".into(),
                    },
                    &token,
                )?)
                .await?
                .into_inner();
            anyhow::ensure!(
                got.backup_policy_name == policy.name
                    && got.entries.first().is_some_and(|e| !e.enabled),
                "{got:?}"
            );
            // ScheduleService refusals.
            refused(
                ss.get_schedule(pb::GetScheduleRequest {
                    namespace: NS.into(),
                    name: "nightly".into(),
                })
                .await,
                Code::Unauthenticated,
                "GetSchedule without credentials",
            );
            let err = refused(
                ss.disable_schedule_entry(with_token(entry(NS, "nightly-files"), &nobody)?)
                    .await,
                Code::PermissionDenied,
                "DisableScheduleEntry without rights",
            );
            denied(
                &err,
                "system:serviceaccount:team-a:nobody",
                "patch",
                "backupschedules",
            );
            let err = refused(
                ss.list_schedules(with_token(
                    pb::ListSchedulesRequest {
                        namespace: NS.into(),
                        label_selector: "tier in (gold".into(),
                        ..Default::default()
                    },
                    &token,
                )?)
                .await,
                Code::InvalidArgument,
                "ListSchedules with an invalid label selector",
            );
            invalid(&err, "label_selector", "tier in (gold");
            let err = refused(
                ss.enable_schedule_entry(with_token(entry(NS, "hourly"), &token)?)
                    .await,
                Code::NotFound,
                "an entry the schedule does not have",
            );
            assert!(err.message().contains("nightly-files"), "{err:?}");

            // --- RepositoryService: phase and usage. ---
            let mut repos = repositories(&channel);
            let listed = repos
                .list_repositories(with_token(pb::ListRepositoriesRequest::default(), &token)?)
                .await?
                .into_inner();
            let local = listed
                .repositories
                .iter()
                .find(|r| r.metadata.as_ref().is_some_and(|m| m.name == "local"))
                .cloned()
                .unwrap_or_default();
            let usage = local.usage.unwrap_or_default();
            anyhow::ensure!(
                local.phase == "Ready" && local.is_default && usage.backups >= 1 && usage.bytes > 0,
                "the default repository with its usage: {:?}",
                listed.repositories
            );
            refused(
                repos
                    .list_repositories(pb::ListRepositoriesRequest::default())
                    .await,
                Code::Unauthenticated,
                "ListRepositories without credentials",
            );
            let err = refused(
                repos
                    .list_repositories(with_token(pb::ListRepositoriesRequest::default(), &nobody)?)
                    .await,
                Code::PermissionDenied,
                "ListRepositories without rights",
            );
            denied(&err, "system:serviceaccount:team-a:nobody", "list", "backuprepos");
            assert!(err.message().contains("at the cluster scope"), "{err:?}");
            let err = refused(
                repos
                    .list_repositories(with_token(
                        pb::ListRepositoriesRequest {
                            page_size: -3,
                            ..Default::default()
                        },
                        &token,
                    )?)
                    .await,
                Code::InvalidArgument,
                "ListRepositories with a negative page size",
            );
            invalid(&err, "page_size", "-3");

            // --- Client certificates: CN the user, O the groups, authorised by RBAC. ---
            let alice = client_ca.issue("alice", &["dba"])?;
            let as_alice = channel_as(&stack.data_dir, &alice).await?;
            let mut bs = backups(&as_alice);
            let listed = bs
                .list_backups(pb::ListBackupsRequest {
                    namespace: NS.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            anyhow::ensure!(
                listed.backups.len() == 1,
                "alice (group dba) lists team-a's backups through the aggregated dp-viewer: {listed:?}"
            );
            let err = refused(
                bs.delete_backup(pb::DeleteBackupRequest {
                    namespace: NS.into(),
                    name: "db-1".into(),
                })
                .await,
                Code::PermissionDenied,
                "alice may not delete",
            );
            denied(&err, "alice", "delete", "backups");
            // kubectl, impersonating the same user and group, answers the same.
            let can_i = async |verb: &str, user: &[&str]| -> anyhow::Result<String> {
                let mut args = user.to_vec();
                args.extend([
                    "auth",
                    "can-i",
                    verb,
                    "backups.dataprotection.kubeblocks.io",
                    "-n",
                    NS,
                ]);
                Ok(stack.kubectl.output(&args, None).await?.stdout.trim().to_owned())
            };
            let alice_dba = ["--as", "alice", "--as-group", "dba"];
            anyhow::ensure!(can_i("list", &alice_dba).await? == "yes");
            anyhow::ensure!(can_i("delete", &alice_dba).await? == "no");
            // Without the group, alice has nothing: the certificate's O is what grants it.
            let bob = client_ca.issue("alice", &[])?;
            let as_bob = channel_as(&stack.data_dir, &bob).await?;
            let err = refused(
                backups(&as_bob)
                    .list_backups(pb::ListBackupsRequest {
                        namespace: NS.into(),
                        ..Default::default()
                    })
                    .await,
                Code::PermissionDenied,
                "alice without group dba",
            );
            denied(&err, "alice", "list", "backups");
            anyhow::ensure!(can_i("list", &["--as", "alice"]).await? == "no");
            // A certificate from another CA is refused (the TLS handshake fails).
            let mallory = stranger_ca.issue("alice", &["dba"])?;
            let stranger = match channel_as(&stack.data_dir, &mallory).await {
                Err(_) => None,
                Ok(channel) => Some(
                    backups(&channel)
                        .list_backups(pb::ListBackupsRequest {
                            namespace: NS.into(),
                            ..Default::default()
                        })
                        .await,
                ),
            };
            anyhow::ensure!(
                !matches!(stranger, Some(Ok(_))),
                "a certificate from another CA must not be accepted: {stranger:?}"
            );
            Ok(())
        },
    )
    .await
}
