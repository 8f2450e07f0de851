//! A constraint's `spec.parameters` checked against its template's `openAPIV3Schema`, as
//! the API server checks a constraint against the CRD Gatekeeper generates from the
//! template: types, `properties` and `additionalProperties`, `items`, `required`, `enum`,
//! `nullable`, bounds, `pattern`, `x-kubernetes-preserve-unknown-fields` and
//! `x-kubernetes-int-or-string`; and `default`s filled in, as the API server does.
//!
//! A field the schema does not know is an error, as `kubectl apply` reports it with its
//! default strict field validation, rather than silently dropped: a misspelt parameter
//! would otherwise leave the constraint enforcing less than its author meant.

use serde_json::{Map, Value as Json};

/// The parameters with the schema's defaults filled in, or the first problem found,
/// named by its path (`spec.parameters.labels[0].key: ...`).
pub fn check(schema: &Json, parameters: &Json) -> Result<Json, String> {
    let mut value = parameters.clone();
    check_at(schema, &mut value, "spec.parameters")?;
    Ok(value)
}

fn check_at(schema: &Json, value: &mut Json, path: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if value.is_null() {
        return match schema.get("nullable") {
            Some(Json::Bool(true)) => Ok(()),
            _ if schema.get("type").is_none() => Ok(()),
            _ => Err(format!("{path}: must not be null")),
        };
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Json::Bool(true));
    if int_or_string {
        if !(value.is_string() || is_integer(value)) {
            return Err(format!(
                "{path}: must be an integer or a string, not {}",
                type_name(value)
            ));
        }
    } else if let Some(expected) = schema.get("type").and_then(Json::as_str) {
        let fits = match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            return Err(format!(
                "{path}: must be {}, not {}",
                article(expected),
                type_name(value)
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Json::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Json::to_string).collect();
            return Err(format!("{path}: {value} is not one of {}", list.join(", ")));
        }
    }
    bounds(schema, value, path)?;
    match value {
        Json::Object(map) => object(schema, map, path),
        Json::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check_at(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn object(
    schema: &Map<String, Json>,
    map: &mut Map<String, Json>,
    path: &str,
) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Json::as_object);
    for required in schema
        .get("required")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
    {
        let defaulted = properties
            .and_then(|p| p.get(required))
            .is_some_and(|s| s.get("default").is_some());
        if !map.contains_key(required) && !defaulted {
            return Err(format!("{path}.{required}: is required"));
        }
    }
    if let Some(properties) = properties {
        for (name, property) in properties {
            if let (None, Some(default)) = (map.get(name), property.get("default")) {
                map.insert(name.clone(), default.clone());
            }
        }
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true));
    let additional = schema.get("additionalProperties");
    for (name, field) in map.iter_mut() {
        let at = format!("{path}.{name}");
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(property), _) => check_at(property, field, &at)?,
            (None, Some(Json::Bool(true))) => {}
            (None, Some(s @ Json::Object(_))) => check_at(s, field, &at)?,
            // A schema that names no properties (`type: object` alone) leaves the
            // object open, as Gatekeeper's untyped parameters are.
            (None, _) if preserve || properties.is_none() => {}
            (None, _) => {
                let known: Vec<&str> = properties
                    .into_iter()
                    .flat_map(|p| p.keys().map(String::as_str))
                    .collect();
                return Err(format!(
                    "{at}: unknown field (the template's schema has: {})",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn bounds(schema: &Map<String, Json>, value: &Json, path: &str) -> Result<(), String> {
    let limit = |key: &str| schema.get(key).and_then(Json::as_f64);
    if let Some(n) = value.as_f64() {
        if let Some(min) = limit("minimum") {
            if n < min {
                return Err(format!("{path}: {value} is less than the minimum {min}"));
            }
        }
        if let Some(max) = limit("maximum") {
            if n > max {
                return Err(format!("{path}: {value} is more than the maximum {max}"));
            }
        }
    }
    let length = match value {
        Json::String(s) => Some((s.chars().count(), "minLength", "maxLength", "characters")),
        Json::Array(a) => Some((a.len(), "minItems", "maxItems", "items")),
        Json::Object(o) => Some((o.len(), "minProperties", "maxProperties", "properties")),
        _ => None,
    };
    if let Some((len, min_key, max_key, unit)) = length {
        if limit(min_key).is_some_and(|min| (len as f64) < min) {
            return Err(format!("{path}: fewer {unit} than {min_key}"));
        }
        if limit(max_key).is_some_and(|max| (len as f64) > max) {
            return Err(format!("{path}: more {unit} than {max_key}"));
        }
    }
    if let (Some(pattern), Json::String(s)) = (schema.get("pattern").and_then(Json::as_str), value)
    {
        let re = regex::Regex::new(pattern)
            .map_err(|e| format!("{path}: the schema's pattern does not compile: {e}"))?;
        if !re.is_match(s) {
            return Err(format!("{path}: {value} does not match {pattern:?}"));
        }
    }
    Ok(())
}

fn is_integer(value: &Json) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn article(ty: &str) -> String {
    match ty {
        "object" | "array" | "integer" => format!("an {ty}"),
        _ => format!("a {ty}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use serde_json::json;

    use super::check;

    fn schema() -> serde_json::Value {
        json!({
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "mode": {"type": "string", "enum": ["strict", "loose"], "default": "strict"},
                "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                "port": {"x-kubernetes-int-or-string": true},
                "labels": {"type": "array", "items": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {"key": {"type": "string", "pattern": "^[a-z]+$"}, "allowedRegex": {"type": "string"}}
                }},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "untyped": {"type": "object"}
            }
        })
    }

    #[test]
    fn good_parameters_pass_with_defaults_filled_in() {
        let got = check(
            &schema(),
            &json!({"labels": [{"key": "team"}], "port": "http", "free": {"x": 1}, "untyped": {"y": [1]}, "ratio": 0.5}),
        )
        .unwrap();
        assert_eq!(got["mode"], "strict");
        assert_eq!(
            check(&schema(), &json!({"port": 8080})).unwrap()["port"],
            8080
        );
    }

    #[test]
    fn each_problem_is_named_by_its_path() {
        for (parameters, problem) in [
            (json!({"message": 5}), "spec.parameters.message: must be a string, not a number"),
            (json!({"mode": "lax"}), "spec.parameters.mode: \"lax\" is not one of \"strict\", \"loose\""),
            (json!({"ratio": 2}), "spec.parameters.ratio: 2 is more than the maximum 1"),
            (json!({"port": true}), "spec.parameters.port: must be an integer or a string, not a boolean"),
            (json!({"labels": [{}]}), "spec.parameters.labels[0].key: is required"),
            (json!({"labels": [{"key": "Team"}]}), "spec.parameters.labels[0].key: \"Team\" does not match \"^[a-z]+$\""),
            (json!({"labels": [{"key": "a", "alowedRegex": "x"}]}), "spec.parameters.labels[0].alowedRegex: unknown field (the template's schema has: allowedRegex, key)"),
            (json!({"labels": {"key": "a"}}), "spec.parameters.labels: must be an array, not an object"),
            (json!([1]), "spec.parameters: must be an object, not an array"),
        ] {
            assert_eq!(check(&schema(), &parameters).unwrap_err(), problem);
        }
    }

    #[test]
    fn no_schema_accepts_anything() {
        assert!(check(&serde_json::Value::Null, &json!({"any": [1]})).is_ok());
    }
}
