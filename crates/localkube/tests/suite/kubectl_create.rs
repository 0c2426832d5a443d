//! `kubectl create <kind>` with every kubectl on PATH: its typed clients send
//! `application/vnd.kubernetes.protobuf` bodies (and accept protobuf or JSON back). Each test
//! checks the stored object's fields with `kubectl get -o json`.

use crate::common::TestServer;
use crate::kubectl::{Kubectl, for_each_kubectl, kubectls};
use serde_json::{Value, json};

/// Runs `kubectl create ...` (asserting it succeeds) and returns `kubectl get <what> -o json`.
fn create_then_get(k: &Kubectl<'_>, create: &[&str], what: &[&str]) -> Value {
    // -v=8 shows the request's Content-Type: the body really is protobuf.
    let mut args = vec!["-v=8", "create"];
    args.extend_from_slice(create);
    let o = k.run(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "kubectl {args:?} failed:\n{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains("application/vnd.kubernetes.protobuf"),
        "kubectl {args:?} did not send protobuf:\n{err}"
    );
    let mut get = vec!["get"];
    get.extend_from_slice(what);
    get.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&k.ok(&get)).expect("kubectl get -o json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_job_stores_its_pod_template_and_runs() {
    for binary in kubectls() {
        let server = TestServer::start_with(|b| b.kubelet(true)).await;
        let k = &Kubectl {
            binary,
            server: &server,
            env: Vec::new(),
        };
        let job = create_then_get(
            k,
            &["job", "j1", "--image=busybox", "--", "echo", "hi"],
            &["job", "j1"],
        );
        assert_eq!(job["kind"], "Job");
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "j1");
        assert_eq!(c["image"], "busybox");
        assert_eq!(c["command"], json!(["echo", "hi"]));
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        // Unset fields are absent rather than zero values.
        assert!(c.get("workingDir").is_none(), "{c}");
        assert!(c.get("stdin").is_none(), "{c}");
        assert!(
            job["spec"]["template"]["metadata"]
                .get("creationTimestamp")
                .is_none()
        );
        // The job runs: the pod's command is the decoded one.
        k.ok(&[
            "wait",
            "--for=condition=complete",
            "job/j1",
            "--timeout=60s",
        ]);
        assert_eq!(k.ok(&["logs", "job/j1"]).trim(), "hi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_cronjob_and_a_job_from_it() {
    for_each_kubectl(async |k| {
        let cj = create_then_get(
            k,
            &[
                "cronjob",
                "cj1",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "--restart=OnFailure",
                "--",
                "date",
            ],
            &["cronjob", "cj1"],
        );
        assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["command"], json!(["date"]));
        assert_eq!(pod["restartPolicy"], "OnFailure");
        let job = create_then_get(k, &["job", "j2", "--from=cronjob/cj1"], &["job", "j2"]);
        assert_eq!(
            job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(
            job["metadata"]["ownerReferences"][0]["controller"],
            json!(true)
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            json!(["date"])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_deployment_keeps_an_explicit_zero() {
    for_each_kubectl(async |k| {
        let d = create_then_get(
            k,
            &[
                "deployment",
                "d1",
                "--image=nginx",
                "--replicas=0",
                "--port=8080",
            ],
            &["deployment", "d1"],
        );
        // replicas is a pointer field: 0 is not "unset".
        assert_eq!(d["spec"]["replicas"], json!(0));
        assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "d1"}));
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx");
        assert_eq!(c["ports"][0]["containerPort"], json!(8080));
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"],
            json!({"app": "d1"})
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_configmap_and_secrets() {
    for_each_kubectl(async |k| {
        let cm = create_then_get(
            k,
            &[
                "configmap",
                "cm1",
                "--from-literal=a=1",
                "--from-literal=b=two",
            ],
            &["configmap", "cm1"],
        );
        assert_eq!(cm["data"], json!({"a": "1", "b": "two"}));
        let s = create_then_get(
            k,
            &["secret", "generic", "s1", "--from-literal=k=bee"],
            &["secret", "s1"],
        );
        assert_eq!(s["data"]["k"], "YmVl");
        assert_eq!(s["type"], "Opaque");
        let dr = create_then_get(
            k,
            &[
                "secret",
                "docker-registry",
                "dr1",
                "--docker-server=registry.example",
                "--docker-username=u",
                "--docker-password=p",
            ],
            &["secret", "dr1"],
        );
        assert_eq!(dr["type"], "kubernetes.io/dockerconfigjson");
        assert!(dr["data"][".dockerconfigjson"].is_string(), "{dr}");
        let cert = rcgen::generate_simple_self_signed(vec!["example.test".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&crt, cert.cert.pem()).unwrap();
        std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
        let tls = create_then_get(
            k,
            &[
                "secret",
                "tls",
                "t1",
                &format!("--cert={}", crt.display()),
                &format!("--key={}", key.display()),
            ],
            &["secret", "t1"],
        );
        assert_eq!(tls["type"], "kubernetes.io/tls");
        use base64::Engine;
        let stored = base64::engine::general_purpose::STANDARD
            .decode(tls["data"]["tls.crt"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored, cert.cert.pem().as_bytes());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_service_of_each_type() {
    for_each_kubectl(async |k| {
        let c = create_then_get(
            k,
            &["service", "clusterip", "svc1", "--tcp=80:8080"],
            &["service", "svc1"],
        );
        assert_eq!(c["spec"]["type"], "ClusterIP");
        let port = &c["spec"]["ports"][0];
        assert_eq!(port["port"], json!(80));
        assert_eq!(port["targetPort"], json!(8080));
        assert_eq!(port["name"], "80-8080");
        assert_eq!(c["spec"]["selector"], json!({"app": "svc1"}));
        let n = create_then_get(
            k,
            &["service", "nodeport", "svc2", "--tcp=81:http"],
            &["service", "svc2"],
        );
        assert_eq!(n["spec"]["type"], "NodePort");
        assert_eq!(n["spec"]["ports"][0]["targetPort"], "http");
        let e = create_then_get(
            k,
            &[
                "service",
                "externalname",
                "svc3",
                "--external-name=db.example",
            ],
            &["service", "svc3"],
        );
        assert_eq!(e["spec"]["type"], "ExternalName");
        assert_eq!(e["spec"]["externalName"], "db.example");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_namespace_and_serviceaccount() {
    for_each_kubectl(async |k| {
        let ns = create_then_get(k, &["namespace", "ns1"], &["namespace", "ns1"]);
        assert_eq!(ns["metadata"]["name"], "ns1");
        assert_eq!(ns["status"]["phase"], "Active");
        let sa = create_then_get(
            k,
            &["serviceaccount", "sa1", "-n", "ns1"],
            &["serviceaccount", "sa1", "-n", "ns1"],
        );
        assert_eq!(sa["metadata"]["namespace"], "ns1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_rbac_roles_and_bindings() {
    for_each_kubectl(async |k| {
        let r = create_then_get(
            k,
            &[
                "role",
                "r1",
                "--verb=get,list",
                "--resource=pods,configmaps",
            ],
            &["role", "r1"],
        );
        assert_eq!(r["rules"][0]["verbs"], json!(["get", "list"]));
        assert_eq!(r["rules"][0]["resources"], json!(["pods", "configmaps"]));
        let cr = create_then_get(
            k,
            &[
                "clusterrole",
                "cr1",
                "--verb=get",
                "--non-resource-url=/healthz",
            ],
            &["clusterrole", "cr1"],
        );
        assert_eq!(cr["rules"][0]["nonResourceURLs"], json!(["/healthz"]));
        let rb = create_then_get(
            k,
            &[
                "rolebinding",
                "rb1",
                "--role=r1",
                "--user=alice",
                "--serviceaccount=default:sa",
            ],
            &["rolebinding", "rb1"],
        );
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"})
        );
        let subjects = rb["subjects"].as_array().unwrap();
        assert!(
            subjects.contains(
                &json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"})
            ),
            "{rb}"
        );
        assert!(
            subjects
                .contains(&json!({"kind": "ServiceAccount", "name": "sa", "namespace": "default"})),
            "{rb}"
        );
        let crb = create_then_get(
            k,
            &[
                "clusterrolebinding",
                "crb1",
                "--clusterrole=cr1",
                "--group=ops",
            ],
            &["clusterrolebinding", "crb1"],
        );
        assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
        assert_eq!(crb["subjects"][0]["kind"], "Group");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_create_quota_priorityclass_pdb_and_ingress() {
    for_each_kubectl(async |k| {
        let q = create_then_get(
            k,
            &["quota", "q1", "--hard=pods=2,requests.cpu=500m"],
            &["quota", "q1"],
        );
        assert_eq!(
            q["spec"]["hard"],
            json!({"pods": "2", "requests.cpu": "500m"})
        );
        let pc = create_then_get(
            k,
            &[
                "priorityclass",
                "pc1",
                "--value=1000",
                "--description=high",
                "--preemption-policy=Never",
            ],
            &["priorityclass", "pc1"],
        );
        assert_eq!(pc["value"], json!(1000));
        assert_eq!(pc["description"], "high");
        assert_eq!(pc["preemptionPolicy"], "Never");
        let pdb = create_then_get(
            k,
            &[
                "poddisruptionbudget",
                "pdb1",
                "--selector=app=x",
                "--min-available=50%",
            ],
            &["pdb", "pdb1"],
        );
        assert_eq!(pdb["spec"]["minAvailable"], "50%");
        assert_eq!(pdb["spec"]["selector"]["matchLabels"], json!({"app": "x"}));
        let ing = create_then_get(
            k,
            &[
                "ingress",
                "ing1",
                "--class=nginx",
                "--rule=foo.example/bar*=svc1:8080",
            ],
            &["ingress", "ing1"],
        );
        assert_eq!(ing["spec"]["ingressClassName"], "nginx");
        let rule = &ing["spec"]["rules"][0];
        assert_eq!(rule["host"], "foo.example");
        let path = &rule["http"]["paths"][0];
        assert_eq!(path["path"], "/bar");
        assert_eq!(path["pathType"], "Prefix");
        assert_eq!(
            path["backend"]["service"],
            json!({"name": "svc1", "port": {"number": 8080}})
        );
    })
    .await;
}
