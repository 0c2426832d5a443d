//! Pods as processes: logs, exec, volumes at mountPath, Jobs, StatefulSets, snapshots and
//! restarts, through kube-rs and the real kubectl.

use crate::common::{TestServer, eventually, stderr, stdout};
use crate::kubectl::{Kubectl, kubectls};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, LogParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn with_kubelet() -> TestServer {
    TestServer::start_with(|b| b.kubelet(true)).await
}

fn kubectl(server: &TestServer) -> Kubectl<'_> {
    Kubectl {
        binary: kubectls().remove(0),
        server,
        env: Vec::new(),
    }
}

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_sees_hostpath_and_pvc_volumes_at_their_mount_paths_and_its_output_is_logged() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    let host = t._dir.path().join("hostdata");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "h\n").unwrap();
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  restartPolicy: Never
  volumes:
  - {{name: h, hostPath: {{path: {host}}}}}
  - {{name: d, persistentVolumeClaim: {{claimName: data}}}}
  containers:
  - name: main
    image: debian
    command: [sh, -c, 'cat /backupdata/from-host; echo pvc > /var/lib/db/data/marker; ls /var/lib/db/data; echo line3']
    volumeMounts:
    - {{name: h, mountPath: /backupdata}}
    - {{name: d, mountPath: /var/lib/db/data}}
"#,
        host = host.display()
    ));
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/p",
        "--timeout=30s",
    ]);
    assert_eq!(k.ok(&["logs", "p"]), "h\nmarker\nline3\n");
    assert_eq!(k.ok(&["logs", "p", "--tail=1"]), "line3\n");
    let ts = k.ok(&["logs", "p", "--timestamps"]);
    assert!(
        ts.lines()
            .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-' && l.contains('Z')),
        "{ts}"
    );
    let pv = k.ok(&["get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"]);
    let pv_path = k.ok(&["get", "pv", &pv, "-o", "jsonpath={.spec.local.path}"]);
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&pv_path).join("marker")).unwrap(),
        "pvc\n"
    );
    assert!(
        !std::path::Path::new("/backupdata").exists(),
        "nothing was created on the host"
    );
    let uid = k.ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.uid}"]);
    let local = t
        .server()
        .data_dir()
        .join("kubelet/pods")
        .join(&uid)
        .join("volumes/kubernetes.io~local-volume")
        .join(&pv);
    assert_eq!(
        std::fs::read_to_string(local.join("marker")).unwrap(),
        "pvc\n",
        "the kubelet layout links the volume"
    );
    let table = crate::kubectl::table(&k.ok(&["get", "pod", "p"]));
    assert_eq!(table[1][1..3], ["0/1", "Completed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_exec_passes_stdin_stdout_stderr_and_exit_codes_and_logs_follow_until_exit() {
    let t = with_kubelet().await;
    for binary in kubectls() {
        let k = Kubectl {
            binary,
            server: &t,
            env: Vec::new(),
        };
        k.ok(&["delete", "pod", "e", "--ignore-not-found", "--wait=true"]);
        k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: e}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {name: main, image: x, command: [sh, -c, 'echo started; sleep 1000'], env: [{name: GREETING, value: hi}]}\n");
        k.ok(&["wait", "--for=condition=Ready", "pod/e", "--timeout=30s"]);
        assert_eq!(
            k.ok(&["exec", "e", "--", "sh", "-c", "echo $GREETING"]),
            "hi\n"
        );
        let o = k.run(&[
            "exec",
            "e",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert_eq!(stdout(&o), "out\n");
        assert!(stderr(&o).contains("err"));
        assert_eq!(
            k.ok_stdin(&["exec", "-i", "e", "--", "cat"], Some("through stdin\n")),
            "through stdin\n"
        );
        k.ok(&["delete", "pod", "e", "--timeout=30s"]);
    }
    let k = kubectl(&t);
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: f}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: main, image: x, command: [sh, -c, 'for i in 1 2 3; do echo n$i; sleep 0.3; done']}\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        "pod/f",
        "--timeout=30s",
    ]);
    let follow = k.ok(&["logs", "-f", "f"]);
    assert_eq!(
        follow, "n1\nn2\nn3\n",
        "logs -f ends when the process exits"
    );
}

