//! Unknown fields, pruning, defaulting and the structural rules, as the API server applies them to custom resources.

use cairn_schema::{Schema, structural_errors, unknown_field_message};
use proptest::prelude::*;
use serde_json::{Value, json};

fn backup_like() -> Schema {
    Schema::new(&json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "deletionPolicy": {"type": "string", "default": "Delete"},
                "schedules": {"type": "array", "items": {"type": "object", "properties": {
                    "enabled": {"type": "boolean"},
                    "retentionPeriod": {"type": "string", "default": "7d"},
                }}},
                "config": {"type": "object", "additionalProperties": {"type": "string"}},
                "schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                           "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                "optional": {"type": "string"},
                "nullableNote": {"type": "string", "nullable": true},
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }))
    .expect("test schema compiles")
}

#[test]
fn unknown_fields_are_listed_with_kubernetes_paths_and_sorted() {
    let s = backup_like();
    let object = json!({
        "apiVersion": "x/v1", "kind": "Backup", "metadata": {"name": "b", "whatever": 1},
        "spec": {"foo": 1, "schedules": [{"enabled": true}, {"bar": 2}], "config": {"any": "thing"},
                 "schema": {"free": {"form": true}, "known": {"a": "x", "b": "y"}}},
        "extra": true,
    });
    assert_eq!(
        s.unknown_fields(&object),
        [
            "extra",
            "spec.foo",
            "spec.schedules[1].bar",
            "spec.schema.known.b"
        ]
    );
    assert_eq!(
        unknown_field_message("spec.foo"),
        r#"unknown field "spec.foo""#
    );
}

#[test]
fn pruning_drops_unknown_fields_but_keeps_resource_meta_and_preserved_subtrees() {
    let s = backup_like();
    let mut object = json!({
        "apiVersion": "x/v1", "kind": "Backup", "metadata": {"name": "b"},
        "spec": {"foo": 1, "schema": {"free": {"form": true}}, "optional": null, "nullableNote": null},
    });
    let dropped = s.prune(&mut object);
    assert_eq!(dropped, ["spec.foo"]);
    assert_eq!(
        object,
        json!({"apiVersion": "x/v1", "kind": "Backup", "metadata": {"name": "b"},
               "spec": {"schema": {"free": {"form": true}}, "nullableNote": null}})
    );
}

#[test]
fn defaults_fill_missing_fields_at_every_depth() {
    let s = backup_like();
    let mut object =
        json!({"spec": {"schedules": [{"enabled": true}, {"retentionPeriod": "30d"}]}});
    s.apply_defaults(&mut object);
    assert_eq!(
        object["spec"],
        json!({"schedules": [{"enabled": true, "retentionPeriod": "7d"}, {"retentionPeriod": "30d"}], "deletionPolicy": "Delete"})
    );
}

#[test]
fn defaults_replace_non_nullable_nulls() {
    let s = backup_like();
    let mut object = json!({"spec": {"deletionPolicy": null}});
    s.apply_defaults(&mut object);
    assert_eq!(object["spec"]["deletionPolicy"], "Delete");
}

#[test]
fn a_structural_schema_has_no_violations() {
    let schema = json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "size": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "list": {"type": "array", "items": {"type": "string"}},
                "choice": {"type": "object", "properties": {"a": {"type": "string"}},
                           "oneOf": [{"required": ["a"]}]},
            }},
        },
    });
    assert_eq!(structural_errors(&schema), vec![]);
}

#[test]
fn non_structural_schemas_are_reported_with_paths() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {"properties": {
                "items": {"type": "array"},
                "ref": {"$ref": "#/definitions/x"},
                "choice": {"type": "object", "anyOf": [{"type": "string", "properties": {"b": {"type": "string"}}}]},
                "map": {"type": "object", "additionalProperties": false},
            }},
        },
    });
    let errors: Vec<String> = structural_errors(&schema)
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect = [
        "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
        "openAPIV3Schema.properties[spec].properties[items].items: Required value: must be specified",
        "openAPIV3Schema.properties[spec].properties[ref].$ref: Forbidden: $ref must not be used in CustomResourceDefinition schemas",
        "openAPIV3Schema.properties[spec].properties[choice].anyOf[0].type: Forbidden: must be undefined to be structural",
        "openAPIV3Schema.properties[spec].properties[choice].anyOf[0].properties[b]: Required value: must be specified outside of the value validation junctors too",
        "openAPIV3Schema.properties[spec].properties[map].additionalProperties: Forbidden: additionalProperties cannot be set to false",
    ];
    for e in expect {
        assert!(
            errors.iter().any(|x| x == e),
            "missing {e:?} in {errors:#?}"
        );
    }
}

#[test]
fn defaults_that_do_not_validate_are_not_structural() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "maximum": 3, "default": 5}}});
    let errors: Vec<String> = structural_errors(&schema)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("openAPIV3Schema.properties[n].default: Invalid value: 5:"),
        "{errors:?}"
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-zA-Z0-9:._-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("spec".to_string()),
                    Just("schedules".to_string()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn no_input_makes_the_engine_panic_and_pruning_is_idempotent(object in arbitrary_json()) {
        let s = backup_like();
        let _ = s.validate(&object);
        let mut pruned = object.clone();
        s.prune(&mut pruned);
        prop_assert!(s.unknown_fields(&pruned).is_empty());
        let mut again = pruned.clone();
        s.prune(&mut again);
        prop_assert_eq!(&again, &pruned);
        let mut defaulted = pruned;
        s.apply_defaults(&mut defaulted);
        let _ = structural_errors(&object);
    }
}

#[test]
fn validation_rules_are_structural_outside_junctors_and_must_compile() {
    let accepted = json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.spec)"}],
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "has(oldSelf.p) == has(self.p)", "message": "p is immutable"}],
            "properties": {
                "p": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
                "byKey": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}},
                              "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
                },
            },
        }},
    });
    assert_eq!(structural_errors(&accepted), vec![]);
    Schema::new(&accepted).expect("the accepted schema compiles");

    let refused = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "bad": {"type": "string", "x-kubernetes-validations": [{"rule": "self ==="}]},
            "atomic": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
            "twoLines": {"type": "string", "x-kubernetes-validations": [{"rule": "self == 'a' ||\nself == 'b'"}]},
            "reason": {"type": "string", "x-kubernetes-validations": [{"rule": "true", "reason": "Nope"}]},
            "choice": {"type": "string", "anyOf": [{"x-kubernetes-validations": [{"rule": "true"}]}]},
        }}},
    });
    let errors: Vec<String> = structural_errors(&refused)
        .iter()
        .map(ToString::to_string)
        .collect();
    let spec = "openAPIV3Schema.properties[spec].properties";
    let expect = [
        format!(
            "{spec}[atomic].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within {spec}[atomic]"
        ),
        format!(
            "{spec}[twoLines].x-kubernetes-validations[0].message: Invalid value: null: message must be specified if rule contains line breaks"
        ),
        format!(
            "{spec}[reason].x-kubernetes-validations[0].reason: Invalid value: \"Nope\": supported values: \"FieldValueInvalid\", \"FieldValueForbidden\", \"FieldValueRequired\", \"FieldValueDuplicate\""
        ),
        format!(
            "{spec}[choice].anyOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural"
        ),
    ];
    for e in &expect {
        assert!(errors.contains(e), "missing {e:?} in {errors:#?}");
    }
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "{spec}[bad].x-kubernetes-validations[0].rule: Invalid value: \"self ===\": compilation failed"
        ))),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), expect.len() + 1, "{errors:#?}");
}
