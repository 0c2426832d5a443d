//! Validation messages, checked against what a Kubernetes API server prints for the same schema rule.

use cairn_schema::{ErrorKind, Schema};
use serde_json::{Value, json};

fn schema(spec_props: Value) -> Schema {
    Schema::new(&json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec_props},
        },
    }))
    .expect("test schema compiles")
}

fn messages(schema: &Schema, spec: Value) -> Vec<String> {
    schema
        .validate(&json!({"spec": spec}))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn maximum_is_reported_with_the_api_server_wording() {
    let s = schema(json!({"backoffLimit": {"type": "integer", "minimum": 0, "maximum": 10}}));
    assert_eq!(
        messages(&s, json!({"backoffLimit": 11})),
        [
            "spec.backoffLimit: Invalid value: 11: spec.backoffLimit in body should be less than or equal to 10"
        ]
    );
    assert_eq!(
        messages(&s, json!({"backoffLimit": -1})),
        [
            "spec.backoffLimit: Invalid value: -1: spec.backoffLimit in body should be greater than or equal to 0"
        ]
    );
    assert!(messages(&s, json!({"backoffLimit": 10})).is_empty());
}

#[test]
fn exclusive_bounds_and_float_values_are_worded_as_go_prints_them() {
    let s = schema(
        json!({"ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5}}),
    );
    assert_eq!(
        messages(&s, json!({"ratio": 0})),
        ["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"]
    );
    assert_eq!(
        messages(&s, json!({"ratio": 2.5})),
        ["spec.ratio: Invalid value: 2.5: spec.ratio in body should be less than or equal to 1.5"]
    );
}

#[test]
fn enum_violations_list_the_supported_values() {
    let s = schema(json!({"deletionPolicy": {"type": "string", "enum": ["Delete", "Retain"]}}));
    assert_eq!(
        messages(&s, json!({"deletionPolicy": "x"})),
        [r#"spec.deletionPolicy: Unsupported value: "x": supported values: "Delete", "Retain""#]
    );
}

#[test]
fn missing_required_fields_say_required_value() {
    let s = Schema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "required": ["backupMethod"], "properties": {"backupMethod": {"type": "string"}}}},
        "required": ["spec"],
    }))
    .expect("schema");
    let errors = s.validate(&json!({"spec": {}}));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Required);
    assert_eq!(errors[0].to_string(), "spec.backupMethod: Required value");
    assert_eq!(
        s.validate(&json!({}))[0].to_string(),
        "spec: Required value"
    );
}

#[test]
fn wrong_types_name_the_expected_and_actual_type() {
    let s = schema(json!({"backoffLimit": {"type": "integer"}, "enabled": {"type": "boolean"}}));
    assert_eq!(
        messages(&s, json!({"backoffLimit": "3"})),
        [
            r#"spec.backoffLimit: Invalid value: "string": spec.backoffLimit in body must be of type integer: "string""#
        ]
    );
    assert_eq!(
        messages(&s, json!({"enabled": null})),
        [
            r#"spec.enabled: Invalid value: "null": spec.enabled in body must be of type boolean: "null""#
        ]
    );
    assert!(
        messages(&s, json!({"backoffLimit": 3.0})).is_empty(),
        "an integral float is an integer"
    );
}

#[test]
fn patterns_are_searched_and_quote_the_pattern() {
    let s = schema(
        json!({"restoreTime": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}}),
    );
    assert_eq!(
        messages(&s, json!({"restoreTime": "yesterday"})),
        [
            r#"spec.restoreTime: Invalid value: "yesterday": spec.restoreTime in body should match '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$'"#
        ]
    );
    assert!(messages(&s, json!({"restoreTime": "2024-01-02T03:04:05Z"})).is_empty());
}

#[test]
fn string_lengths_report_too_long_and_too_short() {
    let s = schema(json!({"name": {"type": "string", "minLength": 2, "maxLength": 4}}));
    assert_eq!(
        messages(&s, json!({"name": "abcde"})),
        ["spec.name: Too long: may not be more than 4 bytes"]
    );
    assert_eq!(
        messages(&s, json!({"name": "a"})),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    assert!(
        messages(&s, json!({"name": "äöü"})).is_empty(),
        "lengths count characters"
    );
}

#[test]
fn list_sizes_and_item_paths_use_brackets() {
    let s = schema(json!({"schedules": {
        "type": "array", "minItems": 1, "maxItems": 2,
        "items": {"type": "object", "required": ["cronExpression"], "properties": {"cronExpression": {"type": "string"}}},
    }}));
    assert_eq!(
        messages(&s, json!({"schedules": []})),
        ["spec.schedules: Invalid value: 0: spec.schedules in body should have at least 1 items"]
    );
    assert_eq!(
        messages(
            &s,
            json!({"schedules": [{}, {"cronExpression": "x"}, {"cronExpression": "y"}]})
        ),
        [
            "spec.schedules[0].cronExpression: Required value",
            "spec.schedules: Too many: 3: must have at most 2 items"
        ]
    );
}

#[test]
fn int_or_string_accepts_both_and_rejects_the_rest() {
    let s = schema(json!({"volumeCapacity": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": true,
        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
    }}));
    assert!(messages(&s, json!({"volumeCapacity": "100Gi"})).is_empty());
    assert!(messages(&s, json!({"volumeCapacity": 1024})).is_empty());
    let bad = messages(&s, json!({"volumeCapacity": true}));
    assert_eq!(
        bad[0],
        r#"spec.volumeCapacity: Invalid value: "boolean": spec.volumeCapacity in body must be of type integer,string: "boolean""#
    );
    let bad = messages(&s, json!({"volumeCapacity": "lots"}));
    assert!(bad[0].starts_with(
        r#"spec.volumeCapacity: Invalid value: "lots": spec.volumeCapacity in body should match"#
    ));
}

