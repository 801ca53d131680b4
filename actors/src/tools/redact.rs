//! Redaction of everything that leaves the gate: tool outputs, previews, the arguments shown
//! to approvers and written to the audit log.
//!
//! What is replaced by `[redacted]`:
//! - a Kubernetes Secret's `data` and `stringData` values (keys stay visible), in a `Secret`
//!   object, in a `SecretList`'s items, and the Secret's
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation, which repeats them;
//! - the `value` of an environment variable (`{name, value}`) and a ConfigMap's `data` /
//!   `binaryData` value whose name looks sensitive: a word of it (split at `_`, `-`, `.` and
//!   lower-to-upper case changes) is `password`, `passwd`, `pwd`, `secret`, `token`, `key`,
//!   `credential(s)`, `apikey` or `privatekey`, or the name contains `password`, `secret`,
//!   `token` or `credential`;
//! - any other string value under a key that contains `password`, `passwd`, `secret`,
//!   `token`, `credential`, `apikey`/`api_key`, `private_key` (a key ending in `name`, such as
//!   `secretName`, names something and is kept);
//! - inside every string: `Bearer <token>`, PEM private key blocks, `password=...`-style
//!   assignments, and every configured secret value (each secret the configuration
//!   references, as resolved from the secrets directory, at least 4 characters long),
//!   in object keys too.
//!
//! Over-redaction is the accepted failure mode: an agent can ask a person; a leaked
//! credential cannot be taken back.

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};
use sre_config::{Config, SecretStore};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shortest configured secret value replaced inside text (shorter ones would blank out
/// ordinary words).
pub const MIN_SECRET_LEN: usize = 4;

/// Redacts JSON values and text. Cheap to clone.
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Configured secret values, longest first (so a secret containing another goes whole).
    secrets: Vec<String>,
    bearer: Regex,
    pem: Regex,
    assignment: Regex,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secret values)", self.inner.secrets.len())
    }
}

