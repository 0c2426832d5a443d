//! Restoring a volume snapshot backup (ARCHITECTURE.md §K4.2a): each claim of
//! `prepareDataConfig` is created with `dataSource` = the VolumeSnapshot the backup took of its
//! `volumeSource` (of its source pod, for strategy All), and the CSI driver fills it. No Job
//! writes data into those claims; the snapshot method's ActionSet may still bring prepareData
//! and postReady actions, which run after.
//!
//! # Expected flow
//! 1. The Restore must be in the backup's namespace: a claim is made only from a snapshot of
//!    its own namespace.
//! 2. For each claim (`volumeClaims`, once; `volumeClaimsTemplate`, per instance): its
//!    `volumeSource` names the backed-up volume; the snapshot is KubeBlocks' legacy
//!    `<backup>-<volumeSource>` if it exists, else the one the backup recorded in
//!    `status.actions[].volumeSnapshots` for that volume and pod.
//! 3. The snapshot must exist, not be being deleted, and be `readyToUse`; the claim must ask
//!    for at least its `restoreSize` (a claim asking for nothing gets the restore size).
//! 4. A missing claim is created (event `CreateVolumeClaimFromSnapshot`); an existing one must
//!    have been made from that snapshot. The set goes on once every claim exists.
//!
//! Every failure names the claim, the volume and the snapshot. KubeBlocks swallows these errors
//! and waits; Cairn fails the Restore with them, as the API reference's "clear error" asks.

use cairn_api::restore::{PrepareDataConfig, RestoreVolumeClaim};
use cairn_api::well_known::conditions::restore::{CONDITION_PREPARE_DATA, REASON_PROCESSING};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::json;

use cairn_api::backup::VolumeSnapshotCopy;
use cairn_api::restore::RestoreStage;
use cairn_api::well_known;

use super::StageResult;
use super::conditions;
use super::prepare::{claim_object, instances, placement};
use super::work::{Outcome, Run, Work};
use crate::plan::action::{MovedVolume, VolumeMovement, Workload};
use crate::plan::backup::snapshot::{DEFAULT_TIMEOUT, quantity_bytes};
use crate::plan::intent::Intent;

/// The prepareData action that fills a claim from a repository copy (§K4.2a).
pub const COPY_ACTION: &str = "restoreVolumeData";

/// The API group of VolumeSnapshots, as a claim's `dataSource.apiGroup` names it.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
/// The kind of a claim's `dataSource` that restores a snapshot.
pub const SNAPSHOT_KIND: &str = "VolumeSnapshot";

