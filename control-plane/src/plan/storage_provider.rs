//! What happens when a StorageProvider is created or changed, or the CSIDriver it names comes or
//! goes (ARCHITECTURE.md §K5.1). The deprecated `storage.kubeblocks.io` StorageProvider goes
//! through the same planner ([`Observed::legacy`]).
//!
//! # Expected flow
//! 1. Any data-protection finalizer is removed: providers deliberately have none, so uninstalling
//!    cannot hang on them.
//! 2. With `csiDriverName` set, the CSIDriver of that name must exist: then (or without a name)
//!    `phase: Ready` and condition `CSIDriverInstalled` True (`CSIDriverObjectFound`); otherwise
//!    `NotReady` and the condition Unknown (`CheckCSIDriverFailed`) with the lookup's error text,
//!    and the provider is looked at again after `RECHECK` (a CSIDriver event also re-triggers it).
//! 3. The condition keeps its transition time while its status holds; a phase change is
//!    announced by an event.
//!
//! # Departures from KubeBlocks
//! KubeBlocks patches the status only when the phase changes, so a changed error message or a
//! missing condition is never written; Cairn writes whatever differs.

use cairn_api::well_known;
use cairn_api::well_known::conditions::storage_provider::{
    CONDITION_CSI_DRIVER_INSTALLED, REASON_CHECK_CSI_DRIVER_FAILED, REASON_CSI_DRIVER_OBJECT_FOUND,
};
use std::time::Duration;

use cairn_api::storage_provider::{
    LegacyStorageProvider, StorageProvider, StorageProviderPhase, StorageProviderSpec,
    StorageProviderStatus,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::backup_repo::conditions::{self, Status, Update};
use super::intent::{Intent, Plan};

/// How soon a NotReady provider is looked at again.
pub const RECHECK: Duration = Duration::from_secs(30);

/// What the IO shell found when it looked up the CSIDriver named by `csiDriverName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsiDriverLookup {
    /// The CSIDriver exists (or the provider names none).
    Found,
    /// No CSIDriver of that name.
    NotFound,
    /// The lookup itself failed, with this error text.
    Failed(String),
}

/// Everything the StorageProvider planner reads, for either API group.
#[derive(Debug, Clone)]
pub struct Observed {
    pub metadata: ObjectMeta,
    pub spec: StorageProviderSpec,
    pub status: Option<StorageProviderStatus>,
    pub csi_driver: CsiDriverLookup,
}

impl Observed {
    /// A `dataprotection.kubeblocks.io` StorageProvider.
    pub fn current(provider: &StorageProvider, csi_driver: CsiDriverLookup) -> Self {
        Observed {
            metadata: provider.metadata.clone(),
            spec: provider.spec.clone(),
            status: provider.status.clone(),
            csi_driver,
        }
    }

    /// A deprecated `storage.kubeblocks.io` StorageProvider (identical spec and status).
    pub fn legacy(provider: &LegacyStorageProvider, csi_driver: CsiDriverLookup) -> Self {
        Observed {
            metadata: provider.metadata.clone(),
            spec: provider.spec.0.clone(),
            status: provider.status.clone(),
            csi_driver,
        }
    }
}

