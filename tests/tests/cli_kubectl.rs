//! `cairnctl` against `kubectl` on the same objects (issue 16, "a kubectl-native CLI"): Backups,
//! Restores and BackupSchedules in two namespaces, some labelled, on a real stack (localkube,
//! control plane, agent, each its own process); `cairnctl ... list|describe -o
//! json|yaml|name|jsonpath=...|custom-columns=...` print what `kubectl get ... -o ...` prints
//! for them, with `-l`, `-A` and `-n` anywhere on the line; `-o wide` adds its documented
//! columns. `cairnctl backup logs` prints what `kubectl logs` prints for the backup's Job pods,
//! and `cairnctl version` finds the control plane (standalone, then a chart Deployment).

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cairn_cli::standalone::default_bin_dir;
use cairn_e2e::{TestStack, dp, manifests, run, scenario};

const A: &str = "team-a";
const B: &str = "team-b";

fn cairnctl_bin() -> anyhow::Result<PathBuf> {
    Ok(default_bin_dir()?.join("cairnctl"))
}

/// Runs `cairnctl ARGS --kubeconfig <the stack's>`.
async fn cairnctl(stack: &TestStack, args: &[&str]) -> anyhow::Result<Output> {
    let out = tokio::process::Command::new(cairnctl_bin()?)
        .args(args)
        .arg("--kubeconfig")
        .arg(&stack.stack.kubeconfig)
        .output()
        .await
        .context("running cairnctl")?;
    Ok(out)
}

/// `cairnctl ARGS`' stdout; fails with its output when it exits non-zero.
async fn ok(stack: &TestStack, args: &[&str]) -> anyhow::Result<String> {
    let out = cairnctl(stack, args).await?;
    anyhow::ensure!(
        out.status.success(),
        "cairnctl {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn objects() -> String {
    let backup = |ns: &str, name: &str, tier: &str| {
        format!(
            "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Backup\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    tier: {tier}\nspec:\n  backupPolicyName: no-such-policy\n  backupMethod: files\n  deletionPolicy: Retain\n---\n"
        )
    };
    let mut yaml = String::new();
    yaml.push_str(&backup(A, "a-1", "gold"));
    yaml.push_str(&backup(A, "a-2", "silver"));
    yaml.push_str(&backup(B, "b-1", "gold"));
    yaml.push_str(&format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Restore\nmetadata:\n  name: a-restore\n  namespace: {A}\n  labels:\n    tier: gold\nspec:\n  backup:\n    name: a-1\n    namespace: {A}\n---\n"
    ));
    for (ns, name, tier) in [(A, "a-sched", "gold"), (B, "b-sched", "silver")] {
        yaml.push_str(&format!(
            "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupSchedule\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    tier: {tier}\nspec:\n  backupPolicyName: no-such-policy\n  schedules:\n    - name: nightly\n      backupMethod: files\n      enabled: false\n      cronExpression: \"0 1 * * *\"\n      retentionPeriod: 7d\n---\n"
        ));
    }
    yaml
}

/// Waits until the objects stop changing (the control plane has written their status), so
/// that two reads a moment apart see the same thing.
async fn settled(stack: &TestStack) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let read = async || {
        stack
            .kubectl
            .run(&[
                "get",
                "backups,restores,backupschedules",
                "-A",
                "-o",
                "json",
            ])
            .await
    };
    let mut last = read().await?;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = read().await?;
        let value: serde_json::Value = serde_json::from_str(&now)?;
        let with_status = value["items"]
            .as_array()
            .map(|items| items.iter().all(|i| i["status"]["phase"].is_string()))
            .unwrap_or(false);
        if now == last && with_status {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the objects did not settle: {now}"
        );
        last = now;
    }
}

