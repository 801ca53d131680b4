//! Argument validation against a tool's JSON Schema.
//!
//! A small validator for the subset of JSON Schema (draft 2020-12) that tool schemas use:
//! `type` (one or several), `properties`, `required`, `additionalProperties` (boolean or
//! schema), `minProperties`/`maxProperties`, `items`, `minItems`/`maxItems`, `uniqueItems`,
//! `enum`, `const`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `anyOf`/`oneOf`/`allOf`/`not`, and the annotations
//! (`title`, `description`, `default`, `examples`, `format`, `$schema`, `$id`, `$comment`,
//! `deprecated`, `readOnly`, `writeOnly`).
//!
//! Why not the `jsonschema` crate: it brings some forty crates (regex engines, URL and e-mail
//! validation, remote reference resolution) for features no tool uses, and a reference
//! resolver is an outbound network path the gate does not need. What this validator does not
//! know it refuses: [`check_supported`] runs when the gateway is built, so a schema with a
//! keyword outside the subset (`$ref`, `if`, `patternProperties`...) stops the start instead of
//! being half-checked.

use serde_json::{Map, Value};

/// The keywords understood (constraints and annotations).
const KNOWN: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "title",
    "description",
    "default",
    "examples",
    "format",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Whether `schema` uses only the subset this validator checks; the error names the first
/// keyword (with its path) it does not.
pub fn check_supported(schema: &Value) -> Result<(), String> {
    supported(schema, "#")
}

fn supported(schema: &Value, at: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{at}: a schema must be an object or a boolean")),
    };
    for (k, v) in obj {
        if !KNOWN.contains(&k.as_str()) {
            return Err(format!("{at}: unsupported keyword {k:?}"));
        }
        match k.as_str() {
            "properties" => {
                let props = v
                    .as_object()
                    .ok_or_else(|| format!("{at}/properties: must be an object"))?;
                for (name, s) in props {
                    supported(s, &format!("{at}/properties/{name}"))?;
                }
            }
            "additionalProperties" | "items" | "not" => supported(v, &format!("{at}/{k}"))?,
            "anyOf" | "oneOf" | "allOf" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| format!("{at}/{k}: must be an array"))?;
                for (i, s) in list.iter().enumerate() {
                    supported(s, &format!("{at}/{k}/{i}"))?;
                }
            }
            "pattern" => {
                let p = v
                    .as_str()
                    .ok_or_else(|| format!("{at}/pattern: must be a string"))?;
                regex::Regex::new(p).map_err(|e| format!("{at}/pattern: {e}"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks `value` against `schema`; the error says where (`/manifest/kind`) and why.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "")
}

fn here(at: &str) -> &str {
    if at.is_empty() {
        "the arguments"
    } else {
        at
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let obj: &Map<String, Value> = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: not allowed", here(at))),
        Value::Object(o) => o,
        _ => return Ok(()),
    };
    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
            return Err(format!(
                "{}: expected {}, found {}",
                here(at),
                types.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(Value::Array(allowed)) = obj.get("enum") {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!("{}: must be one of {}", here(at), list.join(", ")));
        }
    }
    if let Some(c) = obj.get("const") {
        if c != value {
            return Err(format!("{}: must be {c}", here(at)));
        }
    }
    match value {
        Value::Object(map) => object(obj, map, at)?,
        Value::Array(items) => array(obj, items, at)?,
        Value::String(s) => string(obj, s, at)?,
        Value::Number(_) => number(obj, value, at)?,
        _ => {}
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for s in all {
            check(s, value, at)?;
        }
    }
    if let Some(Value::Array(any)) = obj.get("anyOf") {
        let errors: Vec<String> = any
            .iter()
            .filter_map(|s| check(s, value, at).err())
            .collect();
        if errors.len() == any.len() {
            return Err(format!(
                "{}: matches none of the allowed forms ({})",
                here(at),
                errors.join("; ")
            ));
        }
    }
    if let Some(Value::Array(one)) = obj.get("oneOf") {
        let matching = one.iter().filter(|s| check(s, value, at).is_ok()).count();
        if matching != 1 {
            return Err(format!(
                "{}: must match exactly one of the allowed forms (matches {matching})",
                here(at)
            ));
        }
    }
    if let Some(not) = obj.get("not") {
        if check(not, value, at).is_ok() {
            return Err(format!("{}: matches a form that is not allowed", here(at)));
        }
    }
    Ok(())
}

fn object(obj: &Map<String, Value>, map: &Map<String, Value>, at: &str) -> Result<(), String> {
    if let Some(Value::Array(required)) = obj.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                return Err(format!("{}: missing required property {r:?}", here(at)));
            }
        }
    }
    let props = obj.get("properties").and_then(Value::as_object);
    for (k, v) in map {
        let path = format!("{at}/{k}");
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(s, v, &path)?,
            None => match obj.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{}: unknown property {k:?}", here(at)))
                }
                Some(s) => check(s, v, &path)?,
                None => {}
            },
        }
    }
    let n = map.len() as u64;
    if let Some(min) = obj.get("minProperties").and_then(Value::as_u64) {
        if n < min {
            return Err(format!("{}: needs at least {min} properties", here(at)));
        }
    }
    if let Some(max) = obj.get("maxProperties").and_then(Value::as_u64) {
        if n > max {
            return Err(format!("{}: allows at most {max} properties", here(at)));
        }
    }
    Ok(())
}

