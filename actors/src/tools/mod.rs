//! The SRECoder tool gateway (DESIGN §3.3c): `k8s.*` and `obs.*` tools behind two doors (MCP
//! streamable HTTP at `/mcp`, REST at `/v1/tools/<name>`) and one gate that authenticates,
//! checks approvals for writes at call time, redacts and caps outputs, and audits every call.
//!
//! # Layout
//! - [`tool`]: the [`Tool`](tool::Tool) contract each tool implements, the [`Gate`](tool::Gate)
//!   both doors call, and the types they exchange (callers, roles, outcomes, errors).
//! - [`k8s_write`]: the Kubernetes write tools (exec, apply, delete, rollout restart) and
//!   their previews; [`write_policy`]: where they may act.

pub mod k8s_write;
pub mod tool;
pub mod write_policy;