/// `cairnctl CAIRN` prints what `kubectl KUBECTL` prints; a difference is read again (an
/// object may have changed between the two reads) before it fails the test.
async fn same(stack: &TestStack, cairn: &[&str], kubectl: &[&str]) -> anyhow::Result<String> {
    let mut attempt = 0;
    loop {
        let ours = ok(stack, cairn).await?;
        let theirs = stack.kubectl.run(kubectl).await?;
        if ours == theirs {
            return Ok(ours);
        }
        attempt += 1;
        anyhow::ensure!(
            attempt < 3,
            "cairnctl {} printed\n{ours}\nkubectl {} printed\n{theirs}",
            cairn.join(" "),
            kubectl.join(" ")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn yaml(text: &str) -> anyhow::Result<serde_json::Value> {
    serde_saphyr::from_str(text).with_context(|| format!("parsing YAML:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairnctl_prints_what_kubectl_prints_for_the_same_objects() -> anyhow::Result<()> {
    run("cli-kubectl-formats", async |stack| {
        stack.ensure_namespace(A).await?;
        stack.ensure_namespace(B).await?;
        stack.kubectl.apply(&objects()).await?;
        settled(stack).await?;

        for (cairn, kind) in [
            ("backup", "backups"),
            ("restore", "restores"),
            ("schedule", "backupschedules"),
        ] {
            // The same objects, the same fields, the same text: -o json and -o name.
            let json = same(
                stack,
                &[cairn, "list", "-n", A, "-o", "json"],
                &["get", kind, "-n", A, "-o", "json"],
            )
            .await?;
            let list: serde_json::Value = serde_json::from_str(&json)?;
            anyhow::ensure!(
                list["kind"] == "List" && !list["items"].as_array().is_none_or(Vec::is_empty),
                "{cairn}: a List of the objects: {json}"
            );
            same(
                stack,
                &[cairn, "list", "-o", "name", "-A"],
                &["get", kind, "-o", "name", "-A"],
            )
            .await?;
            // -o yaml: the same document.
            let ours = ok(stack, &["-n", A, cairn, "list", "-o", "yaml"]).await?;
            let theirs = stack.kubectl.run(&["get", kind, "-n", A, "-o", "yaml"]).await?;
            anyhow::ensure!(
                yaml(&ours)? == yaml(&theirs)?,
                "{cairn} -o yaml:\n{ours}\nkubectl:\n{theirs}"
            );
            // jsonpath, with kubectl's range and literals, over every namespace.
            let template =
                r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}"#;
            same(
                stack,
                &[cairn, "list", "-A", "-o", template],
                &["get", kind, "-A", "-o", template],
            )
            .await?;
            same(
                stack,
                &[cairn, "-o", "jsonpath={.items[*].metadata.name}", "list", "-A"],
                &["get", kind, "-A", "-o", "jsonpath={.items[*].metadata.name}"],
            )
            .await?;
            let columns = "custom-columns=NAME:.metadata.name,NS:metadata.namespace,PHASE:{.status.phase},MISSING:.spec.nothing";
            same(
                stack,
                &[cairn, "list", "-A", "-o", columns],
                &["get", kind, "-A", "-o", columns],
            )
            .await?;
            // -l: the API server selects, for both.
            same(
                stack,
                &[cairn, "list", "-A", "-l", "tier=gold", "-o", "name"],
                &["get", kind, "-A", "-l", "tier=gold", "-o", "name"],
            )
            .await?;
            same(
                stack,
                &["-l", "tier in (silver)", cairn, "-A", "list", "-o", "name"],
                &["get", kind, "-A", "-l", "tier in (silver)", "-o", "name"],
            )
            .await?;
        }

        // describe -o FORMAT is `kubectl get KIND NAME -o FORMAT`.
        for (cairn, kind, name) in [
            ("backup", "backup", "a-1"),
            ("restore", "restore", "a-restore"),
            ("schedule", "backupschedule", "a-sched"),
        ] {
            for format in ["json", "name", "jsonpath={.metadata.labels.tier}:{.spec}"] {
                same(
                    stack,
                    &[cairn, "describe", name, "-n", A, "-o", format],
                    &["get", kind, name, "-n", A, "-o", format],
                )
                .await?;
            }
            let ours = ok(stack, &[cairn, "describe", name, "-n", A, "-o", "yaml"]).await?;
            let theirs = stack.kubectl.run(&["get", kind, name, "-n", A, "-o", "yaml"]).await?;
            anyhow::ensure!(yaml(&ours)? == yaml(&theirs)?, "{ours}\n---\n{theirs}");
        }

        // -n anywhere on the line, -A's NAMESPACE column, -o wide's documented columns.
        for args in [
            vec!["-n", B, "backup", "list"],
            vec!["backup", "-n", B, "list"],
            vec!["backup", "list", "-n", B],
            vec!["backup", "list", "--namespace=team-b"],
        ] {
            let text = ok(stack, &args).await?;
            let names: Vec<&str> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            anyhow::ensure!(names == ["b-1"], "{args:?} lists team-b's: {text}");
        }
        let all = ok(stack, &["backup", "list", "-A"]).await?;
        anyhow::ensure!(all.starts_with("NAMESPACE"), "{all}");
        let wide = ok(stack, &["backup", "list", "-n", A, "-o", "wide"]).await?;
        let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
        anyhow::ensure!(
            header.ends_with(&["ACTIONSET", "TARGET-PODS", "COMPLETION-TIME", "EXPIRATION-TIME", "PATH"]),
            "{wide}"
        );
        let wide = ok(stack, &["restore", "list", "-n", A, "-o", "wide"]).await?;
        let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
        anyhow::ensure!(
            header.ends_with(&["RESTORE-TIME", "COMPLETION-TIME", "BACKUP-NAMESPACE"]),
            "{wide}"
        );
        let wide = ok(stack, &["schedule", "list", "-n", A, "-o", "wide"]).await?;
        anyhow::ensure!(wide.contains("nightly=0 1 * * *"), "{wide}");

        // Options a command cannot honour are usage errors, not ignored.
        let out = cairnctl(stack, &["backup", "delete", "a-1", "-n", A, "-l", "tier=gold"]).await?;
        anyhow::ensure!(out.status.code() == Some(2), "{out:?}");
        let out = cairnctl(stack, &["backup", "describe", "a-1", "-A"]).await?;
        anyhow::ensure!(out.status.code() == Some(2), "{out:?}");
        // A selector the API server refuses fails like kubectl's (exit 1), naming it.
        let out = cairnctl(stack, &["backup", "list", "-l", "tier in gold"]).await?;
        anyhow::ensure!(
            out.status.code() == Some(1)
                && String::from_utf8_lossy(&out.stderr).contains("tier in gold"),
            "{out:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_logs_prints_what_kubectl_logs_prints_for_the_actions_pods() -> anyhow::Result<()> {
    const NS: &str = "shop";
    run("cli-backup-logs", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4096).await?;
        stack
            .kubectl
            .apply(&manifests::render(
                "actionset-failing-job.yaml",
                &[("ACTIONSET", "always-fails")],
            )?)
            .await?;
        let policy = scenario::policy_for(stack, &workload, "db", "always-fails", "", 1).await?;
        scenario::backup(stack, NS, "doomed", &policy.name, &policy.method, "Delete").await?;
        dp::backup_finished(&stack.client, NS, "doomed", Duration::from_secs(180)).await?;

        let pods = stack
            .kubectl
            .run(&[
                "get",
                "pods",
                "-n",
                NS,
                "-o",
                "name",
                "--sort-by=.metadata.creationTimestamp",
                "-l",
                "batch.kubernetes.io/job-name",
            ])
            .await?;
        let pods: Vec<&str> = pods.lines().collect();
        anyhow::ensure!(pods.len() == 2, "backoffLimit 1: two pods, got {pods:?}");
        let mut expected = String::new();
        for pod in &pods {
            expected.push_str(&stack.kubectl.run(&["logs", "-n", NS, pod]).await?);
        }
        anyhow::ensure!(expected.contains("disk on fire"), "{expected}");

        let out = cairnctl(stack, &["backup", "logs", "doomed", "-n", NS]).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{stdout}{stderr}");
        anyhow::ensure!(
            stdout == expected,
            "cairnctl:\n{stdout}\nkubectl logs:\n{expected}"
        );
        for pod in &pods {
            let name = pod.trim_start_matches("pod/");
            anyhow::ensure!(
                stderr.contains("==> action dp-backup-0 (Job/") && stderr.contains(name),
                "a header names the action and pod {name}: {stderr}"
            );
        }
        // --all-containers adds the init container that installs datasafed.
        let all = ok(
            stack,
            &["backup", "logs", "doomed", "-n", NS, "--all-containers"],
        )
        .await?;
        anyhow::ensure!(
            all.contains("installed /cairn-datasafed/datasafed") && all.contains("disk on fire"),
            "{all}"
        );
        // -f on finished pods ends with them; --action picks one; an unknown one is named.
        let followed = ok(
            stack,
            &[
                "backup",
                "logs",
                "doomed",
                "-n",
                NS,
                "-f",
                "--action",
                "dp-backup-0",
            ],
        )
        .await?;
        anyhow::ensure!(followed == expected, "{followed}");
        let out = cairnctl(
            stack,
            &["backup", "logs", "doomed", "-n", NS, "--action", "nope"],
        )
        .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            out.status.code() == Some(1)
                && stderr.contains("has no action nope (actions: dp-backup-0"),
            "{stderr}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_shows_the_client_and_the_control_plane_it_finds() -> anyhow::Result<()> {
    run("cli-version", async |stack| {
        let client = env!("CARGO_PKG_VERSION");
        // A standalone stack: its control plane is the binary beside cairnctl.
        let text = ok(stack, &["version"]).await?;
        anyhow::ensure!(
            text.starts_with(&format!("Client Version: {client}\nControl Plane Version: {client} (standalone ")),
            "{text}"
        );
        // On a cluster with the chart: its Deployment's version label and image.
        stack.ensure_namespace("cairn-system").await?;
        stack
            .kubectl
            .apply(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cairn-control-plane\n  namespace: cairn-system\n  labels:\n    app.kubernetes.io/part-of: cairn\n    app.kubernetes.io/component: control-plane\n    app.kubernetes.io/version: \"9.8.7\"\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: cp}\n  template:\n    metadata:\n      labels: {app: cp}\n    spec:\n      containers:\n        - name: control-plane\n          image: example.org/cairn/control-plane:9.8.7\n",
            )
            .await?;
        let json = ok(stack, &["version", "-o", "json"]).await?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        anyhow::ensure!(value["clientVersion"]["version"] == client, "{json}");
        let plane = &value["controlPlanes"][0];
        anyhow::ensure!(
            plane["version"] == "9.8.7"
                && plane["source"] == "deployment/cairn-system/cairn-control-plane"
                && plane["images"][0] == "example.org/cairn/control-plane:9.8.7",
            "{json}"
        );
        let only = ok(stack, &["version", "--client", "-o", "jsonpath={.clientVersion.version}"]).await?;
        anyhow::ensure!(only == client, "{only}");
        Ok(())
    })
    .await
}