/// Plans one reconcile of a StorageProvider.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<StorageProviderStatus> {
    let mut intents = Vec::new();
    if o.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER)
    {
        intents.push(Intent::RemoveFinalizer);
    }
    if o.metadata.deletion_timestamp.is_some() {
        return Plan {
            status: None,
            intents,
            requeue: None,
        };
    }
    let driver = o.spec.csi_driver_name.as_deref().filter(|d| !d.is_empty());
    let problem = match (driver, &o.csi_driver) {
        (None, _) | (Some(_), CsiDriverLookup::Found) => None,
        (Some(name), CsiDriverLookup::NotFound) => {
            Some(format!("csidrivers.storage.k8s.io \"{name}\" not found"))
        }
        (Some(_), CsiDriverLookup::Failed(text)) => Some(text.clone()),
    };
    let current = o.status.clone().unwrap_or_default();
    let mut status = current.clone();
    let (phase, update) = match &problem {
        None => (
            StorageProviderPhase::Ready,
            Update {
                type_: CONDITION_CSI_DRIVER_INSTALLED,
                status: Status::True,
                reason: REASON_CSI_DRIVER_OBJECT_FOUND,
                message: String::new(),
            },
        ),
        Some(message) => (
            StorageProviderPhase::NotReady,
            Update {
                type_: CONDITION_CSI_DRIVER_INSTALLED,
                status: Status::Unknown,
                reason: REASON_CHECK_CSI_DRIVER_FAILED,
                message: message.clone(),
            },
        ),
    };
    status.phase = Some(phase);
    conditions::set(
        status.conditions.get_or_insert_with(Vec::new),
        update,
        o.metadata.generation,
        now,
    );
    if current.phase != Some(phase) {
        let name = o.metadata.name.as_deref().unwrap_or_default();
        intents.push(match (&problem, driver) {
            (None, Some(driver)) => Intent::normal(
                REASON_CSI_DRIVER_OBJECT_FOUND,
                format!("storage provider {name} is Ready: CSI driver {driver} is installed"),
            ),
            (None, None) => Intent::normal(
                "StorageProviderReady",
                format!("storage provider {name} is Ready: it needs no CSI driver"),
            ),
            (Some(message), _) => Intent::warning(
                REASON_CHECK_CSI_DRIVER_FAILED,
                format!("storage provider {name} is NotReady: {message}"),
            ),
        });
    }
    Plan {
        status: (status != current).then_some(status),
        intents,
        requeue: problem.is_some().then_some(RECHECK),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::plan::intent::EventType;

    fn now() -> Timestamp {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn later(secs: i64) -> Timestamp {
        now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    }

    fn provider(extra: serde_json::Value) -> StorageProvider {
        let mut value = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "StorageProvider",
            "metadata": {"name": "s3", "generation": 2},
            "spec": {"csiDriverName": "ru.yandex.s3.csi",
                     "datasafedConfigTemplate": "[storage]\ntype = s3\n"}
        });
        json_patch::merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }

    fn condition(
        status: &StorageProviderStatus,
    ) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        conditions::find(
            status.conditions.as_deref().unwrap_or_default(),
            CONDITION_CSI_DRIVER_INSTALLED,
        )
        .unwrap()
    }

    /// Runs the planner and applies its status, as the API server would.
    fn step(o: &mut Observed, at: Timestamp) -> Plan<StorageProviderStatus> {
        let plan = plan(o, at);
        if let Some(status) = &plan.status {
            o.status = Some(status.clone());
        }
        plan
    }

    #[test]
    fn an_installed_csi_driver_makes_the_provider_ready() {
        let plan = plan(
            &Observed::current(&provider(json!({})), CsiDriverLookup::Found),
            now(),
        );
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(StorageProviderPhase::Ready));
        let cond = condition(&status);
        assert_eq!(cond.status, "True");
        assert_eq!(cond.reason, "CSIDriverObjectFound");
        assert_eq!(cond.observed_generation, Some(2));
        assert_eq!(plan.requeue, None);
        assert!(matches!(
            &plan.intents[..],
            [Intent::Event { type_: EventType::Normal, reason, .. }] if reason == "CSIDriverObjectFound"
        ));
    }

    #[test]
    fn a_missing_csi_driver_makes_the_provider_not_ready_with_the_lookup_error() {
        let plan = plan(
            &Observed::current(&provider(json!({})), CsiDriverLookup::NotFound),
            now(),
        );
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(StorageProviderPhase::NotReady));
        let cond = condition(&status);
        assert_eq!(cond.status, "Unknown");
        assert_eq!(cond.reason, "CheckCSIDriverFailed");
        assert_eq!(
            cond.message,
            "csidrivers.storage.k8s.io \"ru.yandex.s3.csi\" not found"
        );
        assert_eq!(plan.requeue, Some(RECHECK));
        assert!(plan.intents.iter().any(|i| matches!(
            i,
            Intent::Event { type_: EventType::Warning, reason, .. } if reason == "CheckCSIDriverFailed"
        )));
    }

    #[test]
    fn a_failed_lookup_is_reported_with_its_text() {
        let plan = plan(
            &Observed::current(
                &provider(json!({})),
                CsiDriverLookup::Failed("connection refused".into()),
            ),
            now(),
        );
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Some(StorageProviderPhase::NotReady));
        assert_eq!(condition(&status).message, "connection refused");
    }

    #[test]
    fn a_provider_without_a_csi_driver_is_ready_whatever_the_lookup_says() {
        let p = provider(json!({"spec": {"csiDriverName": null}}));
        for lookup in [CsiDriverLookup::NotFound, CsiDriverLookup::Found] {
            let status = plan(&Observed::current(&p, lookup), now()).status.unwrap();
            assert_eq!(status.phase, Some(StorageProviderPhase::Ready));
            assert_eq!(condition(&status).reason, "CSIDriverObjectFound");
        }
        let empty = provider(json!({"spec": {"csiDriverName": ""}}));
        let status = plan(&Observed::current(&empty, CsiDriverLookup::NotFound), now())
            .status
            .unwrap();
        assert_eq!(status.phase, Some(StorageProviderPhase::Ready));
    }

    #[test]
    fn the_data_protection_finalizer_is_removed_and_never_added() {
        let with = provider(json!({"metadata": {"finalizers": [well_known::FINALIZER]}}));
        let plan1 = plan(&Observed::current(&with, CsiDriverLookup::Found), now());
        assert_eq!(plan1.intents[0], Intent::RemoveFinalizer);
        let without = provider(json!({}));
        let plan2 = plan(&Observed::current(&without, CsiDriverLookup::Found), now());
        assert!(
            !plan2
                .intents
                .iter()
                .any(|i| matches!(i, Intent::AddFinalizer | Intent::RemoveFinalizer))
        );
    }

    #[test]
    fn a_provider_being_deleted_only_loses_the_finalizer() {
        let p = provider(json!({"metadata": {
            "finalizers": [well_known::FINALIZER], "deletionTimestamp": "2026-11-22T09:00:00Z"}}));
        let plan = plan(&Observed::current(&p, CsiDriverLookup::NotFound), now());
        assert_eq!(plan.status, None);
        assert_eq!(plan.intents, vec![Intent::RemoveFinalizer]);
    }

    #[test]
    fn an_unchanged_provider_writes_nothing_and_says_nothing() {
        let mut o = Observed::current(&provider(json!({})), CsiDriverLookup::Found);
        step(&mut o, now());
        let again = step(&mut o, later(60));
        assert_eq!(again, Plan::nothing());
    }

    #[test]
    fn installing_the_driver_later_turns_the_provider_ready_and_moves_the_transition_time() {
        let mut o = Observed::current(&provider(json!({})), CsiDriverLookup::NotFound);
        step(&mut o, now());
        o.csi_driver = CsiDriverLookup::Found;
        let plan = step(&mut o, later(90));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Some(StorageProviderPhase::Ready));
        let cond = condition(&status);
        assert_eq!(cond.status, "True");
        assert_eq!(cond.message, "");
        assert_eq!(cond.last_transition_time, Time(later(90)));
    }

    #[test]
    fn a_new_error_text_is_written_without_a_new_transition_or_event() {
        let mut o = Observed::current(
            &provider(json!({})),
            CsiDriverLookup::Failed("timeout".into()),
        );
        step(&mut o, now());
        o.csi_driver = CsiDriverLookup::NotFound;
        let plan = step(&mut o, later(30));
        let status = plan.status.clone().unwrap();
        let cond = condition(&status);
        assert_eq!(cond.last_transition_time, Time(now()));
        assert!(cond.message.contains("not found"));
        assert!(plan.intents.is_empty());
        assert_eq!(plan.requeue, Some(RECHECK));
    }

    #[test]
    fn a_deprecated_provider_is_planned_the_same_way() {
        let legacy: LegacyStorageProvider = serde_json::from_value(json!({
            "apiVersion": "storage.kubeblocks.io/v1alpha1",
            "kind": "StorageProvider",
            "metadata": {"name": "minio", "finalizers": [well_known::FINALIZER]},
            "spec": {"csiDriverName": "ru.yandex.s3.csi"}
        }))
        .unwrap();
        let plan = plan(&Observed::legacy(&legacy, CsiDriverLookup::NotFound), now());
        assert_eq!(plan.intents[0], Intent::RemoveFinalizer);
        assert_eq!(
            plan.status.unwrap().phase,
            Some(StorageProviderPhase::NotReady)
        );
    }
}