#[tokio::test]
async fn kube_rs_exec_with_stdin_and_logs_work() {
    let t = with_kubelet().await;
    let client = t.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("k", json!({"containers": [{"name": "c", "image": "x", "command": ["sh", "-c", "echo hello-from-logs; sleep 1000"]}]})))
        .await
        .unwrap();
    await_condition(pods.clone(), "k", conditions::is_pod_running())
        .await
        .unwrap();
    let mut attached = pods
        .exec(
            "k",
            ["sh", "-c", "cat; echo done >&2; exit 5"],
            &AttachParams::default().stdin(true).stderr(true),
        )
        .await
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    stdin.write_all(b"piped").await.unwrap();
    // A simplex stream reports EOF only once its writer is shut down.
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    attached
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(out, "piped");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("5")
    );
    let logs = eventually(Duration::from_secs(10), async || {
        let l = pods.logs("k", &LogParams::default()).await.ok()?;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(logs, "hello-from-logs\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_ends_with_its_main_process_whatever_it_left_running() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    // One child stays in the container's process group, one leaves it with setsid; both keep
    // the container's stdout open.
    k.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: leaves}\nspec:\n  restartPolicy: Never\n  containers: [{name: c, image: x, command: [sh, -c, 'sleep 3017 & setsid sleep 3018 & echo started']}]\n",
    );
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/leaves",
        "--timeout=30s",
    ]);
    assert_eq!(k.ok(&["logs", "leaves"]), "started\n");
    // The pids of processes running `sleep <arg>`.
    let sleeping = |arg: &str| -> Vec<i32> {
        let wanted = format!("sleep\0{arg}\0");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.ends_with(wanted.as_bytes()))
            })
            .collect()
    };
    for pid in sleeping("3018") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        sleeping("3017").is_empty(),
        "the child in the container's process group was killed with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_fails_past_its_backoff_limit_and_a_good_one_completes() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: x, command: [sh, -c, 'echo failing; exit 2']}]\n");
    k.apply("apiVersion: batch/v1\nkind: Job\nmetadata: {name: good}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: x, command: [sh, -c, 'echo fine']}]\n");
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/good",
        "--timeout=30s",
    ]);
    assert_eq!(k.ok(&["logs", "job/good"]), "fine\n");
    k.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=60s"]);
    let reason = k.ok(&[
        "get",
        "job",
        "bad",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}",
    ]);
    assert_eq!(reason, "BackoffLimitExceeded");
    assert_eq!(
        k.ok(&["get", "job", "bad", "-o", "jsonpath={.status.failed}"]),
        "2"
    );
    let t2 = crate::kubectl::table(&k.ok(&["get", "jobs"]));
    assert!(
        t2.iter().any(|r| r[0] == "bad" && r[1] == "Failed"),
        "{t2:?}"
    );
    assert!(
        t2.iter()
            .any(|r| r[0] == "good" && r[1] == "Complete" && r[2] == "1/1"),
        "{t2:?}"
    );
    // kube-rs sees the same completion.
    let jobs: Api<Job> = Api::default_namespaced(t.client().await);
    await_condition(jobs, "good", conditions::is_job_completed())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statefulset_runs_ordered_pods_and_scales_from_two_to_zero() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{name: c, image: x, command: [sleep, '1000']}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=2",
        "sts/db",
        "--timeout=60s",
    ]);
    assert_eq!(
        k.ok(&["get", "pods", "-l", "app=db", "-o", "name"]),
        "pod/db-0\npod/db-1\n"
    );
    assert_eq!(
        k.ok(&["get", "pvc", "-o", "name"]),
        "persistentvolumeclaim/data-db-0\npersistentvolumeclaim/data-db-1\n"
    );
    k.ok(&["scale", "sts", "db", "--replicas=0"]);
    let start = std::time::Instant::now();
    loop {
        if k.ok(&["get", "pods", "-l", "app=db", "-o", "name"])
            .trim()
            .is_empty()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pods did not go away"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        crate::kubectl::table(&k.ok(&["get", "sts", "db"]))[1][1],
        "0/0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_csi_claim_binds_at_once_and_two_pods_see_the_same_files_at_the_kubelet_csi_path()
{
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: nfs}\nspec: {storageClassName: localkube-shared, accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}}\n");
    // Immediate binding: no pod needed.
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Bound",
        "pvc/nfs",
        "--timeout=30s",
    ]);
    let pv = k.ok(&["get", "pvc", "nfs", "-o", "jsonpath={.spec.volumeName}"]);
    let spec: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pv", &pv, "-o", "jsonpath={.spec}"])).unwrap();
    assert_eq!(spec["csi"]["driver"], "shared.localkube.io", "{spec}");
    assert!(
        spec.get("nodeAffinity").is_none() && spec.get("local").is_none(),
        "a shared volume is not pinned to a node nor a local volume: {spec}"
    );
    let share = spec["csi"]["volumeAttributes"]["share"].as_str().unwrap();
    assert!(
        !spec["csi"]["volumeHandle"]
            .as_str()
            .unwrap()
            .starts_with('/'),
        "the handle is not a path: {spec}"
    );
    for (name, script) in [
        ("writer", "echo shared > /mnt/hello"),
        ("reader", "cat /mnt/hello"),
    ] {
        k.apply(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: nfs}}}}]\n  containers: [{{name: c, image: x, command: [sh, -c, '{script}'], volumeMounts: [{{name: d, mountPath: /mnt}}]}}]\n"));
        k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            &format!("pod/{name}"),
            "--timeout=30s",
        ]);
    }
    assert_eq!(k.ok(&["logs", "reader"]).trim(), "shared");
    let uid = k.ok(&["get", "pod", "reader", "-o", "jsonpath={.metadata.uid}"]);
    let mount = t
        .server()
        .data_dir()
        .join("kubelet/pods")
        .join(&uid)
        .join("volumes/kubernetes.io~csi")
        .join(&pv)
        .join("mount");
    assert_eq!(
        std::fs::read_to_string(mount.join("hello")).unwrap(),
        "shared\n",
        "the kubelet layout links the shared volume"
    );
    let dir = std::path::Path::new(share).join(&pv);
    assert!(
        dir.join("hello").exists(),
        "{} holds the data",
        dir.display()
    );
    // Reclaim Delete: the claim gone, its directory goes too.
    k.ok(&["delete", "pod", "writer", "reader"]);
    k.ok(&["delete", "pvc", "nfs"]);
    eventually(Duration::from_secs(30), async || {
        (!dir.exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_statefulset_template_replaces_its_pod_and_never_runs_two() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: arc}\nspec:\n  replicas: 1\n  serviceName: ''\n  selector: {matchLabels: {app: arc}}\n  template:\n    metadata: {labels: {app: arc}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{name: c, image: x, command: [sh, -c, 'echo ttl=$TTL; sleep 1000'], env: [{name: TTL, value: '60'}]}]\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=1",
        "sts/arc",
        "--timeout=60s",
    ]);
    let uid = |k: &Kubectl<'_>| k.ok(&["get", "pod", "arc-0", "-o", "jsonpath={.metadata.uid}"]);
    let first = uid(&k);
    // An unchanged apply is no rollout.
    k.ok(&["annotate", "sts", "arc", "touched=yes"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(uid(&k), first);
    k.ok(&["set", "env", "sts/arc", "TTL=120"]);
    let start = std::time::Instant::now();
    loop {
        let pods = k.ok(&["get", "pods", "-l", "app=arc", "-o", "name"]);
        assert!(pods.lines().count() <= 1, "two archivers at once: {pods}");
        let log = k.run(&["logs", "arc-0"]);
        if log.status.success() && stdout(&log).contains("ttl=120") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pod was not replaced"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(uid(&k), first);
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.updatedReplicas}=1",
        "sts/arc",
        "--timeout=30s",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_restores_into_a_new_claim_with_identical_content() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: src}\nspec: {storageClassName: local-csi, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  restartPolicy: Never\n  volumes: [{name: d, persistentVolumeClaim: {claimName: src}}]\n  containers: [{name: c, image: x, command: [sh, -c, 'mkdir -p /data/sub && seq 1 5000 > /data/sub/numbers && echo x > /data/top'], volumeMounts: [{name: d, mountPath: /data}]}]\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/w",
        "--timeout=30s",
    ]);
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s1}\nspec: {source: {persistentVolumeClaimName: src}}\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.readyToUse}=true",
        "volumesnapshot/s1",
        "--timeout=30s",
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "volumesnapshot",
            "s1",
            "-o",
            "jsonpath={.status.restoreSize}"
        ]),
        "1Gi",
        "a snapshot restores to its source's size"
    );
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: copy}\nspec:\n  storageClassName: local-csi\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: s1}\n");
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: r}\nspec:\n  restartPolicy: Never\n  volumes: [{name: d, persistentVolumeClaim: {claimName: copy}}]\n  containers: [{name: c, image: x, command: [sh, -c, 'md5sum /restore/sub/numbers /restore/top | cut -c1-32'], volumeMounts: [{name: d, mountPath: /restore}]}]\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/r",
        "--timeout=30s",
    ]);
    let restored = k.ok(&["logs", "r"]);
    let src_pv = k.ok(&["get", "pvc", "src", "-o", "jsonpath={.spec.volumeName}"]);
    let src_path = std::path::PathBuf::from(k.ok(&[
        "get",
        "pv",
        &src_pv,
        "-o",
        "jsonpath={.spec.csi.volumeHandle}",
    ]));
    let original = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "md5sum {0}/sub/numbers {0}/top | cut -c1-32",
            src_path.display()
        ))
        .output()
        .unwrap();
    assert_eq!(restored, String::from_utf8_lossy(&original.stdout));
    let uid = k.ok(&["get", "pod", "r", "-o", "jsonpath={.metadata.uid}"]);
    let copy_pv = k.ok(&["get", "pvc", "copy", "-o", "jsonpath={.spec.volumeName}"]);
    let link = t
        .server()
        .data_dir()
        .join("kubelet/pods")
        .join(&uid)
        .join("volumes/kubernetes.io~csi")
        .join(&copy_pv)
        .join("mount");
    assert!(
        link.join("top").exists(),
        "the kubelet layout links the CSI volume"
    );
}

