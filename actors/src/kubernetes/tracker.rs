//! What a cluster watcher remembers, and which transitions it still owes downstream. Pure
//! state machines, no I/O, so the watcher actor and the benchmark drive the same code.
//!
//! - [`Tracker`]: per resource kind, every object's current assessment and the state last
//!   **reported**. An object whose current state differs from the reported one is *dirty*;
//!   [`Tracker::pending`] lists the dirty ones as [`Transition`]s and [`Tracker::settle`] marks
//!   them reported once their intents are accepted. A failed emit leaves them dirty, so they
//!   are sent again later: nothing observed is lost, and an unchanged status update (same
//!   state) never makes a transition.
//! - Relists: [`Tracker::relist_start`] / [`Tracker::relist_done`] bracket a full list; every
//!   object remembered in the relisted scope but absent from the list was deleted during the
//!   gap (a 410 Expired, a disconnect, a reconcile) and is reported `Deleted`.
//! - [`ServiceJoin`]: a Service's health depends on its EndpointSlices; it joins both streams
//!   and holds Services back until the slices have been listed once.
//! - [`EventLog`]: which Warning events (uid, count) were published, so a relist or reconnect
//!   does not publish them again.

use std::collections::{HashMap, HashSet};

use super::health::{self, Assessment, Endpoints, ServiceShape, State};
use super::observe::{ObjectId, Observation, SliceInfo, WarningEvent};

/// The kinds whose health is tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// core/v1 Pod.
    Pod,
    /// apps/v1 Deployment.
    Deployment,
    /// core/v1 Service.
    Service,
}

impl ObjectKind {
    /// Its Kubernetes kind, as intents and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Pod => "Pod",
            ObjectKind::Deployment => "Deployment",
            ObjectKind::Service => "Service",
        }
    }
}

/// Why a transition is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    /// First seen in the first full list.
    Baseline,
    /// Created after the first full list.
    Created,
    /// Its state changed.
    Changed,
    /// It is gone.
    Deleted,
}

impl TransitionReason {
    /// Its name in intents.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionReason::Baseline => "baseline",
            TransitionReason::Created => "created",
            TransitionReason::Changed => "changed",
            TransitionReason::Deleted => "deleted",
        }
    }
}

/// A full list in progress: its scope (a namespace, or all of them) and the uids it listed.
#[derive(Debug)]
struct Relist {
    scope: Option<String>,
    seen: HashSet<String>,
}

impl Relist {
    fn new(scope: Option<String>) -> Self {
        Relist {
            scope,
            seen: HashSet::new(),
        }
    }

    /// Whether `namespace` is in the relisted scope.
    fn covers(&self, namespace: &str) -> bool {
        self.scope.as_ref().is_none_or(|ns| ns == namespace)
    }
}

/// A Service by namespace and name (what an EndpointSlice names).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServiceName {
    namespace: String,
    name: String,
}

/// A state a tracker reported downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    /// State.
    pub state: State,
    /// Reason at the time.
    pub reason: String,
    /// Message at the time.
    pub message: String,
}

#[derive(Debug)]
struct Entry {
    namespace: String,
    name: String,
    current: Assessment,
    episode: String,
    resource_version: String,
    reported: Option<Reported>,
    /// First seen in the first full list (not created later).
    baseline: bool,
}

/// A transition owed downstream.
#[derive(Clone, Debug)]
pub struct Transition {
    /// The object's kind.
    pub kind: ObjectKind,
    /// Object uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What was reported before (none on first sight).
    pub previous: Option<Reported>,
    /// The state now.
    pub current: Assessment,
    /// The episode marker of the current state.
    pub episode: String,
    /// Why it is reported.
    pub reason: TransitionReason,
}

/// One resource kind's objects (keyed by uid).
#[derive(Debug)]
pub struct Tracker {
    kind: ObjectKind,
    entries: HashMap<String, Entry>,
    dirty: HashSet<String>,
    relisting: Option<Relist>,
    synced: bool,
    /// Entries kept only until their deletion is reported.
    deleted: usize,
    /// Owed transitions superseded since [`Tracker::take_coalesced`] was last called.
    coalesced: u64,
}

impl Tracker {
    /// An empty tracker for `kind`.
    pub fn new(kind: ObjectKind) -> Self {
        Tracker {
            kind,
            entries: HashMap::new(),
            dirty: HashSet::new(),
            relisting: None,
            synced: false,
            deleted: 0,
            coalesced: 0,
        }
    }

