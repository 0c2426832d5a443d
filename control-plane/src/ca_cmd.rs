//! `cairn-control-plane ca ...`: create the Cairn CA and issue server and agent certificates.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

use cairn_certs::ca::{Ca, LEAF_DEFAULT_DAYS, Validity};
use cairn_certs::pem_files::CertFiles;

/// `ca`: the certificate authority of the agent protocol (docs/PROTOCOL.md §2.1).
#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CaCommand,
}

/// The `ca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Create a new CA: writes DIR/ca.pem and DIR/ca-key.pem (mode 0600). Refuses to replace one.
    Init {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue the control plane's server certificate: writes OUT.pem and OUT-key.pem.
    IssueServer {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
        /// DNS names the agents dial (repeatable).
        #[arg(long = "dns", value_name = "NAME", num_args = 1..)]
        dns: Vec<String>,
        /// IP addresses the agents dial (repeatable).
        #[arg(long = "ip", value_name = "IP", num_args = 1..)]
        ip: Vec<IpAddr>,
        /// Output path without extension.
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = LEAF_DEFAULT_DAYS)]
        days: u32,
    },
    /// Issue an agent certificate for NODE (CN and URI SAN cairn:agent:node:NODE): writes
    /// OUT.pem and OUT-key.pem.
    IssueAgent {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Kubernetes node name the agent runs on.
        #[arg(long)]
        node: String,
        /// Output path without extension.
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = LEAF_DEFAULT_DAYS)]
        days: u32,
        /// Keep an existing OUT.pem that names NODE, is signed by the CA in DIR and is valid
        /// for longer than this (Go duration, e.g. 720h); issue a new one otherwise. Without
        /// it, a new certificate is always issued.
        #[arg(long, value_name = "DURATION")]
        renew_before: Option<String>,
        /// With --renew-before: keep running and check again at this interval (Go duration),
        /// reading the CA each time, so a renewed or rotated CA is followed too. The agent reads
        /// its certificate again at each connection, so it needs no restart.
        #[arg(long, value_name = "DURATION", requires = "renew_before")]
        every: Option<String>,
    },
}

/// Runs a `ca` subcommand, printing the paths it wrote to stdout.
pub fn run(args: CaArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    run_with_output(args, &mut stdout.lock())
}

/// Runs a `ca` subcommand, printing the paths it wrote to `out`.
pub fn run_with_output(args: CaArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let written = match args.command {
        CaCommand::Init { dir } => {
            let ca =
                Ca::init(&dir).with_context(|| format!("creating a CA in {}", dir.display()))?;
            let files = Ca::files(&dir);
            drop(ca);
            vec![("CA certificate", files.cert), ("CA key", files.key)]
        }
        CaCommand::IssueServer {
            dir,
            dns,
            ip,
            out: stem,
            days,
        } => {
            let ca = load(&dir)?;
            let issued = ca
                .issue_server(&dns, &ip, Validity::days(days))
                .context("issuing the server certificate")?;
            write(&issued, stem, "server")?
        }
        CaCommand::IssueAgent {
            dir,
            node,
            out: stem,
            days,
            renew_before: Some(renew_before),
            every,
        } => {
            let renew_before = duration("renew-before", &renew_before)?;
            anyhow::ensure!(
                renew_before < std::time::Duration::from_secs(u64::from(days) * 86_400),
                "--renew-before {} is not shorter than the validity (--days {days}): every check would issue a new certificate",
                crate::plan::time::go_duration_text(renew_before)
            );
            let every = every.map(|text| duration("every", &text)).transpose()?;
            let files = CertFiles::from_stem(&stem);
            loop {
                match renew_once(&dir, &node, &files, days, renew_before) {
                    Ok(line) => writeln!(out, "{line}").context("printing the outcome")?,
                    // A CA being rotated may be unreadable for a moment: try again later.
                    Err(err) if every.is_some() => {
                        writeln!(out, "renewing the agent certificate failed: {err:#}")
                            .context("printing the outcome")?;
                    }
                    Err(err) => return Err(err),
                }
                out.flush().context("printing the outcome")?;
                match every {
                    Some(every) => std::thread::sleep(every),
                    None => return Ok(()),
                }
            }
        }
        CaCommand::IssueAgent {
            dir,
            node,
            out: stem,
            days,
            renew_before: None,
            every: _,
        } => {
            let ca = load(&dir)?;
            let issued = ca
                .issue_agent(&node, Validity::days(days))
                .with_context(|| format!("issuing the agent certificate for node {node:?}"))?;
            write(&issued, stem, "agent")?
        }
    };
    for (what, path) in written {
        writeln!(out, "{what}: {}", path.display()).context("printing the written paths")?;
    }
    Ok(())
}

fn duration(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    crate::plan::time::go_duration(text)
        .map_err(|err| anyhow::anyhow!("--{flag}: invalid duration {text:?}: {err}"))
}

/// One check of `ca issue-agent --renew-before`: the line to print.
fn renew_once(
    dir: &std::path::Path,
    node: &str,
    files: &CertFiles,
    days: u32,
    renew_before: std::time::Duration,
) -> anyhow::Result<String> {
    let ca = load(dir)?;
    let renew_before =
        jiff::SignedDuration::try_from(renew_before).context("--renew-before is out of range")?;
    let renewed =
        cairn_certs::ensure::renew_agent_cert(&ca, files, node, Validity::days(days), renew_before)
            .with_context(|| format!("renewing the agent certificate for node {node:?}"))?;
    Ok(match renewed {
        Some(why) => format!(
            "agent certificate: {} (issued, the previous one was due because {why})",
            files.cert.display()
        ),
        None => format!("agent certificate: {} (kept)", files.cert.display()),
    })
}

