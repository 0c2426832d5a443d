//! `cairnctl backup create`: picks the BackupPolicy and method (the default policy and its only
//! method when not named), creates the Backup and, with `--wait`, follows it to the end.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use cairn_api::backup::Backup;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::well_known;
use jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::Scope;
use super::wait::{WaitOptions, completed_line, until_done};
use crate::progress::{Mode, Reporter};

/// Arguments of `cairnctl backup create`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the Backup (default: `<policy>-<UTC time>`).
    pub name: Option<String>,
    /// The BackupPolicy (default: the one annotated is-default-policy, or the only one).
    #[arg(long)]
    pub policy: Option<String>,
    /// The backup method of the policy (default: its only method).
    #[arg(long)]
    pub method: Option<String>,
    /// Whether deleting the Backup deletes its data: Delete or Retain.
    #[arg(long, value_parser = ["Delete", "Retain"])]
    pub deletion_policy: Option<String>,
    /// How long to keep the backup, e.g. 7d or 1y2mo.
    #[arg(long)]
    pub retention: Option<String>,
    /// A parameter of the method's ActionSet, NAME=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
    /// Follow the Backup until it is Completed (exit 0) or Failed (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit code 3): a duration such as 90s, 10m or
    /// 1h, or seconds.
    #[arg(long, default_value = "3600", value_parser = crate::exit::parse_timeout)]
    pub timeout: std::time::Duration,
}

/// Parses `NAME=VALUE`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// The policy to use: the named one, else the one annotated default, else the only one.
pub fn choose_policy<'a>(
    policies: &'a [BackupPolicy],
    wanted: Option<&str>,
    namespace: &str,
) -> anyhow::Result<&'a BackupPolicy> {
    let names = || {
        policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = wanted {
        return policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(wanted))
            .with_context(|| {
                format!(
                    "there is no BackupPolicy {wanted:?} in namespace {namespace} (there are: {})",
                    names()
                )
            });
    }
    let defaults: Vec<&BackupPolicy> = policies
        .iter()
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(well_known::annotation::DEFAULT_POLICY))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
        .collect();
    match (defaults.as_slice(), policies) {
        ([only], _) => Ok(only),
        ([], [only]) => Ok(only),
        ([], []) => bail!("there is no BackupPolicy in namespace {namespace}: create one first"),
        _ => bail!(
            "namespace {namespace} has several BackupPolicies ({}): name one with --policy",
            names()
        ),
    }
}

/// The method to use: the named one, else the policy's only method.
pub fn choose_method(policy: &BackupPolicy, wanted: Option<&str>) -> anyhow::Result<String> {
    let policy_name = policy.metadata.name.clone().unwrap_or_default();
    let methods: Vec<&str> = policy
        .spec
        .backup_methods
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    match (wanted, methods.as_slice()) {
        (Some(wanted), _) if methods.contains(&wanted) => Ok(wanted.to_string()),
        (Some(wanted), _) => bail!(
            "BackupPolicy {policy_name} has no method {wanted:?} (it has: {})",
            methods.join(", ")
        ),
        (None, [only]) => Ok(only.to_string()),
        (None, []) => bail!("BackupPolicy {policy_name} has no backup methods"),
        (None, _) => bail!(
            "BackupPolicy {policy_name} has several methods ({}): name one with --method",
            methods.join(", ")
        ),
    }
}

/// `<policy>-<yyyymmddhhmmss>`, cut so that it stays a valid object name of at most 63
/// characters (Job names are derived from it).
pub fn default_name(policy: &str, now: Timestamp) -> String {
    let stamp = now.strftime("%Y%m%d%H%M%S").to_string();
    let room = 63 - stamp.len() - 1;
    let prefix: String = policy.chars().take(room).collect();
    format!("{}-{stamp}", prefix.trim_end_matches(['-', '.']))
}

