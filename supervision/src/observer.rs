//! Typed supervision events and where they go. Every start, failure, restart and park is a
//! [`SupervisionEvent`] whose [`emit`](SupervisionEvent::emit) logs it with structured fields,
//! updates the metrics and updates the live tree that `/v1/supervision` and `/readyz` show —
//! in one place, so the three never disagree.
//!
//! Metrics (labels `supervisor`, `child`; both come from configuration, so they are bounded):
//! - `sre_supervisor_child_restarts_total`: restarts performed after a failure or exit.
//! - `sre_supervisor_child_up`: 1 while the child runs, else 0.
//! - `sre_supervisor_child_parked`: 1 while the child is parked after its intensity limit.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Labels of the supervision metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChildLabels {
    /// The supervisor's name.
    pub supervisor: String,
    /// The child's logical name.
    pub child: String,
}

/// The supervision metric families.
#[derive(Clone, Debug, Default)]
pub struct SupervisionMetrics {
    restarts: Family<ChildLabels, Counter>,
    up: Family<ChildLabels, Gauge>,
    parked: Family<ChildLabels, Gauge>,
}

impl SupervisionMetrics {
    /// Registers the families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sre_supervisor_child_restarts",
            "Restarts of a supervised actor after it failed or exited",
            self.restarts.clone(),
        );
        registry.register(
            "sre_supervisor_child_up",
            "1 while the supervised actor is running, else 0",
            self.up.clone(),
        );
        registry.register(
            "sre_supervisor_child_parked",
            "1 while the supervised actor is parked after exceeding its restart intensity",
            self.parked.clone(),
        );
    }
}

/// Where a child is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Failed; a restart is scheduled after a backoff.
    Restarting,
    /// Exceeded its restart intensity; retried after the cool-down.
    Failed,
    /// Stopped by shutdown.
    Stopped,
}

impl ChildState {
    /// The state's name as the tree view and logs print it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Restarting => "restarting",
            ChildState::Failed => "failed",
            ChildState::Stopped => "stopped",
        }
    }
}

/// What the tree view shows for one child.
#[derive(Clone, Debug, Serialize)]
pub struct ChildStatus {
    /// Supervisor name.
    pub supervisor: String,
    /// Child name.
    pub name: String,
    /// Current state.
    pub state: ChildState,
    /// Restarts so far.
    pub restarts: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// The current ractor `ActorId`, while one exists.
    pub actor_id: Option<String>,
    /// When the state last changed (RFC 3339).
    pub since: String,
    /// For a parked child, when it will be tried again (RFC 3339).
    pub retry_at: Option<String>,
}

/// One thing that happened to a supervised child.
#[derive(Clone, Debug)]
pub enum SupervisionEvent<'a> {
    /// Registered before its first start.
    ChildDeclared {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
    },
    /// Started (first start or restart).
    ChildStarted {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
        /// Its new id.
        actor_id: String,
    },
    /// Failed (panic, error, or unexpected exit), or could not be started.
    ChildFailed {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A restart is scheduled.
    RestartScheduled {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
        /// Failures within the period so far.
        attempt: u32,
        /// Backoff before the restart.
        delay: Duration,
    },
    /// The restart is being performed.
    Restarting {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
    },
    /// Exceeded the intensity limit; parked for the cool-down.
    ChildParked {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
        /// Failures within the period.
        failures: u32,
        /// How long until it is tried again.
        cool_down: Duration,
    },
    /// Stopped by shutdown.
    ChildStopped {
        /// Supervisor.
        supervisor: &'a str,
        /// Child.
        child: &'a str,
    },
}

