//! The kubectl golden suite: real kubectl binaries (every distinct `kubectl` on PATH, e.g.
//! 1.37 from ./test.sh's venv and the image's 1.32) against a fresh localkube each.

use crate::common::{TestServer, kubectl_run, stderr, stdout};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// Every distinct kubectl on PATH, the first one first. Fails when there is none.
pub fn kubectls() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("kubectl");
        if !candidate.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&candidate).unwrap_or(candidate.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        found.push(candidate);
    }
    assert!(
        !found.is_empty(),
        "kubectl is required on PATH; run ./test.sh to install test tools"
    );
    found
}

/// kubectl bound to one binary and one server.
pub struct Kubectl<'a> {
    pub binary: PathBuf,
    pub server: &'a TestServer,
    pub env: Vec<(String, String)>,
}

impl Kubectl<'_> {
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        kubectl_run(
            self.binary.to_str().unwrap_or("kubectl"),
            &self.server.kubeconfig(),
            self.server.home.path(),
            args,
            input,
            &env,
        )
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    pub fn ok_stdin(&self, args: &[&str], input: Option<&str>) -> String {
        let o = self.run_stdin(args, input);
        assert!(
            o.status.success(),
            "{} {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            self.binary.display(),
            o.status.code(),
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "{} {args:?} unexpectedly succeeded:\n{}",
            self.binary.display(),
            stdout(&o)
        );
        stderr(&o)
    }

    pub fn apply(&self, manifest: &str) -> String {
        self.ok_stdin(&["apply", "-f", "-"], Some(manifest))
    }
}

