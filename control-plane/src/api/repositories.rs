//! `cairn.api.v1.RepositoryService` over the BackupRepo CRs (docs/API.md §7).

use cairn_api::{Backup, BackupRepo};
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::repository_service_server::RepositoryService;
use kube::api::{Api, ListParams};
use tonic::{Request, Response, Status};

use std::collections::HashMap;

use super::objects;
use super::paging::MAX_PAGE_SIZE;
use super::repository_view::{add_usage, repository};
use super::state::ApiState;
use super::status::{Target, from_kube};

const RESOURCE: &str = "backuprepos";

/// The repository service.
#[derive(Clone)]
pub struct Repositories {
    state: ApiState,
}

impl Repositories {
    /// The service over `state`'s cluster.
    pub fn new(state: ApiState) -> Repositories {
        Repositories { state }
    }
}

#[tonic::async_trait]
impl RepositoryService for Repositories {
    async fn list_repositories(
        &self,
        request: Request<pb::ListRepositoriesRequest>,
    ) -> Result<Response<pb::ListRepositoriesResponse>, Status> {
        let r = request.get_ref();
        self.state.allow(&request, "list", RESOURCE, None).await?;
        let target = Target {
            resource: RESOURCE,
            namespace: "",
            name: "",
        };
        let repos: Api<BackupRepo> = Api::all(self.state.client.clone());
        let page = objects::list(
            &repos,
            target,
            &r.label_selector,
            r.page_size,
            &r.page_token,
        )
        .await?;
        // Usage is an aggregate over every namespace's Backups (counts and sizes, no names),
        // read a page at a time so that memory stays bounded.
        let backups: Api<Backup> = Api::all(self.state.client.clone());
        let mut usage = HashMap::new();
        let mut params = ListParams::default().limit(MAX_PAGE_SIZE);
        loop {
            let list = backups.list(&params).await.map_err(|e| {
                from_kube(
                    &e,
                    Target {
                        resource: "backups",
                        namespace: "",
                        name: "",
                    },
                )
            })?;
            add_usage(&mut usage, &list.items);
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => params = params.continue_token(&next),
                None => break,
            }
        }
        Ok(Response::new(pb::ListRepositoriesResponse {
            repositories: page.items.iter().map(|x| repository(x, &usage)).collect(),
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        }))
    }
}
