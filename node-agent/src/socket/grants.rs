//! The grants registry: a random bearer token per job action, bound to that action's
//! `StorageGrant`, and the bytes each action moved through the socket (its live progress).
//!
//! # Expected flow
//! 1. The runtime [`Grants::issue`]s a token for a job action and puts it in the Job's env
//!    (`CAIRN_STORAGE_TOKEN`); a restarted agent that re-adopts a running Job puts the token it
//!    finds there back with [`Grants::reinstate`].
//! 2. Every socket call [`Grants::lookup`]s its token; the grant opens its repository on first
//!    use ([`Grant::repository`]) and keeps it for the next calls. A Mount repository's PVC is
//!    resolved to its directory then, through the registry's [`ClaimResolver`]: by the time a
//!    pod calls, the PVC it mounts at `/backupdata` is bound (even with `WaitForFirstConsumer`).
//! 3. While the action runs, [`Grants::transferred`] reads its counters for `Progress`.
//! 4. When the action ends the runtime [`Grants::revoke`]s the token (final counters returned);
//!    later calls with it are `UNAUTHENTICATED`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use cairn_proto::agent::v1::{MountClaim, StorageGrant};
use cairn_repo::RepoFiles;
use cairn_repo::progress::{Progress, SharedProgress};
use tokio::sync::OnceCell;

use super::access::{Access, AccessError};
use super::repository::{GrantStorage, OpenError};

/// Random bytes in a token (hex-encoded to twice as many characters).
const TOKEN_BYTES: usize = 32;

/// A bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    fn generate() -> Token {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::fill(&mut bytes[..]);
        Token(hex::encode(bytes))
    }

    /// A token as found in a Job's env; `None` unless it has the shape [`Grants::issue`] gives.
    pub fn parse(text: &str) -> Option<Token> {
        let text = text.trim();
        (text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Token(text.to_ascii_lowercase()))
    }

    /// The token itself, for the one place that must send it (the Job's env).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Bytes an action moved through the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Received from `datasafed push` (before compression and encryption).
    pub bytes_in: u64,
    /// Sent to `datasafed pull` (after decryption and decompression).
    pub bytes_out: u64,
}

impl Transferred {
    /// Both directions together: the action's `bytes_done`.
    pub fn total(&self) -> u64 {
        self.bytes_in.saturating_add(self.bytes_out)
    }
}

