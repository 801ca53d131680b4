//! `EnvPoller`: one actor per ArgoCD environment. Every `poll_interval` (± 10% jitter, so
//! environments do not poll in lockstep) it fetches `GET /api/v1/applications` through the
//! environment's circuit `argocd:<env>`, and emits `RecordFleetStateRequested` plus a
//! `RecordHealthCheckRequested` per application whose health or sync changed (each one on the
//! first poll; deletions too). Health intents go through the shared claim protocol
//! ([`crate::ingest::claim`]), so a poller restarted within the dedup window re-sends none of
//! the baseline it already published. What it last saw is replaced only once those intents
//! are accepted, so a failed emit is retried on the next poll.
//!
//! Failures: a failed poll (5xx, timeout, open circuit) never produces a fleet intent; the next
//! poll waits twice as long each time (up to 8 intervals), and after `MAX_FAILURES` in a row the
//! actor fails so its supervisor takes over. A 401 re-reads the token once; a 401/403 that
//! persists fails the actor with a `misconfigured` reason (shown in `/v1/supervision` and
//! `/readyz`), and the supervisor's backoff and parking keep it from a hot loop.

use std::collections::BTreeMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use reqwest::StatusCode;
use sre_config::{ArgoEnvironment, SecretStore, SecretString};
use sre_intents::argocd::{
    AppRef, FailingOperation, HealthState, RecordFleetStateRequested, RecordHealthCheckRequested,
    Subject,
};
use sre_intents::record::RecordMeta;
use sre_intents::{IntentRecord, IntentType};
use sre_supervision::Readiness;
use tokio::time::Instant;
use tracing::Instrument;

use super::app::{changes, parse, AppState, Change};
use super::metrics::{AppLabels, ArgoMetrics, EnvLabel, PollLabels};
use crate::emit::EmitError;
use crate::ingest::claim::{Delivered, Delivery};
use crate::ingest::dedup::key_hash;
use crate::providers::UpstreamClient;
use crate::timer::Timer;

/// Failed polls in a row after which the actor fails.
pub const MAX_FAILURES: u32 = 5;
/// Bodies larger than this are parsed on a blocking thread.
const INLINE_PARSE_BYTES: usize = 256 * 1024;
/// The largest applications list read (about 28,000 applications of ArgoCD's usual size); a
/// larger one fails the poll with `body larger than …`, and reading it must end within the
/// upstream timeout.
pub const MAX_LIST_BYTES: usize = 16 << 20;

/// The actor.
pub struct EnvPoller;

/// Its arguments.
#[derive(Clone)]
pub struct PollerArgs {
    /// The environment.
    pub env: ArgoEnvironment,
    /// Poll period.
    pub interval: Duration,
    /// The client behind `argocd:<env>` (an error — a bad CA file — fails this poller alone).
    pub client: Result<UpstreamClient, String>,
    /// Where the token secret is read.
    pub secrets: SecretStore,
    /// Intent topic and `ce_source`.
    pub topic: String,
    /// `ce_source`.
    pub source: String,
    /// Where intents go (claimed as `DedupSource::Argocd`).
    pub delivery: Delivery,
    /// Metrics.
    pub metrics: ArgoMetrics,
    /// Readiness, for the `misconfigured` detail.
    pub readiness: Readiness,
}

/// Messages.
pub enum PollerMsg {
    /// Time to poll.
    Poll,
}

/// Private state.
pub struct PollerState {
    args: PollerArgs,
    client: UpstreamClient,
    token: Option<SecretString>,
    last: Option<BTreeMap<String, AppState>>,
    failures: u32,
    counted: Vec<AppLabels>,
    /// The next `Poll` (aborted with the state: a killed poller leaves no timer behind).
    next_poll: Timer<PollerMsg>,
}

impl Actor for EnvPoller {
    type Msg = PollerMsg;
    type State = PollerState;
    type Arguments = PollerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<PollerMsg>,
        args: PollerArgs,
    ) -> Result<PollerState, ActorProcessingErr> {
        let token = read_token(&args)?;
        let client = args
            .client
            .clone()
            .map_err(|e| format!("argocd:{}: misconfigured: {e}", args.env.name))?;
        Ok(PollerState {
            args,
            client,
            token,
            last: None,
            failures: 0,
            counted: Vec::new(),
            next_poll: Timer::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<PollerMsg>,
        state: &mut PollerState,
    ) -> Result<(), ActorProcessingErr> {
        // Spread the first polls of the environments over a tenth of the interval.
        let first = state.args.interval.mul_f64(fastrand::f64() * 0.1);
        schedule(&myself, state, first);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<PollerMsg>,
        msg: PollerMsg,
        state: &mut PollerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PollerMsg::Poll => {
                // One span per poll: its outbound call and its intents belong to it.
                let span = tracing::info_span!("argocd_poll", env = %state.args.env.name);
                on_poll(&myself, state).instrument(span).await
            }
        }
    }
}

