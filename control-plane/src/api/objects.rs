//! The calls every kind shares: get, list a page, delete, with the API's errors.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams};
use serde::de::DeserializeOwned;
use tonic::Status;

use super::paging::{list_error, list_params};
use super::status::{Target, from_kube, required};

/// One page of a list.
pub struct Page<K> {
    /// The objects.
    pub items: Vec<K>,
    /// Empty on the last page.
    pub next_page_token: String,
    /// The list's resourceVersion.
    pub resource_version: String,
}

/// Reads `name` (required); NOT_FOUND when it does not exist.
pub async fn get<K>(api: &Api<K>, target: Target<'_>) -> Result<K, Status>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    required("name", target.name)?;
    api.get(target.name)
        .await
        .map_err(|e| from_kube(&e, target))
}

/// One page of the objects matching `label_selector`.
pub async fn list<K>(
    api: &Api<K>,
    target: Target<'_>,
    label_selector: &str,
    page_size: i32,
    page_token: &str,
) -> Result<Page<K>, Status>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = list_params(label_selector, page_size, page_token)?;
    let list = api
        .list(&params)
        .await
        .map_err(|e| list_error(&e, label_selector, target))?;
    Ok(Page {
        items: list.items,
        next_page_token: list.metadata.continue_.unwrap_or_default(),
        resource_version: list.metadata.resource_version.unwrap_or_default(),
    })
}

/// Requests the deletion of `name` (required): the object as the deletion left it, or `None`
/// when it is gone at once.
pub async fn delete<K>(api: &Api<K>, target: Target<'_>) -> Result<Option<K>, Status>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    required("name", target.name)?;
    let deleted = api
        .delete(target.name, &DeleteParams::default())
        .await
        .map_err(|e| from_kube(&e, target))?;
    Ok(deleted.left())
}
