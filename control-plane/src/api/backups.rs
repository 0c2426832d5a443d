//! `cairn.api.v1.BackupService` over the Backup CRs (docs/API.md §4): the shared path of
//! [`super::kind`], and CreateBackup's checks against the BackupPolicy.

use cairn_api::{Backup, BackupPolicy};
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::backup_service_server::BackupService;
use kube::api::Api;
use tonic::{Request, Response, Status};

use super::backup_view::new_backup;
use super::kind::Objects;
use super::state::ApiState;
use super::status::{Target, from_kube, invalid_field, invalid_object, request_field, required};
use super::watch::EventStream;

/// The Backup service.
#[derive(Clone)]
pub struct Backups {
    objects: Objects<Backup>,
}

impl Backups {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Backups {
        Backups {
            objects: Objects::new(state),
        }
    }

    /// The checks between objects that `cairnctl validate` runs when the policy is given.
    async fn check_against_policy(&self, backup: &Backup, ns: &str) -> Result<(), Status> {
        let policies: Api<BackupPolicy> = Api::namespaced(self.objects.state.client.clone(), ns);
        let policy_name = &backup.spec.backup_policy_name;
        let policy = policies.get_opt(policy_name).await.map_err(|err| {
            from_kube(
                &err,
                Target {
                    resource: "backuppolicies",
                    namespace: ns,
                    name: policy_name,
                },
            )
        })?;
        let Some(policy) = policy else {
            return Err(invalid_field(
                "spec.backup_policy_name",
                format!("there is no BackupPolicy {policy_name:?} in namespace {ns:?}"),
            ));
        };
        let problems = cairn_api::validate::backup_against_policy(backup, &policy);
        match invalid_object(&problems, request_field) {
            Some(invalid) => Err(invalid),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl BackupService for Backups {
    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        self.objects.allow(&request, "create").await?;
        let request = request.into_inner();
        required("name", &request.name)?;
        let backup = self.objects.checked(new_backup(&request), request_field)?;
        self.check_against_policy(&backup, &request.namespace)
            .await?;
        self.objects.create(&backup).await
    }

    async fn get_backup(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        self.objects.get(request).await
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let page = self.objects.list(request).await?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: page.items,
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        let backup = self.objects.delete(request).await?;
        Ok(Response::new(pb::DeleteBackupResponse { backup }))
    }

    type WatchBackupStream = EventStream<pb::BackupEvent>;

    async fn watch_backup(
        &self,
        request: Request<pb::WatchBackupRequest>,
    ) -> Result<Response<Self::WatchBackupStream>, Status> {
        self.objects.watch(request).await
    }
}
