//! Readiness: whether the process should receive traffic. Ready once the supervision tree has
//! started, while not draining for shutdown, while every child of the critical supervisor runs,
//! and while no component has reported a blocking condition (for example a sink outage).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::observer::{ChildState, ChildStatus, Observer};

#[derive(Debug, Default)]
struct Inner {
    critical: RwLock<String>,
    started: AtomicBool,
    draining: AtomicBool,
    conditions: RwLock<BTreeMap<String, String>>,
    degraded: RwLock<BTreeMap<String, String>>,
}

/// Shared readiness state. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<Inner>);

/// What `/readyz` answers.
#[derive(Debug, Serialize)]
pub struct ReadinessReport {
    /// The verdict.
    pub ready: bool,
    /// The tree has made its first start of every child.
    pub started: bool,
    /// Shutdown has begun.
    pub draining: bool,
    /// Why not ready, one line per reason.
    pub reasons: Vec<String>,
    /// Problems that do not take the process out of rotation (an upstream or sink outage:
    /// requests are still answered, with 503 where they cannot be served).
    pub degraded: Vec<String>,
    /// Every supervised child and its state.
    pub children: Vec<ChildStatus>,
}

impl Readiness {
    /// Readiness that requires every child of `critical_supervisor` to run.
    pub fn new(critical_supervisor: &str) -> Self {
        let r = Readiness::default();
        *r.0.critical.write().expect("critical lock") = critical_supervisor.to_owned();
        r
    }

    /// The tree has started.
    pub fn mark_started(&self) {
        self.0.started.store(true, Ordering::SeqCst);
    }
    /// Shutdown began: stop taking traffic.
    pub fn mark_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }
    /// Reports (`Some(reason)`) or clears (`None`) a blocking condition.
    pub fn set_condition(&self, name: &str, blocking: Option<String>) {
        let mut c = self.0.conditions.write().expect("conditions lock");
        match blocking {
            Some(reason) => c.insert(name.to_owned(), reason),
            None => c.remove(name),
        };
    }

    /// Reports (`Some(reason)`) or clears (`None`) a degradation shown in the report without
    /// making the process unready.
    pub fn set_degraded(&self, name: &str, problem: Option<String>) {
        let mut d = self.0.degraded.write().expect("degraded lock");
        match problem {
            Some(reason) => d.insert(name.to_owned(), reason),
            None => d.remove(name),
        };
    }

    /// The verdict with its reasons.
    pub fn report(&self, observer: &Observer) -> ReadinessReport {
        let started = self.0.started.load(Ordering::SeqCst);
        let draining = self.0.draining.load(Ordering::SeqCst);
        let children = observer.snapshot();
        let critical = self.0.critical.read().expect("critical lock").clone();
        let mut reasons = Vec::new();
        if !started {
            reasons.push("supervision tree still starting".to_owned());
        }
        if draining {
            reasons.push("shutting down".to_owned());
        }
        for c in children
            .iter()
            .filter(|c| c.supervisor == critical && c.state != ChildState::Running)
        {
            reasons.push(format!(
                "{}/{} is {}",
                c.supervisor,
                c.name,
                c.state.as_str()
            ));
        }
        for (name, why) in self.0.conditions.read().expect("conditions lock").iter() {
            reasons.push(format!("{name}: {why}"));
        }
        let degraded = self
            .0
            .degraded
            .read()
            .expect("degraded lock")
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        ReadinessReport {
            ready: reasons.is_empty(),
            started,
            draining,
            reasons,
            degraded,
            children,
        }
    }
}
