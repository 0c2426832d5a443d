//! Structural-schema handling of custom resources through `cairn-schema`: pruning with
//! `fieldValidation` (Strict rejects unknown fields, Warn warns, Ignore prunes silently),
//! defaulting and validation with the apiserver's field paths and messages.

use super::{Api, FieldValidation, Target};
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use serde_json::Value;

/// A `cairn-schema` field error in this crate's terms (its text is kept exactly).
pub(crate) fn from_schema_error(e: cairn_schema::FieldError) -> FieldError {
    FieldError::rendered(e.field.clone(), e.body(), e.kind.reason())
}

/// Why a CRD version's schema is not structural, as field errors.
pub fn structural_errors(schema: &Value) -> Vec<FieldError> {
    cairn_schema::structural_errors(schema)
        .into_iter()
        .map(|e| {
            let mut fe = from_schema_error(e);
            // cairn-schema paths start at `openAPIV3Schema`; callers add the version prefix.
            fe.field = fe
                .field
                .strip_prefix("openAPIV3Schema")
                .unwrap_or(&fe.field)
                .to_string();
            fe
        })
        .collect()
}

impl Api {
    /// Prunes, defaults and validates a custom resource against its version's schema, with its
    /// `x-kubernetes-validations` rules; `old` is the stored object on an update, which the
    /// transition rules (`self == oldSelf`) compare with. Returns warnings (unknown fields under `Warn`).
    pub(crate) fn check_schema(
        &self,
        rt: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
        validation: FieldValidation,
        target: Target,
    ) -> Result<Vec<String>, ApiError> {
        let _ = target;
        let Some(schema) = rt.custom.as_ref().and_then(|c| c.compiled.clone()) else {
            return Ok(Vec::new());
        };
        let unknown = schema.prune(object);
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            let messages: Vec<String> = unknown
                .iter()
                .map(|p| cairn_schema::unknown_field_message(p))
                .collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        messages.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings = messages,
                FieldValidation::Ignore => {}
            }
        }
        schema.apply_defaults(object);
        let errors = match old {
            Some(old) => schema.validate_update(object, old),
            None => schema.validate(object),
        };
        let errors: Vec<FieldError> = errors.into_iter().map(from_schema_error).collect();
        if !errors.is_empty() {
            let name = super::meta::meta_str(object, "name").to_string();
            return Err(ApiError::invalid(&rt.kind, &rt.group, &name, &errors));
        }
        Ok(warnings)
    }
}
