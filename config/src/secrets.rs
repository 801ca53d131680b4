//! Secrets mounted as files, the way Kubernetes projects a Secret into a pod:
//! `<dir>/<namespace>/<name>/<key>`. Values are wrapped in [`SecretString`], whose `Debug` and
//! `Display` print `[redacted]`, so a secret cannot reach a log line, a metric or an error by
//! accident; [`SecretString::expose`] is the one deliberate way out.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::types::SecretRef;

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }
    /// The value itself, for the one place that must send it (an HTTP header, a client).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret could not be read. Never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key's file does not exist.
    #[error("secret {secret} has no key {key:?} (looked for {path})")]
    Missing {
        /// The reference.
        secret: SecretRef,
        /// The key.
        key: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("secret {secret} key {key:?} cannot be read from {path}: {source}")]
    Unreadable {
        /// The reference.
        secret: SecretRef,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty (after trimming one trailing newline).
    #[error("secret {secret} key {key:?} is empty ({path})")]
    Empty {
        /// The reference.
        secret: SecretRef,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
}

/// Reads secrets from a mounted directory.
#[derive(Clone, Debug)]
pub struct SecretStore {
    dir: PathBuf,
}

impl SecretStore {
    /// A store rooted at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SecretStore { dir: dir.into() }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads one key of a Secret; a single trailing newline is dropped.
    pub fn read(&self, secret: &SecretRef, key: &str) -> Result<SecretString, SecretError> {
        let path = self
            .dir
            .join(&secret.namespace)
            .join(&secret.name)
            .join(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::Missing {
                    secret: secret.clone(),
                    key: key.into(),
                    path,
                })
            }
            Err(source) => {
                return Err(SecretError::Unreadable {
                    secret: secret.clone(),
                    key: key.into(),
                    path,
                    source,
                })
            }
        };
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretError::Empty {
                secret: secret.clone(),
                key: key.into(),
                path,
            });
        }
        Ok(SecretString::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redacts_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform/github-token");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("token"), "ghp_abc\n").unwrap();
        let store = SecretStore::new(dir.path());
        let r: SecretRef = "platform/github-token".parse().unwrap();
        let v = store.read(&r, "token").unwrap();
        assert_eq!(v.expose(), "ghp_abc");
        assert_eq!(format!("{v} {v:?}"), "[redacted] SecretString([redacted])");
        let e = store.read(&r, "other").unwrap_err().to_string();
        assert!(
            e.contains("platform/github-token has no key \"other\""),
            "{e}"
        );
        std::fs::write(path.join("blank"), "\n").unwrap();
        assert!(matches!(
            store.read(&r, "blank"),
            Err(SecretError::Empty { .. })
        ));
    }
}
