//! Bearer tokens → [`Caller`]s, for both doors.
//!
//! `tools.tokens` names each token (the identity audited and checked against self-approval)
//! and gives it a role. The secrets are read once when the gateway is built; a token whose
//! secret cannot be read is logged and authenticates nobody. A presented token is compared
//! with every configured one in constant time (no early exit on the first match or the first
//! differing byte), so timing tells nothing about how close a guess was.
//!
//! With no tokens and `allow_unauthenticated` (loopback only, checked at start), every caller
//! is the agent `anonymous`.

use sre_config::{SecretStore, SecretString, ToolRole, ToolsConfig};

use super::tool::{Caller, Role};

/// The identity of callers when tools run without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// Why a request was not authenticated (each maps to 401, or 503 for `Unavailable`).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing credentials: send Authorization: Bearer <token> (tools.tokens)")]
    Missing,
    /// A token that is not configured.
    #[error("invalid credentials (tools.tokens)")]
    Invalid,
    /// No configured token could be read from its secret.
    #[error("tool credentials unavailable: {0}")]
    Unavailable(String),
}

/// The configured tokens.
#[derive(Clone, Debug)]
pub struct Tokens {
    entries: Vec<(SecretString, Caller)>,
    unreadable: Vec<String>,
    open: bool,
}

impl Tokens {
    /// Reads `tools.tokens` from `store`.
    pub fn from_config(tools: &ToolsConfig, store: &SecretStore) -> Tokens {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for t in &tools.tokens {
            match store.read(&t.secret_ref, "token") {
                Ok(secret) => entries.push((
                    secret,
                    Caller {
                        identity: t.name.clone(),
                        role: role(t.role),
                    },
                )),
                Err(e) => {
                    tracing::error!(token = %t.name, error = %e, "tool token unreadable: it authenticates nobody until it is mounted and the service restarted");
                    unreadable.push(format!("token {:?}: {e}", t.name));
                }
            }
        }
        Tokens {
            entries,
            unreadable,
            open: tools.tokens.is_empty() && tools.allow_unauthenticated,
        }
    }

    /// Tokens given directly (tests, embedders).
    pub fn new(entries: Vec<(SecretString, Caller)>) -> Tokens {
        Tokens {
            entries,
            unreadable: Vec::new(),
            open: false,
        }
    }

    /// No tokens: every caller is the agent [`ANONYMOUS`].
    pub fn open() -> Tokens {
        Tokens {
            entries: Vec::new(),
            unreadable: Vec::new(),
            open: true,
        }
    }

    /// The caller presenting `authorization` (the header's value, if any).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if self.open {
            return Ok(Caller {
                identity: ANONYMOUS.into(),
                role: Role::Agent,
            });
        }
        if self.entries.is_empty() {
            return Err(AuthError::Unavailable(self.unreadable.join("; ")));
        }
        let given = authorization.unwrap_or("").trim();
        let token = match given.split_once(' ') {
            Some((scheme, cred)) if scheme.eq_ignore_ascii_case("bearer") => cred.trim(),
            _ if given.is_empty() => return Err(AuthError::Missing),
            _ => return Err(AuthError::Invalid),
        };
        let mut found: Option<&Caller> = None;
        for (secret, caller) in &self.entries {
            if constant_time_eq(token.as_bytes(), secret.expose().as_bytes()) {
                found = Some(caller);
            }
        }
        found.cloned().ok_or(AuthError::Invalid)
    }
}

fn role(r: ToolRole) -> Role {
    match r {
        ToolRole::Agent => Role::Agent,
        ToolRole::Approver => Role::Approver,
    }
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_map_to_their_callers() {
        let t = Tokens::new(vec![
            (
                SecretString::new("agent-tok"),
                Caller {
                    identity: "srecoder".into(),
                    role: Role::Agent,
                },
            ),
            (
                SecretString::new("approver-tok"),
                Caller {
                    identity: "alice".into(),
                    role: Role::Approver,
                },
            ),
        ]);
        assert_eq!(
            t.authenticate(Some("Bearer agent-tok")).unwrap().identity,
            "srecoder"
        );
        assert_eq!(
            t.authenticate(Some("bearer approver-tok")).unwrap().role,
            Role::Approver
        );
        assert_eq!(t.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            t.authenticate(Some("Bearer agent-to")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            t.authenticate(Some("Basic agent-tok")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            Tokens::open().authenticate(None).unwrap().identity,
            ANONYMOUS
        );
    }
}
