//! `cairn.api.v1.ScheduleService` over the BackupSchedule CRs (docs/API.md §6).

use cairn_api::BackupSchedule;
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::schedule_service_server::ScheduleService;
use kube::api::{Patch, PatchParams};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::kind::{Kind as _, Objects};
use super::objects;
use super::schedule_view::find_entry;
use super::state::ApiState;
use super::status::{from_kube, required};

/// The schedule service.
#[derive(Clone)]
pub struct Schedules {
    objects: Objects<BackupSchedule>,
}

impl Schedules {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Schedules {
        Schedules {
            objects: Objects::new(state),
        }
    }

    /// Sets `enabled` of one entry with a JSON patch guarded by the resourceVersion read.
    async fn set_enabled(
        &self,
        request: Request<pb::SetScheduleEntryRequest>,
        enabled: bool,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.objects.allow(&request, "patch").await?;
        let r = request.get_ref();
        required("entry", &r.entry)?;
        let target = self.objects.target(&r.namespace, &r.name);
        let api = self.objects.api(&r.namespace);
        let current = objects::get(&api, target).await?;
        let index = find_entry(&current, &r.entry).map_err(|entries| {
            let message = format!(
                "backupschedules {}/{} has no entry {:?} (its entries: {})",
                r.namespace,
                r.name,
                r.entry,
                entries.join(", ")
            );
            Status::with_error_details(
                tonic::Code::NotFound,
                message.clone(),
                ErrorDetails::with_resource_info(
                    "backupschedules/entry",
                    &r.entry,
                    format!("{}/{}", r.namespace, r.name),
                    message,
                ),
            )
        })?;
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": version },
            { "op": "add", "path": format!("/spec/schedules/{index}/enabled"), "value": enabled },
        ]))
        .map_err(|e| Status::internal(format!("building the patch: {e}")))?;
        let patched = api
            .patch(&r.name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| match &e {
                // A failed `test` is a 422 from a changed resourceVersion: a concurrent update.
                kube::Error::Api(s) if s.code == 422 || s.is_conflict() => {
                    Status::aborted(format!(
                        "backupschedules {}/{} changed concurrently, retry",
                        r.namespace, r.name
                    ))
                }
                _ => from_kube(&e, target),
            })?;
        Ok(Response::new(patched.message()))
    }
}

#[tonic::async_trait]
impl ScheduleService for Schedules {
    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let page = self.objects.list(request).await?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: page.items,
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.objects.get(request).await
    }

    async fn enable_schedule_entry(
        &self,
        request: Request<pb::SetScheduleEntryRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.set_enabled(request, true).await
    }

    async fn disable_schedule_entry(
        &self,
        request: Request<pb::SetScheduleEntryRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.set_enabled(request, false).await
    }
}
