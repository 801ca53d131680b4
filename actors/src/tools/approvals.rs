//! The pending-approval store: a bounded map of approval id → [`Approval`], owned by the
//! gateway.
//!
//! Every operation takes the store's lock for a few map operations and never across an
//! `await`, so it is the serialization point the single-use rule needs: [`Approvals::redeem`]
//! checks and consumes an approval in one critical section, and of two concurrent redeems of
//! the same id exactly one gets it.
//!
//! Bounds: at most `max_pending` approvals wait for a decision (asking beyond answers
//! [`ApprovalError::Full`]), and decided ones are kept only until they expire (so that a late
//! redeem is told "used" or "denied" rather than "unknown"), at most as many again as
//! `max_pending` (the oldest decided ones go first). Expired approvals are removed by
//! [`Approvals::sweep`], which every operation runs and the gateway's sweeper calls on a
//! timer; `sre_tools_approvals_pending` follows the pending count.
//!
//! Approvals live in memory: a restart forgets them, which is safe (a forgotten approval can
//! only be refused; the agent asks again).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use serde_json::Value;

use super::tool::{ApprovalRequest, Caller, Role};
use crate::sli::scheduler::Clock;

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for an approver.
    Pending,
    /// Approved; the write may be called once with its id.
    Approved,
    /// Denied.
    Denied,
    /// Approved and redeemed: the write ran (or was started).
    Used,
    /// Its time ran out before it was decided or redeemed.
    Expired,
}

impl Status {
    /// The label (metrics, messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Used => "used",
            Status::Expired => "expired",
        }
    }
}

/// An approval as the REST door and the CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    /// What was asked (id, tool, redacted arguments, hash, preview, requester, expiry).
    #[serde(flatten)]
    pub request: ApprovalRequest,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// Where it stands.
    pub status: Status,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The approver's reason, if given.
    pub reason: Option<String>,
}

/// Why an approval could not be created or decided.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    /// `max_pending` approvals already wait for a decision.
    #[error("{0} approvals are already pending (tools.max_pending_approvals): decide or let some expire first")]
    Full(usize),
    /// No such approval (never asked, expired and swept, or forgotten by a restart).
    #[error("no approval {0:?} (unknown, expired, or forgotten by a restart)")]
    Unknown(String),
    /// The decider's role is not `approver`.
    #[error("only an approver may approve or deny (this token's role is {0})")]
    NotApprover(&'static str),
    /// The decider asked for the write.
    #[error("{0:?} asked for this write and cannot decide it: another approver must")]
    SelfDecision(String),
    /// Already decided, used, or expired.
    #[error("approval {id:?} is {status}, not pending")]
    NotPending {
        /// The approval.
        id: String,
        /// Where it stands.
        status: &'static str,
    },
}

/// What a new approval needs.
#[derive(Clone, Debug)]
pub struct NewApproval {
    /// The tool.
    pub tool: String,
    /// The arguments, redacted.
    pub arguments: Value,
    /// SHA-256 of the canonical arguments.
    pub arguments_sha256: String,
    /// What the call would do (redacted).
    pub preview: Value,
    /// Who asked.
    pub requested_by: String,
}

struct Entry {
    approval: Approval,
    /// When it was decided (for eviction of the oldest decided).
    seq: u64,
}

/// The store (see the module documentation).
pub struct Approvals {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_pending: usize,
    clock: Clock,
    pending_gauge: Gauge,
}

struct Inner {
    entries: HashMap<String, Entry>,
    pending: usize,
    seq: u64,
}