    /// Objects that exist (deleted ones whose deletion is still to be reported excluded).
    pub fn len(&self) -> usize {
        self.entries.len() - self.deleted
    }

    /// Whether no object exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind tracked.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// Whether a first full list has completed.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Transitions owed: at most one per object remembered, whatever happens meanwhile.
    pub fn dirty(&self) -> usize {
        self.dirty.len()
    }

    /// How many owed transitions were superseded by a newer state of the same object (or
    /// cancelled by its deletion before anything was reported) since the last call.
    pub fn take_coalesced(&mut self) -> u64 {
        std::mem::take(&mut self.coalesced)
    }

    /// Records an object's current state.
    pub fn observe(&mut self, o: Observation) {
        if let Some(r) = &mut self.relisting {
            r.seen.insert(o.uid.clone());
        }
        let Observation {
            uid,
            namespace,
            name,
            resource_version,
            assessment,
        } = o;
        if !self.entries.contains_key(&uid) {
            let placeholder = Assessment {
                state: assessment.state,
                reason: String::new(),
                message: String::new(),
                episode: String::new(),
            };
            let entry = Entry {
                namespace,
                name,
                current: placeholder,
                episode: String::new(),
                resource_version: String::new(),
                reported: None,
                baseline: !self.synced,
            };
            self.entries.insert(uid.clone(), entry);
        }
        let Some(entry) = self.entries.get_mut(&uid) else {
            return;
        };
        let new_episode = entry.episode.is_empty() || entry.current.state != assessment.state;
        if new_episode {
            entry.episode = if assessment.episode.is_empty() {
                format!("rv{resource_version}")
            } else {
                assessment.episode.clone()
            };
        }
        if entry.current.state == State::Deleted && assessment.state != State::Deleted {
            // Listed again (a stale DELETED): it exists after all.
            self.deleted -= 1;
        }
        if entry.current.state != assessment.state && self.dirty.contains(&uid) {
            // Newest state wins: the transition still owed is replaced, not queued behind.
            self.coalesced += 1;
        }
        entry.current = assessment;
        entry.resource_version = resource_version;
        let owed = entry
            .reported
            .as_ref()
            .is_none_or(|r| r.state != entry.current.state);
        if owed {
            self.dirty.insert(uid);
        } else {
            self.dirty.remove(&uid);
        }
    }

    /// Records a deletion (from a watch DELETED).
    pub fn delete(&mut self, uid: &str) {
        let Some(entry) = self.entries.get_mut(uid) else {
            return;
        };
        if entry.reported.is_none() {
            // Never reported: nothing downstream to tell.
            self.entries.remove(uid);
            if self.dirty.remove(uid) {
                self.coalesced += 1;
            }
            return;
        }
        if entry.current.state != State::Deleted {
            if self.dirty.contains(uid) {
                self.coalesced += 1;
            }
            self.deleted += 1;
            entry.current = Assessment::deleted();
            entry.episode = format!("rv{}", entry.resource_version);
            self.dirty.insert(uid.to_owned());
        }
    }

    /// A full list of `namespace` (all namespaces when `None`) begins.
    pub fn relist_start(&mut self, namespace: Option<String>) {
        self.relisting = Some(Relist::new(namespace));
    }

    /// The full list is complete: whatever it did not contain in its scope is deleted.
    /// Returns how many objects that was.
    pub fn relist_done(&mut self) -> usize {
        let Some(relist) = self.relisting.take() else {
            return 0;
        };
        self.synced = true;
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(uid, e)| {
                !relist.seen.contains(*uid)
                    && e.current.state != State::Deleted
                    && relist.covers(&e.namespace)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            self.delete(uid);
        }
        gone.len()
    }

