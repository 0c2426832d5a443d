//! The one path every call on a namespaced kind takes: authorise the caller for the call's verb
//! in the request's namespace → run it on the CR → show the object as the kind's message, with
//! the API's errors. The services of Backups, Restores and Schedules are this path for each
//! [`Kind`], plus what is their own (the checks of a create, a schedule entry's patch).

use std::fmt::Debug;
use std::marker::PhantomData;

use cairn_api::{Backup, BackupSchedule, Restore};
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::EventType;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::objects::{self, Page};
use super::state::ApiState;
use super::status::{Target, from_kube, invalid_field, invalid_object, required};
use super::watch::{EventStream, Watched, watch_one};

/// A namespaced data-protection kind the API serves.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The RBAC resource and the name in errors (`backups`).
    const RESOURCE: &'static str;
    /// The message showing one object.
    type Message: Send + 'static;
    /// The object as the API shows it.
    fn message(&self) -> Self::Message;
}

/// A kind whose objects can be watched to a final state.
pub trait Watchable: Kind {
    /// One event of its watch stream.
    type Event: Send + 'static;
    /// Whether the object reached its final state (the last event).
    fn is_final(&self) -> bool;
    /// The event carrying the object.
    fn event(kind: EventType, object: &Self, last: bool) -> Self::Event;
}

impl Kind for Backup {
    const RESOURCE: &'static str = "backups";
    type Message = pb::Backup;
    fn message(&self) -> pb::Backup {
        super::backup_view::backup(self)
    }
}

impl Watchable for Backup {
    type Event = pb::BackupEvent;
    fn is_final(&self) -> bool {
        super::backup_view::is_final(self)
    }
    fn event(kind: EventType, object: &Backup, last: bool) -> pb::BackupEvent {
        pb::BackupEvent {
            r#type: kind as i32,
            backup: Some(object.message()),
            r#final: last,
        }
    }
}

impl Kind for Restore {
    const RESOURCE: &'static str = "restores";
    type Message = pb::Restore;
    fn message(&self) -> pb::Restore {
        super::restore_view::restore(self)
    }
}

impl Watchable for Restore {
    type Event = pb::RestoreEvent;
    fn is_final(&self) -> bool {
        super::restore_view::is_final(self)
    }
    fn event(kind: EventType, object: &Restore, last: bool) -> pb::RestoreEvent {
        pb::RestoreEvent {
            r#type: kind as i32,
            restore: Some(object.message()),
            r#final: last,
        }
    }
}

impl Kind for BackupSchedule {
    const RESOURCE: &'static str = "backupschedules";
    type Message = pb::Schedule;
    fn message(&self) -> pb::Schedule {
        super::schedule_view::schedule(self)
    }
}

/// A request addressing the objects of one namespace.
pub trait InNamespace {
    /// The request's `namespace` field.
    fn namespace(&self) -> &str;
}

/// A request addressing one object.
pub trait Named: InNamespace {
    /// The request's `name` field.
    fn name(&self) -> &str;
}

/// A list request.
pub trait Listing: InNamespace {
    /// `label_selector`, `page_size` and `page_token`.
    fn page(&self) -> (&str, i32, &str);
}

/// A watch request.
pub trait Watching: Named {
    /// The version to resume after (empty: from the current state).
    fn resource_version(&self) -> &str;
}

macro_rules! requests {
    (named: $($named:ty),*; listing: $($listing:ty),*; watching: $($watching:ty),*) => {
        $(impl InNamespace for $named {
            fn namespace(&self) -> &str { &self.namespace }
        }
        impl Named for $named {
            fn name(&self) -> &str { &self.name }
        })*
        $(impl InNamespace for $listing {
            fn namespace(&self) -> &str { &self.namespace }
        }
        impl Listing for $listing {
            fn page(&self) -> (&str, i32, &str) {
                (&self.label_selector, self.page_size, &self.page_token)
            }
        })*
        $(impl Watching for $watching {
            fn resource_version(&self) -> &str { &self.resource_version }
        })*
    };
}

requests!(
    named: pb::CreateBackupRequest, pb::GetBackupRequest, pb::DeleteBackupRequest,
        pb::WatchBackupRequest, pb::CreateRestoreRequest, pb::GetRestoreRequest,
        pb::DeleteRestoreRequest, pb::WatchRestoreRequest, pb::GetScheduleRequest,
        pb::SetScheduleEntryRequest;
    listing: pb::ListBackupsRequest, pb::ListRestoresRequest, pb::ListSchedulesRequest;
    watching: pb::WatchBackupRequest, pb::WatchRestoreRequest
);

