//! Standalone mode: create the CA and certificates on first start and reuse them afterwards.
//!
//! Each helper keeps a file when it is still usable (valid for at least [`RENEW_BEFORE`], signed
//! by the current CA, naming what was asked for) and replaces it otherwise, logging why.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::ca::{CA_DEFAULT_DAYS, Ca, CaError, LEAF_DEFAULT_DAYS, Validity};
use super::cert_info::{CertInfo, first_pem_certificate, is_signed_by};
use super::identity::AGENT_URI_PREFIX;
use super::pem_files::CertFiles;

/// A certificate expiring sooner than this is replaced.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24);
/// File stem of the server certificate inside the CA directory.
pub const SERVER_CERT_STEM: &str = "server";

/// Why an existing certificate file is not reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// Expired, or expiring within [`RENEW_BEFORE`].
    Expiring {
        /// End of validity of the old certificate.
        not_after: Timestamp,
    },
    /// Not yet valid (a clock jump backwards).
    NotYetValid,
    /// Signed by another CA (the CA was regenerated).
    OtherCa,
    /// Does not name what was asked for.
    NamesDiffer,
    /// Could not be read.
    Unreadable(String),
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staleness::Expiring { not_after } => write!(f, "it expires at {not_after}"),
            Staleness::NotYetValid => f.write_str("it is not valid yet"),
            Staleness::OtherCa => f.write_str("it is not signed by the current CA"),
            Staleness::NamesDiffer => f.write_str("it does not carry the requested names"),
            Staleness::Unreadable(reason) => write!(f, "it cannot be read: {reason}"),
        }
    }
}

/// What a reusable certificate must name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WantedNames {
    /// DNS names that must all be present.
    pub dns_names: BTreeSet<String>,
    /// IP addresses that must all be present.
    pub ip_addrs: BTreeSet<IpAddr>,
    /// URIs that must all be present.
    pub uris: BTreeSet<String>,
}

/// Decides whether a certificate can be kept (pure: the caller reads the files).
pub fn check_reusable(
    info: &CertInfo,
    signed_by_ca: bool,
    wanted: &WantedNames,
    now: Timestamp,
) -> Result<(), Staleness> {
    check_reusable_within(info, signed_by_ca, wanted, now, RENEW_BEFORE)
}

/// [`check_reusable`] with a certificate expiring within `renew_before` counted as expiring.
pub fn check_reusable_within(
    info: &CertInfo,
    signed_by_ca: bool,
    wanted: &WantedNames,
    now: Timestamp,
    renew_before: SignedDuration,
) -> Result<(), Staleness> {
    if info.not_before > now {
        return Err(Staleness::NotYetValid);
    }
    if info.not_after < now + renew_before {
        return Err(Staleness::Expiring {
            not_after: info.not_after,
        });
    }
    if !signed_by_ca {
        return Err(Staleness::OtherCa);
    }
    let has_all = wanted.dns_names.iter().all(|n| info.dns_names.contains(n))
        && wanted.ip_addrs.iter().all(|ip| info.ip_addrs.contains(ip))
        && wanted.uris.iter().all(|u| info.uris.contains(u));
    if !has_all {
        return Err(Staleness::NamesDiffer);
    }
    Ok(())
}

/// Loads the CA in `dir`, creating it when absent and replacing it when it expires soon.
pub fn ensure_ca(dir: &Path) -> Result<Ca, CaError> {
    let files = Ca::files(dir);
    if files.exist() {
        let ca = Ca::load(dir)?;
        let info = ca.info()?;
        match check_reusable(&info, true, &WantedNames::default(), Timestamp::now()) {
            Ok(()) => return Ok(ca),
            Err(why) => tracing::warn!(
                path = %files.cert.display(),
                "replacing the Cairn CA because {why}; every certificate it issued is replaced too"
            ),
        }
    }
    let ca = Ca::generate(Validity::days(CA_DEFAULT_DAYS))?;
    ca.write(dir)?;
    tracing::info!(path = %files.cert.display(), "created the Cairn CA");
    Ok(ca)
}