/// Waits for the provisioner's `ProvisioningFailed` event on claim `claim` to contain
/// `expected`; returns its message.
async fn provisioning_failed(k: &Kubectl<'_>, claim: &str, expected: &str) -> String {
    eventually(Duration::from_secs(30), async || {
        let message = k.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={claim},reason=ProvisioningFailed"),
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        message.contains(expected).then_some(message)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_from_a_missing_unready_or_larger_snapshot_stays_pending_with_the_provisioners_error()
 {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    let claim = |name: &str, size: &str, snapshot: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  storageClassName: local-csi\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snapshot}}}\n"
        )
    };
    let reader = |name: &str, claim: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n  containers: [{{name: c, image: x, command: [cat, /d/f], volumeMounts: [{{name: d, mountPath: /d}}]}}]\n"
        )
    };
    // A claim (used by a pod: WaitForFirstConsumer) from a snapshot that does not exist yet.
    k.apply(&claim("early", "1Gi", "s1"));
    k.apply(&reader("r-early", "early"));
    let message = provisioning_failed(&k, "early", "not found").await;
    assert_eq!(
        message,
        "failed to provision volume with StorageClass \"local-csi\": error getting handle for DataSource Type VolumeSnapshot by Name s1: error getting snapshot s1 from api server: volumesnapshots.snapshot.storage.k8s.io \"s1\" not found"
    );
    assert_eq!(
        k.ok(&["get", "pvc", "early", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    // A snapshot that is not ready yet.
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: slow}\ndriver: localkube/local-path\ndeletionPolicy: Delete\nparameters: {localkube/snapshot-delay-seconds: '3600'}\n");
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: src}\nspec: {storageClassName: local-csi, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  restartPolicy: Never\n  volumes: [{name: d, persistentVolumeClaim: {claimName: src}}]\n  containers: [{name: c, image: x, command: [sh, -c, 'echo snapshotted > /data/f'], volumeMounts: [{name: d, mountPath: /data}]}]\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/w",
        "--timeout=30s",
    ]);
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s-slow}\nspec: {source: {persistentVolumeClaimName: src}, volumeSnapshotClassName: slow}\n");
    k.apply(&claim("waits", "1Gi", "s-slow"));
    k.apply(&reader("r-waits", "waits"));
    provisioning_failed(&k, "waits", "snapshot s-slow is not Ready").await;
    // The snapshot appears: the waiting claim is filled from it.
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s1}\nspec: {source: {persistentVolumeClaimName: src}}\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/r-early",
        "--timeout=60s",
    ]);
    assert_eq!(k.ok(&["logs", "r-early"]), "snapshotted\n");
    // A claim smaller than the snapshot's restore size.
    k.apply(&claim("small", "1Mi", "s1"));
    k.apply(&reader("r-small", "small"));
    provisioning_failed(
        &k,
        "small",
        "requested volume size 1048576 is less than the size 1073741824 for the source snapshot s1",
    )
    .await;
    assert_eq!(
        k.ok(&["get", "pvc", "small", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_snapshotter_reports_errors_like_the_csi_snapshotter_and_honours_its_test_knobs() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    for (claim, class) in [("plain", "local-path"), ("csi", "local-csi")] {
        k.apply(&format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {claim}}}\nspec: {{storageClassName: {class}, accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"));
        k.apply(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: w-{claim}}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n  containers: [{{name: c, image: x, command: [sh, -c, 'echo x > /data/f'], volumeMounts: [{{name: d, mountPath: /data}}]}}]\n"));
        k.ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            &format!("pod/w-{claim}"),
            "--timeout=30s",
        ]);
    }
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: broken}\ndriver: localkube/local-path\ndeletionPolicy: Delete\nparameters: {localkube/snapshot-error: 'Failed to create snapshot: disk on fire'}\n");
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: slow}\ndriver: localkube/local-path\ndeletionPolicy: Delete\nparameters: {localkube/snapshot-delay-seconds: '3'}\n");
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: foreign}\ndriver: ebs.csi.aws.com\ndeletionPolicy: Delete\n");
    let cases = [
        (
            "s-plain",
            "plain",
            "",
            "cannot find CSI PersistentVolumeSource for volume",
        ),
        (
            "s-missing",
            "csi",
            "nope",
            "Failed to get snapshot class with error",
        ),
        (
            "s-foreign",
            "csi",
            "foreign",
            "is of driver \"ebs.csi.aws.com\"",
        ),
        (
            "s-broken",
            "csi",
            "broken",
            "Failed to create snapshot: disk on fire",
        ),
    ];
    for (name, claim, class, _) in cases {
        let class = if class.is_empty() {
            String::new()
        } else {
            format!(", volumeSnapshotClassName: {class}")
        };
        k.apply(&format!("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {{name: {name}}}\nspec: {{source: {{persistentVolumeClaimName: {claim}}}{class}}}\n"));
    }
    for (name, _, _, message) in cases {
        k.ok(&[
            "wait",
            "--for=jsonpath={.status.readyToUse}=false",
            &format!("volumesnapshot/{name}"),
            "--timeout=30s",
        ]);
        let error = k.ok(&[
            "get",
            "volumesnapshot",
            name,
            "-o",
            "jsonpath={.status.error.message}",
        ]);
        assert!(error.contains(message), "{name}: {error}");
    }
    k.apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s-slow}\nspec: {source: {persistentVolumeClaimName: csi}, volumeSnapshotClassName: slow}\n");
    let start = std::time::Instant::now();
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.readyToUse}=true",
        "volumesnapshot/s-slow",
        "--timeout=30s",
    ]);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "ready only after the delay"
    );
}