#[test]
fn date_time_format_is_checked_and_unsupported_formats_are_ignored() {
    let s = schema(json!({
        "at": {"type": "string", "format": "date-time"},
        "size": {"type": "string", "format": "int-or-string"},
    }));
    assert_eq!(
        messages(&s, json!({"at": "tuesday"})),
        [
            r#"spec.at: Invalid value: "tuesday": spec.at in body must be of type date-time: "tuesday""#
        ]
    );
    assert!(
        messages(
            &s,
            json!({"at": "2024-01-02T03:04:05Z", "size": "whatever"})
        )
        .is_empty()
    );
}

#[test]
fn nullable_fields_accept_null() {
    let s = schema(json!({"x": {"type": "string", "nullable": true}}));
    assert!(messages(&s, json!({"x": null})).is_empty());
}

#[test]
fn maps_validate_each_value_against_additional_properties() {
    let s =
        schema(json!({"config": {"type": "object", "additionalProperties": {"type": "string"}}}));
    assert_eq!(
        messages(&s, json!({"config": {"a": "b", "n": 1}})),
        [
            r#"spec.config.n: Invalid value: "integer": spec.config.n in body must be of type string: "integer""#
        ]
    );
}

#[test]
fn list_type_set_and_map_report_duplicates() {
    let s = schema(json!({
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
    }));
    assert_eq!(
        messages(&s, json!({"tags": ["a", "b", "a"]})),
        [r#"spec.tags[2]: Duplicate value: "a""#]
    );
    assert_eq!(
        messages(
            &s,
            json!({"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]})
        ),
        [r#"spec.ports[1]: Duplicate value: {"name":"a"}"#]
    );
}

#[test]
fn any_of_and_one_of_are_enforced() {
    let s = schema(json!({
        "either": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    }));
    assert!(messages(&s, json!({"either": {"a": "x"}})).is_empty());
    let both = messages(&s, json!({"either": {"a": "x", "b": "y"}}));
    assert!(
        both[0]
            .contains("must validate one and only one schema (oneOf). Found 2 valid alternatives"),
        "{both:?}"
    );
    let none = messages(&s, json!({"either": {}}));
    assert!(none[0].contains("Found none valid"), "{none:?}");
}

#[test]
fn multiple_of_and_property_counts_are_enforced() {
    let s = schema(json!({
        "step": {"type": "integer", "multipleOf": 5},
        "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
    }));
    assert_eq!(
        messages(&s, json!({"step": 7})),
        ["spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"]
    );
    assert_eq!(
        messages(&s, json!({"labels": {"a": "1", "b": "2"}})),
        ["spec.labels: Too many: 2: must have at most 1 item"]
    );
}

#[test]
fn a_crd_version_schema_can_be_loaded_from_the_crd() {
    let crd = json!({"spec": {"versions": [{"name": "v1alpha1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    assert!(Schema::for_crd_version(&crd, "v1alpha1").is_ok());
    let missing = Schema::for_crd_version(&crd, "v1").expect_err("no v1");
    assert!(
        missing.to_string().contains("no version named \"v1\""),
        "{missing}"
    );
}

#[test]
fn invalid_patterns_are_rejected_when_compiling() {
    let err = Schema::new(
        &json!({"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}}),
    )
    .expect_err("bad regex");
    assert!(err.to_string().contains("properties[x].pattern"), "{err}");
}

#[test]
fn int32_fields_reject_values_outside_int32() {
    let s = schema(json!({"intervalSeconds": {"type": "integer", "format": "int32"}}));
    assert!(messages(&s, json!({"intervalSeconds": 2147483647})).is_empty());
    assert_eq!(
        messages(&s, json!({"intervalSeconds": 2147483648i64})),
        [
            r#"spec.intervalSeconds: Invalid value: "": Checked value must be of type integer with format int32 in spec.intervalSeconds"#
        ]
    );
}