/// Ensures `<dir>/server.pem` and `<dir>/server-key.pem` exist for `names` (DNS names or IP
/// addresses), signed by the CA in `dir` (created if needed).
pub fn ensure_server_cert(dir: &Path, names: &[String]) -> Result<CertFiles, CaError> {
    let ca = ensure_ca(dir)?;
    let mut wanted = WantedNames::default();
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => wanted.ip_addrs.insert(ip),
            Err(_) => wanted.dns_names.insert(name.clone()),
        };
    }
    let files = CertFiles::from_stem(&dir.join(SERVER_CERT_STEM));
    ensure_leaf(&ca, &files, &wanted, || {
        let dns: Vec<String> = wanted.dns_names.iter().cloned().collect();
        let ips: Vec<IpAddr> = wanted.ip_addrs.iter().copied().collect();
        ca.issue_server(&dns, &ips, Validity::days(LEAF_DEFAULT_DAYS))
    })?;
    Ok(files)
}

/// Ensures `<dir>/agent-<node>.pem` and its key exist, signed by the CA in `dir`.
pub fn ensure_agent_cert(dir: &Path, node: &str) -> Result<CertFiles, CaError> {
    let ca = ensure_ca(dir)?;
    let wanted = WantedNames {
        uris: BTreeSet::from([format!("{AGENT_URI_PREFIX}{node}")]),
        ..WantedNames::default()
    };
    let files = CertFiles::from_stem(&dir.join(format!("agent-{node}")));
    ensure_leaf(&ca, &files, &wanted, || {
        ca.issue_agent(node, Validity::days(LEAF_DEFAULT_DAYS))
    })?;
    Ok(files)
}

/// Renews the agent certificate `files` for `node` when it is missing, unreadable, expires
/// within `renew_before`, is not signed by `ca` (the CA rotated) or does not name `node`:
/// issues a new one valid for `validity` and returns why; `None` when the old one is kept.
/// The agent reads its files again at each dial, so it uses the new certificate from its next
/// connection without a restart.
pub fn renew_agent_cert(
    ca: &Ca,
    files: &CertFiles,
    node: &str,
    validity: Validity,
    renew_before: SignedDuration,
) -> Result<Option<Staleness>, CaError> {
    let wanted = WantedNames {
        uris: BTreeSet::from([format!("{AGENT_URI_PREFIX}{node}")]),
        ..WantedNames::default()
    };
    let why = if files.exist() {
        match existing_staleness_within(ca, files, &wanted, renew_before) {
            None => return Ok(None),
            Some(why) => why,
        }
    } else {
        Staleness::Unreadable("it does not exist".to_owned())
    };
    ca.issue_agent(node, validity)?.write(files)?;
    Ok(Some(why))
}

fn ensure_leaf(
    ca: &Ca,
    files: &CertFiles,
    wanted: &WantedNames,
    issue: impl FnOnce() -> Result<super::ca::IssuedCert, CaError>,
) -> Result<(), CaError> {
    if files.exist() {
        match existing_staleness(ca, files, wanted) {
            None => return Ok(()),
            Some(why) => tracing::info!(
                path = %files.cert.display(),
                "replacing certificate because {why}"
            ),
        }
    }
    issue()?.write(files)?;
    tracing::info!(path = %files.cert.display(), "issued certificate");
    Ok(())
}

fn existing_staleness(ca: &Ca, files: &CertFiles, wanted: &WantedNames) -> Option<Staleness> {
    existing_staleness_within(ca, files, wanted, RENEW_BEFORE)
}

