//! Readiness: whether the pod should receive webhooks. Ready once the supervision tree has
//! started, while not draining for shutdown, while every child of the `ingest` supervisor runs,
//! and while no component has reported a blocking condition (for example a sink outage).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sre_supervision::{ChildState, Observer};

/// The supervisor whose children must all run for the pod to be ready.
pub const CRITICAL_SUPERVISOR: &str = "ingest";

#[derive(Debug, Default)]
struct Inner {
    started: AtomicBool,
    draining: AtomicBool,
    conditions: RwLock<BTreeMap<String, String>>,
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
    /// Every supervised child and its state.
    pub children: Vec<sre_supervision::ChildStatus>,
}

impl Readiness {
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

    /// The verdict with its reasons.
    pub fn report(&self, observer: &Observer) -> ReadinessReport {
        let started = self.0.started.load(Ordering::SeqCst);
        let draining = self.0.draining.load(Ordering::SeqCst);
        let children = observer.snapshot();
        let mut reasons = Vec::new();
        if !started {
            reasons.push("supervision tree still starting".to_owned());
        }
        if draining {
            reasons.push("shutting down".to_owned());
        }
        for c in children
            .iter()
            .filter(|c| c.supervisor == CRITICAL_SUPERVISOR && c.state != ChildState::Running)
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
        ReadinessReport {
            ready: reasons.is_empty(),
            started,
            draining,
            reasons,
            children,
        }
    }
}
