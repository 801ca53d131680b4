//! Configuration errors: each names where it came from (file or environment variable), the key
//! path inside the document and what was expected.

use std::fmt;

/// One problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `env SRE_...`) the problem is in.
    pub origin: String,
    /// Dotted key path (`paging_integration.escalation.business_hours.timezone`); empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.path, self.message)
        }
    }
}

/// Every problem found, in document order where possible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Whether `needle` occurs in any error's rendering (for tests and callers that filter).
    pub fn mentions(&self, needle: &str) -> bool {
        self.0.iter().any(|e| e.to_string().contains(needle))
    }
}

/// Collects errors for one origin.
#[derive(Debug)]
pub(crate) struct Collector {
    origin: String,
    pub(crate) errors: Vec<ConfigError>,
}

impl Collector {
    pub(crate) fn new(origin: &str) -> Self {
        Collector {
            origin: origin.to_owned(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.clone(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records a problem when `ok` is false.
    pub(crate) fn check(&mut self, ok: bool, path: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.push(path, message());
        }
    }

    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