fn existing_staleness_within(
    ca: &Ca,
    files: &CertFiles,
    wanted: &WantedNames,
    renew_before: SignedDuration,
) -> Option<Staleness> {
    let check = || -> Result<Result<(), Staleness>, String> {
        let pem = std::fs::read_to_string(&files.cert).map_err(|e| e.to_string())?;
        let cert_der = first_pem_certificate(&pem).map_err(|e| e.to_string())?;
        let ca_der = first_pem_certificate(ca.cert_pem()).map_err(|e| e.to_string())?;
        let info = CertInfo::from_der(&cert_der).map_err(|e| e.to_string())?;
        let signed = is_signed_by(&cert_der, &ca_der).map_err(|e| e.to_string())?;
        Ok(check_reusable_within(
            &info,
            signed,
            wanted,
            Timestamp::now(),
            renew_before,
        ))
    };
    match check() {
        Ok(verdict) => verdict.err(),
        Err(reason) => Some(Staleness::Unreadable(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_before: Timestamp, not_after: Timestamp) -> CertInfo {
        CertInfo {
            common_names: vec!["x".into()],
            dns_names: vec!["a".into(), "b".into()],
            ip_addrs: vec!["127.0.0.1".parse().unwrap()],
            uris: vec![],
            not_before,
            not_after,
        }
    }

    #[test]
    fn certificate_is_replaced_a_day_before_it_expires() {
        let now = Timestamp::now();
        let day = SignedDuration::from_hours(24);
        let wanted = WantedNames::default();
        let fresh = info(now - day, now + day * 30);
        assert_eq!(check_reusable(&fresh, true, &wanted, now), Ok(()));
        let soon = info(now - day, now + SignedDuration::from_hours(23));
        assert!(matches!(
            check_reusable(&soon, true, &wanted, now),
            Err(Staleness::Expiring { .. })
        ));
        let expired = info(now - day * 2, now - day);
        assert!(matches!(
            check_reusable(&expired, true, &wanted, now),
            Err(Staleness::Expiring { .. })
        ));
        let future = info(now + day, now + day * 30);
        assert_eq!(
            check_reusable(&future, true, &wanted, now),
            Err(Staleness::NotYetValid)
        );
    }

    #[test]
    fn certificate_from_another_ca_or_missing_a_name_is_replaced() {
        let now = Timestamp::now();
        let day = SignedDuration::from_hours(24);
        let cert = info(now - day, now + day * 30);
        let mut wanted = WantedNames::default();
        assert_eq!(
            check_reusable(&cert, false, &wanted, now),
            Err(Staleness::OtherCa)
        );
        wanted.dns_names.insert("a".into());
        assert_eq!(check_reusable(&cert, true, &wanted, now), Ok(()));
        wanted.dns_names.insert("c".into());
        assert_eq!(
            check_reusable(&cert, true, &wanted, now),
            Err(Staleness::NamesDiffer)
        );
    }

    #[test]
    fn ensure_helpers_create_files_once_and_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let server = ensure_server_cert(dir.path(), &names).unwrap();
        let agent = ensure_agent_cert(dir.path(), "node-a").unwrap();
        let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let server_before = std::fs::read(&server.cert).unwrap();
        let agent_before = std::fs::read(&agent.cert).unwrap();

        assert_eq!(ensure_server_cert(dir.path(), &names).unwrap(), server);
        assert_eq!(ensure_agent_cert(dir.path(), "node-a").unwrap(), agent);
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_before);
        assert_eq!(std::fs::read(&server.cert).unwrap(), server_before);
        assert_eq!(std::fs::read(&agent.cert).unwrap(), agent_before);

        // Asking for another name reissues the server certificate.
        let more = vec!["cairn.local".to_owned()];
        ensure_server_cert(dir.path(), &more).unwrap();
        assert_ne!(std::fs::read(&server.cert).unwrap(), server_before);
    }

    #[test]
    fn a_new_ca_causes_certificates_to_be_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let agent = ensure_agent_cert(dir.path(), "node-a").unwrap();
        let before = std::fs::read(&agent.cert).unwrap();
        std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
        std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
        ensure_agent_cert(dir.path(), "node-a").unwrap();
        assert_ne!(std::fs::read(&agent.cert).unwrap(), before);
    }

    #[test]
    fn agent_certificate_is_renewed_before_expiry_and_when_the_ca_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::from_stem(&dir.path().join("agent"));
        let ca = Ca::generate(Validity::days(30)).unwrap();
        let hours = SignedDuration::from_hours;
        let why = renew_agent_cert(&ca, &files, "n1", Validity::days(10), hours(24)).unwrap();
        assert_eq!(why, Some(Staleness::Unreadable("it does not exist".into())));
        let first = std::fs::read_to_string(&files.cert).unwrap();
        // Ten days left, renew one day before: kept.
        let kept = renew_agent_cert(&ca, &files, "n1", Validity::days(10), hours(24)).unwrap();
        assert_eq!(kept, None);
        assert_eq!(std::fs::read_to_string(&files.cert).unwrap(), first);
        // Renew eleven days before: the ten-day certificate is due.
        let due = renew_agent_cert(&ca, &files, "n1", Validity::days(10), hours(24 * 11)).unwrap();
        assert!(matches!(due, Some(Staleness::Expiring { .. })), "{due:?}");
        let second = std::fs::read_to_string(&files.cert).unwrap();
        assert_ne!(second, first);
        // A new CA: the certificate of the old one is replaced.
        let rotated = Ca::generate(Validity::days(30)).unwrap();
        let why = renew_agent_cert(&rotated, &files, "n1", Validity::days(10), hours(24)).unwrap();
        assert_eq!(why, Some(Staleness::OtherCa));
        let pem = std::fs::read_to_string(&files.cert).unwrap();
        let der = first_pem_certificate(&pem).unwrap();
        let ca_der = first_pem_certificate(rotated.cert_pem()).unwrap();
        assert!(is_signed_by(&der, &ca_der).unwrap());
    }
}