impl Approvals {
    /// An empty store; `pending_gauge` is `sre_tools_approvals_pending`.
    pub fn new(ttl: Duration, max_pending: usize, clock: Clock, pending_gauge: Gauge) -> Self {
        Approvals {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                pending: 0,
                seq: 0,
            }),
            ttl,
            max_pending: max_pending.max(1),
            clock,
            pending_gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long approvals live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a pending approval.
    pub fn create(&self, new: NewApproval) -> Result<ApprovalRequest, ApprovalError> {
        let now = (self.clock)();
        let mut inner = self.lock();
        self.sweep_locked(&mut inner, now);
        if inner.pending >= self.max_pending {
            return Err(ApprovalError::Full(inner.pending));
        }
        // Decided entries beyond max_pending: the oldest decided go.
        let decided = inner.entries.len() - inner.pending;
        if decided >= self.max_pending {
            let excess = decided + 1 - self.max_pending;
            let mut old: Vec<(u64, String)> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.approval.status != Status::Pending)
                .map(|(id, e)| (e.seq, id.clone()))
                .collect();
            old.sort_unstable();
            for (_, id) in old.into_iter().take(excess) {
                inner.entries.remove(&id);
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let request = ApprovalRequest {
            approval_id: id.clone(),
            tool: new.tool,
            arguments: new.arguments,
            arguments_sha256: new.arguments_sha256,
            preview: new.preview,
            requested_by: new.requested_by,
            expires_at: now + ttl,
        };
        inner.seq += 1;
        let seq = inner.seq;
        inner.entries.insert(
            id,
            Entry {
                approval: Approval {
                    request: request.clone(),
                    requested_at: now,
                    status: Status::Pending,
                    decided_by: None,
                    decided_at: None,
                    reason: None,
                },
                seq,
            },
        );
        inner.pending += 1;
        self.pending_gauge.set(inner.pending as i64);
        Ok(request)
    }

    /// Forgets a pending approval that could not be announced (its audit record failed).
    pub fn withdraw(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(id) {
            if e.approval.status == Status::Pending {
                inner.pending -= 1;
            }
        }
        self.pending_gauge.set(inner.pending as i64);
    }

    /// Approves (`approve`) or denies a pending approval as `decider`.
    pub fn decide(
        &self,
        id: &str,
        decider: &Caller,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        if decider.role != Role::Approver {
            return Err(ApprovalError::NotApprover(decider.role.as_str()));
        }
        let now = (self.clock)();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(entry) = inner.entries.get_mut(id) else {
            return Err(ApprovalError::Unknown(id.to_owned()));
        };
        let a = &mut entry.approval;
        if a.status == Status::Pending && now >= a.request.expires_at {
            a.status = Status::Expired;
            inner.pending -= 1;
            self.pending_gauge.set(inner.pending as i64);
        }
        if a.status != Status::Pending {
            return Err(ApprovalError::NotPending {
                id: id.to_owned(),
                status: a.status.as_str(),
            });
        }
        if a.request.requested_by == decider.identity {
            return Err(ApprovalError::SelfDecision(decider.identity.clone()));
        }
        a.status = if approve {
            Status::Approved
        } else {
            Status::Denied
        };
        a.decided_by = Some(decider.identity.clone());
        a.decided_at = Some(now);
        a.reason = reason;
        inner.seq += 1;
        entry.seq = inner.seq;
        inner.pending -= 1;
        self.pending_gauge.set(inner.pending as i64);
        Ok(entry.approval.clone())
    }

    /// Consumes approval `id` for a call of `tool` with arguments hashing to `sha256` by
    /// `caller`: it must exist, be approved (not pending, denied or used), be for this tool and
    /// these arguments, be unexpired, have been asked by `caller`, and have been approved by
    /// someone else. On success it is used up (and the approval is returned); otherwise the
    /// error says which rule refused it and nothing changes.
    pub fn redeem(
        &self,
        id: &str,
        tool: &str,
        sha256: &str,
        caller: &Caller,
    ) -> Result<Approval, String> {
        let now = (self.clock)();
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(id) else {
            return Err(format!(
                "no approval {id:?} (unknown, expired, or forgotten by a restart): call without approval_id to ask for one"
            ));
        };
        let a = &mut entry.approval;
        match a.status {
            Status::Approved => {}
            Status::Pending => {
                return Err(format!(
                    "approval {id:?} is still pending: an approver has not approved it yet"
                ))
            }
            Status::Denied => {
                let by = a.decided_by.as_deref().unwrap_or("an approver");
                return Err(match &a.reason {
                    Some(r) => format!("approval {id:?} was denied by {by}: {r}"),
                    None => format!("approval {id:?} was denied by {by}"),
                });
            }
            Status::Used => {
                return Err(format!(
                    "approval {id:?} was already used: an approval runs one call; ask again"
                ))
            }
            Status::Expired => return Err(format!("approval {id:?} expired")),
        }
        if now >= a.request.expires_at {
            return Err(format!(
                "approval {id:?} expired at {}",
                a.request.expires_at.to_rfc3339()
            ));
        }
        if a.request.tool != tool {
            return Err(format!(
                "approval {id:?} is for tool {}, not {tool}",
                a.request.tool
            ));
        }
        if a.request.arguments_sha256 != sha256 {
            return Err(format!(
                "approval {id:?} is for other arguments (sha256 {} approved, {sha256} given): the arguments must be exactly the approved ones",
                a.request.arguments_sha256
            ));
        }
        if a.request.requested_by != caller.identity {
            return Err(format!(
                "approval {id:?} was asked by {:?}, not {:?}",
                a.request.requested_by, caller.identity
            ));
        }
        if a.decided_by.as_deref() == Some(a.request.requested_by.as_str()) {
            return Err(format!("approval {id:?} was approved by its own requester"));
        }
        a.status = Status::Used;
        Ok(a.clone())
    }

    /// Puts a decided approval back to pending (its decision could not be audited).
    pub fn undecide(&self, id: &str) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(e) = inner.entries.get_mut(id) {
            if matches!(e.approval.status, Status::Approved | Status::Denied) {
                e.approval.status = Status::Pending;
                e.approval.decided_by = None;
                e.approval.decided_at = None;
                e.approval.reason = None;
                inner.pending += 1;
                self.pending_gauge.set(inner.pending as i64);
            }
        }
    }

    /// Puts a used approval back to approved (the call it was redeemed for never started
    /// because its audit record could not be written).
    pub fn restore(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(id) {
            if e.approval.status == Status::Used {
                e.approval.status = Status::Approved;
            }
        }
    }

    /// One approval, whatever its status (expired ones until they are swept).
    pub fn get(&self, id: &str) -> Option<Approval> {
        let now = (self.clock)();
        let mut inner = self.lock();
        self.sweep_locked(&mut inner, now);
        inner.entries.get(id).map(|e| e.approval.clone())
    }

    /// The pending approvals, oldest first.
    pub fn pending(&self) -> Vec<Approval> {
        let now = (self.clock)();
        let mut inner = self.lock();
        self.sweep_locked(&mut inner, now);
        let mut out: Vec<(u64, Approval)> = inner
            .entries
            .values()
            .filter(|e| e.approval.status == Status::Pending)
            .map(|e| (e.seq, e.approval.clone()))
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, a)| a).collect()
    }

    /// Removes expired approvals; returns how many.
    pub fn sweep(&self) -> usize {
        let now = (self.clock)();
        let mut inner = self.lock();
        self.sweep_locked(&mut inner, now)
    }

    fn sweep_locked(&self, inner: &mut Inner, now: DateTime<Utc>) -> usize {
        let before = inner.entries.len();
        let mut expired_pending = 0;
        inner.entries.retain(|_, e| {
            let keep = now < e.approval.request.expires_at;
            if !keep && e.approval.status == Status::Pending {
                expired_pending += 1;
            }
            keep
        });
        inner.pending -= expired_pending;
        self.pending_gauge.set(inner.pending as i64);
        before - inner.entries.len()
    }
}
