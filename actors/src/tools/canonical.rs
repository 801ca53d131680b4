//! Canonical JSON and its SHA-256: what an approval is bound to.
//!
//! The canonical form of a JSON value is its serialization with every object's keys sorted
//! (by their UTF-8 bytes, recursively) and no insignificant whitespace; strings and numbers are
//! written as `serde_json` writes them. Two argument objects that differ only in key order or
//! spacing have the same form, and so the same hash; any other difference (a value, a key, a
//! number written `1.0` instead of `1`) changes it.

use serde_json::Value;

/// The canonical serialization of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of the canonical form of `args`.
pub fn arguments_sha256(args: &Value) -> String {
    sha256_hex(canonical(args).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_spacing_do_not_matter_values_do() {
        let a: Value =
            serde_json::from_str(r#"{ "b": 1, "a": {"y": [1, 2], "x": "é\"q"} }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"é\"q","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":{"x":"é\"q","y":[1,2]},"b":1}"#);
        assert_eq!(arguments_sha256(&a), arguments_sha256(&b));
        assert_ne!(
            arguments_sha256(&a),
            arguments_sha256(&json!({"a": {"x": "é\"q", "y": [2, 1]}, "b": 1}))
        );
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
