//! The SRECoder tool gateway (DESIGN §3.3c): `k8s.*` and `obs.*` tools behind two doors (MCP
//! streamable HTTP at `/mcp`, REST at `/v1/tools/<name>`) and one gate that authenticates,
//! checks approvals for writes at call time, redacts and caps outputs, and audits every call.
//!
//! # Layout
//! - [`tool`]: the [`Tool`](tool::Tool) contract each tool implements, the [`Gate`](tool::Gate)
//!   both doors call, and the types they exchange (callers, roles, outcomes, errors).
//! - [`k8s_read`]: the five Kubernetes read tools over the
//!   [`ClusterReader`](crate::kubernetes::read::ClusterReader).
//! - [`obs`]: the five observability read tools over the Prometheus, Loki, Tempo and Grafana
//!   clients (a backend not configured has no tool).
//! - [`args`]: argument parsing and the time forms the tools share.
//! - [`k8s_write`]: the Kubernetes write tools (exec, apply, delete, rollout restart) and
//!   their previews; [`write_policy`]: where they may act.
//! - [`gateway`]: [`ToolGateway`](gateway::ToolGateway), the gate itself.
//! - [`approvals`]: the bounded store of pending approvals (single-use redeem).
//! - [`audit`]: the durable audit trail (embedded log or Kafka topic).
//! - [`auth`]: bearer tokens → callers with a role.
//! - [`redact`]: what never leaves the gate (Secret data, credentials, configured secrets).
//! - [`canonical`]: canonical JSON and SHA-256, what an approval is bound to.
//! - [`schema`]: argument validation against a tool's JSON Schema.
//! - [`sweeper`]: the actor that removes expired approvals on a timer.
//! - [`metrics`]: the `sre_tools_*` families.
//!
//! [`read_tools`] is every read tool the configuration allows.

use std::sync::Arc;

use crate::kubernetes::read::ClusterReader;

pub mod approvals;
pub mod args;
pub mod audit;
pub mod auth;
pub mod canonical;
pub mod gateway;
pub mod k8s_read;
pub mod k8s_write;
pub mod metrics;
pub mod obs;
pub mod redact;
pub mod schema;
pub mod sweeper;
pub mod tool;
pub mod write_policy;

pub use obs::ObsClients;

/// The read tools: the five `k8s.*` reads when Kubernetes is configured (`reader`), and the
/// `obs.*` tools of the backends in `obs`.
pub fn read_tools(reader: Option<ClusterReader>, obs: ObsClients) -> Vec<Arc<dyn tool::Tool>> {
    let mut tools = reader.map(k8s_read::k8s_read_tools).unwrap_or_default();
    tools.extend(obs::obs_tools(obs));
    tools
}