impl Redactor {
    /// A redactor that also replaces each of `secrets` wherever it appears.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            inner: Arc::new(Inner {
                secrets,
                bearer: Regex::new(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*").expect("static"),
                pem: Regex::new(
                    r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
                )
                .expect("static"),
                assignment: Regex::new(
                    r#"(?i)\b([A-Za-z0-9_.\-]*(?:password|passwd|secret|token|api[_-]?key|credentials?|private[_-]?key)[A-Za-z0-9_.\-]*)(\\?["']?\s*[:=]\s*\\?["']?)([^\s"'\\,;&}]+)"#,
                )
                .expect("static"),
            }),
        }
    }

    /// Every secret value the configuration references (each key of each `secret_ref`, read
    /// from `store`); one that cannot be read is skipped (it cannot be in any output either).
    pub fn from_config(config: &Config, store: &SecretStore) -> Redactor {
        let mut values = Vec::new();
        for need in config.secret_needs() {
            for key in need.keys {
                if let Ok(v) = store.read(&need.secret, key) {
                    values.push(v.expose().to_owned());
                }
            }
        }
        for t in &config.tools.tokens {
            if let Ok(v) = store.read(&t.secret_ref, "token") {
                values.push(v.expose().to_owned());
            }
        }
        Redactor::new(values)
    }

    /// How many configured values it replaces.
    pub fn secret_count(&self) -> usize {
        self.inner.secrets.len()
    }

    /// Redacts `text`.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let i = &self.inner;
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        for s in &i.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        if i.pem.is_match(&out) {
            out = Cow::Owned(
                i.pem
                    .replace_all(&out, "[redacted private key]")
                    .into_owned(),
            );
        }
        if i.bearer.is_match(&out) {
            out = Cow::Owned(i.bearer.replace_all(&out, "$1 [redacted]").into_owned());
        }
        if i.assignment.is_match(&out) {
            out = Cow::Owned(
                i.assignment
                    .replace_all(&out, "${1}${2}[redacted]")
                    .into_owned(),
            );
        }
        out
    }

    /// A redacted copy of `value`.
    pub fn value(&self, value: &Value) -> Value {
        let mut v = value.clone();
        self.in_place(&mut v);
        v
    }

    /// Redacts `value` where it is.
    pub fn in_place(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.text(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.in_place(v)),
            Value::Object(map) => {
                // A key can carry a secret too (an unknown argument named after one).
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| match self.text(k) {
                        Cow::Owned(r) => Some((k.clone(), r)),
                        Cow::Borrowed(_) => None,
                    })
                    .collect();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        map.insert(new, v);
                    }
                }
                self.structured(map);
                for (k, v) in map.iter_mut() {
                    if v.is_string() && sensitive_key(k) {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.in_place(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// The Kubernetes shapes: Secrets, ConfigMaps, environment variables.
    fn structured(&self, map: &mut Map<String, Value>) {
        match map.get("kind").and_then(Value::as_str) {
            Some("Secret") => blank_secret(map),
            Some("SecretList") => {
                if let Some(Value::Array(items)) = map.get_mut("items") {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        blank_secret(item);
                    }
                }
            }
            Some("ConfigMap") => {
                for field in ["data", "binaryData"] {
                    if let Some(Value::Object(data)) = map.get_mut(field) {
                        for (k, v) in data.iter_mut() {
                            if sensitive_name(k) {
                                *v = Value::String(REDACTED.into());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        // An environment variable (`env: [{name, value}]`).
        let is_env = map.len() <= 3
            && map.get("value").is_some_and(Value::is_string)
            && map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(sensitive_name);
        if is_env {
            map.insert("value".into(), Value::String(REDACTED.into()));
        }
    }
}

/// Blanks a Secret object's values and the annotation that repeats them.
fn blank_secret(map: &mut Map<String, Value>) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(data)) = map.get_mut(field) {
            for v in data.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    if let Some(Value::Object(ann)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        if let Some(v) = ann.get_mut("kubectl.kubernetes.io/last-applied-configuration") {
            *v = Value::String(REDACTED.into());
        }
    }
}

/// The words of a name: split at `_`, `-`, `.`, `/`, and lower-to-upper changes, lowercased.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.' | '/' | ' ') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether an environment variable or ConfigMap key name looks like it holds a credential.
pub fn sensitive_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    if ["password", "secret", "token", "credential"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return true;
    }
    words(name).iter().any(|w| {
        matches!(
            w.as_str(),
            "password"
                | "passwd"
                | "pwd"
                | "secret"
                | "token"
                | "key"
                | "credential"
                | "credentials"
                | "apikey"
                | "privatekey"
        )
    })
}

/// Whether any JSON object key names a credential (stricter than [`sensitive_name`]: a bare
/// `key`, as in tolerations and selectors, is not one; names of things are kept).
fn sensitive_key(key: &str) -> bool {
    let lower = key.to_lowercase();
    if lower.ends_with("name") || lower.ends_with("ref") {
        return false;
    }
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "apikey",
        "api_key",
        "private_key",
        "privatekey",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_env_configmaps_and_text() {
        let r = Redactor::new(["planted-s3cr3t-value".to_owned()]);
        let out = r.value(&json!({
            "secret": {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "stringData": {"x": "y"},
                       "metadata": {"name": "db", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}}},
            "list": {"kind": "SecretList", "items": [{"data": {"k": "dmFsdWU="}}]},
            "cm": {"kind": "ConfigMap", "data": {"DB_PASSWORD": "hunter2", "mode": "fast", "signing.key": "abc"}},
            "env": [{"name": "API_TOKEN", "value": "tok123"}, {"name": "AwsSecretAccessKey", "value": "a"}, {"name": "LOG_LEVEL", "value": "info"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
            "volume": {"secretName": "db-creds"},
            "log": "connecting with Authorization: Bearer eyJhbGciOi.abc-def and password=hunter2; planted-s3cr3t-value",
            "pem": "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\ny",
            "nested": {"clientSecret": "zzz"}
        }));
        let text = out.to_string();
        for leaked in [
            "aHVudGVyMg==",
            "dmFsdWU=",
            "hunter2",
            "tok123",
            "eyJhbGciOi",
            "planted-s3cr3t-value",
            "MIIEow",
            "zzz",
            "\"abc\"",
            "\"y\"",
        ] {
            assert!(!text.contains(leaked), "{leaked} leaked: {text}");
        }
        for kept in [
            "fast",
            "info",
            "node.kubernetes.io/not-ready",
            "db-creds",
            "\"password\"",
            "Bearer [redacted]",
            "password=[redacted]",
        ] {
            assert!(text.contains(kept), "{kept} lost: {text}");
        }
        assert_eq!(out["env"][1]["value"], REDACTED);
    }

    #[test]
    fn names_that_look_sensitive() {
        for n in [
            "DB_PASSWORD",
            "apiKey",
            "API_KEY",
            "signing.key",
            "GITHUB_TOKEN",
            "aws_secret_access_key",
            "privateKey",
            "credentials.json",
        ] {
            assert!(sensitive_name(n), "{n}");
        }
        for n in ["LOG_LEVEL", "monkey", "keyboard_layout", "HOST", "PORT"] {
            assert!(!sensitive_name(n), "{n}");
        }
    }
}
