//! [`ToolGateway`]: the one [`Gate`] both doors (MCP and REST) call.
//!
//! A call goes through these steps, in order, and stops at the first that refuses:
//!
//! 1. the tool exists (else [`ToolError::UnknownTool`]);
//! 2. the arguments are a JSON object; for a write, `approval_id` is taken out of them (it is
//!    not part of what is approved, and the tool never sees it);
//! 3. they match the tool's JSON Schema ([`ToolError::InvalidArguments`] with where and why);
//! 4. a **read** runs at once. A **write** is hashed (SHA-256 of the canonical arguments) and:
//!    - without `approval_id`: its preview is computed (nothing changes), a pending approval
//!      is created (redacted arguments, hash, preview, requester, `expires_at = now +
//!      tools.approval_ttl`) and the answer is [`CallOutcome::ApprovalRequired`];
//!    - with `approval_id`: the approval is consumed — atomically, so two concurrent redeems
//!      cannot both run — if it exists, is approved (not pending or denied), unused, for this
//!      tool and these exact arguments, unexpired, asked by this caller and approved by
//!      someone else; otherwise [`ToolError::ApprovalRefused`] says which rule refused it.
//!      A "started" audit record is made durable before the tool runs;
//! 5. the tool runs under `tools.call_timeout`;
//! 6. its output is redacted ([`super::redact`]) and capped at `tools.max_output_bytes`: a
//!    larger output is replaced by the first `max_output_bytes` of its JSON text, as a string,
//!    with `truncated: true`;
//! 7. the call is audited ([`super::audit`]); if that fails, the call fails (nothing leaves
//!    the gate unaudited).
//!
//! Approvals are decided with [`ToolGateway::decide`] (the REST door and the CLI), which
//! audits each decision. Time comes from a [`Clock`] so TTL tests run on paused time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use sre_config::ToolsConfig;

use super::approvals::{Approval, ApprovalError, Approvals, NewApproval};
use super::audit::{AuditError, AuditLog, AuditRecord};
use super::canonical::arguments_sha256;
use super::metrics::{CallLabels, DecisionLabel, ToolLabel, ToolMetrics};
use super::redact::Redactor;
use super::schema;
use super::tool::{
    CallOutcome, Caller, Gate, Tool, ToolError, ToolOutput, ToolSpec, APPROVAL_ID_ARG,
};
use crate::sli::scheduler::Clock;

/// The gate's limits (from `tools`).
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// How long an approval is valid.
    pub approval_ttl: Duration,
    /// Most pending approvals.
    pub max_pending_approvals: usize,
    /// Output cap in bytes of JSON.
    pub max_output_bytes: usize,
    /// Longest a tool (or a preview) may run.
    pub call_timeout: Duration,
}

impl GatewayOptions {
    /// The options of `tools`.
    pub fn from_config(t: &ToolsConfig) -> Self {
        GatewayOptions {
            approval_ttl: t.approval_ttl,
            max_pending_approvals: t.max_pending_approvals,
            max_output_bytes: t.max_output_bytes,
            call_timeout: t.call_timeout,
        }
    }
}