/// A VolumeSnapshot of the Restore's namespace, as far as the planner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSnapshot {
    pub name: String,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.restoreSize` (a quantity), empty when not reported.
    pub restore_size: String,
    /// `status.error.message`, empty when none.
    pub error: String,
    /// It has a deletion timestamp.
    pub deleting: bool,
}

impl VolumeSnapshot {
    /// Reads a `snapshot.storage.k8s.io/v1` VolumeSnapshot object.
    pub fn from_object(object: &serde_json::Value) -> VolumeSnapshot {
        let text = |pointer: &str| match object.pointer(pointer) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        VolumeSnapshot {
            name: text("/metadata/name"),
            ready: object
                .pointer("/status/readyToUse")
                .and_then(serde_json::Value::as_bool)
                == Some(true),
            restore_size: text("/status/restoreSize"),
            error: text("/status/error/message"),
            deleting: object
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null()),
        }
    }
}

/// One claim to make from a snapshot.
struct Wanted<'a> {
    claim: String,
    spec: &'a RestoreVolumeClaim,
    /// The source pod (strategy All).
    source: Option<String>,
}

/// Makes the claims of the snapshot set `run.req` from its snapshots: `Done` once every claim
/// exists, `Running` while some are being created, `Failed` with what is wrong.
pub fn claims(run: &mut Run<'_>, config: &PrepareDataConfig) -> StageResult {
    match plan_claims(run, config) {
        Ok(true) => StageResult::Done,
        Ok(false) => {
            let message = format!(
                "creating the volume claims from the volume snapshots of backup \"{}\"",
                run.req.backup_name
            );
            let now = run.now;
            conditions::set(
                &mut run.status,
                CONDITION_PREPARE_DATA,
                REASON_PROCESSING,
                &message,
                now,
            );
            run.requeue_within(run.o.settings.wait_requeue);
            StageResult::Running
        }
        Err(message) => StageResult::Failed(message),
    }
}

/// `Ok(true)` when every claim exists, `Ok(false)` after asking to create the missing ones.
fn plan_claims(run: &mut Run<'_>, config: &PrepareDataConfig) -> Result<bool, String> {
    let req = run.req;
    let o = run.o;
    let namespace = o.restore.metadata.namespace.clone().unwrap_or_default();
    let backup_namespace = req.backup.metadata.namespace.clone().unwrap_or_default();
    if namespace != backup_namespace {
        return Err(format!(
            "backup \"{}\" is a volume snapshot backup whose VolumeSnapshots are in namespace {backup_namespace:?}, and a volume claim can only be made from a snapshot in its own namespace: restore it with a Restore in namespace {backup_namespace:?}, not {namespace:?}",
            req.backup_name
        ));
    }
    let mut wanted = Vec::new();
    let instances = instances(run, config)?;
    // `volumeClaims` are shared by every instance: made once, from the first one's source.
    if let Some(first) = instances.first() {
        for claim in config.volume_claims.iter().flatten() {
            wanted.push(Wanted {
                claim: claim.metadata.name.clone().unwrap_or_default(),
                spec: claim,
                source: first.source.clone(),
            });
        }
    }
    let templates = config
        .volume_claims_template
        .as_ref()
        .map(|t| t.templates.as_slice())
        .unwrap_or_default();
    for instance in &instances {
        for tpl in templates {
            let name = tpl.metadata.name.clone().unwrap_or_default();
            wanted.push(Wanted {
                claim: instance.claim_name(&name),
                spec: tpl,
                source: instance.source.clone(),
            });
        }
    }
    let mut all_exist = true;
    let mut from_copies = Vec::new();
    for want in &wanted {
        let existing = o
            .claims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(want.claim.as_str()));
        let (volume, snapshot) = source_snapshot(run, want)?;
        // A claim is restored from the repository copy when its snapshot cannot be used
        // (§K2.5a), or when it was already made empty for that (a restarted restore).
        if let Some(copy) = recorded_copy(run, want, &volume, &snapshot) {
            let made_for_copy = existing.is_some_and(|c| made_from_copy(c).is_some());
            let usable = snapshot_usable(run, &snapshot);
            if made_for_copy || (!usable && existing.is_none()) {
                from_copies.push(copy_work(run, config, want, &volume, copy, &namespace)?);
                continue;
            }
        }
        if let Some(existing) = existing {
            check_existing(existing, want, &volume, &snapshot, &namespace)?;
            // Once bound, the claim holds its data whatever becomes of the snapshot.
            if bound(existing) {
                continue;
            }
        }
        let restore_size = check_snapshot(run, want, &volume, &snapshot, &namespace)?;
        if existing.is_some() {
            continue;
        }
        all_exist = false;
        let mut object = claim_object(want.spec, &want.claim, &namespace);
        object["spec"]["dataSource"] = json!({
            "apiGroup": SNAPSHOT_GROUP,
            "kind": SNAPSHOT_KIND,
            "name": snapshot,
        });
        if requested(want.spec).is_none() && !restore_size.is_empty() {
            object["spec"]["resources"]["requests"]["storage"] = json!(restore_size);
        }
        run.intents.push(Intent::Create { object });
        run.intents.push(Intent::normal(
            "CreateVolumeClaimFromSnapshot",
            format!(
                "creating volume claim {namespace}/{} from VolumeSnapshot {snapshot} (volume \"{volume}\" of backup \"{}\")",
                want.claim, req.backup_name
            ),
        ));
    }
    let mut copies_done = true;
    for work in &from_copies {
        match run.advance(work) {
            Outcome::Done { .. } => {}
            Outcome::Failed => {
                return Err(format!(
                    "restoring {} from the repository copy of backup \"{}\" failed, more information can be found in status.actions.prepareData",
                    work.object_key, req.backup_name
                ));
            }
            Outcome::Running | Outcome::Unplaced => copies_done = false,
        }
    }
    Ok(all_exist && copies_done)
}

/// The repository copy the backup recorded of `snapshot` (volume `volume`), for the claim's
/// source pod (strategy All) or any pod of the target.
fn recorded_copy<'r>(
    run: &'r Run<'_>,
    want: &Wanted<'_>,
    volume: &str,
    snapshot: &str,
) -> Option<&'r VolumeSnapshotCopy> {
    let pods = run.req.source_pods();
    run.req
        .backup
        .status
        .as_ref()?
        .volume_snapshot_copies
        .iter()
        .flatten()
        .filter(|c| c.volume_name == volume && !c.snapshot_id.is_empty())
        .filter(|c| {
            let pod = c.target_pod_name.as_deref().unwrap_or_default();
            match want.source.as_deref() {
                Some(source) => pod == source,
                None => pods.is_empty() || pods.iter().any(|p| p == pod),
            }
        })
        .find(|c| c.volume_snapshot_name == snapshot)
}

/// Whether the snapshot exists, is not being deleted and is ready to use.
fn snapshot_usable(run: &Run<'_>, snapshot: &str) -> bool {
    run.o
        .snapshots
        .iter()
        .any(|s| s.name == snapshot && s.ready && !s.deleting)
}

/// The repository path an existing claim was made empty for.
fn made_from_copy(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(well_known::annotation::RESTORED_FROM_COPY)
        .map(String::as_str)
}

/// The action restoring `copy` into the claim of `want`, which it creates empty first.
fn copy_work(
    run: &Run<'_>,
    config: &PrepareDataConfig,
    want: &Wanted<'_>,
    volume: &str,
    copy: &VolumeSnapshotCopy,
    namespace: &str,
) -> Result<Work, String> {
    let what = format!(
        "the repository copy {} of VolumeSnapshot {} (volume \"{volume}\" of backup \"{}\", for volume claim \"{}\")",
        copy.repository_path, copy.volume_snapshot_name, run.req.backup_name, want.claim
    );
    if let Some(existing) = run
        .o
        .claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(want.claim.as_str()))
        && made_from_copy(existing) != Some(copy.repository_path.as_str())
    {
        return Err(format!(
            "volume claim {namespace}/{} already exists and was not made for {what}",
            want.claim
        ));
    }
    let size = copy.size.clone().unwrap_or_default();
    if let (Some(asked), Some(bytes)) = (requested(want.spec), quantity_bytes(&size)) {
        let asked_bytes = quantity_bytes(&asked).unwrap_or(0);
        if asked_bytes < bytes {
            return Err(format!(
                "volume claim \"{}\" requests {asked} of storage, less than the size {size} of {what}",
                want.claim
            ));
        }
    }
    let mut claim = claim_object(want.spec, &want.claim, namespace);
    claim["metadata"]["annotations"][well_known::annotation::RESTORED_FROM_COPY] =
        json!(copy.repository_path);
    if requested(want.spec).is_none() && !size.is_empty() {
        claim["spec"]["resources"]["requests"]["storage"] = json!(size);
    }
    let size_bytes = quantity_bytes(&size)
        .and_then(|b| u64::try_from(b).ok())
        .unwrap_or(0);
    let timeout = u32::try_from(DEFAULT_TIMEOUT.as_secs()).unwrap_or(u32::MAX);
    Ok(Work {
        stage: RestoreStage::PrepareData,
        name: COPY_ACTION.into(),
        object_key: format!("PersistentVolumeClaim/{}", want.claim),
        placement: placement(run, config, std::slice::from_ref(&want.claim)),
        kind: Workload::VolumeMove(VolumeMovement {
            to_repository: false,
            volumes: vec![MovedVolume {
                volume_name: volume.to_string(),
                claim: claim.clone(),
                repository_path: copy.repository_path.clone(),
                lineage: String::new(),
                snapshot_id: copy.snapshot_id.clone(),
                size_bytes,
            }],
            timeout_seconds: timeout,
        }),
        on_error: cairn_api::action::ActionErrorMode::Fail,
        pod: None,
        claims: vec![claim],
    })
}

/// The name of the snapshot backup `run.req` took of `volume` (for strategy Any, of any of its
/// pods), for a claim named `claim`; a claim populated from a snapshot backup is made from it
/// (ARCHITECTURE.md §K4.6).
pub fn snapshot_of_volume(run: &Run<'_>, claim: &str, volume: &str) -> Result<String, String> {
    let spec = RestoreVolumeClaim {
        volume_config: cairn_api::restore::VolumeConfig {
            volume_source: Some(volume.to_string()),
            mount_path: None,
        },
        ..Default::default()
    };
    let want = Wanted {
        claim: claim.to_string(),
        spec: &spec,
        source: None,
    };
    let (_, name) = source_snapshot(run, &want)?;
    let found = run.o.snapshots.iter().find(|s| s.name == name);
    match found {
        Some(s) if s.ready && !s.deleting => Ok(name),
        Some(_) => Err(format!(
            "VolumeSnapshot {name} of backup \"{}\" is not ready to use or is being deleted",
            run.req.backup_name
        )),
        None => Err(format!(
            "VolumeSnapshot {name} of backup \"{}\" (volume \"{volume}\") not found",
            run.req.backup_name
        )),
    }
}

/// The volume a claim restores and the name of the snapshot of it.
fn source_snapshot(run: &Run<'_>, want: &Wanted<'_>) -> Result<(String, String), String> {
    let req = run.req;
    let volume = want
        .spec
        .volume_config
        .volume_source
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!(
                "volume claim \"{}\" has no volumeSource: restoring volume snapshot backup \"{}\" needs the backed-up volume each claim is made from ({})",
                want.claim,
                req.backup_name,
                recorded_volumes(run, want.source.as_deref()).join(", ")
            )
        })?;
    // KubeBlocks' legacy name first.
    let legacy = format!("{}-{volume}", req.backup_name);
    if run.o.snapshots.iter().any(|s| s.name == legacy) {
        return Ok((volume, legacy));
    }
    let found = recorded(run, want.source.as_deref())
        .find(|(v, _)| *v == volume)
        .map(|(_, name)| name.to_string());
    match found {
        Some(name) => Ok((volume, name)),
        None => {
            let of_pod = want
                .source
                .as_deref()
                .map(|p| format!(" of pod \"{p}\""))
                .unwrap_or_default();
            let volumes = recorded_volumes(run, want.source.as_deref());
            let took = if volumes.is_empty() {
                "it recorded no volume snapshot".to_string()
            } else {
                format!("it has snapshots of {}", volumes.join(", "))
            };
            Err(format!(
                "volume claim \"{}\": backup \"{}\" has no volume snapshot of volume \"{volume}\"{of_pod} (the claim's volumeSource); {took}",
                want.claim, req.backup_name
            ))
        }
    }
}

/// The (volume, snapshot) pairs the backup recorded for `source` (strategy All), or for any
/// pod of its target (strategy Any).
fn recorded<'r>(
    run: &'r Run<'_>,
    source: Option<&'r str>,
) -> impl Iterator<Item = (&'r str, &'r str)> {
    let pods = run.req.source_pods();
    run.req
        .backup
        .status
        .iter()
        .flat_map(|s| s.actions.iter().flatten())
        .filter(move |a| {
            let pod = a.target_pod_name.as_deref().unwrap_or_default();
            match source {
                Some(source) => pod == source,
                None => pods.is_empty() || pods.iter().any(|p| p == pod),
            }
        })
        .flat_map(|a| a.volume_snapshots.iter().flatten())
        .filter_map(|s| Some((s.volume_name.as_deref()?, s.name.as_deref()?)))
}

/// The volumes the backup snapshotted, quoted, for messages.
fn recorded_volumes(run: &Run<'_>, source: Option<&str>) -> Vec<String> {
    let mut volumes: Vec<String> = recorded(run, source)
        .map(|(v, _)| format!("\"{v}\""))
        .collect();
    volumes.sort();
    volumes.dedup();
    volumes
}

/// The snapshot must exist, not be being deleted, be ready, and fit the claim; returns its
/// restore size.
fn check_snapshot(
    run: &Run<'_>,
    want: &Wanted<'_>,
    volume: &str,
    snapshot: &str,
    namespace: &str,
) -> Result<String, String> {
    let what = format!(
        "VolumeSnapshot {namespace}/{snapshot} (volume \"{volume}\" of backup \"{}\", for volume claim \"{}\")",
        run.req.backup_name, want.claim
    );
    let found = run
        .o
        .snapshots
        .iter()
        .find(|s| s.name == snapshot)
        .ok_or_else(|| format!("{what} not found"))?;
    if found.deleting {
        return Err(format!("{what} is being deleted"));
    }
    if !found.ready {
        let error = if found.error.is_empty() {
            String::new()
        } else {
            format!(": {}", found.error)
        };
        return Err(format!("{what} is not ready to use{error}"));
    }
    if let (Some(asked), Some(size)) = (requested(want.spec), quantity_bytes(&found.restore_size)) {
        let asked_bytes = quantity_bytes(&asked).unwrap_or(0);
        if asked_bytes < size {
            return Err(format!(
                "volume claim \"{}\" requests {asked} of storage, less than the restore size {} of {what}",
                want.claim, found.restore_size
            ));
        }
    }
    Ok(found.restore_size.clone())
}

/// An existing claim must have been made from the snapshot.
fn check_existing(
    existing: &PersistentVolumeClaim,
    want: &Wanted<'_>,
    volume: &str,
    snapshot: &str,
    namespace: &str,
) -> Result<(), String> {
    let spec = existing.spec.as_ref();
    let from = spec
        .and_then(|s| s.data_source.as_ref())
        .map(|d| (d.kind.as_str(), d.name.as_str()))
        .or_else(|| {
            spec.and_then(|s| s.data_source_ref.as_ref())
                .map(|d| (d.kind.as_str(), d.name.as_str()))
        });
    if from == Some((SNAPSHOT_KIND, snapshot)) {
        return Ok(());
    }
    let has = match from {
        Some((kind, name)) => format!("its dataSource is {kind} {name}"),
        None => "it has no dataSource".to_string(),
    };
    Err(format!(
        "volume claim {namespace}/{} already exists and was not made from VolumeSnapshot {snapshot} (volume \"{volume}\"): {has}. A snapshot restore only fills the claims it creates: delete the claim or restore into another name",
        want.claim
    ))
}

fn bound(claim: &PersistentVolumeClaim) -> bool {
    claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// The claim's `resources.requests.storage`, if any.
fn requested(claim: &RestoreVolumeClaim) -> Option<String> {
    claim
        .volume_claim_spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .filter(|q| !q.is_empty())
}