/// Records supervision events: logs, metrics and the live tree. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Observer {
    metrics: SupervisionMetrics,
    tree: Arc<RwLock<BTreeMap<(String, String), ChildStatus>>>,
    /// Bumped on every change, so waiters wake on events instead of polling.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            metrics: SupervisionMetrics::default(),
            tree: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Observer {
    /// An observer whose metrics are registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let o = Observer::default();
        o.metrics.register(registry);
        o
    }

    /// Every child's status, ordered by supervisor then child name.
    pub fn snapshot(&self) -> Vec<ChildStatus> {
        self.tree
            .read()
            .expect("tree lock")
            .values()
            .cloned()
            .collect()
    }

    /// One child's status.
    pub fn child(&self, supervisor: &str, child: &str) -> Option<ChildStatus> {
        self.tree
            .read()
            .expect("tree lock")
            .get(&(supervisor.to_owned(), child.to_owned()))
            .cloned()
    }

    /// Waits until `done` holds for the tree (checked now and after every change).
    pub async fn wait_until(&self, done: impl Fn(&[ChildStatus]) -> bool) {
        let mut rx = self.changes.subscribe();
        loop {
            if done(&self.snapshot()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn update(&self, supervisor: &str, child: &str, f: impl FnOnce(&mut ChildStatus)) {
        self.update_tree(supervisor, child, f);
        self.changes.send_modify(|n| *n += 1);
    }

    fn update_tree(&self, supervisor: &str, child: &str, f: impl FnOnce(&mut ChildStatus)) {
        let mut tree = self.tree.write().expect("tree lock");
        let entry = tree
            .entry((supervisor.to_owned(), child.to_owned()))
            .or_insert_with(|| ChildStatus {
                supervisor: supervisor.to_owned(),
                name: child.to_owned(),
                state: ChildState::Starting,
                restarts: 0,
                last_error: None,
                actor_id: None,
                since: rfc3339(SystemTime::now()),
                retry_at: None,
            });
        let before = entry.state;
        f(entry);
        if entry.state != before {
            entry.since = rfc3339(SystemTime::now());
        }
    }

    fn labels(supervisor: &str, child: &str) -> ChildLabels {
        ChildLabels {
            supervisor: supervisor.to_owned(),
            child: child.to_owned(),
        }
    }
}

impl SupervisionEvent<'_> {
    /// Logs the event, updates the metrics and the tree.
    pub fn emit(&self, o: &Observer) {
        let m = &o.metrics;
        match *self {
            SupervisionEvent::ChildDeclared { supervisor, child } => {
                m.up.get_or_create(&Observer::labels(supervisor, child))
                    .set(0);
                m.parked
                    .get_or_create(&Observer::labels(supervisor, child))
                    .set(0);
                let _ = m
                    .restarts
                    .get_or_create(&Observer::labels(supervisor, child));
                o.update(supervisor, child, |_| {});
            }
            SupervisionEvent::ChildStarted {
                supervisor,
                child,
                ref actor_id,
            } => {
                tracing::info!(supervisor, child, actor_id = %actor_id, "child started");
                let l = Observer::labels(supervisor, child);
                m.up.get_or_create(&l).set(1);
                m.parked.get_or_create(&l).set(0);
                o.update(supervisor, child, |s| {
                    s.state = ChildState::Running;
                    s.actor_id = Some(actor_id.clone());
                    s.retry_at = None;
                });
            }
            SupervisionEvent::ChildFailed {
                supervisor,
                child,
                reason,
            } => {
                tracing::warn!(supervisor, child, reason, "child failed");
                m.up.get_or_create(&Observer::labels(supervisor, child))
                    .set(0);
                o.update(supervisor, child, |s| {
                    s.state = ChildState::Restarting;
                    s.actor_id = None;
                    s.last_error = Some(reason.to_owned());
                });
            }
            SupervisionEvent::RestartScheduled {
                supervisor,
                child,
                attempt,
                delay,
            } => {
                tracing::info!(
                    supervisor,
                    child,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "restart scheduled"
                );
                o.update(supervisor, child, |s| {
                    s.state = ChildState::Restarting;
                    s.retry_at = Some(rfc3339(SystemTime::now() + delay));
                });
            }
            SupervisionEvent::Restarting { supervisor, child } => {
                m.restarts
                    .get_or_create(&Observer::labels(supervisor, child))
                    .inc();
                o.update(supervisor, child, |s| {
                    s.restarts += 1;
                    s.state = ChildState::Starting;
                });
            }
            SupervisionEvent::ChildParked {
                supervisor,
                child,
                failures,
                cool_down,
            } => {
                tracing::error!(
                    supervisor,
                    child,
                    failures,
                    cool_down_s = cool_down.as_secs(),
                    "child parked after exceeding its restart intensity"
                );
                m.parked
                    .get_or_create(&Observer::labels(supervisor, child))
                    .set(1);
                o.update(supervisor, child, |s| {
                    s.state = ChildState::Failed;
                    s.retry_at = Some(rfc3339(SystemTime::now() + cool_down));
                });
            }
            SupervisionEvent::ChildStopped { supervisor, child } => {
                tracing::info!(supervisor, child, "child stopped");
                m.up.get_or_create(&Observer::labels(supervisor, child))
                    .set(0);
                o.update(supervisor, child, |s| {
                    s.state = ChildState::Stopped;
                    s.actor_id = None;
                });
            }
        }
    }
}