/// The Backup object to create.
pub fn build(
    name: &str,
    namespace: &str,
    policy: &str,
    method: &str,
    args: &Args,
) -> anyhow::Result<Backup> {
    let mut spec = json!({"backupPolicyName": policy, "backupMethod": method});
    if let Some(deletion) = &args.deletion_policy {
        spec["deletionPolicy"] = json!(deletion);
    }
    if let Some(retention) = &args.retention {
        cairn_api::parse::retention::parse(retention)
            .with_context(|| format!("--retention {retention:?}"))?;
        spec["retentionPeriod"] = json!(retention);
    }
    if !args.params.is_empty() {
        spec["parameters"] = args
            .params
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
    }
    serde_json::from_value(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .context("building the Backup")
}

/// Runs `cairnctl backup create`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    let policies: Api<BackupPolicy> = Api::namespaced(scope.client.clone(), &scope.namespace);
    let list = policies
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing BackupPolicies in namespace {}", scope.namespace))?;
    let policy = choose_policy(&list.items, args.policy.as_deref(), &scope.namespace)?;
    let policy_name = policy.metadata.name.clone().unwrap_or_default();
    let method = choose_method(policy, args.method.as_deref())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&policy_name, Timestamp::now()));
    let backup = build(&name, &scope.namespace, &policy_name, &method, &args)?;
    let api: Api<Backup> = Api::namespaced(scope.client.clone(), &scope.namespace);
    let created = api
        .create(&PostParams::default(), &backup)
        .await
        .with_context(|| format!("creating Backup {}/{name}", scope.namespace))?;
    if !args.wait {
        if scope.json {
            println!("{}", result_line(&created)?);
        } else {
            println!(
                "backup.dataprotection.kubeblocks.io/{name} created (policy {policy_name}, method {method})"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mode = Mode::detect(scope.json);
    let out: Box<dyn std::io::Write + Send> = match mode {
        Mode::Json => Box::new(std::io::stdout()),
        _ => Box::new(std::io::stderr()),
    };
    let mut reporter = Reporter::new(mode, out);
    let options = WaitOptions {
        timeout: args.timeout,
        ..WaitOptions::default()
    };
    let (done, seconds) = until_done(&api, &name, &mut reporter, &options).await?;
    if scope.json {
        println!("{}", result_line(&done)?);
    } else {
        println!("{}", completed_line(&done, Some(seconds)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"type":"result","object":{...}}`: the last line of `--json` output.
pub fn result_line<T: serde::Serialize>(object: &T) -> anyhow::Result<String> {
    Ok(json!({"type": "result", "object": object}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, default: bool, methods: &[&str]) -> BackupPolicy {
        let mut metadata = json!({"name": name, "namespace": "ns"});
        if default {
            metadata["annotations"] = json!({well_known::annotation::DEFAULT_POLICY: "true"});
        }
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "BackupPolicy",
            "metadata": metadata,
            "spec": {
                "target": {"podSelector": {"matchLabels": {"app": "x"}}},
                "backupMethods": methods.iter().map(|m| json!({"name": m, "actionSetName": "a"})).collect::<Vec<_>>()
            }
        }))
        .expect("policy")
    }

    fn name_of(p: &BackupPolicy) -> &str {
        p.metadata.name.as_deref().unwrap_or_default()
    }

    #[test]
    fn the_only_policy_is_chosen_without_a_name() {
        let policies = [policy("p1", false, &["m"])];
        assert_eq!(
            name_of(choose_policy(&policies, None, "ns").expect("chosen")),
            "p1"
        );
    }

    #[test]
    fn the_default_policy_wins_among_several() {
        let policies = [policy("p1", false, &["m"]), policy("p2", true, &["m"])];
        assert_eq!(
            name_of(choose_policy(&policies, None, "ns").expect("chosen")),
            "p2"
        );
    }

    #[test]
    fn several_policies_without_a_default_ask_for_a_name() {
        let policies = [policy("p1", false, &["m"]), policy("p2", false, &["m"])];
        let err = choose_policy(&policies, None, "ns").expect_err("ambiguous");
        assert!(err.to_string().contains("p1, p2"), "{err}");
        assert!(err.to_string().contains("--policy"), "{err}");
    }

    #[test]
    fn an_unknown_policy_name_lists_the_existing_ones() {
        let policies = [policy("p1", false, &["m"])];
        let err = choose_policy(&policies, Some("nope"), "ns").expect_err("unknown");
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(err.to_string().contains("p1"), "{err}");
        assert!(choose_policy(&[], None, "ns").is_err());
    }

    #[test]
    fn methods_are_chosen_by_name_or_when_there_is_only_one() {
        let one = policy("p", false, &["tar"]);
        assert_eq!(choose_method(&one, None).expect("only"), "tar");
        let two = policy("p", false, &["tar", "dump"]);
        assert_eq!(choose_method(&two, Some("dump")).expect("named"), "dump");
        assert!(
            choose_method(&two, None)
                .expect_err("ambiguous")
                .to_string()
                .contains("tar, dump")
        );
        assert!(
            choose_method(&two, Some("x"))
                .expect_err("unknown")
                .to_string()
                .contains("no method \"x\"")
        );
    }

    #[test]
    fn default_names_carry_the_time_and_fit_in_63_characters() {
        let now: Timestamp = "2026-01-10T12:03:04Z".parse().expect("time");
        assert_eq!(default_name("pg-policy", now), "pg-policy-20260110120304");
        let long = "x".repeat(80);
        let name = default_name(&long, now);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-20260110120304"));
    }

    #[test]
    fn pairs_need_a_name_and_an_equals_sign() {
        assert_eq!(
            parse_pair("a=b=c").expect("pair"),
            ("a".into(), "b=c".into())
        );
        assert_eq!(parse_pair("a=").expect("pair"), ("a".into(), "".into()));
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=x").is_err());
    }

    #[test]
    fn the_backup_carries_policy_method_and_options() {
        let args = Args {
            name: None,
            policy: None,
            method: None,
            deletion_policy: Some("Retain".into()),
            retention: Some("7d".into()),
            params: vec![("compress".into(), "zstd".into())],
            wait: false,
            timeout: std::time::Duration::from_secs(1),
        };
        let b = build("b1", "ns", "p", "m", &args).expect("backup");
        let v = serde_json::to_value(&b).expect("json");
        assert_eq!(v["spec"]["backupPolicyName"], "p");
        assert_eq!(v["spec"]["backupMethod"], "m");
        assert_eq!(v["spec"]["deletionPolicy"], "Retain");
        assert_eq!(v["spec"]["retentionPeriod"], "7d");
        assert_eq!(v["spec"]["parameters"][0]["name"], "compress");
        let bad = Args {
            retention: Some("7 days".into()),
            deletion_policy: None,
            ..args
        };
        assert!(build("b1", "ns", "p", "m", &bad).is_err());
    }
}
