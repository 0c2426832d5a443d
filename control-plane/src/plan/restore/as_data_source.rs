//! A Restore that is a data source (`prepareDataConfig.dataSourceRef`, ARCHITECTURE.md §K4.6):
//! it is validated like any other Restore, then goes to phase `AsDataSource` and runs nothing
//! itself; the claims whose `spec.dataSourceRef` names it are populated by
//! [`crate::plan::populate`], which writes each through the Restore's prepareData.

use cairn_api::restore::VolumeConfig;

use super::request::Request;
use super::sets::Sets;

/// The field every message names.
pub const FIELD: &str = "spec.prepareDataConfig.dataSourceRef";

/// The Restore's `dataSourceRef`, when it is a data source.
pub fn source(restore: &cairn_api::Restore) -> Option<&VolumeConfig> {
    restore
        .spec
        .prepare_data_config
        .as_ref()
        .and_then(|p| p.data_source_ref.as_ref())
}

/// Where the populated volume is mounted in the prepareData container of set `req`: the
/// `mountPath`, else the mountPath of the backup's volume named `volumeSource`.
pub fn mount_path(req: &Request<'_>, source: &VolumeConfig) -> Result<String, String> {
    if let Some(path) = source.mount_path.clone().filter(|p| !p.is_empty()) {
        return Ok(path);
    }
    let volume = source.volume_source.clone().unwrap_or_default();
    let mounts = req
        .method
        .target_volumes
        .as_ref()
        .and_then(|t| t.volume_mounts.as_ref());
    mounts
        .and_then(|mounts| mounts.iter().find(|m| m.name == volume))
        .map(|m| m.mount_path.clone())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            let known: Vec<String> = mounts
                .iter()
                .flat_map(|m| m.iter())
                .map(|m| format!("{:?}", m.name))
                .collect();
            format!(
                "{FIELD} has no mountPath and its volumeSource {volume:?} is not a volume of backup \"{}\"'s targetVolumes.volumeMounts ({}): set mountPath",
                req.backup_name,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })
}

/// Whether the restore can populate a volume: some set writes data (a volume snapshot, or an
/// ActionSet with `restore.prepareData`), a snapshot names its `volumeSource`, and every
/// prepareData job has a mount path.
pub fn check(sets: &Sets<'_>, source: &VolumeConfig) -> Result<(), String> {
    let mut writes = false;
    for req in sets.prepare_data() {
        if req.is_snapshot() {
            writes = true;
            if source
                .volume_source
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                return Err(format!(
                    "{FIELD}.volumeSource is required: backup \"{}\" is a volume snapshot backup and the populated volume is made from the snapshot of that volume",
                    req.backup_name
                ));
            }
        }
        if req.spec.prepare_data.is_some() {
            writes = true;
            mount_path(req, source)?;
        }
    }
    if writes {
        return Ok(());
    }
    let req = sets.source();
    Err(format!(
        "{FIELD}: backup \"{}\" cannot populate a volume: its ActionSet \"{}\" has no restore.prepareData and it is not a volume snapshot backup",
        req.backup_name,
        req.actionset.metadata.name.as_deref().unwrap_or_default()
    ))
}