#[tokio::test]
async fn a_restart_treats_the_host_like_a_rebooted_node() {
    crate::common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::builder(dir.path())
        .kubelet(true)
        .start()
        .await
        .unwrap();
    let client = crate::common::client_for(server.kubeconfig_path()).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(
        &PostParams::default(),
        &pod(
            "always",
            json!({"containers": [{"name": "c", "image": "x", "command": ["sleep", "1000"]}]}),
        ),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("never", json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "x", "command": ["sleep", "1000"]}]})))
        .await
        .unwrap();
    for name in ["always", "never"] {
        await_condition(pods.clone(), name, conditions::is_pod_running())
            .await
            .unwrap();
    }
    let addr = server.local_addr();
    // An abrupt stop: pods are killed without status updates, as with kill -9.
    server.crash().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = crate::common::builder(dir.path())
        .kubelet(true)
        .listen(addr)
        .start()
        .await
        .unwrap();
    let client = crate::common::client_for(server.kubeconfig_path()).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let always = eventually(Duration::from_secs(20), async || {
        let p = pods.get("always").await.ok()?;
        let cs = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (cs.restart_count == 1 && cs.state.as_ref()?.running.is_some()).then_some(cs)
    })
    .await;
    assert!(always.last_state.unwrap().terminated.is_some());
    let never = eventually(Duration::from_secs(20), async || {
        let p = pods.get("never").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    let term = never.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.reason.as_deref(), Some("ContainerStatusUnknown"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_describe_shows_a_pod_with_the_events_a_recorder_wrote() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let t = with_kubelet().await;
    let client = t.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p = pods
        .create(
            &PostParams::default(),
            &pod(
                "d",
                json!({"containers": [{"name": "c", "image": "x", "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .unwrap();
    await_condition(pods.clone(), "d", conditions::is_pod_running())
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "cairn-agent".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "BackupStarted".into(),
                note: Some("started a backup of d".into()),
                action: "Backup".into(),
                secondary: None,
            },
            &p.object_ref(&()),
        )
        .await
        .unwrap();
    for binary in kubectls() {
        let k = Kubectl {
            binary,
            server: &t,
            env: Vec::new(),
        };
        let out = k.ok(&["describe", "pod", "d"]);
        for needle in [
            "Name:",
            "Node:",
            "testnode",
            "Status:",
            "Running",
            "Restart Count:",
            "BackupStarted",
            "started a backup of d",
            "cairn-agent",
        ] {
            assert!(out.contains(needle), "describe lacks {needle:?}:\n{out}");
        }
    }
}

/// What each of two concurrent pods runs: it writes its name to the same scratch paths in
/// `/tmp` and in `/etc` (outside any volume) twenty times and checks it reads its own name
/// back; it fails if a path already exists when it starts (a leftover of another pod).
fn scratch_writer(tag: &str) -> String {
    format!(
        r#"set -e
test ! -e /tmp/lk-scratch-{tag} || {{ echo "/tmp/lk-scratch-{tag} left by another pod"; exit 9; }}
test ! -e /etc/lk-scratch-{tag} || {{ echo "/etc/lk-scratch-{tag} left by another pod"; exit 8; }}
for i in $(seq 20); do
  echo "$NAME" > /tmp/lk-scratch-{tag}
  echo "$NAME" > /etc/lk-scratch-{tag}
  sleep 0.1
  [ "$(cat /tmp/lk-scratch-{tag})" = "$NAME" ] || {{ echo "collision in /tmp"; exit 1; }}
  [ "$(cat /etc/lk-scratch-{tag})" = "$NAME" ] || {{ echo "collision in /etc"; exit 2; }}
done
echo "$NAME kept its scratch files"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_pods_writing_the_same_scratch_paths_do_not_collide() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    let tag = format!("{}-concurrent", std::process::id());
    let script = scratch_writer(&tag);
    for name in ["w1", "w2"] {
        let manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x",
                "command": ["sh", "-c", script], "env": [{"name": "NAME", "value": name}]}]}});
        k.apply(&manifest.to_string());
    }
    for name in ["w1", "w2"] {
        eventually(Duration::from_secs(60), async || {
            let phase = k.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
            (phase == "Succeeded" || phase == "Failed").then_some(())
        })
        .await;
        let phase = k.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
        let logs = k.ok(&["logs", name]);
        assert_eq!(phase, "Succeeded", "{name}: {logs}");
        assert_eq!(logs, format!("{name} kept its scratch files\n"));
    }
    for p in [
        format!("/tmp/lk-scratch-{tag}"),
        format!("/etc/lk-scratch-{tag}"),
    ] {
        assert!(
            !std::path::Path::new(&p).exists(),
            "{p} was written to the host"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pods_tmp_is_its_own_seen_by_exec_and_probes_and_removed_with_the_pod() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    let tag = format!("{}-private", std::process::id());
    let host_file = std::path::PathBuf::from(format!("/tmp/lk-host-{tag}"));
    std::fs::write(&host_file, "host\n").unwrap();
    let _cleanup = scopeguard(host_file.clone());
    // The readiness marker exists only in the pod's own /tmp: the probe must look there.
    let first = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "first"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": "x",
            "command": ["sh", "-c", format!(
                "test ! -e /tmp/lk-host-{tag} || exit 7; echo one > /tmp/marker-{tag}; touch /tmp/ready-{tag}; sleep 1000")],
            "readinessProbe": {"exec": {"command": ["test", "-e", format!("/tmp/ready-{tag}")]},
                "periodSeconds": 1}}]}});
    k.apply(&first.to_string());
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/first",
        "--timeout=60s",
    ]);
    assert_eq!(
        k.ok(&["exec", "first", "--", "cat", &format!("/tmp/marker-{tag}")]),
        "one\n",
        "exec sees the container's own /tmp"
    );
    assert!(!std::path::Path::new(&format!("/tmp/marker-{tag}")).exists());
    // A later pod does not see what the first one left in its /tmp.
    let second = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "second"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x",
            "command": ["sh", "-c", format!(
                "if test -e /tmp/marker-{tag} || test -e /tmp/ready-{tag}; then echo seen; else echo clean; fi; ls -ld /tmp | cut -c1-10")]}]}});
    k.apply(&second.to_string());
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/second",
        "--timeout=60s",
    ]);
    assert_eq!(k.ok(&["logs", "second"]), "clean\ndrwxrwxrwt\n");
    // Deleting the pod removes its directory: volumes, logs, /tmp and writable layer.
    let uid = k.ok(&["get", "pod", "first", "-o", "jsonpath={.metadata.uid}"]);
    let dir = t.server().data_dir().join("kubelet/pods").join(&uid);
    assert!(
        dir.join("rootfs/main/tmp")
            .join(format!("marker-{tag}"))
            .exists()
    );
    k.ok(&["delete", "pod", "first", "--wait=true", "--timeout=60s"]);
    eventually(Duration::from_secs(30), async || {
        (!dir.exists()).then_some(())
    })
    .await;
}

