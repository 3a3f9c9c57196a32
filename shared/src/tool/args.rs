//! Tool arguments: the model writes them, so unknown ones are rejected by name and values are never echoed.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ToolError;
use crate::schema::schema_of;

/// The arguments as `T`. An unknown argument, a missing one or one of the wrong type is `invalid_input`
/// naming the field; serde's own messages are not used, because some quote the value.
pub fn parse_arguments<T: DeserializeOwned + JsonSchema>(arguments: &Map<String, Value>) -> Result<T, ToolError> {
    let schema = schema_of::<T>();
    let known = schema.get("properties").and_then(Value::as_object);
    if let Some(unknown) = arguments.keys().find(|k| !known.is_some_and(|p| p.contains_key(k.as_str()))) {
        return Err(ToolError::invalid(format!("unknown argument `{}`", field_name(unknown))));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(missing) = required.iter().find(|r| !arguments.contains_key(**r)) {
        return Err(ToolError::invalid(format!("`{}` is required", field_name(missing))));
    }
    let deserializer = Value::Object(arguments.clone());
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = path.split(['.', '[']).next().unwrap_or_default();
        if field.is_empty() || field == "?" {
            ToolError::invalid("the arguments do not match the tool's schema")
        } else {
            ToolError::invalid(format!("`{}` has the wrong type", field_name(field)))
        }
    })
}

/// An argument name as we may echo it: an identifier of at most 40 ASCII characters. A key that is not
/// one (spaces, digits first, anything longer) could be text the model wrote, and is not shown.
fn field_name(name: &str) -> String {
    let identifier = (1..=40).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if identifier { name.to_owned() } else { "(name not shown)".to_owned() }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed: the test checks what parsing refuses")]
    struct Input {
        /// A note.
        note: String,
        #[serde(default)]
        count: Option<u32>,
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn names_the_field_and_never_the_value() {
        let cases = [
            (json!({"note": "x", "mrn": "38815207"}), "unknown argument `mrn`"),
            (json!({"count": 3}), "`note` is required"),
            (json!({"note": 38815207}), "`note` has the wrong type"),
            (json!({"note": "x", "count": "38815207"}), "`count` has the wrong type"),
            (json!({"note": "x", "Jane Doe 38815207": 1}), "unknown argument `(name not shown)`"),
        ];
        for (value, want) in cases {
            let err = parse_arguments::<Input>(&args(value)).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.ends_with(want), "{err}");
            assert!(!err.contains("Jane Doe"), "{err}");
        }
        assert!(parse_arguments::<Input>(&args(json!({"note": "x", "count": 2}))).is_ok());
    }
}