/// Runs `scenario` against a fresh server for every kubectl on PATH.
pub async fn for_each_kubectl(scenario: impl AsyncFn(&Kubectl<'_>)) {
    for binary in kubectls() {
        let server = TestServer::start().await;
        let k = Kubectl {
            binary,
            server: &server,
            env: Vec::new(),
        };
        scenario(&k).await;
    }
}

/// The header and rows of a `kubectl get` table, split on runs of spaces.
pub fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

const BACKUP_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.test.cairn.io
spec:
  group: test.cairn.io
  scope: Namespaced
  names: {plural: backups, singular: backup, kind: Backup, shortNames: [bk]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: POLICY, type: string, jsonPath: .spec.policy}
    - {name: STATUS, type: string, jsonPath: .status.phase}
    - {name: SIZE, type: string, jsonPath: .status.size, priority: 1}
    - {name: AGE, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A backup of something.
        properties:
          spec:
            type: object
            description: What to back up.
            properties:
              policy: {type: string, description: The policy to follow.}
          status:
            type: object
            properties:
              phase: {type: string}
              size: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

fn backup(name: &str, policy: &str) -> String {
    format!(
        "apiVersion: test.cairn.io/v1\nkind: Backup\nmetadata:\n  name: {name}\nspec:\n  policy: {policy}\n"
    )
}

fn install_crd(k: &Kubectl<'_>) {
    k.apply(BACKUP_CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/backups.test.cairn.io",
        "--timeout=20s",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_version_and_api_resources_describe_the_server() {
    for_each_kubectl(async |k| {
        let v = k.ok(&["version"]);
        assert!(v.contains("Server Version: v1.32"), "{v}");
        let o = k.run(&["version"]);
        assert!(
            !stderr(&o).contains("WARNING"),
            "no version skew warning: {}",
            stderr(&o)
        );
        let r = k.ok(&["api-resources"]);
        for needle in [
            "pods",
            "po",
            "jobs",
            "batch/v1",
            "leases",
            "customresourcedefinitions",
            "crd,crds",
        ] {
            assert!(r.contains(needle), "api-resources lacks {needle}:\n{r}");
        }
        let wide = k.ok(&["api-resources", "-o", "wide", "--api-group=batch"]);
        assert!(
            wide.contains("create,delete,deletecollection,get,list,patch,update,watch")
                || wide.contains("[create delete deletecollection get list patch update watch]"),
            "{wide}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_get_prints_server_side_columns_for_builtins_and_crs() {
    for_each_kubectl(async |k| {
        install_crd(k);
        k.apply(&backup("b1", "daily"));
        k.ok(&[
            "patch",
            "backup",
            "b1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","size":"1Gi"}}"#,
        ]);
        let t = table(&k.ok(&["get", "backups"]));
        assert_eq!(t[0], ["NAME", "POLICY", "STATUS", "AGE"]);
        assert_eq!(t[1][..3], ["b1", "daily", "Running"]);
        let wide = table(&k.ok(&["get", "bk", "-o", "wide"]));
        assert_eq!(wide[0], ["NAME", "POLICY", "STATUS", "SIZE", "AGE"]);
        assert_eq!(wide[1][3], "1Gi");
        let all = table(&k.ok(&["get", "backups", "-A"]));
        assert_eq!(all[0][..2], ["NAMESPACE", "NAME"]);
        assert_eq!(all[1][..2], ["default", "b1"]);
        let one = table(&k.ok(&["get", "backup", "b1"]));
        assert_eq!(one.len(), 2);
        // Built-ins print upstream's columns.
        k.ok(&[
            "create",
            "configmap",
            "c1",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ]);
        let cms = table(&k.ok(&["get", "cm", "c1"]));
        assert_eq!(cms[0], ["NAME", "DATA", "AGE"]);
        assert_eq!(cms[1][1], "2");
        let ns = table(&k.ok(&["get", "ns", "default"]));
        assert_eq!(ns[0], ["NAME", "STATUS", "AGE"]);
        assert_eq!(ns[1][1], "Active");
        let nodes = table(&k.ok(&["get", "nodes"]));
        assert_eq!(nodes[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
        assert_eq!(nodes[1][1], "Ready");
        let labels = k.ok(&["get", "cm", "c1", "--show-labels"]);
        assert!(labels.contains("LABELS"), "{labels}");
        k.ok(&["label", "cm", "c1", "app=x"]);
        let l = table(&k.ok(&["get", "cm", "-L", "app"]));
        assert_eq!(l[0].last().map(String::as_str), Some("APP"));
        assert!(l.iter().any(|r| r.first().map(String::as_str) == Some("c1")
            && r.last().map(String::as_str) == Some("x")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_output_formats_are_evaluated_client_side_on_plain_objects() {
    for_each_kubectl(async |k| {
        k.ok(&["create", "configmap", "c1", "--from-literal=a=1"]);
        let y = k.ok(&["get", "cm", "c1", "-o", "yaml"]);
        assert!(
            y.contains("kind: ConfigMap") && y.contains("a: \"1\""),
            "{y}"
        );
        let j: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "cm", "c1", "-o", "json"])).unwrap();
        assert_eq!(j["data"]["a"], "1");
        assert_eq!(k.ok(&["get", "cm", "c1", "-o", "jsonpath={.data.a}"]), "1");
        assert_eq!(k.ok(&["get", "cm", "-o", "name"]).trim(), "configmap/c1");
        let list: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "cm", "-o", "json"])).unwrap();
        assert_eq!(list["kind"], "List");
        let cc = k.ok(&[
            "get",
            "cm",
            "-o",
            "custom-columns=N:.metadata.name,A:.data.a",
        ]);
        assert!(cc.contains("c1") && cc.contains('1'), "{cc}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_apply_creates_then_updates_builtins_and_crs() {
    for_each_kubectl(async |k| {
        install_crd(k);
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a1\ndata:\n  k: one\n";
        assert!(k.apply(cm).contains("configmap/a1 created"));
        assert!(k.apply(cm).contains("configmap/a1 unchanged"));
        assert!(k.apply(&cm.replace("one", "two")).contains("configmap/a1 configured"));
        assert_eq!(k.ok(&["get", "cm", "a1", "-o", "jsonpath={.data.k}"]), "two");
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j1\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n        command: [\"true\"]\n";
        assert!(k.apply(job).contains("job.batch/j1 created"));
        assert!(k.apply(&backup("b1", "p1")).contains("created"));
        assert!(k.apply(&backup("b1", "p2")).contains("configured"));
        assert_eq!(k.ok(&["get", "backup", "b1", "-o", "jsonpath={.spec.policy}"]), "p2");
        // Server-side dry run changes nothing.
        k.ok_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&backup("b1", "p3")));
        assert_eq!(k.ok(&["get", "backup", "b1", "-o", "jsonpath={.spec.policy}"]), "p2");
        // Server-side apply creates and updates.
        k.ok_stdin(&["apply", "--server-side", "-f", "-"], Some(&backup("b2", "ssa")));
        assert_eq!(k.ok(&["get", "backup", "b2", "-o", "jsonpath={.spec.policy}"]), "ssa");
        // Unknown fields are rejected under kubectl's default strict validation.
        let o = k.run_stdin(&["apply", "-f", "-"], Some(&format!("{}  bogus: 1\n", backup("b3", "x"))));
        assert!(!o.status.success());
        assert!(stderr(&o).contains("unknown field \"spec.bogus\""), "{}", stderr(&o));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_reports_already_exists() {
    for_each_kubectl(async |k| {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n";
        k.ok_stdin(&["create", "-f", "-"], Some(cm));
        let o = k.run_stdin(&["create", "-f", "-"], Some(cm));
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("Error from server (AlreadyExists)")
                && stderr(&o).contains("configmaps \"dup\" already exists"),
            "{}",
            stderr(&o)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_patch_merge_json_strategic_and_status() {
    for_each_kubectl(async |k| {
        install_crd(k);
        k.ok(&["create", "configmap", "p1", "--from-literal=a=1"]);
        k.ok(&[
            "patch",
            "cm",
            "p1",
            "--type=merge",
            "-p",
            r#"{"data":{"b":"2"}}"#,
        ]);
        k.ok(&[
            "patch",
            "cm",
            "p1",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/data/a","value":"9"}]"#,
        ]);
        k.ok(&["patch", "cm", "p1", "-p", r#"{"data":{"c":"3"}}"#]);
        let j: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "cm", "p1", "-o", "json"])).unwrap();
        assert_eq!(j["data"], serde_json::json!({"a": "9", "b": "2", "c": "3"}));
        let failed = k.fails(&[
            "patch",
            "cm",
            "p1",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/a","value":"0"}]"#,
        ]);
        assert!(
            failed.contains("is invalid") && failed.contains("testing value /data/a failed"),
            "{failed}"
        );
        k.apply(&backup("b1", "x"));
        let strategic = k.fails(&["patch", "backup", "b1", "-p", r#"{"spec":{"policy":"y"}}"#]);
        assert!(
            strategic.contains("application/strategic-merge-patch+json"),
            "{strategic}"
        );
        k.ok(&[
            "patch",
            "backup",
            "b1",
            "--type=merge",
            "-p",
            r#"{"spec":{"policy":"y"}}"#,
        ]);
        k.ok(&[
            "patch",
            "backup",
            "b1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Done"}}"#,
        ]);
        assert_eq!(
            k.ok(&[
                "get",
                "backup",
                "b1",
                "-o",
                "jsonpath={.spec.policy}/{.status.phase}"
            ]),
            "y/Done"
        );
        // The main endpoint ignores status changes.
        k.ok(&[
            "patch",
            "backup",
            "b1",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Nope"}}"#,
        ]);
        assert_eq!(
            k.ok(&["get", "backup", "b1", "-o", "jsonpath={.status.phase}"]),
            "Done"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_json_patch_cannot_grow_an_object_past_the_request_limit() {
    for_each_kubectl(async |k| {
        let value = k.server.home.path().join("v.txt");
        std::fs::write(&value, "x".repeat(600 * 1024)).unwrap();
        k.ok(&[
            "create",
            "configmap",
            "big",
            &format!("--from-file=v={}", value.display()),
        ]);
        // Six copies of 600 KiB: a 3.6 MiB object from a 300-byte patch.
        let copies: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"op":"copy","from":"/data/v","path":"/data/c{i}"}}"#))
            .collect();
        let patch = format!("[{}]", copies.join(","));
        for dry_run in [true, false] {
            let mut args = vec!["patch", "cm", "big", "--type=json", "-p", &patch];
            if dry_run {
                args.push("--dry-run=server");
            }
            let o = k.run(&args);
            let err = stderr(&o);
            assert!(!o.status.success(), "dry run {dry_run}: {}", stdout(&o));
            assert!(
                err.contains("RequestEntityTooLarge")
                    && err.contains("larger than 3145728 bytes")
                    && err.contains("operation 5 of 5: copy /data/v to /data/c4"),
                "{err}"
            );
        }
        assert_eq!(
            k.ok(&["get", "cm", "big", "-o", "jsonpath={.data}"]).len(),
            600 * 1024 + r#"{"v":""}"#.len()
        );
        // A merge patch cannot amplify, but with the object it may still cross the limit.
        let merge = k.server.home.path().join("merge.json");
        std::fs::write(
            &merge,
            format!(r#"{{"data":{{"m":"{}"}}}}"#, "y".repeat(2600 * 1024)),
        )
        .unwrap();
        let err = k.fails(&[
            "patch",
            "cm",
            "big",
            "--type=merge",
            "--patch-file",
            merge.to_str().unwrap(),
        ]);
        assert!(
            err.contains("RequestEntityTooLarge") && err.contains("larger than 3145728 bytes"),
            "{err}"
        );
        // Copying a parent into its child doubles it: 26 copies of 600 KiB would be 37 TiB.
        let doubling: Vec<String> = (0..26)
            .map(|i| format!(r#"{{"op":"copy","from":"/data","path":"/data/k{i}"}}"#))
            .collect();
        let patch = format!("[{}]", doubling.join(","));
        let err = k.fails(&[
            "patch",
            "cm",
            "big",
            "--type=json",
            "--dry-run=server",
            "-p",
            &patch,
        ]);
        assert!(
            err.contains("RequestEntityTooLarge") && err.contains("operation 3 of 26"),
            "{err}"
        );
        // The server is still there and answers the next request.
        assert_eq!(
            k.ok(&["get", "cm", "big", "-o", "jsonpath={.metadata.name}"]),
            "big"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_edit_label_and_annotate() {
    for_each_kubectl(async |k| {
        install_crd(k);
        k.ok(&["create", "configmap", "e1", "--from-literal=a=orig"]);
        k.apply(&backup("b1", "orig"));
        let editor = Kubectl {
            binary: k.binary.clone(),
            server: k.server,
            env: vec![("KUBE_EDITOR".into(), "sed -i s/orig/edited/".into())],
        };
        editor.ok(&["edit", "cm", "e1"]);
        editor.ok(&["edit", "backup", "b1"]);
        assert_eq!(
            k.ok(&["get", "cm", "e1", "-o", "jsonpath={.data.a}"]),
            "edited"
        );
        assert_eq!(
            k.ok(&["get", "backup", "b1", "-o", "jsonpath={.spec.policy}"]),
            "edited"
        );
        k.ok(&["label", "cm", "e1", "tier=db"]);
        k.ok(&["annotate", "backup", "b1", "note=hi"]);
        assert_eq!(
            k.ok(&["get", "cm", "-l", "tier=db", "-o", "name"]).trim(),
            "configmap/e1"
        );
        assert_eq!(
            k.ok(&[
                "get",
                "backup",
                "b1",
                "-o",
                "jsonpath={.metadata.annotations.note}"
            ]),
            "hi"
        );
        let bad = k.fails(&["label", "cm", "e1", "bad value=x"]);
        assert!(!bad.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_delete_handles_finalizers_cascades_selectors_and_namespaces() {
    for_each_kubectl(async |k| {
        k.ok(&["create", "configmap", "d1"]);
        assert!(k.ok(&["delete", "cm", "d1"]).contains("configmap \"d1\" deleted"));
        // A finalizer holds the object; kubectl waits until it is removed.
        k.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [test.cairn.io/hold]\n");
        let del = std::thread::scope(|s| {
            let h = s.spawn(|| k.run(&["delete", "cm", "held", "--timeout=20s"]));
            std::thread::sleep(Duration::from_millis(1500));
            k.ok(&["patch", "cm", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
            h.join().unwrap()
        });
        assert!(del.status.success(), "{}", stderr(&del));
        assert!(k.fails(&["get", "cm", "held"]).contains("NotFound"));
        // Cascades.
        k.ok(&["create", "configmap", "owner"]);
        let uid = k.ok(&["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"]);
        k.apply(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}, blockOwnerDeletion: true}}\n"));
        k.ok(&["delete", "cm", "owner", "--cascade=foreground", "--timeout=20s"]);
        assert!(k.fails(&["get", "cm", "dep"]).contains("NotFound"));
        // Force.
        k.ok(&["create", "configmap", "f1"]);
        let forced = k.run(&["delete", "cm", "f1", "--force", "--grace-period=0"]);
        assert!(forced.status.success(), "{}", stderr(&forced));
        // Selectors and --all.
        for n in ["l1", "l2", "l3"] {
            k.ok(&["create", "configmap", n]);
        }
        k.ok(&["label", "cm", "l1", "l2", "grp=a"]);
        let out = k.ok(&["delete", "cm", "-l", "grp=a"]);
        assert!(out.contains("\"l1\" deleted") && out.contains("\"l2\" deleted"), "{out}");
        k.ok(&["delete", "cm", "--all"]);
        assert!(k.ok(&["get", "cm", "-o", "name"]).trim().is_empty());
        // Namespaces.
        k.ok(&["create", "namespace", "gone"]);
        k.ok(&["create", "configmap", "x", "-n", "gone"]);
        k.ok(&["delete", "namespace", "gone", "--timeout=30s"]);
        assert!(k.fails(&["get", "ns", "gone"]).contains("NotFound"));
        let protected = k.fails(&["delete", "ns", "default"]);
        assert!(protected.contains("Forbidden"), "{protected}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_wait_for_conditions_jsonpath_and_delete() {
    for_each_kubectl(async |k| {
        install_crd(k);
        k.apply(&backup("w1", "x"));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                k.run(&[
                    "wait",
                    "--for=condition=Ready",
                    "backup/w1",
                    "--timeout=20s",
                ])
            });
            let jp = s.spawn(|| {
                k.run(&[
                    "wait",
                    "--for=jsonpath={.status.phase}=Done",
                    "backup/w1",
                    "--timeout=20s",
                ])
            });
            std::thread::sleep(Duration::from_millis(1000));
            k.ok(&[
                "patch",
                "backup",
                "w1",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Done","conditions":[{"type":"Ready","status":"True"}]}}"#,
            ]);
            let w = waiter.join().unwrap();
            assert!(w.status.success(), "{}", stderr(&w));
            assert!(stdout(&w).contains("condition met"), "{}", stdout(&w));
            let j = jp.join().unwrap();
            assert!(j.status.success(), "{}", stderr(&j));
        });
        std::thread::scope(|s| {
            let waiter = s.spawn(|| k.run(&["wait", "--for=delete", "backup/w1", "--timeout=20s"]));
            std::thread::sleep(Duration::from_millis(1000));
            k.ok(&["delete", "backup", "w1", "--wait=false"]);
            let w = waiter.join().unwrap();
            assert!(w.status.success(), "{}", stderr(&w));
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_get_watch_streams_table_rows_as_changes_land() {
    for_each_kubectl(async |k| {
        install_crd(k);
        k.apply(&backup("w1", "x"));
        let mut cmd = std::process::Command::new(&k.binary);
        cmd.args(["get", "backups", "-w"])
            .env("KUBECONFIG", k.server.kubeconfig())
            .env("HOME", k.server.home.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        k.ok(&[
            "patch",
            "backup",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running"}}"#,
        ]);
        std::thread::sleep(Duration::from_millis(1500));
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let t = table(&stdout(&out));
        assert_eq!(
            t[0],
            ["NAME", "POLICY", "STATUS", "AGE"],
            "{}",
            stdout(&out)
        );
        assert!(
            t.iter()
                .any(|r| r.len() >= 3 && r[0] == "w1" && r[2] == "Running"),
            "{}",
            stdout(&out)
        );
        assert_eq!(t.iter().filter(|r| r[0] == "NAME").count(), 1, "one header");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_explain_reads_the_crd_schema() {
    for_each_kubectl(async |k| {
        install_crd(k);
        let e = k.ok(&["explain", "backups"]);
        assert!(e.contains("A backup of something."), "{e}");
        let spec = k.ok(&["explain", "backups.spec.policy"]);
        assert!(spec.contains("The policy to follow."), "{spec}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cairn_chart_crds_apply_and_backups_print_their_columns() {
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/cairn/crds");
    assert!(
        crds.is_dir(),
        "the chart's CRDs are part of the repository: {}",
        crds.display()
    );
    for_each_kubectl(async |k| {
        k.ok(&["apply", "-f", crds.to_str().unwrap_or_default()]);
        k.ok(&["wait", "--for=condition=Established", "crd/backups.dataprotection.kubeblocks.io", "--timeout=20s"]);
        k.apply("apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Backup\nmetadata:\n  name: b1\nspec:\n  backupPolicyName: pol\n  backupMethod: pg-basebackup\n");
        let t = table(&k.ok(&["get", "backups"]));
        assert_eq!(t[0][..3], ["NAME", "POLICY", "METHOD"], "{t:?}");
        assert_eq!(t[1][..3], ["b1", "pol", "pg-basebackup"], "{t:?}");
    })
    .await;
}

/// KubeBlocks' immutability (`x-kubernetes-validations: self == oldSelf` in the chart's CRDs) is
/// enforced: kubectl gets the API server's refusal for a changed `backupMethod` or
/// `storageProviderRef`, while an unchanged re-apply, a change of a mutable field and a status
/// update go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cairn_chart_crds_refuse_changing_immutable_fields() {
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/cairn/crds");
    for_each_kubectl(async |k| {
        k.ok(&["apply", "-f", crds.to_str().unwrap_or_default()]);
        k.ok(&["wait", "--for=condition=Established", "crd/backups.dataprotection.kubeblocks.io", "crd/backuprepos.dataprotection.kubeblocks.io", "--timeout=20s"]);
        let backup = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Backup\nmetadata:\n  name: b1\nspec:\n  backupPolicyName: pol\n  backupMethod: pg-basebackup\n";
        k.apply(backup);
        let again = k.apply(backup);
        assert!(again.contains("backup.dataprotection.kubeblocks.io/b1 unchanged"), "{again}");
        let refused = k
            .run_stdin(&["apply", "-f", "-"], Some(&backup.replace("pg-basebackup", "volume-snapshot")));
        assert!(!refused.status.success(), "a changed backupMethod was accepted");
        let err = stderr(&refused);
        assert!(
            err.contains(r#"The Backup "b1" is invalid: spec.backupMethod: Invalid value: "string": forbidden to update spec.backupMethod"#),
            "{err}"
        );
        let method = k.ok(&["get", "backup", "b1", "-o", "jsonpath={.spec.backupMethod}"]);
        assert_eq!(method, "pg-basebackup");
        k.apply(&format!("{backup}  retentionPeriod: 7d\n"));
        k.ok(&["patch", "backup", "b1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Running"}}"#]);
        let phase = k.ok(&["get", "backup", "b1", "-o", "jsonpath={.status.phase}"]);
        assert_eq!(phase, "Running");

        let repo = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: r1\nspec:\n  storageProviderRef: s3\n  pvReclaimPolicy: Retain\n";
        k.apply(repo);
        let err = stderr(&k.run_stdin(&["apply", "-f", "-"], Some(&repo.replace("s3", "minio"))));
        assert!(
            err.contains(r#"The BackupRepo "r1" is invalid: spec.storageProviderRef: Invalid value: "string": StorageProviderRef is immutable"#),
            "{err}"
        );
    })
    .await;
}
