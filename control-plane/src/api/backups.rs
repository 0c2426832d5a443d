//! `cairn.api.v1.BackupService` over the Backup CRs (docs/API.md §4).

use cairn_api::{Backup, BackupPolicy};
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::backup_service_server::BackupService;
use kube::api::{Api, PostParams};
use tonic::{Request, Response, Status};

use super::backup_view::{backup, is_final, new_backup};
use super::objects;
use super::state::ApiState;
use super::status::{Target, from_kube, invalid_field, invalid_object, request_field, required};
use super::watch::{EventStream, Watched, watch_one};

const RESOURCE: &str = "backups";

/// The Backup service.
#[derive(Clone)]
pub struct Backups {
    state: ApiState,
}

impl Backups {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Backups {
        Backups { state }
    }

    fn api(&self, namespace: &str) -> Api<Backup> {
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
impl BackupService for Backups {
    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let ns = request.get_ref().namespace.clone();
        self.state
            .allow(&request, "create", RESOURCE, Some(&ns))
            .await?;
        let request = request.into_inner();
        required("name", &request.name)?;
        let object = new_backup(&request);
        if let Some(invalid) = invalid_object(&self.state.check(&object), request_field) {
            return Err(invalid);
        }
        let created: Backup = serde_json::from_value(object)
            .map_err(|e| invalid_field("spec", format!("the Backup cannot be read: {e}")))?;
        // The checks between objects that `cairnctl validate` runs when the policy is given.
        let policies: Api<BackupPolicy> = Api::namespaced(self.state.client.clone(), &ns);
        let policy_name = &created.spec.backup_policy_name;
        match policies.get_opt(policy_name).await {
            Ok(Some(policy)) => {
                let problems = cairn_api::validate::backup_against_policy(&created, &policy);
                if let Some(invalid) = invalid_object(&problems, request_field) {
                    return Err(invalid);
                }
            }
            Ok(None) => {
                return Err(invalid_field(
                    "spec.backup_policy_name",
                    format!("there is no BackupPolicy {policy_name:?} in namespace {ns:?}"),
                ));
            }
            Err(err) => {
                return Err(from_kube(
                    &err,
                    Target {
                        resource: "backuppolicies",
                        namespace: &ns,
                        name: policy_name,
                    },
                ));
            }
        }
        let made = self
            .api(&ns)
            .create(&PostParams::default(), &created)
            .await
            .map_err(|e| from_kube(&e, target(&ns, &request.name)))?;
        Ok(Response::new(backup(&made)))
    }

    async fn get_backup(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "get", RESOURCE, Some(&r.namespace))
            .await?;
        let found = objects::get(&self.api(&r.namespace), target(&r.namespace, &r.name)).await?;
        Ok(Response::new(backup(&found)))
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
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
        Ok(Response::new(pb::ListBackupsResponse {
            backups: page.items.iter().map(backup).collect(),
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        let r = request.get_ref();
        self.state
            .allow(&request, "delete", RESOURCE, Some(&r.namespace))
            .await?;
        let deleted =
            objects::delete(&self.api(&r.namespace), target(&r.namespace, &r.name)).await?;
        Ok(Response::new(pb::DeleteBackupResponse {
            backup: deleted.as_ref().map(backup),
        }))
    }

    type WatchBackupStream = EventStream<pb::BackupEvent>;

    async fn watch_backup(
        &self,
        request: Request<pb::WatchBackupRequest>,
    ) -> Result<Response<Self::WatchBackupStream>, Status> {
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
                event: |kind, b, last| pb::BackupEvent {
                    r#type: kind as i32,
                    backup: Some(backup(b)),
                    r#final: last,
                },
            },
        )
        .await?;
        Ok(Response::new(stream))
    }
}