/// Why the gateway could not be built from its tools.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Two tools with one name.
    #[error("two tools are named {0}")]
    Duplicate(String),
    /// A tool's schema is not an object schema, or uses what the validator cannot check.
    #[error("tool {tool}: input schema: {reason}")]
    Schema {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why an approval decision failed.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The store refused it (role, self-approval, unknown, not pending).
    #[error(transparent)]
    Refused(#[from] ApprovalError),
    /// It could not be audited, so it was not made.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

struct Registered {
    tool: Arc<dyn Tool>,
    spec: ToolSpec,
}

/// The gate (see the module documentation).
pub struct ToolGateway {
    tools: BTreeMap<&'static str, Registered>,
    approvals: Approvals,
    audit: AuditLog,
    redactor: Redactor,
    options: GatewayOptions,
    metrics: ToolMetrics,
    clock: Clock,
}

/// What a call came to, for the audit record and the metrics.
struct Trail {
    caller: Caller,
    tool: String,
    sha256: Option<String>,
    arguments: Value,
    approval_id: Option<String>,
    approver: Option<String>,
    started: tokio::time::Instant,
    /// The outcome was audited on the way (an approval request).
    audited: bool,
}

impl ToolGateway {
    /// A gateway over `tools`.
    pub fn new(
        tools: Vec<Arc<dyn Tool>>,
        options: GatewayOptions,
        audit: AuditLog,
        redactor: Redactor,
        clock: Clock,
        metrics: ToolMetrics,
    ) -> Result<ToolGateway, GatewayError> {
        let mut map = BTreeMap::new();
        for tool in tools {
            let spec = tool.spec();
            let name = spec.name;
            if spec.input_schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(GatewayError::Schema {
                    tool: name.into(),
                    reason: "must be a schema of `type: object`".into(),
                });
            }
            schema::check_supported(&spec.input_schema).map_err(|reason| GatewayError::Schema {
                tool: name.into(),
                reason,
            })?;
            if map.insert(name, Registered { tool, spec }).is_some() {
                return Err(GatewayError::Duplicate(name.into()));
            }
        }
        let approvals = Approvals::new(
            options.approval_ttl,
            options.max_pending_approvals,
            clock.clone(),
            metrics.pending.clone(),
        );
        Ok(ToolGateway {
            tools: map,
            approvals,
            audit,
            redactor,
            options,
            metrics,
            clock,
        })
    }

    /// The registered tools' names.
    pub fn tool_names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// The pending approvals, oldest first.
    pub fn pending(&self) -> Vec<Approval> {
        self.approvals.pending()
    }

    /// One approval (until it expires).
    pub fn approval(&self, id: &str) -> Option<Approval> {
        self.approvals.get(id)
    }

    /// Removes expired approvals (the sweeper calls it); returns how many.
    pub fn sweep(&self) -> usize {
        self.approvals.sweep()
    }

    /// How long approvals live.
    pub fn approval_ttl(&self) -> Duration {
        self.options.approval_ttl
    }

    /// The redactor (what the doors log goes through it too).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Approves (`approve`) or denies approval `id` as `decider`, with an optional reason;
    /// the decision is audited, and undone if it cannot be.
    pub async fn decide(
        &self,
        decider: &Caller,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Approval, DecisionError> {
        let reason = reason.map(|r| self.redactor.text(&r).into_owned());
        let decided = match self.approvals.decide(id, decider, approve, reason.clone()) {
            Ok(a) => a,
            Err(e) => {
                self.metrics
                    .decisions
                    .get_or_create(&DecisionLabel {
                        decision: "refused",
                    })
                    .inc();
                let known = self.approvals.get(id);
                let record = AuditRecord {
                    time: (self.clock)(),
                    event: "decision".into(),
                    caller: decider.identity.clone(),
                    role: decider.role.as_str().into(),
                    tool: known
                        .as_ref()
                        .map(|a| a.request.tool.clone())
                        .unwrap_or_default(),
                    arguments_sha256: known.as_ref().map(|a| a.request.arguments_sha256.clone()),
                    arguments: Value::Null,
                    approval_id: Some(id.to_owned()),
                    approver: None,
                    outcome: decision_refusal(&e).into(),
                    reason: Some(e.to_string()),
                    duration_ms: 0,
                };
                if let Err(ae) = self.audit.append(&record).await {
                    self.metrics.audit_failures.inc();
                    tracing::error!(error = %ae, "cannot audit a refused approval decision");
                }
                return Err(e.into());
            }
        };
        let label = if approve { "approved" } else { "denied" };
        let record = AuditRecord {
            time: (self.clock)(),
            event: "decision".into(),
            caller: decider.identity.clone(),
            role: decider.role.as_str().into(),
            tool: decided.request.tool.clone(),
            arguments_sha256: Some(decided.request.arguments_sha256.clone()),
            arguments: decided.request.arguments.clone(),
            approval_id: Some(id.to_owned()),
            approver: Some(decider.identity.clone()),
            outcome: label.into(),
            reason,
            duration_ms: 0,
        };
        if let Err(e) = self.audit.append(&record).await {
            self.metrics.audit_failures.inc();
            self.approvals.undecide(id);
            tracing::error!(error = %e, approval_id = id, "cannot audit an approval decision: undone");
            return Err(e.into());
        }
        self.metrics
            .decisions
            .get_or_create(&DecisionLabel { decision: label })
            .inc();
        tracing::info!(approval_id = id, tool = %decided.request.tool, decider = %decider.identity, decision = label, "approval decided");
        Ok(decided)
    }

    async fn run(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
    ) -> Result<CallOutcome, ToolError> {
        let started = tokio::time::Instant::now();
        let mut trail = Trail {
            caller: caller.clone(),
            tool: name.to_owned(),
            sha256: None,
            arguments: self.redactor.value(&args),
            approval_id: None,
            approver: None,
            started,
            audited: false,
        };
        let result = self
            .gate(&mut trail, name, args)
            .await
            .map_err(|e| self.redact_error(e));
        let outcome = match &result {
            Ok(CallOutcome::Done(_)) => "done",
            Ok(CallOutcome::ApprovalRequired(_)) => "approval_required",
            Err(e) => e.label(),
        };
        let metric_tool = if self.tools.contains_key(name) {
            name.to_owned()
        } else {
            "unknown".to_owned()
        };
        let reason = result
            .as_ref()
            .err()
            .map(|e| self.redactor.text(&e.to_string()).into_owned());
        let audited = if trail.audited {
            Ok(())
        } else {
            self.audit_call(&trail, outcome, reason).await
        };
        let result = match (result, audited) {
            (r, Ok(())) => r,
            // A refusal stays a refusal (nothing ran); anything else is withheld.
            (Err(e), Err(_)) => Err(e),
            (Ok(_), Err(e)) => Err(audit_unavailable(&e)),
        };
        let outcome = match &result {
            Ok(CallOutcome::Done(_)) => "done",
            Ok(CallOutcome::ApprovalRequired(_)) => "approval_required",
            Err(e) => e.label(),
        };
        self.metrics
            .calls
            .get_or_create(&CallLabels {
                tool: metric_tool.clone(),
                outcome,
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&ToolLabel { tool: metric_tool })
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Err(e) => {
                tracing::info!(tool = name, caller = %caller.identity, outcome, reason = %self.redactor.text(&e.to_string()), "tool call refused or failed")
            }
            Ok(_) => tracing::info!(tool = name, caller = %caller.identity, outcome, "tool call"),
        }
        result
    }

    /// Steps 1–6 (see the module documentation).
    async fn gate(
        &self,
        trail: &mut Trail,
        name: &str,
        args: Value,
    ) -> Result<CallOutcome, ToolError> {
        let Some(reg) = self.tools.get(name) else {
            return Err(ToolError::UnknownTool(name.to_owned()));
        };
        let Value::Object(mut map) = args else {
            return Err(ToolError::InvalidArguments(
                "the arguments must be a JSON object".into(),
            ));
        };
        let approval_id = if reg.spec.write {
            match map.remove(APPROVAL_ID_ARG) {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id),
                Some(_) => {
                    return Err(ToolError::InvalidArguments(format!(
                        "{APPROVAL_ID_ARG} must be a string"
                    )))
                }
            }
        } else {
            None
        };
        let args = Value::Object(map);
        trail.arguments = self.redactor.value(&args);
        trail.approval_id = approval_id.clone();
        let sha256 = arguments_sha256(&args);
        trail.sha256 = Some(sha256.clone());
        schema::validate(&reg.spec.input_schema, &args).map_err(ToolError::InvalidArguments)?;
        if !reg.spec.write {
            return self.execute(reg, &args).await.map(CallOutcome::Done);
        }
        let Some(id) = approval_id else {
            return self.ask(trail, reg, &args, sha256).await;
        };
        let approval = self
            .approvals
            .redeem(&id, name, &sha256, &trail.caller)
            .map_err(ToolError::ApprovalRefused)?;
        trail.approver = approval.decided_by.clone();
        if let Err(e) = self.audit_call(trail, "started", None).await {
            self.approvals.restore(&id);
            return Err(audit_unavailable(&e));
        }
        tracing::warn!(tool = name, caller = %trail.caller.identity, approval_id = %id, approver = trail.approver.as_deref().unwrap_or(""), "running an approved write");
        self.execute(reg, &args).await.map(CallOutcome::Done)
    }

    /// A write without an approval: preview, pending approval, `approval_required`.
    async fn ask(
        &self,
        trail: &mut Trail,
        reg: &Registered,
        args: &Value,
        sha256: String,
    ) -> Result<CallOutcome, ToolError> {
        let preview = self.deadline(reg.tool.preview(args)).await?;
        let preview = self.cap(self.redactor.value(&preview));
        let preview = if preview.truncated {
            let mut m = Map::new();
            m.insert("truncated".into(), Value::Bool(true));
            m.insert("preview".into(), preview.output);
            Value::Object(m)
        } else {
            preview.output
        };
        let request = self
            .approvals
            .create(NewApproval {
                tool: reg.spec.name.into(),
                arguments: trail.arguments.clone(),
                arguments_sha256: sha256,
                preview,
                requested_by: trail.caller.identity.clone(),
            })
            .map_err(|e| ToolError::Unavailable {
                upstream: "approvals".into(),
                reason: e.to_string(),
            })?;
        trail.approval_id = Some(request.approval_id.clone());
        // Audited here (not by the caller) so that a request that cannot be audited is
        // withdrawn before anyone can approve it.
        if let Err(e) = self.audit_call(trail, "approval_required", None).await {
            self.approvals.withdraw(&request.approval_id);
            return Err(audit_unavailable(&e));
        }
        trail.audited = true;
        Ok(CallOutcome::ApprovalRequired(request))
    }

    async fn execute(&self, reg: &Registered, args: &Value) -> Result<ToolOutput, ToolError> {
        let output = self.deadline(reg.tool.call(args)).await?;
        Ok(self.cap(self.redactor.value(&output)))
    }

    async fn deadline(
        &self,
        fut: BoxFuture<'_, Result<Value, ToolError>>,
    ) -> Result<Value, ToolError> {
        match tokio::time::timeout(self.options.call_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ToolError::Timeout(self.options.call_timeout)),
        }
    }

    /// The output, or the first `max_output_bytes` of its JSON text as a string.
    fn cap(&self, output: Value) -> ToolOutput {
        let text = output.to_string();
        let max = self.options.max_output_bytes;
        if text.len() <= max {
            return ToolOutput {
                output,
                truncated: false,
            };
        }
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        ToolOutput {
            output: Value::String(text[..cut].to_owned()),
            truncated: true,
        }
    }

    /// The error with every message redacted (a schema error can quote an argument).
    fn redact_error(&self, e: ToolError) -> ToolError {
        let r = |s: String| self.redactor.text(&s).into_owned();
        match e {
            ToolError::UnknownTool(s) => ToolError::UnknownTool(r(s)),
            ToolError::InvalidArguments(s) => ToolError::InvalidArguments(r(s)),
            ToolError::Forbidden(s) => ToolError::Forbidden(r(s)),
            ToolError::ApprovalRefused(s) => ToolError::ApprovalRefused(r(s)),
            ToolError::NotFound(s) => ToolError::NotFound(r(s)),
            ToolError::Unavailable { upstream, reason } => ToolError::Unavailable {
                upstream,
                reason: r(reason),
            },
            ToolError::Upstream { upstream, reason } => ToolError::Upstream {
                upstream,
                reason: r(reason),
            },
            ToolError::Timeout(d) => ToolError::Timeout(d),
        }
    }

    async fn audit_call(
        &self,
        trail: &Trail,
        outcome: &str,
        reason: Option<String>,
    ) -> Result<(), AuditError> {
        let record = AuditRecord {
            time: (self.clock)(),
            event: "call".into(),
            caller: trail.caller.identity.clone(),
            role: trail.caller.role.as_str().into(),
            tool: trail.tool.clone(),
            arguments_sha256: trail.sha256.clone(),
            arguments: trail.arguments.clone(),
            approval_id: trail.approval_id.clone(),
            approver: trail.approver.clone(),
            outcome: outcome.into(),
            reason,
            duration_ms: trail.started.elapsed().as_millis() as u64,
        };
        let r = self.audit.append(&record).await;
        if let Err(e) = &r {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, tool = %trail.tool, outcome, "cannot write the audit record: the call fails");
        }
        r
    }
}

fn audit_unavailable(e: &AuditError) -> ToolError {
    ToolError::Unavailable {
        upstream: "audit".into(),
        reason: format!("{e}; nothing is served unaudited"),
    }
}

fn decision_refusal(e: &ApprovalError) -> &'static str {
    match e {
        ApprovalError::Full(_) => "full",
        ApprovalError::Unknown(_) => "unknown_approval",
        ApprovalError::NotApprover(_) => "not_approver",
        ApprovalError::SelfDecision(_) => "self_approval",
        ApprovalError::NotPending { .. } => "not_pending",
    }
}

impl Gate for ToolGateway {
    fn list(&self, _caller: &Caller) -> Vec<ToolSpec> {
        // Both roles may call every tool; a write still needs an approval when it runs.
        self.tools.values().map(|r| r.spec.clone()).collect()
    }

    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<CallOutcome, ToolError>> {
        Box::pin(self.run(caller, name, args))
    }
}