fn load(dir: &std::path::Path) -> anyhow::Result<Ca> {
    Ca::load(dir).with_context(|| {
        format!(
            "loading the CA from {} (create one with `cairn-control-plane ca init --dir {}`)",
            dir.display(),
            dir.display()
        )
    })
}

fn write(
    issued: &cairn_certs::IssuedCert,
    stem: PathBuf,
    what: &'static str,
) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let files = CertFiles::from_stem(&stem);
    issued
        .write(&files)
        .with_context(|| format!("writing the {what} certificate"))?;
    Ok(vec![
        (
            if what == "server" {
                "server certificate"
            } else {
                "agent certificate"
            },
            files.cert,
        ),
        (
            if what == "server" {
                "server key"
            } else {
                "agent key"
            },
            files.key,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_certs::cert_info::CertInfo;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        ca: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Ca(CaArgs),
    }

    fn run_cli(args: &[&str]) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(
            std::iter::once("cairn-control-plane").chain(args.iter().copied()),
        )?;
        let Top::Ca(ca) = cli.ca;
        let mut out = Vec::new();
        run_with_output(ca, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn issue_agent_with_renew_before_keeps_a_fresh_certificate_and_renews_a_due_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let dir_s = dir.to_str().unwrap();
        run_cli(&["ca", "init", "--dir", dir_s]).unwrap();
        let stem = tmp.path().join("tls/agent");
        let stem_s = stem.to_str().unwrap();
        let issue = |days: &str, renew_before: &str| {
            run_cli(&[
                "ca",
                "issue-agent",
                "--dir",
                dir_s,
                "--node",
                "n1",
                "--out",
                stem_s,
                "--days",
                days,
                "--renew-before",
                renew_before,
            ])
        };
        let printed = issue("30", "24h").unwrap();
        assert!(printed.contains("(issued"), "{printed}");
        let first = std::fs::read_to_string(tmp.path().join("tls/agent.pem")).unwrap();
        let printed = issue("30", "24h").unwrap();
        assert!(printed.contains("(kept)"), "{printed}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("tls/agent.pem")).unwrap(),
            first
        );
        // A 30-day certificate renewed 31 days before expiry would be renewed at every check.
        let err = issue("30", "744h").unwrap_err().to_string();
        assert!(err.contains("not shorter than the validity"), "{err}");
        // Due: 30 days left is within 40 days of a 50-day certificate's renewal window.
        let printed = issue("50", "960h").unwrap();
        assert!(printed.contains("it expires at"), "{printed}");
        let second = std::fs::read_to_string(tmp.path().join("tls/agent.pem")).unwrap();
        assert_ne!(second, first);
        let info = CertInfo::from_pem(&second).unwrap();
        assert!(info.uris.contains(&"cairn:agent:node:n1".to_owned()));
    }

    #[test]
    fn init_then_issue_server_and_agent_writes_the_announced_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let dir_s = dir.to_str().unwrap();
        let printed = run_cli(&["ca", "init", "--dir", dir_s]).unwrap();
        assert!(printed.contains(&format!("{dir_s}/ca.pem")), "{printed}");

        let server = tmp.path().join("out/server");
        let printed = run_cli(&[
            "ca",
            "issue-server",
            "--dir",
            dir_s,
            "--dns",
            "cairn",
            "cairn.svc",
            "--ip",
            "127.0.0.1",
            "--out",
            server.to_str().unwrap(),
        ])
        .unwrap();
        assert!(printed.contains("server.pem") && printed.contains("server-key.pem"));
        let info = CertInfo::from_pem(
            &std::fs::read_to_string(tmp.path().join("out/server.pem")).unwrap(),
        )
        .unwrap();
        assert_eq!(info.dns_names, ["cairn", "cairn.svc"]);
        assert_eq!(info.ip_addrs, ["127.0.0.1".parse::<IpAddr>().unwrap()]);

        let agent = tmp.path().join("agent-a");
        run_cli(&[
            "ca",
            "issue-agent",
            "--dir",
            dir_s,
            "--node",
            "node-a",
            "--out",
            agent.to_str().unwrap(),
            "--days",
            "7",
        ])
        .unwrap();
        let info =
            CertInfo::from_pem(&std::fs::read_to_string(tmp.path().join("agent-a.pem")).unwrap())
                .unwrap();
        assert_eq!(info.uris, ["cairn:agent:node:node-a"]);
        let days = (info.not_after - info.not_before).get_seconds() / 86_400;
        assert_eq!(days, 7);
        assert!(tmp.path().join("agent-a-key.pem").is_file());
    }

    #[test]
    fn issuing_without_a_ca_says_how_to_create_one() {
        let tmp = tempfile::tempdir().unwrap();
        let err = run_cli(&[
            "ca",
            "issue-agent",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--node",
            "n",
            "--out",
            tmp.path().join("a").to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("ca init --dir"), "{err:#}");
    }

    #[test]
    fn bad_node_name_is_quoted_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        run_cli(&["ca", "init", "--dir", dir]).unwrap();
        let err = run_cli(&[
            "ca",
            "issue-agent",
            "--dir",
            dir,
            "--node",
            "Bad_Node",
            "--out",
            tmp.path().join("a").to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("\"Bad_Node\""), "{err:#}");
    }
}
