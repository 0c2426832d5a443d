//! An OpenAPI v3 structural-schema engine over `serde_json::Value`, behaving like a Kubernetes API server
//! does for custom resources: validation with the API server's messages, unknown-field detection,
//! defaulting and pruning. It has no Kubernetes client dependency.
//!
//! # Expected flow
//! The API server handles a create or update of a custom resource as:
//! 1. [`Schema::prune`] (records unknown fields; strict field validation rejects them with
//!    [`unknown_field_message`], `Warn` mode only warns),
//! 2. [`Schema::apply_defaults`],
//! 3. [`Schema::validate`] (errors become a 422 with `details.causes[].field`).
//!
//! ```
//! use cairn_schema::Schema;
//! use serde_json::json;
//!
//! let schema = Schema::new(&json!({
//!     "type": "object",
//!     "properties": {"spec": {"type": "object", "properties": {
//!         "backoffLimit": {"type": "integer", "minimum": 0, "maximum": 10, "default": 2},
//!     }}},
//! })).unwrap();
//! let mut object = json!({"apiVersion": "v1", "kind": "X", "spec": {"foo": 1}});
//! assert_eq!(schema.prune(&mut object), vec!["spec.foo".to_string()]);
//! schema.apply_defaults(&mut object);
//! assert_eq!(object["spec"]["backoffLimit"], 2);
//! object["spec"]["backoffLimit"] = json!(11);
//! assert_eq!(
//!     schema.validate(&object)[0].to_string(),
//!     "spec.backoffLimit: Invalid value: 11: spec.backoffLimit in body should be less than or equal to 10",
//! );
//! ```
//!
//! # Guarantees
//! - Field paths are written as Kubernetes writes them: `spec.schedules[0].cronExpression`.
//! - Messages follow `kube-openapi` and `apimachinery`'s `field.Error` (see [`FieldError`]).
//! - Formats are checked only where the API server checks them (`date-time`, `date`, `byte`,
//!   `uuid`, `ipv4`, ...); others, such as `int-or-string` or `int32` on strings, are ignored as the
//!   API server strips them. `x-kubernetes-int-or-string` makes a node accept integers and strings.
//!
//! # Caveats
//! - CEL rules (`x-kubernetes-validations`) run through the `cel` crate after the schema checks, as
//!   the API server runs them: transition rules (those naming `oldSelf`) only on update, through
//!   [`Schema::validate_update`]. See the `cel` module for what differs from the API server (no cost
//!   budget, no Kubernetes-specific CEL libraries).
//! - `metadata` is not validated here (the API server validates `ObjectMeta` separately).
//! - `pattern` uses the `regex` crate (RE2 syntax, like Go's `regexp`).

mod cel;
mod defaults;
mod error;
mod format;
mod gofmt;
mod node;
mod prune;
mod structural;
mod validate;

use serde_json::Value;

pub use error::{ErrorKind, FieldError, SchemaError, unknown_field_message};
pub use structural::structural_errors;

use node::Node;

/// A compiled `openAPIV3Schema` of one version of a CustomResourceDefinition. The root is a resource:
/// `apiVersion`, `kind` and `metadata` are never pruned at the root.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
}

impl Schema {
    /// Compiles a schema (`openAPIV3Schema` as JSON). Fails on malformed keywords, an invalid
    /// `pattern` or a `$ref`; it does not require the schema to be structural (see [`structural_errors`]).
    pub fn new(schema: &Value) -> Result<Schema, SchemaError> {
        Ok(Schema {
            root: Node::parse(schema, "openAPIV3Schema")?,
        })
    }

    /// Compiles the schema of version `version` of a CustomResourceDefinition given as JSON
    /// (`spec.versions[].schema.openAPIV3Schema`).
    pub fn for_crd_version(crd: &Value, version: &str) -> Result<Schema, SchemaError> {
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| SchemaError {
                path: "spec.versions".into(),
                message: "missing".into(),
            })?;
        let found = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
            .ok_or_else(|| SchemaError {
                path: "spec.versions".into(),
                message: format!("no version named {version:?}"),
            })?;
        let schema = found
            .pointer("/schema/openAPIV3Schema")
            .ok_or_else(|| SchemaError {
                path: format!("spec.versions[{version}].schema.openAPIV3Schema"),
                message: "missing".into(),
            })?;
        Schema::new(schema)
    }

    /// Validates `object` as created and returns every error (deduplicated, in schema order), the
    /// `x-kubernetes-validations` rules without `oldSelf` last. An empty list means valid.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        self.validate_with_old(object, None)
    }

    /// Validates `object` as an update of `old`: the schema, then every `x-kubernetes-validations`
    /// rule, transition rules (`self == oldSelf`) included where the old value correlates.
    /// Rules without `oldSelf` are ratcheted: an unchanged value does not fail them.
    pub fn validate_update(&self, object: &Value, old: &Value) -> Vec<FieldError> {
        self.validate_with_old(object, Some(old))
    }

    fn validate_with_old(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate::validate(&self.root, object, "", &mut errors);
        // Like the API server, CEL rules run unless a value has the wrong type (a "blocking" error).
        if !errors.iter().any(|e| e.kind == ErrorKind::TypeInvalid) {
            cel::validate(&self.root, object, old, &mut errors);
        }
        let mut unique: Vec<FieldError> = Vec::with_capacity(errors.len());
        for e in errors {
            if !unique.iter().any(|u| u.to_string() == e.to_string()) {
                unique.push(e);
            }
        }
        unique
    }

    /// The paths of fields the schema does not declare (what pruning would drop), sorted. The API
    /// server's strict field validation rejects each with [`unknown_field_message`]. `object` is not changed.
    pub fn unknown_fields(&self, object: &Value) -> Vec<String> {
        let mut copy = object.clone();
        prune::prune_resource(&self.root, &mut copy)
    }

    /// Sets defaults where a field with a `default` is missing or a non-nullable null, at every depth
    /// (inside `items` and `additionalProperties` too).
    pub fn apply_defaults(&self, object: &mut Value) {
        defaults::apply(object, &self.root);
    }

    /// Drops fields the schema does not declare (keeping `x-kubernetes-preserve-unknown-fields`
    /// subtrees and embedded resources' `apiVersion`/`kind`/`metadata`) and nulls of non-nullable
    /// fields without a default. Returns the dropped unknown field paths, sorted.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        prune::prune_resource(&self.root, object)
    }
}
