//! Resource types: what each served resource is (names, scope, subresources, storage) and
//! the registry that maps URL paths and kinds to them, built-ins plus established CRDs.

mod builtin;
mod custom;
mod registry;

pub use builtin::{Builtin, builtin_types};
pub use custom::{CustomResource, PrinterColumn, custom_types};
pub use registry::{GroupVersion, Registry};

use std::sync::Arc;

/// A subresource a type serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Log,
    Exec,
    Eviction,
    Binding,
    Finalize,
    Scale,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Eviction => "eviction",
            Subresource::Binding => "binding",
            Subresource::Finalize => "finalize",
            Subresource::Scale => "scale",
        }
    }

    pub fn parse(s: &str) -> Option<Subresource> {
        Some(match s {
            "status" => Subresource::Status,
            "log" => Subresource::Log,
            "exec" => Subresource::Exec,
            "eviction" => Subresource::Eviction,
            "binding" => Subresource::Binding,
            "finalize" => Subresource::Finalize,
            "scale" => Subresource::Scale,
            _ => return None,
        })
    }
}

/// One served resource at one group-version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// The key objects of this resource are stored under (shared by both Event APIs).
    pub storage: String,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    pub builtin: Option<Builtin>,
    pub custom: Option<Arc<CustomResource>>,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether the main endpoint ignores `.status` (a status subresource exists).
    pub fn has_status(&self) -> bool {
        self.has_subresource(Subresource::Status)
    }

    pub fn is(&self, b: Builtin) -> bool {
        self.builtin == Some(b)
    }

    /// The URL path of the collection, in `namespace` when the type is namespaced.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            _ => format!("{prefix}/{}", self.plural),
        }
    }

    /// The field labels a field selector may use on this type.
    pub fn field_labels(&self) -> &'static [&'static str] {
        match self.builtin {
            Some(b) => b.field_labels(),
            None => &["metadata.name", "metadata.namespace"],
        }
    }

    /// Whether stored objects need rewriting to be served at this version.
    pub fn needs_conversion(&self) -> bool {
        if self.is(Builtin::EventV1) {
            return true;
        }
        self.custom
            .as_ref()
            .is_some_and(|c| c.storage_version != self.version)
    }

    /// Whether DELETE answers with the object rather than a Status.
    pub fn returns_deleted_object(&self) -> bool {
        match self.builtin {
            Some(b) => matches!(
                b,
                Builtin::Pod
                    | Builtin::ServiceAccount
                    | Builtin::StorageClass
                    | Builtin::CustomResourceDefinition
            ),
            None => true,
        }
    }
}