fn read_token(args: &PollerArgs) -> Result<Option<SecretString>, String> {
    match &args.env.token {
        None => Ok(None),
        Some(r) => args
            .secrets
            .read(r, "token")
            .map(Some)
            .map_err(|e| format!("argocd:{}: cannot read the API token: {e}", args.env.name)),
    }
}

/// Schedules the next poll (replacing any pending one).
fn schedule(myself: &ActorRef<PollerMsg>, state: &mut PollerState, after: Duration) {
    state.next_poll.set(myself, after, || PollerMsg::Poll);
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Why a poll did not produce a fleet.
enum PollError {
    /// 401/403 after a token refresh.
    Unauthorized(u16),
    /// Anything else.
    Failed(String),
}

async fn on_poll(
    myself: &ActorRef<PollerMsg>,
    state: &mut PollerState,
) -> Result<(), ActorProcessingErr> {
    let env = state.args.env.name.clone();
    let started = Instant::now();
    let result = fetch(state).await;
    state
        .args
        .metrics
        .duration
        .get_or_create(&EnvLabel { env: env.clone() })
        .observe(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(_) => "success",
        Err(PollError::Unauthorized(_)) => "unauthorized",
        Err(PollError::Failed(_)) => "failed",
    };
    state
        .args
        .metrics
        .polls
        .get_or_create(&PollLabels {
            env: env.clone(),
            outcome,
        })
        .inc();
    let condition = format!("argocd:{env}");
    match result {
        Ok(apps) => {
            state.failures = 0;
            state.args.readiness.set_degraded(&condition, None);
            if let Err(e) = report(state, apps).await {
                tracing::warn!(env = %env, error = %e, "fleet not recorded; retried on the next poll");
            }
            let next = jittered(state.args.interval);
            schedule(myself, state, next);
            Ok(())
        }
        Err(PollError::Unauthorized(code)) => {
            let why = format!("misconfigured: ArgoCD rejected the API token (HTTP {code})");
            state
                .args
                .readiness
                .set_degraded(&condition, Some(why.clone()));
            Err(why.into())
        }
        Err(PollError::Failed(why)) => {
            state.failures += 1;
            tracing::warn!(env = %env, failures = state.failures, error = %why, "ArgoCD poll failed");
            if state.failures >= MAX_FAILURES {
                state
                    .args
                    .readiness
                    .set_degraded(&condition, Some(why.clone()));
                return Err(
                    format!("{} polls in a row failed; last: {why}", state.failures).into(),
                );
            }
            let backoff = state
                .args
                .interval
                .saturating_mul(1 << state.failures.min(3));
            schedule(myself, state, jittered(backoff));
            Ok(())
        }
    }
}

async fn fetch(state: &mut PollerState) -> Result<BTreeMap<String, AppState>, PollError> {
    let mut refreshed = false;
    loop {
        let url = state
            .args
            .env
            .url
            .join("api/v1/applications")
            .map_err(|e| PollError::Failed(e.to_string()))?;
        let (env, token) = (&state.args.env, state.token.clone());
        let limit = state.client.body_limit().with_max_bytes(MAX_LIST_BYTES);
        let resp = state
            .client
            .send_limited(None, limit, |http| {
                let mut req = http.get(url.clone());
                for p in &env.projects {
                    req = req.query(&[("projects", p)]);
                }
                if let Some(sel) = &env.selector {
                    req = req.query(&[("selector", sel)]);
                }
                if let Some(ns) = &env.app_namespace {
                    req = req.query(&[("appNamespace", ns)]);
                }
                if let Some(t) = &token {
                    req = req.bearer_auth(t.expose());
                }
                req
            })
            .await
            .map_err(|e| PollError::Failed(e.to_string()))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED && !refreshed {
            // The token may have been rotated: read it again, once.
            refreshed = true;
            state.token = read_token(&state.args).map_err(PollError::Failed)?;
            continue;
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(PollError::Unauthorized(status.as_u16()));
        }
        if !status.is_success() {
            return Err(PollError::Failed(format!("HTTP {status}")));
        }
        let body = resp.into_body();
        let parsed = if body.len() > INLINE_PARSE_BYTES {
            tokio::task::spawn_blocking(move || parse(&body))
                .await
                .map_err(|e| PollError::Failed(e.to_string()))?
        } else {
            parse(&body)
        };
        return parsed.map_err(|e| PollError::Failed(format!("unexpected answer: {e}")));
    }
}

/// Emits the fleet and the changes; remembers `apps` once they are accepted.
async fn report(
    state: &mut PollerState,
    apps: BTreeMap<String, AppState>,
) -> Result<(), EmitError> {
    let args = &state.args;
    let env = args.env.name.as_str();
    let now = chrono::Utc::now();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let traceparent = crate::trace::current();
    let meta = |kind, key: String, idempotency_key: String| RecordMeta {
        topic: &args.topic,
        kind,
        source: &args.source,
        key,
        idempotency_key,
        correlation_id: &correlation_id,
        traceparent: traceparent.as_deref(),
        time: &at,
    };
    let changes: Vec<(Change, HealthState)> = changes(state.last.as_ref(), &apps)
        .into_iter()
        .map(|c| {
            let deleted = c.reason == "deleted";
            let current = HealthState {
                health: if deleted {
                    "Deleted"
                } else {
                    &c.current.health
                },
                sync: if deleted { "Unknown" } else { &c.current.sync },
                revision: c.current.revision.as_deref().filter(|_| !deleted),
            };
            (c, current)
        })
        .collect();
    let idempotency_keys: Vec<String> = changes
        .iter()
        .map(|(c, current)| {
            format!(
                "argocd:{env}:{}:{}:{}:{}",
                c.name,
                current.health,
                current.sync,
                current.revision.unwrap_or("-")
            )
        })
        .collect();
    let health_record = |i: usize| -> Result<IntentRecord, EmitError> {
        let (c, current) = &changes[i];
        let payload = RecordHealthCheckRequested {
            source: "argocd",
            environment: env,
            subject: Subject {
                kind: "Application",
                name: c.name,
                project: &c.current.project,
            },
            previous: c.previous.map(|p| HealthState {
                health: &p.health,
                sync: &p.sync,
                revision: p.revision.as_deref(),
            }),
            current: *current,
            reason: c.reason,
            observed_at: &at,
        };
        Ok(IntentRecord::new(
            meta(
                IntentType::RecordHealthCheckRequested,
                format!("argocd:{env}/{}", c.name),
                idempotency_keys[i].clone(),
            ),
            &payload,
        )?)
    };
    // Every standard status is present (zero when none), others are added as seen.
    let mut health: BTreeMap<&str, usize> = [
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
        "Missing",
        "Unknown",
    ]
    .into_iter()
    .map(|h| (h, 0))
    .collect();
    let mut sync: BTreeMap<&str, usize> = ["Synced", "OutOfSync", "Unknown"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let (mut failing, mut unhealthy, mut out_of_sync) = (Vec::new(), Vec::new(), Vec::new());
    for (name, a) in &apps {
        *health.entry(&a.health).or_default() += 1;
        *sync.entry(&a.sync).or_default() += 1;
        let r = || AppRef {
            name,
            health: &a.health,
            sync: &a.sync,
        };
        if let Some(phase) = a
            .operation
            .as_deref()
            .filter(|p| *p == "Failed" || *p == "Error")
        {
            failing.push(FailingOperation { name, phase });
        }
        if a.health != "Healthy" {
            unhealthy.push(r());
        }
        if a.sync != "Synced" {
            out_of_sync.push(r());
        }
    }
    let fleet = RecordFleetStateRequested {
        source: "argocd",
        environment: env,
        polled_at: &at,
        applications: apps.len(),
        health: health.clone(),
        sync: sync.clone(),
        failing_operations: failing,
        unhealthy,
        out_of_sync,
    };
    let fleet = IntentRecord::new(
        meta(
            IntentType::RecordFleetStateRequested,
            format!("fleet:{env}"),
            format!("fleet:{env}:{}", now.timestamp_millis()),
        ),
        &fleet,
    )?;
    // The fleet state goes out with every poll, unclaimed (its key is the poll's time); the
    // health changes only when fresh.
    let keys = idempotency_keys.iter().map(|k| key_hash(k)).collect();
    let delivered = args
        .delivery
        .deliver(keys, |fresh| {
            let mut records = fresh
                .iter()
                .map(|i| health_record(*i))
                .collect::<Result<Vec<_>, _>>()?;
            records.push(fleet);
            Ok(records)
        })
        .await?;
    if delivered.contains(&Delivered::Undecided) {
        return Err(EmitError::Undecided);
    }
    drop(changes);

    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for a in apps.values() {
        *counts
            .entry((a.health.clone(), a.sync.clone()))
            .or_default() += 1;
    }
    for l in state.counted.drain(..) {
        args.metrics.apps.get_or_create(&l).set(0);
    }
    for ((h, s), n) in counts {
        let l = AppLabels {
            env: env.to_owned(),
            health: h,
            sync: s,
        };
        args.metrics.apps.get_or_create(&l).set(n);
        state.counted.push(l);
    }
    state.last = Some(apps);
    Ok(())
}
