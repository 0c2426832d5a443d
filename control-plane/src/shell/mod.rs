//! The IO shell: reads what planners need (`observe`), carries out their intents (`execute`),
//! and holds what reconcilers share (`Context`). No decision lives here.

pub mod agent_view;
pub mod cache;
pub mod execute;
pub mod observe;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Recorder, Reporter};

use crate::grpc::hub::AgentHub;
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

/// What every reconciler shares.
pub struct Context {
    pub client: kube::Client,
    pub hub: AgentHub,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: ShellSettings,
    /// What the planners read, from watches (`observe` reads these, never a LIST).
    pub caches: cache::Caches,
    /// Rendered repository access by repo name (written by the BackupRepo reconciler; holds
    /// credentials, so it lives only in memory and goes only to agents).
    repo_access: RwLock<BTreeMap<String, RepoAccess>>,
    /// Owner of every dispatched action, to route agent progress to its reconciler.
    owners: Mutex<HashMap<String, ObjectReference>>,
}

impl Context {
    /// A context for reconcilers talking to `client` and `hub`.
    pub fn new(
        client: kube::Client,
        hub: AgentHub,
        metrics: Arc<Metrics>,
        settings: ShellSettings,
        caches: cache::Caches,
    ) -> Context {
        let reporter = Reporter {
            controller: "cairn-control-plane".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            hub,
            metrics,
            settings,
            caches,
            repo_access: RwLock::new(BTreeMap::new()),
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// The agents' reports and sessions now.
    pub fn agent_view(&self) -> AgentView {
        agent_view::from_snapshot(self.hub.snapshot(), self.settings.agent_grace)
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

    /// Remembers which object an action belongs to.
    pub fn remember_owner(&self, action_id: &str, owner: &ObjectReference) {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(action_id.to_string(), owner.clone());
    }

    /// The object an action belongs to, when it was dispatched by this process.
    pub fn owner_of(&self, action_id: &str) -> Option<ObjectReference> {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(action_id)
            .cloned()
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