/// Removes a host file when the test ends.
fn scopeguard(path: std::path::PathBuf) -> impl Drop {
    struct Guard(std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    Guard(path)
}

/// `pod-security.kubernetes.io/enforce: baseline` on a namespace refuses a pod with a hostPath
/// volume with the apiserver's message, accepts a pod without one, and leaves other namespaces
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_baseline_namespace_refuses_host_path_pods_with_the_apiservers_message() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: guarded\n  labels:\n    \
         pod-security.kubernetes.io/enforce: baseline\n",
    );
    let pod = |ns: &str, volume: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: {ns}}}\nspec:\n  \
             restartPolicy: Never\n  volumes: [{{name: v, {volume}}}]\n  containers:\n  \
             - {{name: main, image: debian, command: [true]}}\n"
        )
    };
    let refused = k.run_stdin(
        &["create", "-f", "-"],
        Some(&pod("guarded", "hostPath: {path: /var/lib}")),
    );
    assert!(!refused.status.success(), "a hostPath pod was admitted");
    assert!(
        stderr(&refused).contains(
            r#"pods "p" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "v")"#
        ),
        "{}",
        stderr(&refused)
    );
    k.ok_stdin(
        &["create", "-f", "-"],
        Some(&pod("guarded", "emptyDir: {}")),
    );
    k.ok_stdin(
        &["create", "-f", "-"],
        Some(&pod("default", "hostPath: {path: /var/lib}")),
    );
}

