//! `cairn.api.v1.RestoreService` over the Restore CRs (docs/API.md §5): the shared path of
//! [`super::kind`], and CreateRestore's right to read the source Backup.

use cairn_api::Restore;
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::restore_service_server::RestoreService;
use tonic::{Request, Response, Status};

use super::kind::Objects;
use super::restore_view::{new_restore, request_field};
use super::state::ApiState;
use super::status::required;
use super::watch::EventStream;

/// The Restore service.
#[derive(Clone)]
pub struct Restores {
    objects: Objects<Restore>,
}

impl Restores {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Restores {
        Restores {
            objects: Objects::new(state),
        }
    }
}

#[tonic::async_trait]
impl RestoreService for Restores {
    async fn create_restore(
        &self,
        request: Request<pb::CreateRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        let caller = self.objects.allow(&request, "create").await?;
        let request = request.into_inner();
        required("name", &request.name)?;
        let spec = request.spec.clone().unwrap_or_default();
        required("spec.backup_name", &spec.backup_name)?;
        required("spec.backup_namespace", &spec.backup_namespace)?;
        // Reading the source Backup through the API needs the right to read it.
        self.objects
            .state
            .also_allow(&caller, "get", "backups", &spec.backup_namespace)
            .await?;
        let restore = self.objects.checked(new_restore(&request), request_field)?;
        self.objects.create(&restore).await
    }

    async fn get_restore(
        &self,
        request: Request<pb::GetRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        self.objects.get(request).await
    }

    async fn list_restores(
        &self,
        request: Request<pb::ListRestoresRequest>,
    ) -> Result<Response<pb::ListRestoresResponse>, Status> {
        let page = self.objects.list(request).await?;
        Ok(Response::new(pb::ListRestoresResponse {
            restores: page.items,
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }

    async fn delete_restore(
        &self,
        request: Request<pb::DeleteRestoreRequest>,
    ) -> Result<Response<pb::DeleteRestoreResponse>, Status> {
        let restore = self.objects.delete(request).await?;
        Ok(Response::new(pb::DeleteRestoreResponse { restore }))
    }

    type WatchRestoreStream = EventStream<pb::RestoreEvent>;

    async fn watch_restore(
        &self,
        request: Request<pb::WatchRestoreRequest>,
    ) -> Result<Response<Self::WatchRestoreStream>, Status> {
        self.objects.watch(request).await
    }
}
