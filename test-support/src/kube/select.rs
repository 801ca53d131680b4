//! Label and field selectors.

use super::*;

#[derive(Debug)]
pub(super) enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug)]
pub(super) struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

#[derive(Debug, Default)]
pub(super) struct Filter {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    pub(super) fn parse(params: &[(String, String)]) -> Result<Filter, String> {
        let mut f = Filter::default();
        if let Some(s) = param(params, "labelSelector") {
            f.labels = parse_label_selector(s)?;
        }
        if let Some(s) = param(params, "fieldSelector") {
            f.fields = parse_field_selector(s)?;
        }
        Ok(f)
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        }) && self
            .fields
            .iter()
            .all(|r| (field_value(obj, &r.path) == r.value) == r.equal)
    }
}

pub(super) fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

pub(super) fn valid_key(k: &str) -> Result<String, String> {
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || "=!(),".contains(c)) {
        Err(format!(
            "unable to parse requirement: invalid label key {k:?}"
        ))
    } else {
        Ok(k.to_owned())
    }
}

pub(super) fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let mut reqs = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let req = if let Some((head, vals)) = part.strip_suffix(')').and_then(|p| p.split_once('('))
        {
            let mut words = head.split_whitespace();
            let (Some(k), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            let vals: Vec<String> = vals
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            match op {
                "in" => LabelReq::In(valid_key(k)?, vals),
                "notin" => LabelReq::NotIn(valid_key(k)?, vals),
                _ => {
                    return Err(format!(
                        "unable to parse requirement: unknown operator {op:?}"
                    ))
                }
            }
        } else if let Some(k) = part.strip_prefix('!') {
            LabelReq::NotExists(valid_key(k.trim())?)
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelReq::NotEq(valid_key(k.trim())?, v.trim().to_owned())
        } else if let Some((k, v)) = part.split_once("==") {
            LabelReq::Eq(valid_key(k.trim())?, v.trim().to_owned())
        } else if let Some((k, v)) = part.split_once('=') {
            LabelReq::Eq(valid_key(k.trim())?, v.trim().to_owned())
        } else {
            LabelReq::Exists(valid_key(part)?)
        };
        reqs.push(req);
    }
    Ok(reqs)
}

pub(super) fn parse_field_selector(s: &str) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (path, value, equal) = if let Some((p, v)) = part.split_once("!=") {
            (p, v, false)
        } else if let Some((p, v)) = part.split_once("==") {
            (p, v, true)
        } else if let Some((p, v)) = part.split_once('=') {
            (p, v, true)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        reqs.push(FieldReq {
            path: path.trim().to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(reqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(labels: &str, fields: &str) -> Result<Filter, String> {
        Filter::parse(&[
            ("labelSelector".to_owned(), labels.to_owned()),
            ("fieldSelector".to_owned(), fields.to_owned()),
        ])
    }

    #[test]
    fn label_and_field_selectors_match_as_the_api_does() {
        let obj = json!({
            "metadata": {"name": "api", "namespace": "web", "labels": {"app": "api", "tier": "be"}},
            "status": {"phase": "Running"}
        });
        for (labels, fields, expected) in [
            ("app=api", "", true),
            ("app==api,tier!=fe", "status.phase=Running", true),
            (
                "app in (api,web),!canary",
                "metadata.namespace!=kube-system",
                true,
            ),
            ("tier notin (be)", "", false),
            ("canary", "", false),
            ("app=api", "status.phase=Pending", false),
        ] {
            let f = filter(labels, fields).unwrap_or_else(|e| panic!("{labels}: {e}"));
            assert_eq!(f.matches(&obj), expected, "{labels} / {fields}");
        }
        assert!(filter("app in (api", "").is_err());
        assert!(filter("=x", "").is_err());
    }
}
