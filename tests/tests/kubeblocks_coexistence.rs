//! Coexistence with KubeBlocks' own data-protection controller (ARCHITECTURE.md §K9): while a
//! Deployment like the one KubeBlocks' chart installs asks for replicas, Cairn does not
//! reconcile and says why; scaled to 0, Cairn proceeds; told to take over, Cairn reconciles
//! anyway. Real processes against localkube (which stores the Deployment and runs no pods for
//! it, so only its replica count speaks).

use std::time::Duration;

use cairn_e2e::TestStack;
use cairn_e2e::stack::run_with;
use cairn_e2e::wait::{self, Check};

const KB_NS: &str = "kb-system";
const KB_DEPLOYMENT: &str = "kubeblocks-dataprotection";
/// Generous: the machine running the tests may be loaded.
const WAIT: Duration = Duration::from_secs(90);

/// The data-protection Deployment as KubeBlocks' chart renders it (deploy/helm/templates/
/// dataprotection.yaml: name `<fullname>-dataprotection`, the chart's labels plus
/// `app.kubernetes.io/component: dataprotection`), reduced to what the API requires.
fn kubeblocks_deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {KB_DEPLOYMENT}
  namespace: {KB_NS}
  labels:
    app.kubernetes.io/name: kubeblocks
    app.kubernetes.io/instance: kubeblocks
    app.kubernetes.io/component: dataprotection
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/component: dataprotection
      app.kubernetes.io/name: kubeblocks
      app.kubernetes.io/instance: kubeblocks
  template:
    metadata:
      labels:
        app.kubernetes.io/component: dataprotection
        app.kubernetes.io/name: kubeblocks
        app.kubernetes.io/instance: kubeblocks
    spec:
      containers:
        - name: manager
          image: apecloud/kubeblocks-dataprotection:1.0.0
          args: ["--leader-elect", "--leader-elect-id=abd03fda"]
"#
    )
}

fn actionset(name: &str) -> String {
    format!(
        r#"apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: ActionSet
metadata:
  name: {name}
spec:
  backupType: Full
  backup:
    backupData:
      image: busybox:1.36
      command: ["sh", "-c", "true"]
"#
    )
}

async fn actionset_phase(stack: &TestStack, name: &str) -> anyhow::Result<String> {
    let object = stack.kubectl.get_json(&["actionset", name]).await?;
    Ok(object["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn wait_for_log(stack: &TestStack, needle: &str) -> anyhow::Result<String> {
    wait::until(
        &format!("{needle:?} in control-plane.log"),
        WAIT,
        async || {
            let log = stack.log("control-plane.log");
            Ok(match log.lines().find(|line| line.contains(needle)) {
                Some(line) => Check::Done(line.to_owned()),
                None => Check::Pending(log.lines().last().unwrap_or_default().to_owned()),
            })
        },
    )
    .await
}

async fn wait_available(stack: &TestStack, name: &str) -> anyhow::Result<()> {
    wait::until(&format!("ActionSet {name} Available"), WAIT, async || {
        let phase = actionset_phase(stack, name).await?;
        Ok(if phase == "Available" {
            Check::Done(())
        } else {
            Check::Pending(format!("phase {phase:?}"))
        })
    })
    .await
}

fn fast_checks(options: &mut cairn_cli::standalone::StackOptions) {
    options.env.push((
        "CAIRN_KUBEBLOCKS_CHECK_INTERVAL".to_owned(),
        "1s".to_owned(),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_stands_by_while_kubeblocks_dataprotection_runs_and_proceeds_once_it_is_scaled_to_zero()
-> anyhow::Result<()> {
    run_with("kubeblocks-coexistence", fast_checks, async |stack| {
        stack.ensure_namespace(KB_NS).await?;
        stack.kubectl.apply(&kubeblocks_deployment(1)).await?;
        let line = wait_for_log(
            stack,
            "not reconciling: KubeBlocks' data-protection controller is active",
        )
        .await?;
        anyhow::ensure!(
            line.contains(&format!("{KB_NS}/{KB_DEPLOYMENT}"))
                && line.contains("--take-over-from-kubeblocks=true")
                && line.contains("dataProtection.enabled=false"),
            "the log line names the controller and both ways out: {line}"
        );

        // Cairn leaves a new ActionSet alone...
        stack.kubectl.apply(&actionset("coexist-standby")).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let phase = actionset_phase(stack, "coexist-standby").await?;
        anyhow::ensure!(
            phase.is_empty(),
            "Cairn reconciled the ActionSet (phase {phase:?}) while KubeBlocks' controller runs"
        );
        // ...and says why on KubeBlocks' Deployment.
        let events = stack
            .kubectl
            .get_json(&["events.events.k8s.io", "-n", KB_NS])
            .await?;
        let standing_by = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|event| {
                event["reason"] == "CairnStandingBy" && event["regarding"]["name"] == KB_DEPLOYMENT
            });
        anyhow::ensure!(
            standing_by,
            "no CairnStandingBy Event on the Deployment: {events}"
        );

        // KubeBlocks' controller scaled to 0: Cairn proceeds.
        stack
            .kubectl
            .run(&[
                "scale",
                "deployment",
                KB_DEPLOYMENT,
                "-n",
                KB_NS,
                "--replicas=0",
            ])
            .await?;
        wait_for_log(
            stack,
            "no active KubeBlocks data-protection controller any more",
        )
        .await?;
        wait_available(stack, "coexist-standby").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn told_to_take_over_cairn_reconciles_while_kubeblocks_dataprotection_runs()
-> anyhow::Result<()> {
    run_with(
        "kubeblocks-takeover",
        |options| {
            fast_checks(options);
            options.env.push((
                "CAIRN_TAKE_OVER_FROM_KUBEBLOCKS".to_owned(),
                "true".to_owned(),
            ));
        },
        async |stack| {
            stack.ensure_namespace(KB_NS).await?;
            stack.kubectl.apply(&kubeblocks_deployment(1)).await?;
            wait_for_log(
                stack,
                "--take-over-from-kubeblocks is set: reconciling anyway",
            )
            .await?;
            stack.kubectl.apply(&actionset("coexist-takeover")).await?;
            wait_available(stack, "coexist-takeover").await?;
            Ok(())
        },
    )
    .await
}