#[derive(Debug, Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Counters {
    fn read(&self) -> Transferred {
        Transferred {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Adds what the engine reports to one direction of an action's counters.
struct CountInto {
    counters: Arc<Counters>,
    inbound: bool,
}

impl Progress for CountInto {
    fn add(&self, bytes: u64) {
        let counter = if self.inbound {
            &self.counters.bytes_in
        } else {
            &self.counters.bytes_out
        };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What keeps a reached claim reachable (a holder pod's lease) while a grant holds it.
pub type ClaimLease = Box<dyn std::any::Any + Send + Sync>;

/// A Mount repository's PVC reached on this node.
pub struct ReachedClaim {
    /// The directory holding the PVC's data.
    pub dir: PathBuf,
    /// Kept as long as the directory is used; `None` for a local directory of this node.
    pub lease: Option<ClaimLease>,
}

/// Why a Mount repository's PVC cannot be reached (a message naming the PVC and volume).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ClaimUnreachable {
    pub reason: String,
    /// The PVC is gone or was never bound: it holds nothing (a deletion has nothing to do).
    pub gone_or_unbound: bool,
}

/// Turns a Mount repository's PVC into the directory on this node that holds it.
#[async_trait]
pub trait ClaimResolver: Send + Sync {
    /// The directory and what keeps it reachable, or why it cannot be reached.
    async fn reach(&self, claim: &MountClaim) -> Result<ReachedClaim, ClaimUnreachable>;
}

/// One live grant: what its token may touch, and its repository once opened.
pub struct Grant {
    action_id: String,
    access: Access,
    storage: GrantStorage,
    resolver: Option<Arc<dyn ClaimResolver>>,
    /// The opened repository, and the lease keeping a Mount repository's volume reachable
    /// (released when the grant goes).
    repository: OnceCell<(RepoFiles, Option<ClaimLease>)>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("action_id", &self.action_id)
            .field("repo", &self.storage.repo_name())
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// The action the grant belongs to (for spans and logs; the token is never logged).
    pub fn action_id(&self) -> &str {
        &self.action_id
    }

    /// The BackupRepo name.
    pub fn repo_name(&self) -> &str {
        self.storage.repo_name()
    }

    /// The path rules.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The repository, opened on first use. A failed open is not remembered, so a call
    /// after a fixed configuration (a new grant) or a transient failure tries again.
    pub async fn repository(&self) -> Result<&RepoFiles, OpenError> {
        let (files, _lease) = self
            .repository
            .get_or_try_init(|| async {
                let Some(claim) = self.storage.unresolved_claim() else {
                    return Ok((self.storage.open_files().await?, None));
                };
                let Some(resolver) = &self.resolver else {
                    // Reports the claim as unresolved.
                    return Ok((self.storage.open_files().await?, None));
                };
                let reached = resolver
                    .reach(claim)
                    .await
                    .map_err(|err| OpenError::MountClaim {
                        repo: self.storage.repo_name().to_string(),
                        reason: err.reason,
                    })?;
                let files = self
                    .storage
                    .with_local_path(&reached.dir)
                    .open_files()
                    .await?;
                Ok((files, reached.lease))
            })
            .await?;
        Ok(files)
    }

    /// A progress sink that counts bytes received by `Put`.
    pub fn inbound_progress(&self) -> SharedProgress {
        Arc::new(CountInto {
            counters: self.counters.clone(),
            inbound: true,
        })
    }

    /// A progress sink that counts bytes sent by `Get`.
    pub fn outbound_progress(&self) -> SharedProgress {
        Arc::new(CountInto {
            counters: self.counters.clone(),
            inbound: false,
        })
    }
}

#[derive(Default)]
struct Registry {
    by_token: HashMap<Token, Arc<Grant>>,
    /// Shared by every token of an action, so re-issuing keeps counting.
    by_action: HashMap<String, Arc<Counters>>,
}

/// The live grants of this agent; cheap to clone and share between the runtime and the
/// socket server.
#[derive(Clone, Default)]
pub struct Grants {
    registry: Arc<Mutex<Registry>>,
    resolver: Option<Arc<dyn ClaimResolver>>,
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.lock();
        f.debug_struct("Grants")
            .field("tokens", &registry.by_token.len())
            .field("actions", &registry.by_action.len())
            .finish()
    }
}

impl Grants {
    /// An empty registry.
    pub fn new() -> Grants {
        Grants::default()
    }

    /// An empty registry whose grants reach Mount repositories through `resolver`.
    pub fn with_claim_resolver(resolver: Arc<dyn ClaimResolver>) -> Grants {
        Grants {
            registry: Arc::default(),
            resolver: Some(resolver),
        }
    }

    /// How this registry's grants reach Mount repositories (also used by repository actions
    /// the agent runs itself).
    pub fn claim_resolver(&self) -> Option<Arc<dyn ClaimResolver>> {
        self.resolver.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing in the registry is left half-updated by a panic (every update is a single
        // map operation), so a poisoned lock is still consistent.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a fresh token granting `grant` to `action_id`. Fails only when a prefix of the
    /// grant is not a valid path.
    pub fn issue(&self, action_id: &str, grant: &StorageGrant) -> Result<Token, AccessError> {
        let token = Token::generate();
        self.insert(action_id, token.clone(), grant)?;
        Ok(token)
    }

    /// Puts back a token a restarted agent found in a re-adopted Job, granting `grant` again.
    pub fn reinstate(
        &self,
        action_id: &str,
        token: Token,
        grant: &StorageGrant,
    ) -> Result<(), AccessError> {
        self.insert(action_id, token, grant)
    }

    fn insert(
        &self,
        action_id: &str,
        token: Token,
        grant: &StorageGrant,
    ) -> Result<(), AccessError> {
        let access = Access::new(&grant.read_write_prefix, &grant.read_only_prefixes)?;
        let mut registry = self.lock();
        let counters = registry
            .by_action
            .entry(action_id.to_string())
            .or_default()
            .clone();
        registry.by_token.insert(
            token,
            Arc::new(Grant {
                action_id: action_id.to_string(),
                access,
                storage: GrantStorage::from_grant(grant),
                resolver: self.resolver.clone(),
                repository: OnceCell::new(),
                counters,
            }),
        );
        Ok(())
    }

    /// The grant of a token, if it is live.
    pub fn lookup(&self, token: &str) -> Option<Arc<Grant>> {
        self.lock().by_token.get(&Token(token.to_string())).cloned()
    }

    /// Revokes a token. Returns the action's final counters when this was its last token,
    /// its counters so far when it has others, `None` when the token was not live.
    pub fn revoke(&self, token: &Token) -> Option<Transferred> {
        let mut registry = self.lock();
        let grant = registry.by_token.remove(token)?;
        let transferred = grant.counters.read();
        let others = registry
            .by_token
            .values()
            .any(|g| g.action_id == grant.action_id);
        if !others {
            registry.by_action.remove(&grant.action_id);
        }
        Some(transferred)
    }

    /// Revokes every token of an action (cancelled or finished); returns its final counters.
    pub fn revoke_action(&self, action_id: &str) -> Option<Transferred> {
        let mut registry = self.lock();
        registry.by_token.retain(|_, g| g.action_id != action_id);
        registry.by_action.remove(action_id).map(|c| c.read())
    }

    /// Bytes moved so far by an action with a live token.
    pub fn transferred(&self, action_id: &str) -> Option<Transferred> {
        self.lock().by_action.get(action_id).map(|c| c.read())
    }

    /// Bytes moved so far in both directions (0 for an unknown action): the `Progress` count.
    pub fn bytes(&self, action_id: &str) -> u64 {
        self.transferred(action_id).map_or(0, |t| t.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> StorageGrant {
        StorageGrant {
            repo_name: "repo".into(),
            local_path: "/tmp".into(),
            read_write_prefix: "/ns/b1".into(),
            read_only_prefixes: vec!["/ns".into()],
            ..Default::default()
        }
    }

    #[test]
    fn issued_tokens_are_64_hex_characters_and_distinct() {
        let grants = Grants::new();
        let a = grants.issue("a1", &grant()).expect("issue");
        let b = grants.issue("a1", &grant()).expect("issue");
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.expose()), Some(a.clone()));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let grants = Grants::new();
        let token = grants.issue("a1", &grant()).expect("issue");
        assert!(!format!("{token:?}").contains(token.expose()));
        assert!(!format!("{grants:?}").contains(token.expose()));
        let found = grants.lookup(token.expose()).expect("live");
        assert!(!format!("{found:?}").contains(token.expose()));
    }

    #[test]
    fn a_revoked_token_no_longer_resolves() {
        let grants = Grants::new();
        let token = grants.issue("a1", &grant()).expect("issue");
        assert_eq!(
            grants
                .lookup(token.expose())
                .map(|g| g.action_id().to_string()),
            Some("a1".into())
        );
        assert_eq!(grants.revoke(&token), Some(Transferred::default()));
        assert!(grants.lookup(token.expose()).is_none());
        assert_eq!(grants.revoke(&token), None);
        assert!(grants.lookup("not-a-token").is_none());
    }

    #[test]
    fn counters_are_per_action_and_survive_until_the_last_token_is_revoked() {
        let grants = Grants::new();
        let first = grants.issue("a1", &grant()).expect("issue");
        let second = grants.issue("a1", &grant()).expect("issue");
        let other = grants.issue("a2", &grant()).expect("issue");
        let g1 = grants.lookup(first.expose()).expect("live");
        let g2 = grants.lookup(second.expose()).expect("live");
        g1.inbound_progress().add(100);
        g2.outbound_progress().add(7);
        grants
            .lookup(other.expose())
            .expect("live")
            .inbound_progress()
            .add(1);
        assert_eq!(
            grants.transferred("a1"),
            Some(Transferred {
                bytes_in: 100,
                bytes_out: 7
            })
        );
        assert_eq!(grants.bytes("a1"), 107);
        assert_eq!(grants.bytes("a2"), 1);
        assert_eq!(grants.revoke(&first).map(|t| t.total()), Some(107));
        assert_eq!(grants.bytes("a1"), 107, "a1 still has a live token");
        assert_eq!(grants.revoke(&second).map(|t| t.total()), Some(107));
        assert_eq!(grants.transferred("a1"), None);
        assert_eq!(grants.bytes("unknown"), 0);
    }

    #[test]
    fn revoking_an_action_revokes_all_its_tokens() {
        let grants = Grants::new();
        let a = grants.issue("a1", &grant()).expect("issue");
        let b = grants.issue("a1", &grant()).expect("issue");
        let keep = grants.issue("a2", &grant()).expect("issue");
        assert!(grants.revoke_action("a1").is_some());
        assert!(grants.lookup(a.expose()).is_none());
        assert!(grants.lookup(b.expose()).is_none());
        assert!(grants.lookup(keep.expose()).is_some());
    }

    #[test]
    fn a_reinstated_token_resolves_to_its_action() {
        let grants = Grants::new();
        let token = Token::parse(&"AB".repeat(32)).expect("shape");
        grants
            .reinstate("a9", token.clone(), &grant())
            .expect("reinstate");
        assert_eq!(
            grants
                .lookup(&"ab".repeat(32))
                .map(|g| g.action_id().to_string()),
            Some("a9".into())
        );
        assert!(Token::parse("short").is_none());
        assert!(Token::parse(&"zz".repeat(32)).is_none());
    }

    /// Resolves every claim to one directory, or refuses with a reason; counts live leases.
    struct FixedResolver(Result<PathBuf, String>, Arc<AtomicU64>);

    impl FixedResolver {
        fn new(result: Result<PathBuf, String>) -> FixedResolver {
            FixedResolver(result, Arc::default())
        }
    }

    struct CountedLease(Arc<AtomicU64>);

    impl Drop for CountedLease {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl ClaimResolver for FixedResolver {
        async fn reach(&self, _claim: &MountClaim) -> Result<ReachedClaim, ClaimUnreachable> {
            let dir = self.0.clone().map_err(|reason| ClaimUnreachable {
                reason,
                gone_or_unbound: false,
            })?;
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(ReachedClaim {
                dir,
                lease: Some(Box::new(CountedLease(self.1.clone()))),
            })
        }
    }

    #[tokio::test]
    async fn a_mount_grant_keeps_its_claims_lease_until_it_is_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolver = Arc::new(FixedResolver::new(Ok(dir.path().to_path_buf())));
        let leases = resolver.1.clone();
        let grants = Grants::with_claim_resolver(resolver);
        let token = grants.issue("a1", &mount_grant()).expect("issue");
        let grant = grants.lookup(token.expose()).expect("live");
        grant.repository().await.expect("open");
        grant.repository().await.expect("open again");
        assert_eq!(leases.load(Ordering::SeqCst), 1, "one lease per grant");
        drop(grant);
        assert_eq!(
            leases.load(Ordering::SeqCst),
            1,
            "held while the token is live"
        );
        grants.revoke(&token);
        assert_eq!(leases.load(Ordering::SeqCst), 0, "released with the grant");
    }

    fn mount_grant() -> StorageGrant {
        StorageGrant {
            repo_name: "repo".into(),
            mount_claim: Some(MountClaim {
                namespace: "ns".into(),
                name: "pvc-repo-abc".into(),
            }),
            read_write_prefix: "/ns/b1".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_mount_grant_opens_the_directory_its_claim_resolves_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grants =
            Grants::with_claim_resolver(Arc::new(FixedResolver::new(Ok(dir.path().to_path_buf()))));
        let token = grants.issue("a1", &mount_grant()).expect("issue");
        let grant = grants.lookup(token.expose()).expect("live");
        let files = grant.repository().await.expect("open");
        files
            .put(
                "ns/b1/data",
                std::io::Cursor::new(b"rows".to_vec()),
                None,
                cairn_repo::progress::no_progress(),
            )
            .await
            .expect("put");
        assert_eq!(
            std::fs::read(dir.path().join("ns/b1/data")).expect("written in the claim's dir"),
            b"rows"
        );
    }

    #[tokio::test]
    async fn a_mount_grant_whose_claim_cannot_be_reached_says_why() {
        let grants = Grants::with_claim_resolver(Arc::new(FixedResolver::new(Err(
            "the repository PVC ns/pvc-repo-abc is not bound to a PersistentVolume yet".into(),
        ))));
        let token = grants.issue("a1", &mount_grant()).expect("issue");
        let grant = grants.lookup(token.expose()).expect("live");
        let err = grant.repository().await.expect_err("unreachable");
        assert!(err.to_string().contains("not bound"), "{err}");
        let without = Grants::new();
        let token = without.issue("a1", &mount_grant()).expect("issue");
        let err = without
            .lookup(token.expose())
            .expect("live")
            .repository()
            .await
            .expect_err("no resolver");
        assert!(err.to_string().contains("ns/pvc-repo-abc"), "{err}");
    }

    #[test]
    fn a_grant_with_an_invalid_prefix_is_not_issued() {
        let grants = Grants::new();
        let mut bad = grant();
        bad.read_write_prefix = "/ns/../etc".into();
        assert!(grants.issue("a1", &bad).is_err());
        assert_eq!(grants.transferred("a1"), None);
    }
}
