//! The contract between tools, the gate and the doors.
//!
//! A [`Tool`] knows its name, JSON Schema and how to run (and, for a write, how to preview
//! without changing anything). The [`Gate`] is the one function both doors call: it
//! authenticates nothing itself (a door turns a bearer token into a [`Caller`]) but decides
//! everything else — the tool exists, the caller's role may call it, the arguments match the
//! schema, a write carries a valid approval (bound to the tool and the SHA-256 of the
//! canonical arguments, single-use, unexpired, not granted by the caller), the output is
//! redacted and capped — and audits the call.
//!
//! A write's arguments may carry `approval_id`; it is not part of the arguments the approval
//! is bound to (it is removed before hashing and before the tool sees them).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The argument a write's caller adds to redeem an approval.
pub const APPROVAL_ID_ARG: &str = "approval_id";

/// What a bearer token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Lists and calls tools; a write needs someone else's approval.
    Agent,
    /// Approves or denies pending writes (and may call tools like an agent).
    Approver,
}

impl Role {
    /// The config name and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Approver => "approver",
        }
    }
}

/// Who is calling: the token's configured name (never the token) and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The identity the token was configured with (`srecoder`, `oncall-alice`).
    pub identity: String,
    /// Its role.
    pub role: Role,
}

/// What an agent sees of a tool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    /// `k8s.get_resource`.
    pub name: &'static str,
    /// One line an agent can act on.
    pub description: &'static str,
    /// JSON Schema (draft 2020-12, `type: object`) of the arguments.
    pub input_schema: Value,
    /// Whether a call changes something (and so needs an approval).
    pub write: bool,
}

/// Why a tool call failed (a door maps each to its own error shape; none carries secrets).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolError {
    /// No such tool.
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The arguments do not match the schema or make no sense (the reason says which).
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The caller may not do this (role, namespace or kind not allowed by `tools` config).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The approval presented is unknown, expired, used, denied, for other arguments or tool,
    /// or granted by the caller itself.
    #[error("approval refused: {0}")]
    ApprovalRefused(String),
    /// The object, cluster or trace does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The upstream (a cluster, Prometheus…) is unavailable: its circuit is open or it failed.
    #[error("{upstream} unavailable: {reason}")]
    Unavailable {
        /// `k8s:<cluster>`, `prometheus`.
        upstream: String,
        /// What failed.
        reason: String,
    },
    /// The upstream answered with an error.
    #[error("{upstream} error: {reason}")]
    Upstream {
        /// Which.
        upstream: String,
        /// Its message.
        reason: String,
    },
    /// The call ran past its deadline.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl ToolError {
    /// A short, bounded label (metrics, audit `outcome`).
    pub fn label(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::Forbidden(_) => "forbidden",
            ToolError::ApprovalRefused(_) => "approval_refused",
            ToolError::NotFound(_) => "not_found",
            ToolError::Unavailable { .. } => "unavailable",
            ToolError::Upstream { .. } => "upstream_error",
            ToolError::Timeout(_) => "timeout",
        }
    }
}

/// One tool.
pub trait Tool: Send + Sync + 'static {
    /// Name, description, schema, read or write.
    fn spec(&self) -> ToolSpec;

    /// For a write: what the call would do, computed without changing anything (a server-side
    /// dry run and diff for apply, the object for delete, the command for exec, the workload
    /// for a restart). Shown to the approver with `approval_required`. Reads return `Null`.
    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        let _ = args;
        Box::pin(async { Ok(Value::Null) })
    }

    /// Runs the tool (for a write: after the gate checked the approval). The output is
    /// structured JSON; the gate redacts and caps it.
    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>>;
}

/// A write held for approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Id to approve, deny, and pass back as `approval_id`.
    pub approval_id: String,
    /// The tool.
    pub tool: String,
    /// The exact arguments approved (without `approval_id`), redacted.
    pub arguments: Value,
    /// SHA-256 (hex) of the canonical arguments the approval is bound to.
    pub arguments_sha256: String,
    /// What the call would do.
    pub preview: Value,
    /// Who asked.
    pub requested_by: String,
    /// When the approval lapses.
    pub expires_at: DateTime<Utc>,
}

/// A tool's output after the gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Redacted, size-capped JSON.
    pub output: Value,
    /// Whether the cap cut it.
    pub truncated: bool,
}

/// What a call came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallOutcome {
    /// It ran.
    Done(ToolOutput),
    /// A write without a valid approval: nothing changed.
    ApprovalRequired(ApprovalRequest),
}

/// The one gate both doors call.
pub trait Gate: Send + Sync + 'static {
    /// The tools `caller` may see, with their schemas.
    fn list(&self, caller: &Caller) -> Vec<ToolSpec>;

    /// Calls `name` with `args` (a JSON object; a write may carry `approval_id`).
    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<CallOutcome, ToolError>>;
}