fn array(obj: &Map<String, Value>, items: &[Value], at: &str) -> Result<(), String> {
    let n = items.len() as u64;
    if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
        if n < min {
            return Err(format!("{}: needs at least {min} items", here(at)));
        }
    }
    if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
        if n > max {
            return Err(format!("{}: allows at most {max} items", here(at)));
        }
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, a) in items.iter().enumerate() {
            if items[..i].contains(a) {
                return Err(format!("{}: items must be unique", here(at)));
            }
        }
    }
    if let Some(s) = obj.get("items") {
        for (i, v) in items.iter().enumerate() {
            check(s, v, &format!("{at}/{i}"))?;
        }
    }
    Ok(())
}

fn string(obj: &Map<String, Value>, s: &str, at: &str) -> Result<(), String> {
    let n = s.chars().count() as u64;
    if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
        if n < min {
            return Err(format!("{}: must be at least {min} characters", here(at)));
        }
    }
    if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
        if n > max {
            return Err(format!("{}: must be at most {max} characters", here(at)));
        }
    }
    if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
        // Checked to compile by `check_supported` when the gateway was built.
        let re = regex::Regex::new(p).map_err(|e| format!("{}: bad pattern: {e}", here(at)))?;
        if !re.is_match(s) {
            return Err(format!("{}: must match {p:?}", here(at)));
        }
    }
    Ok(())
}

fn number(obj: &Map<String, Value>, v: &Value, at: &str) -> Result<(), String> {
    let Some(x) = num(v) else { return Ok(()) };
    let bound = |k: &str| obj.get(k).and_then(num);
    if let Some(m) = bound("minimum") {
        if x < m {
            return Err(format!("{}: must be at least {m}", here(at)));
        }
    }
    if let Some(m) = bound("maximum") {
        if x > m {
            return Err(format!("{}: must be at most {m}", here(at)));
        }
    }
    if let Some(m) = bound("exclusiveMinimum") {
        if x <= m {
            return Err(format!("{}: must be greater than {m}", here(at)));
        }
    }
    if let Some(m) = bound("exclusiveMaximum") {
        if x >= m {
            return Err(format!("{}: must be less than {m}", here(at)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "cluster": {"type": "string", "minLength": 1},
                "kind": {"type": "string", "enum": ["Deployment", "StatefulSet"]},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "name": {"type": "string", "pattern": "^[a-z0-9-]+$"}
            },
            "required": ["cluster", "kind"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_matching_arguments() {
        let ok = json!({"cluster": "dev", "kind": "Deployment", "replicas": 3, "argv": ["ls"], "name": "web-1"});
        validate(&schema(), &ok).unwrap();
        check_supported(&schema()).unwrap();
    }

    #[test]
    fn names_what_is_wrong_and_where() {
        let cases = [
            (
                json!({"kind": "Deployment"}),
                "missing required property \"cluster\"",
            ),
            (
                json!({"cluster": "dev", "kind": "Pod"}),
                "/kind: must be one of",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "replicas": 11}),
                "/replicas: must be at most 10",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "replicas": "3"}),
                "/replicas: expected integer, found string",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "argv": []}),
                "/argv: needs at least 1 items",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "argv": [1]}),
                "/argv/0: expected string",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "extra": 1}),
                "unknown property \"extra\"",
            ),
            (
                json!({"cluster": "dev", "kind": "Deployment", "name": "Web"}),
                "/name: must match",
            ),
            (
                json!({"cluster": "", "kind": "Deployment"}),
                "/cluster: must be at least 1 characters",
            ),
            (json!([1]), "the arguments: expected object, found array"),
        ];
        for (args, want) in cases {
            let e = validate(&schema(), &args).unwrap_err();
            assert!(e.contains(want), "{args}: {e}");
        }
    }

    #[test]
    fn refuses_schemas_it_cannot_check() {
        let e = check_supported(&json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}))
            .unwrap_err();
        assert!(
            e.contains("#/properties/a: unsupported keyword \"$ref\""),
            "{e}"
        );
        assert!(check_supported(&json!({"pattern": "("})).is_err());
    }
}
