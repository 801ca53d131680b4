//! From YAML text to the typed sections, collecting *every* structural problem rather than the
//! first: after each error the offending key is removed from the document and deserialization is
//! tried again, so one run names every unknown key and every bad value.

use serde::de::DeserializeOwned;
use serde_norway::Value;
use serde_path_to_error::Segment;

use crate::error::Collector;

/// How many distinct problems one document may report before the parser gives up.
const MAX_ERRORS: usize = 64;

/// Deserializes `text` into `T`; every problem is pushed to `errors`.
pub(crate) fn parse_collecting<T: DeserializeOwned>(
    text: &str,
    errors: &mut Collector,
) -> Option<T> {
    let mut doc: Value = match serde_norway::from_str(text) {
        Ok(Value::Null) => Value::Mapping(Default::default()),
        Ok(v) => v,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            errors.push("", format!("not valid YAML{at}: {e}"));
            return None;
        }
    };
    let mut removed: Vec<Vec<String>> = Vec::new();
    for _ in 0..MAX_ERRORS {
        match serde_path_to_error::deserialize::<_, T>(doc.clone()) {
            Ok(v) => return if removed.is_empty() { Some(v) } else { None },
            Err(e) => {
                let mut path = segments(e.path());
                let message = e.inner().to_string();
                let missing = message.starts_with("missing field");
                if missing && removed.iter().any(|r| r.starts_with(&path)) {
                    // A consequence of removing a bad required value, already reported.
                    return None;
                }
                if let Some(field) = unknown_field(&message) {
                    if path.last().map(String::as_str) != Some(field) {
                        path.push(field.to_owned());
                    }
                }
                errors.push(path.join("."), clean(&message));
                if missing || path.is_empty() || !remove(&mut doc, &path) {
                    return None;
                }
                removed.push(path);
            }
        }
    }
    errors.push(
        "",
        format!("more than {MAX_ERRORS} problems; fix these first"),
    );
    None
}

fn segments(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Makes serde's wording say what was expected in this file's terms.
fn clean(message: &str) -> String {
    if let Some(field) = unknown_field(message) {
        let expected = message
            .split_once(", expected ")
            .map(|(_, e)| format!("; expected {e}"))
            .unwrap_or_default();
        return format!("unknown key `{field}`{expected}");
    }
    message.to_owned()
}

/// Removes the value at `path`; false when the path does not lead anywhere.
fn remove(doc: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = doc;
    for seg in parents {
        node = match node {
            Value::Mapping(m) => match m.get_mut(seg.as_str()) {
                Some(v) => v,
                None => return false,
            },
            Value::Sequence(s) => match seg.parse::<usize>().ok().and_then(|i| s.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            Value::Tagged(t) => &mut t.value,
            _ => return false,
        };
    }
    match node {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        Value::Sequence(s) => match last.parse::<usize>() {
            Ok(i) if i < s.len() => {
                s.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
