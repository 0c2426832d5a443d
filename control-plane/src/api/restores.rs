//! `cairn.api.v1.RestoreService` over the Restore CRs (docs/API.md §5).

use cairn_api::Restore;
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::restore_service_server::RestoreService;
use kube::api::{Api, PostParams};
use tonic::{Request, Response, Status};

use super::objects;
use super::restore_view::{is_final, new_restore, request_field, restore};
use super::state::ApiState;
use super::status::{Target, from_kube, invalid_field, invalid_object, required};
use super::watch::{EventStream, Watched, watch_one};

const RESOURCE: &str = "restores";

/// The Restore service.
#[derive(Clone)]
pub struct Restores {
    state: ApiState,
}

impl Restores {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Restores {
        Restores { state }
    }

    fn api(&self, namespace: &str) -> Api<Restore> {
        Api::namespaced(self.state.client.clone(), namespace)
    }
}

fn target<'a>(namespace: &'a str, name: &'a str) -> Target<'a> {
    Target {
        resource: RESOURCE,
        namespace,
        name,
    }
}

#[tonic::async_trait]
impl RestoreService for Restores {
    async fn create_restore(
        &self,
        request: Request<pb::CreateRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        let ns = request.get_ref().namespace.clone();
        let caller = self
            .state
            .allow(&request, "create", RESOURCE, Some(&ns))
            .await?;
        let request = request.into_inner();
        required("name", &request.name)?;
        let spec = request.spec.clone().unwrap_or_default();
        required("spec.backup_name", &spec.backup_name)?;
        required("spec.backup_namespace", &spec.backup_namespace)?;
        // Reading the source Backup through the API needs the right to read it.
        self.state
            .also_allow(&caller, "get", "backups", &spec.backup_namespace)
            .await?;
        let object = new_restore(&request);
        if let Some(invalid) = invalid_object(&self.state.check(&object), request_field) {
            return Err(invalid);
        }
        let created: Restore = serde_json::from_value(object)
            .map_err(|e| invalid_field("spec", format!("the Restore cannot be read: {e}")))?;
        let made = self
            .api(&ns)
            .create(&PostParams::default(), &created)
            .await
            .map_err(|e| from_kube(&e, target(&ns, &request.name)))?;
        Ok(Response::new(restore(&made)))
    }

    async fn get_restore(
        &self,
        request: Request<pb::GetRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "get", RESOURCE, Some(&r.namespace))
            .await?;
        let found = objects::get(&self.api(&r.namespace), target(&r.namespace, &r.name)).await?;
        Ok(Response::new(restore(&found)))
    }

    async fn list_restores(
        &self,
        request: Request<pb::ListRestoresRequest>,
    ) -> Result<Response<pb::ListRestoresResponse>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "list", RESOURCE, Some(&r.namespace))
            .await?;
        let page = objects::list(
            &self.api(&r.namespace),
            target(&r.namespace, ""),
            &r.label_selector,
            r.page_size,
            &r.page_token,
        )
        .await?;
        Ok(Response::new(pb::ListRestoresResponse {
            restores: page.items.iter().map(restore).collect(),
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }

    async fn delete_restore(
        &self,
        request: Request<pb::DeleteRestoreRequest>,
    ) -> Result<Response<pb::DeleteRestoreResponse>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "delete", RESOURCE, Some(&r.namespace))
            .await?;
        let deleted =
            objects::delete(&self.api(&r.namespace), target(&r.namespace, &r.name)).await?;
        Ok(Response::new(pb::DeleteRestoreResponse {
            restore: deleted.as_ref().map(restore),
        }))
    }

    type WatchRestoreStream = EventStream<pb::RestoreEvent>;

    async fn watch_restore(
        &self,
        request: Request<pb::WatchRestoreRequest>,
    ) -> Result<Response<Self::WatchRestoreStream>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "watch", RESOURCE, Some(&r.namespace))
            .await?;
        required("name", &r.name)?;
        let r = request.into_inner();
        let stream = watch_one(
            self.api(&r.namespace),
            r.namespace,
            r.name,
            r.resource_version,
            Watched {
                resource: RESOURCE,
                is_final,
                event: |kind, x, last| pb::RestoreEvent {
                    r#type: kind as i32,
                    restore: Some(restore(x)),
                    r#final: last,
                },
            },
        )
        .await?;
        Ok(Response::new(stream))
    }
}
