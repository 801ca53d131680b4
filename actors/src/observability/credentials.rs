//! [`Credentials`]: what a query backend (Prometheus, Loki, Tempo) is sent with every request,
//! from `observability_integration.<backend>.auth` and its secret. Values never print.

use reqwest::RequestBuilder;
use sre_config::{SecretStore, SecretString, UpstreamAuth};

/// A backend's credentials.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// None.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// `Authorization: Basic ...`.
    Basic {
        /// User.
        username: SecretString,
        /// Password.
        password: SecretString,
    },
    /// Configured but unreadable (a missing secret): every call fails with this reason instead
    /// of going out without them.
    Unavailable(String),
}

impl Credentials {
    /// Reads what `auth` names from `store`; a missing secret becomes [`Credentials::Unavailable`].
    pub fn read(auth: &UpstreamAuth, store: &SecretStore) -> Self {
        let read = || -> Result<Credentials, sre_config::SecretError> {
            Ok(match auth {
                UpstreamAuth::None => Credentials::None,
                UpstreamAuth::Bearer { secret_ref } => {
                    Credentials::Bearer(store.read(secret_ref, "token")?)
                }
                UpstreamAuth::Basic { secret_ref } => Credentials::Basic {
                    username: store.read(secret_ref, "username")?,
                    password: store.read(secret_ref, "password")?,
                },
            })
        };
        read().unwrap_or_else(|e| Credentials::Unavailable(e.to_string()))
    }

    /// Why calls cannot be made, if the credentials are unavailable.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            Credentials::Unavailable(why) => Some(why),
            _ => None,
        }
    }

    /// `req` with the credentials' header.
    pub fn apply(&self, req: RequestBuilder) -> RequestBuilder {
        match self {
            Credentials::None | Credentials::Unavailable(_) => req,
            Credentials::Bearer(t) => req.bearer_auth(t.expose()),
            Credentials::Basic { username, password } => {
                req.basic_auth(username.expose(), Some(password.expose()))
            }
        }
    }
}
