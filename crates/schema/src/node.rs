//! One parsed node of an OpenAPI v3 schema, with its keywords checked and its `pattern` compiled.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::SchemaError;

/// What a schema says about keys that are not listed in `properties`.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    /// `additionalProperties` is absent.
    Unspecified,
    /// `additionalProperties: true|false`.
    Allowed(bool),
    /// `additionalProperties: {schema}`: a map whose values follow the schema.
    Schema(Box<Node>),
}

/// A schema node. Field names follow the OpenAPI keywords.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The JSON types allowed (`["integer", "string"]` for `x-kubernetes-int-or-string`); empty means any.
    pub types: Vec<String>,
    pub nullable: bool,
    /// The format after the API server's stripping of formats it does not validate.
    pub format: Option<String>,
    pub enum_values: Option<Vec<Value>>,
    pub pattern: Option<(String, Regex)>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    /// Properties in schema order.
    pub properties: Vec<(String, Node)>,
    property_index: HashMap<String, usize>,
    pub additional: Additional,
    pub items: Option<Box<Node>>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub default: Option<Value>,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type` (`atomic` makes a map's entries uncorrelated for transition rules).
    pub map_type: Option<String>,
    /// The compiled `x-kubernetes-validations` rules.
    pub validations: Vec<crate::cel::Rule>,
}

/// String formats the API server validates (`apiextensions-apiserver` `supportedVersionedFormats`), dashes removed.
const SUPPORTED_STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8s-short-name",
    "k8s-long-name",
];

impl Node {
    /// Parses a schema object; `path` names it in errors.
    pub(crate) fn parse(value: &Value, path: &str) -> Result<Node, SchemaError> {
        let map = value
            .as_object()
            .ok_or_else(|| err(path, "a schema must be an object"))?;
        if map.contains_key("$ref") {
            return Err(err(&format!("{path}.$ref"), "references are not supported"));
        }
        let int_or_string = bool_kw(map, "x-kubernetes-int-or-string", path)?.unwrap_or(false);
        let mut types = match map.get("type") {
            None => Vec::new(),
            Some(Value::String(t)) if t.is_empty() => Vec::new(),
            Some(Value::String(t)) => vec![t.clone()],
            Some(_) => return Err(err(&format!("{path}.type"), "must be a string")),
        };
        if int_or_string {
            types = vec!["integer".to_string(), "string".to_string()];
        }
        let format = match map.get("format") {
            None => None,
            Some(Value::String(f)) => supported_format(&types, f),
            Some(_) => return Err(err(&format!("{path}.format"), "must be a string")),
        };
        let pattern = match map.get("pattern") {
            None => None,
            Some(Value::String(p)) => {
                let re = Regex::new(p).map_err(|e| {
                    err(
                        &format!("{path}.pattern"),
                        &format!("must be a valid regular expression, but isn't: {e}"),
                    )
                })?;
                Some((p.clone(), re))
            }
            Some(_) => return Err(err(&format!("{path}.pattern"), "must be a string")),
        };
        let enum_values = match map.get("enum") {
            None => None,
            Some(Value::Array(values)) => Some(values.clone()),
            Some(_) => return Err(err(&format!("{path}.enum"), "must be an array")),
        };
        let required = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err(&format!("{path}.required"), "must be a list of strings"))?,
            Some(_) => {
                return Err(err(
                    &format!("{path}.required"),
                    "must be a list of strings",
                ));
            }
        };
        let mut properties = Vec::new();
        let mut property_index = HashMap::new();
        if let Some(props) = map.get("properties") {
            let props = props
                .as_object()
                .ok_or_else(|| err(&format!("{path}.properties"), "must be an object"))?;
            for (name, schema) in props {
                let node = Node::parse(schema, &format!("{path}.properties[{name}]"))?;
                property_index.insert(name.clone(), properties.len());
                properties.push((name.clone(), node));
            }
        }
        let additional = match map.get("additionalProperties") {
            None => Additional::Unspecified,
            Some(Value::Bool(b)) => Additional::Allowed(*b),
            Some(schema) => Additional::Schema(Box::new(Node::parse(
                schema,
                &format!("{path}.additionalProperties"),
            )?)),
        };
        let items = match map.get("items") {
            None => None,
            Some(Value::Array(_)) => {
                return Err(err(
                    &format!("{path}.items"),
                    "must be a single schema, not a list",
                ));
            }
            Some(schema) => Some(Box::new(Node::parse(schema, &format!("{path}.items"))?)),
        };
        let list_map_keys = match map.get("x-kubernetes-list-map-keys") {
            None => Vec::new(),
            Some(Value::Array(keys)) => keys
                .iter()
                .map(|k| k.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    err(
                        &format!("{path}.x-kubernetes-list-map-keys"),
                        "must be a list of strings",
                    )
                })?,
            Some(_) => {
                return Err(err(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    "must be a list of strings",
                ));
            }
        };
        Ok(Node {
            types,
            nullable: bool_kw(map, "nullable", path)?.unwrap_or(false),
            format,
            enum_values,
            pattern,
            maximum: number_kw(map, "maximum", path)?,
            exclusive_maximum: bool_kw(map, "exclusiveMaximum", path)?.unwrap_or(false),
            minimum: number_kw(map, "minimum", path)?,
            exclusive_minimum: bool_kw(map, "exclusiveMinimum", path)?.unwrap_or(false),
            multiple_of: number_kw(map, "multipleOf", path)?,
            max_length: int_kw(map, "maxLength", path)?,
            min_length: int_kw(map, "minLength", path)?,
            max_items: int_kw(map, "maxItems", path)?,
            min_items: int_kw(map, "minItems", path)?,
            unique_items: bool_kw(map, "uniqueItems", path)?.unwrap_or(false),
            max_properties: int_kw(map, "maxProperties", path)?,
            min_properties: int_kw(map, "minProperties", path)?,
            required,
            properties,
            property_index,
            additional,
            items,
            all_of: list_kw(map, "allOf", path)?,
            any_of: list_kw(map, "anyOf", path)?,
            one_of: list_kw(map, "oneOf", path)?,
            not: match map.get("not") {
                None => None,
                Some(schema) => Some(Box::new(Node::parse(schema, &format!("{path}.not"))?)),
            },
            default: map.get("default").cloned(),
            preserve_unknown_fields: bool_kw(map, "x-kubernetes-preserve-unknown-fields", path)?
                .unwrap_or(false),
            embedded_resource: bool_kw(map, "x-kubernetes-embedded-resource", path)?
                .unwrap_or(false),
            list_type: match map.get("x-kubernetes-list-type") {
                None => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(_) => {
                    return Err(err(
                        &format!("{path}.x-kubernetes-list-type"),
                        "must be a string",
                    ));
                }
            },
            list_map_keys,
            map_type: match map.get("x-kubernetes-map-type") {
                None => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(_) => {
                    return Err(err(
                        &format!("{path}.x-kubernetes-map-type"),
                        "must be a string",
                    ));
                }
            },
            validations: match map.get("x-kubernetes-validations") {
                None => Vec::new(),
                Some(rules) => crate::cel::parse_rules(rules, path)?,
            },
        })
    }

    /// The schema of property `name`, if declared.
    pub(crate) fn property(&self, name: &str) -> Option<&Node> {
        self.property_index
            .get(name)
            .map(|&i| &self.properties[i].1)
    }

    /// The schema a key of an object follows: its property, else `additionalProperties`.
    pub(crate) fn field_schema(&self, name: &str) -> Option<&Node> {
        self.property(name).or(match &self.additional {
            Additional::Schema(node) => Some(node),
            _ => None,
        })
    }

    /// Whether `additionalProperties` is given (schema or boolean), which makes every key "known" to pruning.
    pub(crate) fn has_additional(&self) -> bool {
        !matches!(self.additional, Additional::Unspecified)
    }
}

/// Keeps a format only where the API server validates it (`StripUnsupportedFormatsPostProcessorForVersion`).
fn supported_format(types: &[String], format: &str) -> Option<String> {
    let single = if types.len() == 1 {
        types[0].as_str()
    } else {
        ""
    };
    let keep = match single {
        "" | "string" => {
            let normalized = format.replace('-', "");
            SUPPORTED_STRING_FORMATS.contains(&normalized.as_str())
                || SUPPORTED_STRING_FORMATS.contains(&format)
        }
        "integer" => format == "int32" || format == "int64",
        "number" => format == "float" || format == "double",
        _ => false,
    };
    keep.then(|| format.to_string())
}

fn err(path: &str, message: &str) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

fn bool_kw(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, SchemaError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be a boolean")),
    }
}

fn number_kw(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, SchemaError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be a number")),
    }
}

fn int_kw(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, SchemaError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| err(&format!("{path}.{key}"), "must be an integer")),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be an integer")),
    }
}

fn list_kw(map: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<Node>, SchemaError> {
    match map.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(schemas)) => schemas
            .iter()
            .enumerate()
            .map(|(i, s)| Node::parse(s, &format!("{path}.{key}[{i}]")))
            .collect(),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be a list of schemas")),
    }
}