/// The calls on the objects of kind `K`.
pub struct Objects<K> {
    /// The shared state (client, authentication, authorisation, checks).
    pub state: ApiState,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Objects<K> {
    fn clone(&self) -> Self {
        Objects {
            state: self.state.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> Objects<K> {
    /// The calls on `K` over `state`'s cluster.
    pub fn new(state: ApiState) -> Objects<K> {
        Objects {
            state,
            kind: PhantomData,
        }
    }

    /// The kind's API in `namespace`.
    pub fn api(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.state.client.clone(), namespace)
    }

    /// The object `namespace/name` of this kind, for errors.
    pub fn target<'a>(&self, namespace: &'a str, name: &'a str) -> Target<'a> {
        Target {
            resource: K::RESOURCE,
            namespace,
            name,
        }
    }

    /// Authenticates the caller of `request` and authorises `verb` on this kind in the
    /// request's namespace.
    pub async fn allow<R: InNamespace>(
        &self,
        request: &Request<R>,
        verb: &'static str,
    ) -> Result<Caller, Status> {
        let namespace = request.get_ref().namespace();
        self.state
            .allow(request, verb, K::RESOURCE, Some(namespace))
            .await
    }

    /// GetX: the object; NOT_FOUND when missing.
    pub async fn get<R: Named>(&self, request: Request<R>) -> Result<Response<K::Message>, Status> {
        self.allow(&request, "get").await?;
        let r = request.get_ref();
        let found = objects::get(
            &self.api(r.namespace()),
            self.target(r.namespace(), r.name()),
        )
        .await?;
        Ok(Response::new(found.message()))
    }

    /// ListX: one page of the objects matching the label selector.
    pub async fn list<R: Listing>(&self, request: Request<R>) -> Result<Page<K::Message>, Status> {
        self.allow(&request, "list").await?;
        let r = request.get_ref();
        let (selector, size, token) = r.page();
        let page = objects::list(
            &self.api(r.namespace()),
            self.target(r.namespace(), ""),
            selector,
            size,
            token,
        )
        .await?;
        Ok(Page {
            items: page.items.iter().map(K::message).collect(),
            next_page_token: page.next_page_token,
            resource_version: page.resource_version,
        })
    }

    /// DeleteX: the object as the deletion left it, `None` when it is gone at once.
    pub async fn delete<R: Named>(
        &self,
        request: Request<R>,
    ) -> Result<Option<K::Message>, Status> {
        self.allow(&request, "delete").await?;
        let r = request.get_ref();
        let deleted = objects::delete(
            &self.api(r.namespace()),
            self.target(r.namespace(), r.name()),
        )
        .await?;
        Ok(deleted.as_ref().map(K::message))
    }

    /// The object a create request built as JSON, after the checks of `cairnctl validate`
    /// (every error an INVALID_ARGUMENT field violation; `field` maps an object path to the
    /// request field).
    pub fn checked(
        &self,
        object: serde_json::Value,
        field: fn(&str) -> String,
    ) -> Result<K, Status> {
        if let Some(invalid) = invalid_object(&self.state.check(&object), field) {
            return Err(invalid);
        }
        serde_json::from_value(object).map_err(|e| {
            invalid_field(
                "spec",
                format!("the {} object cannot be read: {e}", K::RESOURCE),
            )
        })
    }

    /// Creates `object` (already authorised and checked); ALREADY_EXISTS when the name is taken.
    pub async fn create(&self, object: &K) -> Result<Response<K::Message>, Status> {
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        let name = object.meta().name.clone().unwrap_or_default();
        let made = self
            .api(&namespace)
            .create(&PostParams::default(), object)
            .await
            .map_err(|e| from_kube(&e, self.target(&namespace, &name)))?;
        Ok(Response::new(made.message()))
    }
}

impl<K: Watchable> Objects<K> {
    /// WatchX: the object's changes until its final state (docs/API.md §4, WatchBackup).
    pub async fn watch<R: Watching>(
        &self,
        request: Request<R>,
    ) -> Result<Response<EventStream<K::Event>>, Status> {
        self.allow(&request, "watch").await?;
        let r = request.get_ref();
        required("name", r.name())?;
        let stream = watch_one(
            self.api(r.namespace()),
            r.namespace().to_owned(),
            r.name().to_owned(),
            r.resource_version().to_owned(),
            Watched {
                resource: K::RESOURCE,
                is_final: K::is_final,
                event: K::event,
            },
        )
        .await?;
        Ok(Response::new(stream))
    }
}