/// What Kubernetes does for a volume populator: a claim whose `dataSourceRef` names a kind of
/// another API group is not provisioned, yet (WaitForFirstConsumer) gets the scheduler's
/// `volume.kubernetes.io/selected-node` once a pod uses it; a volume whose `claimRef` is then
/// moved to it (with its uid) binds it, and deleting the claim that volume was made for does
/// not reclaim it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_populated_claim_waits_with_its_selected_node_and_binds_to_the_volume_handed_to_it() {
    let t = with_kubelet().await;
    let k = kubectl(&t);
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: target}\nspec:\n  storageClassName: local-path\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  dataSourceRef: {apiGroup: example.io, kind: Thing, name: x}\n");
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: reader}\nspec:\n  restartPolicy: Never\n  volumes: [{name: d, persistentVolumeClaim: {claimName: target}}]\n  containers: [{name: c, image: x, command: [cat, /data/marker], volumeMounts: [{name: d, mountPath: /data}]}]\n");
    let node = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    k.ok(&[
        "wait",
        &format!(
            "--for=jsonpath={{.metadata.annotations.volume\\.kubernetes\\.io/selected-node}}={node}"
        ),
        "pvc/target",
        "--timeout=30s",
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        k.ok(&[
            "get",
            "pvc",
            "target",
            "-o",
            "jsonpath={.status.phase}/{.spec.volumeName}"
        ]),
        "Pending/",
        "a claim left to a populator is not provisioned"
    );
    k.apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: prime}\nspec: {storageClassName: local-path, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: writer}\nspec:\n  restartPolicy: Never\n  volumes: [{name: d, persistentVolumeClaim: {claimName: prime}}]\n  containers: [{name: c, image: x, command: [sh, -c, 'echo populated > /data/marker'], volumeMounts: [{name: d, mountPath: /data}]}]\n");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/writer",
        "--timeout=30s",
    ]);
    let pv = k.ok(&["get", "pvc", "prime", "-o", "jsonpath={.spec.volumeName}"]);
    let uid = k.ok(&["get", "pvc", "target", "-o", "jsonpath={.metadata.uid}"]);
    // A populator's condition on the claim survives its binding.
    k.ok(&[
        "patch",
        "pvc",
        "target",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Populating","status":"True","reason":"Succeed"}]}}"#,
    ]);
    k.ok(&[
        "patch",
        "pv",
        &pv,
        "--type=merge",
        "-p",
        &format!(
            r#"{{"spec":{{"claimRef":{{"namespace":"default","name":"target","uid":"{uid}","resourceVersion":null}}}}}}"#
        ),
    ]);
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/reader",
        "--timeout=30s",
    ]);
    assert_eq!(k.ok(&["logs", "reader"]), "populated\n");
    assert_eq!(
        k.ok(&[
            "get",
            "pvc",
            "target",
            "-o",
            "jsonpath={.status.phase}/{.spec.volumeName}/{.status.conditions[0].reason}"
        ]),
        format!("Bound/{pv}/Succeed")
    );
    k.ok(&["delete", "pod", "writer"]);
    k.ok(&["delete", "pvc", "prime", "--timeout=30s"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        k.ok(&[
            "get",
            "pv",
            &pv,
            "-o",
            "jsonpath={.status.phase}/{.spec.claimRef.name}"
        ]),
        "Bound/target",
        "the handed-over volume outlives the claim it was made for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_waiting_for_a_volume_source_starts_as_soon_as_it_appears_not_a_retry_later() {
    let t = with_kubelet().await;
    let pods: Api<Pod> = Api::default_namespaced(t.client().await);
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::default_namespaced(t.client().await);
    pods.create(
        &PostParams::default(),
        &pod(
            "late",
            json!({
                "restartPolicy": "Never",
                "volumes": [{"name": "cfg", "configMap": {"name": "late-config"}}],
                "containers": [{"name": "c", "image": "x",
                    "command": ["sh", "-c", "cat /cfg/key"],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]
            }),
        ),
    )
    .await
    .unwrap();
    // The kubelet reports what it waits for (and then waits: it used to retry a second later).
    let waiting = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.as_deref())
            .is_some_and(|m| m.contains("late-config"))
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(pods.clone(), "late", waiting),
    )
    .await
    .expect("the pod reports the missing configmap")
    .unwrap();
    let created = std::time::Instant::now();
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "late-config"}, "data": {"key": "here\n"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let succeeded = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Succeeded")
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(pods.clone(), "late", succeeded),
    )
    .await
    .expect("the pod ran")
    .unwrap();
    let took = created.elapsed();
    // A retry timer would have started it about a second after it reported the wait; the
    // configmap's creation wakes it at once (a process start and exit: tens of milliseconds).
    assert!(
        took < Duration::from_millis(700),
        "the pod finished {took:?} after its configmap appeared"
    );
    let logs = pods.logs("late", &LogParams::default()).await.unwrap();
    assert_eq!(logs, "here\n");
}
