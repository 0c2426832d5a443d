//! The IO shell: reads what planners need (`observe`), carries out their intents (`execute`),
//! and holds what reconcilers share (`Context`). No decision lives here.

pub mod agent_view;
pub mod cache;
pub mod events;
pub mod execute;
pub mod observe;
#[cfg(test)]
pub mod test_kube;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Reporter;

use crate::dispatch::Dispatcher;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::plan::AgentView;
use crate::plan::backup::repo::RepoAccess;

/// Knobs of the shell.
#[derive(Debug, Clone)]
pub struct ShellSettings {
    /// How long a node may be without an agent before its actions fail.
    pub agent_grace: Duration,
    /// The control plane's namespace (where derived CSI Secrets and Mount pre-checks live).
    pub namespace: String,
    /// Backup planner knobs.
    pub backup: crate::plan::backup::Settings,
}

/// [`Context::windows_may_exist`]: not computed yet, no Continuous backup, some.
const WINDOWS_UNKNOWN: u8 = 0;
const WINDOWS_NONE: u8 = 1;
const WINDOWS_SOME: u8 = 2;

/// What every reconciler shares.
pub struct Context {
    pub client: kube::Client,
    /// Hands actions to the agents and reads their reports back.
    pub dispatcher: Arc<dyn Dispatcher>,
    /// Whether this replica leads (only the leader carries out plans).
    pub leadership: Leadership,
    /// Events about the reconciled objects.
    pub events: events::Events,
    pub metrics: Arc<Metrics>,
    pub settings: ShellSettings,
    /// What the planners read, from watches (`observe` reads these, never a LIST).
    pub caches: cache::Caches,
    /// Rendered repository access by repo name (written by the BackupRepo reconciler; holds
    /// credentials, so it lives only in memory and goes only to agents).
    repo_access: RwLock<BTreeMap<String, RepoAccess>>,
    /// Whether a Continuous backup was found when the recoverability windows were last
    /// computed ([`WINDOWS_UNKNOWN`] before the first time); see [`Context::windows_may_exist`].
    windows_held: AtomicU8,
}

impl Context {
    /// A context for reconcilers talking to `client`, and to agents through `dispatcher`
    /// while `leadership` says this replica leads.
    pub fn new(
        client: kube::Client,
        dispatcher: Arc<dyn Dispatcher>,
        leadership: Leadership,
        metrics: Arc<Metrics>,
        settings: ShellSettings,
        caches: cache::Caches,
    ) -> Context {
        let reporter = Reporter {
            controller: "cairn-control-plane".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            events: events::Events::new(client.clone(), reporter),
            client,
            dispatcher,
            leadership,
            metrics,
            settings,
            caches,
            repo_access: RwLock::new(BTreeMap::new()),
            windows_held: AtomicU8::new(WINDOWS_UNKNOWN),
        }
    }

    /// The agents' reports and sessions now.
    pub fn agent_view(&self) -> AgentView {
        agent_view::from_snapshot(self.dispatcher.snapshot(), self.settings.agent_grace)
    }

    /// The rendered access of a repository, if its reconciler has produced one.
    pub fn repo_access(&self, repo: &str) -> Option<RepoAccess> {
        self.repo_access
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(repo)
            .cloned()
    }

    /// Records (or, with `None`, forgets) a repository's rendered access.
    pub fn set_repo_access(&self, repo: &str, access: Option<RepoAccess>) {
        let mut map = self
            .repo_access
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match access {
            Some(access) => map.insert(repo.to_string(), access),
            None => map.remove(repo),
        };
    }

    /// Whether recoverability windows may exist: some namespace held a Continuous backup when
    /// they were last computed, or they have not been computed yet. A new Continuous backup
    /// computes them again (its own reconcile), so one is never missed.
    pub fn windows_may_exist(&self) -> bool {
        self.windows_held.load(Ordering::Relaxed) != WINDOWS_NONE
    }

    /// Records whether this computation of the windows found a Continuous backup.
    pub fn holding_windows(&self, any: bool) {
        let held = if any { WINDOWS_SOME } else { WINDOWS_NONE };
        self.windows_held.store(held, Ordering::Relaxed);
    }

    /// The object an action belongs to: from the dispatched action while it is wanted, else
    /// from the agent's report (so also after a restart or a change of leader). Nothing is
    /// kept once the action is acknowledged or its owner is gone.
    pub fn owner_of(&self, action_id: &str) -> Option<ObjectReference> {
        self.dispatcher
            .owner_of(action_id)
            .map(|owner| ObjectReference {
                api_version: Some(owner.api_version).filter(|v| !v.is_empty()),
                kind: Some(owner.kind),
                namespace: Some(owner.namespace).filter(|ns| !ns.is_empty()),
                name: Some(owner.name),
                uid: Some(owner.uid).filter(|uid| !uid.is_empty()),
                ..ObjectReference::default()
            })
    }
}

/// An error with its whole cause chain, for a log line: `a: b: c`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