    /// The transitions owed, at most `limit`.
    pub fn pending(&self, limit: usize) -> Vec<Transition> {
        self.dirty
            .iter()
            .take(limit)
            .filter_map(|uid| {
                let e = self.entries.get(uid)?;
                let reason = match (&e.reported, e.current.state) {
                    (Some(_), State::Deleted) => TransitionReason::Deleted,
                    (Some(_), _) => TransitionReason::Changed,
                    (None, _) if e.baseline => TransitionReason::Baseline,
                    (None, _) => TransitionReason::Created,
                };
                Some(Transition {
                    kind: self.kind,
                    uid: uid.clone(),
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    previous: e.reported.clone(),
                    current: e.current.clone(),
                    episode: e.episode.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// These transitions were accepted downstream.
    pub fn settle(&mut self, done: &[Transition]) {
        for t in done {
            let Some(e) = self.entries.get_mut(&t.uid) else {
                continue;
            };
            if e.current.state != t.current.state {
                // Changed again meanwhile: still owed.
                continue;
            }
            self.dirty.remove(&t.uid);
            if e.current.state == State::Deleted {
                self.entries.remove(&t.uid);
                self.deleted -= 1;
            } else {
                e.reported = Some(Reported {
                    state: e.current.state,
                    reason: e.current.reason.clone(),
                    message: e.current.message.clone(),
                });
            }
        }
    }
}

#[derive(Debug)]
struct ServiceEntry {
    namespace: String,
    name: String,
    resource_version: String,
    shape: ServiceShape,
}

#[derive(Debug)]
struct Slice {
    service: ServiceName,
    ready: usize,
}

/// Services joined with their EndpointSlices.
#[derive(Debug)]
pub struct ServiceJoin {
    /// The Services' health.
    pub tracker: Tracker,
    services: HashMap<String, ServiceEntry>,
    by_name: HashMap<ServiceName, String>,
    slices: HashMap<String, Slice>,
    endpoints: HashMap<ServiceName, Endpoints>,
    slice_relist: Option<Relist>,
    slices_synced: bool,
}

impl Default for ServiceJoin {
    fn default() -> Self {
        ServiceJoin {
            tracker: Tracker::new(ObjectKind::Service),
            services: HashMap::new(),
            by_name: HashMap::new(),
            slices: HashMap::new(),
            endpoints: HashMap::new(),
            slice_relist: None,
            slices_synced: false,
        }
    }
}

impl ServiceJoin {
    /// EndpointSlices remembered.
    pub fn slices(&self) -> usize {
        self.slices.len()
    }

    fn assess(&mut self, uid: &str) {
        if !self.slices_synced {
            return;
        }
        let Some(s) = self.services.get(uid) else {
            return;
        };
        let key = ServiceName {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        };
        let endpoints = self.endpoints.get(&key).copied().unwrap_or_default();
        let assessment = health::service_shape(s.shape, endpoints);
        self.tracker.observe(Observation {
            uid: uid.to_owned(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            resource_version: s.resource_version.clone(),
            assessment,
        });
    }

    /// A Service was listed, added or modified.
    pub fn service(&mut self, id: ObjectId, shape: ServiceShape) {
        let ObjectId {
            uid,
            namespace,
            name,
            resource_version,
        } = id;
        if let Some(r) = &mut self.tracker.relisting {
            r.seen.insert(uid.clone());
        }
        self.by_name.insert(
            ServiceName {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            uid.clone(),
        );
        self.services.insert(
            uid.clone(),
            ServiceEntry {
                namespace,
                name,
                resource_version,
                shape,
            },
        );
        self.assess(&uid);
    }

    /// A Service was deleted.
    pub fn service_deleted(&mut self, uid: &str) {
        if let Some(s) = self.services.remove(uid) {
            self.by_name.remove(&ServiceName {
                namespace: s.namespace,
                name: s.name,
            });
        }
        self.tracker.delete(uid);
    }

    /// A Service relist begins.
    pub fn services_relist_start(&mut self, namespace: Option<String>) {
        self.tracker.relist_start(namespace);
    }

    /// A Service relist is done; returns the deletions it revealed.
    pub fn services_relist_done(&mut self) -> usize {
        if let Some(relist) = &self.tracker.relisting {
            let gone: Vec<String> = self
                .services
                .iter()
                .filter(|(uid, s)| !relist.seen.contains(*uid) && relist.covers(&s.namespace))
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in gone {
                if let Some(s) = self.services.remove(&uid) {
                    self.by_name.remove(&ServiceName {
                        namespace: s.namespace,
                        name: s.name,
                    });
                }
            }
        }
        self.tracker.relist_done()
    }

    fn slice_changed(&mut self, service: &ServiceName) {
        if let Some(uid) = self.by_name.get(service).cloned() {
            self.assess(&uid);
        }
    }

    fn recount(&mut self, service: &ServiceName) {
        let mut e = Endpoints::default();
        for s in self.slices.values().filter(|s| &s.service == service) {
            e.slices += 1;
            e.ready += s.ready;
        }
        if e.slices == 0 {
            self.endpoints.remove(service);
        } else {
            self.endpoints.insert(service.clone(), e);
        }
    }

    /// An EndpointSlice was listed, added or modified.
    pub fn slice(&mut self, s: SliceInfo) {
        if let Some(r) = &mut self.slice_relist {
            r.seen.insert(s.uid.clone());
        }
        let service = ServiceName {
            namespace: s.namespace,
            name: s.service,
        };
        let previous = self.slices.insert(
            s.uid,
            Slice {
                service: service.clone(),
                ready: s.ready,
            },
        );
        if let Some(p) = previous.filter(|p| p.service != service) {
            self.recount(&p.service);
            self.slice_changed(&p.service);
        }
        self.recount(&service);
        self.slice_changed(&service);
    }

    /// An EndpointSlice was deleted.
    pub fn slice_deleted(&mut self, uid: &str) {
        if let Some(s) = self.slices.remove(uid) {
            self.recount(&s.service);
            self.slice_changed(&s.service);
        }
    }

    /// An EndpointSlice relist begins.
    pub fn slices_relist_start(&mut self, namespace: Option<String>) {
        self.slice_relist = Some(Relist::new(namespace));
    }

    /// An EndpointSlice relist is done: slices it did not contain are gone; the first one
    /// releases the Services held back.
    pub fn slices_relist_done(&mut self) {
        let Some(relist) = self.slice_relist.take() else {
            return;
        };
        let gone: Vec<String> = self
            .slices
            .iter()
            .filter(|(uid, s)| !relist.seen.contains(*uid) && relist.covers(&s.service.namespace))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.slice_deleted(&uid);
        }
        if !self.slices_synced {
            self.slices_synced = true;
            let uids: Vec<String> = self.services.keys().cloned().collect();
            for uid in uids {
                self.assess(&uid);
            }
        }
    }
}

/// Warning events published (uid → count), so repeats are not.
#[derive(Debug, Default)]
pub struct EventLog {
    published: HashMap<String, u64>,
    relisting: Option<HashSet<String>>,
}

impl EventLog {
    /// Events remembered.
    pub fn len(&self) -> usize {
        self.published.len()
    }

    /// Whether none are remembered.
    pub fn is_empty(&self) -> bool {
        self.published.is_empty()
    }

    /// Whether `e` is news (a uid not published at this count or higher).
    pub fn is_new(&mut self, e: &WarningEvent) -> bool {
        if let Some(seen) = &mut self.relisting {
            seen.insert(e.uid.clone());
        }
        self.published.get(&e.uid).is_none_or(|c| *c < e.count)
    }

    /// `e` was published (or found already published).
    pub fn settle(&mut self, e: &WarningEvent) {
        let c = self.published.entry(e.uid.clone()).or_insert(0);
        *c = (*c).max(e.count);
    }

    /// The Event object was deleted (its TTL ran out): forget it.
    pub fn forget(&mut self, uid: &str) {
        self.published.remove(uid);
    }

    /// An Event relist begins.
    pub fn relist_start(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// The relist is done: forget events no longer listed, so memory stays bounded.
    pub fn relist_done(&mut self) {
        if let Some(seen) = self.relisting.take() {
            self.published.retain(|uid, _| seen.contains(uid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(uid: &str, state: State, rv: &str) -> Observation {
        Observation {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("n-{uid}"),
            resource_version: rv.into(),
            assessment: Assessment {
                state,
                reason: state.as_str().into(),
                message: String::new(),
                episode: String::new(),
            },
        }
    }

    #[test]
    fn only_state_changes_are_owed_and_settling_clears_them() {
        let mut t = Tracker::new(ObjectKind::Pod);
        t.relist_start(None);
        t.observe(obs("a", State::Healthy, "1"));
        assert_eq!(t.relist_done(), 0);
        let p = t.pending(10);
        assert_eq!((p.len(), p[0].reason), (1, TransitionReason::Baseline));
        t.settle(&p);
        t.observe(obs("a", State::Healthy, "2"));
        assert!(t.pending(10).is_empty(), "same state, no transition");
        t.observe(obs("a", State::Failing, "3"));
        let p = t.pending(10);
        assert_eq!(p[0].reason, TransitionReason::Changed);
        assert_eq!(p[0].previous.as_ref().unwrap().state, State::Healthy);
        assert_eq!(p[0].episode, "rv3");
        // Not settled (emit failed): still owed, same episode after more updates.
        t.observe(obs("a", State::Failing, "4"));
        assert_eq!(t.pending(10)[0].episode, "rv3");
        t.settle(&t.pending(10));
        t.observe(obs("b", State::Pending, "5"));
        assert_eq!(t.pending(10)[0].reason, TransitionReason::Created);
    }

    /// However often objects change while nothing is settled (the sink is down), at most one
    /// transition per object is owed, and it carries the newest state.
    #[test]
    fn an_outage_owes_one_transition_per_object_with_the_newest_state() {
        let mut t = Tracker::new(ObjectKind::Pod);
        t.relist_start(None);
        for i in 0..10 {
            t.observe(obs(&format!("p{i}"), State::Healthy, "1"));
        }
        t.relist_done();
        t.settle(&t.pending(100));
        let states = [State::Failing, State::Degraded, State::Healthy];
        for round in 0..1000usize {
            for i in 0..10 {
                let state = states[(round + i) % states.len()];
                t.observe(obs(&format!("p{i}"), state, &(round + 2).to_string()));
            }
            assert!(t.dirty() <= 10, "{}", t.dirty());
        }
        // Newest: round 999 put p<i> in states[(999 + i) % 3]; Healthy ones owe nothing.
        let p = t.pending(100);
        let owed: Vec<usize> = (0..10)
            .filter(|i| states[(999 + i) % 3] != State::Healthy)
            .collect();
        assert_eq!(p.len(), owed.len());
        for tr in &p {
            let i: usize = tr.uid[1..].parse().unwrap();
            assert_eq!(tr.current.state, states[(999 + i) % 3], "{}", tr.uid);
            assert_eq!(tr.previous.as_ref().unwrap().state, State::Healthy);
        }
        assert!(t.take_coalesced() > 0);
        assert_eq!(t.take_coalesced(), 0, "taken");
        // An object created and deleted while unreported leaves nothing owed.
        t.observe(obs("q", State::Pending, "5000"));
        t.delete("q");
        assert_eq!(t.pending(100).len(), owed.len());
        assert_eq!(t.take_coalesced(), 1);
    }

    #[test]
    fn a_relist_reports_what_vanished_in_the_gap() {
        let mut t = Tracker::new(ObjectKind::Pod);
        t.relist_start(None);
        t.observe(obs("a", State::Healthy, "1"));
        t.observe(obs("b", State::Healthy, "1"));
        t.relist_done();
        t.settle(&t.pending(10));
        t.relist_start(None);
        t.observe(obs("a", State::Healthy, "1"));
        assert_eq!(t.relist_done(), 1);
        let p = t.pending(10);
        assert_eq!(
            (p.len(), p[0].uid.as_str(), p[0].reason),
            (1, "b", TransitionReason::Deleted)
        );
        t.settle(&p);
        assert_eq!(t.len(), 1);
        // A deletion of something never reported is not a transition.
        t.observe(obs("c", State::Pending, "2"));
        t.delete("c");
        assert!(t.pending(10).is_empty());
    }

    #[test]
    fn services_wait_for_their_slices() {
        let mut j = ServiceJoin::default();
        let shape = ServiceShape {
            external: false,
            selects: true,
        };
        j.services_relist_start(None);
        j.service(
            ObjectId {
                uid: "s1".into(),
                namespace: "ns".into(),
                name: "api".into(),
                resource_version: "1".into(),
            },
            shape,
        );
        j.services_relist_done();
        assert!(
            j.tracker.pending(10).is_empty(),
            "held until slices are listed"
        );
        j.slices_relist_start(None);
        j.slice(SliceInfo {
            uid: "e1".into(),
            namespace: "ns".into(),
            service: "api".into(),
            ready: 0,
        });
        j.slices_relist_done();
        let p = j.tracker.pending(10);
        assert_eq!(p[0].current.state, State::Degraded);
        j.tracker.settle(&p);
        j.slice(SliceInfo {
            uid: "e1".into(),
            namespace: "ns".into(),
            service: "api".into(),
            ready: 2,
        });
        assert_eq!(j.tracker.pending(10)[0].current.state, State::Healthy);
    }

    #[test]
    fn events_are_news_once_per_count() {
        let mut log = EventLog::default();
        let mut e = WarningEvent::for_test("u1", 1);
        assert!(log.is_new(&e));
        log.settle(&e);
        assert!(!log.is_new(&e));
        e.count = 2;
        assert!(log.is_new(&e));
        log.settle(&e);
        log.relist_start();
        log.relist_done();
        assert!(log.is_empty(), "events no longer listed are forgotten");
    }
}
