//! The health model: what state a Pod, Deployment or Service is in, and why. Pure functions
//! over the API objects, so the table below is the whole truth and is unit-tested row by row.
//!
//! | kind | state | when | reason |
//! |---|---|---|---|
//! | Pod | `Failing` | phase `Failed` | `status.reason` (`Evicted`, ...) or `Failed` |
//! | Pod | `Failing` | a container waiting in `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`, `CreateContainerError`, `InvalidImageName`, `RunContainerError` | that reason |
//! | Pod | `Failing` | a container terminated `OOMKilled` now, or last time and not ready since | `OOMKilled` |
//! | Pod | `Failing` | a container restarted after a non-zero exit and is not ready | its last termination reason (`Error`) |
//! | Pod | `Succeeded` | phase `Succeeded` | `Completed` |
//! | Pod | `Pending` | phase `Pending` (otherwise) | `Unschedulable`, `ContainerCreating`, ... |
//! | Pod | `Degraded` | running but not Ready | the Ready condition's reason (`ContainersNotReady`) |
//! | Pod | `Healthy` | running and Ready | `Ready` |
//! | Deployment | `Failed` | `Progressing=False` with `ProgressDeadlineExceeded` | `ProgressDeadlineExceeded` |
//! | Deployment | `Degraded` | `ReplicaFailure=True`, or `Available=False` | the condition's reason |
//! | Deployment | `Progressing` | a rollout is under way (generation not observed yet, replicas not all updated or available, old replicas terminating) | `RollingOut` |
//! | Deployment | `Healthy` | otherwise | `Available` (`ScaledToZero` at 0 replicas) |
//! | Service | `Healthy` | at least one ready endpoint in its EndpointSlices; or `ExternalName`; or no selector and no slices | `EndpointsReady`, `ExternalName`, `NoSelector` |
//! | Service | `Degraded` | a selector but no ready endpoint | `NoReadyEndpoints` |
//! | any | `Deleted` | the object is gone (watch DELETED, or missing from a relist) | `Deleted` |
//!
//! Only a change of **state** is a transition; a new reason within the same state (a crash
//! looping container alternating `Error` and `CrashLoopBackOff`) is not.
//!
//! The **episode** marker makes idempotency keys stable across restarts: the
//! `lastTransitionTime` of the condition that decided the state where there is one (Pod
//! `Ready`/`PodScheduled`, Deployment `Available`/`Progressing`/`ReplicaFailure`), else the
//! observed generation, else the resourceVersion at which the state was first seen.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::view::{ContainerStatusView, PodView};

/// A health state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Working as intended.
    Healthy,
    /// Not started yet (Pod).
    Pending,
    /// Rolling out (Deployment).
    Progressing,
    /// Running but impaired.
    Degraded,
    /// Failing and not recovering by itself (Pod).
    Failing,
    /// Gave up (Deployment past its progress deadline).
    Failed,
    /// Ran to completion (Pod).
    Succeeded,
    /// Gone.
    Deleted,
}

impl State {
    /// Its name in intents and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "Healthy",
            State::Pending => "Pending",
            State::Progressing => "Progressing",
            State::Degraded => "Degraded",
            State::Failing => "Failing",
            State::Failed => "Failed",
            State::Succeeded => "Succeeded",
            State::Deleted => "Deleted",
        }
    }
}

/// A state with its reason, message and episode marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// The state.
    pub state: State,
    /// Kubernetes' reason.
    pub reason: String,
    /// Kubernetes' message (empty when none).
    pub message: String,
    /// The decisive condition's `lastTransitionTime`, or `g<generation>`; empty when none (the
    /// tracker then uses the resourceVersion at which the state was first seen).
    pub episode: String,
}

impl Assessment {
    fn new(state: State, reason: &str) -> Self {
        Assessment {
            state,
            reason: reason.to_owned(),
            message: String::new(),
            episode: String::new(),
        }
    }

    fn message(mut self, m: Option<&String>) -> Self {
        self.message = m.cloned().unwrap_or_default();
        self
    }

    fn episode(mut self, e: Option<String>) -> Self {
        self.episode = e.unwrap_or_default();
        self
    }

    /// The deletion of an object.
    pub fn deleted() -> Self {
        Assessment::new(State::Deleted, "Deleted")
    }
}

fn stamp(t: Option<&Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

const FAILING_WAITING: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

/// A Pod's health.
pub fn pod(p: &PodView) -> Assessment {
    let Some(status) = &p.status else {
        return Assessment::new(State::Pending, "NoStatus");
    };
    let condition = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t);
    let ready = condition("Ready");
    let ready_since = ready.and_then(|c| c.last_transition_time.clone());
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    match phase {
        "Failed" => {
            return Assessment::new(State::Failing, status.reason.as_deref().unwrap_or("Failed"))
                .message(status.message.as_ref())
                .episode(ready_since);
        }
        "Succeeded" => {
            return Assessment::new(State::Succeeded, "Completed").episode(ready_since);
        }
        _ => {}
    }
    let containers = || {
        status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
    };
    for c in containers() {
        if let Some((reason, message)) = failing(c) {
            return Assessment::new(State::Failing, &reason)
                .message(message.as_ref())
                .episode(ready_since);
        }
    }
    match phase {
        "Pending" => {
            let scheduled = condition("PodScheduled");
            let unscheduled = scheduled.filter(|c| c.status == "False");
            let waiting = containers().find_map(|c| c.state.as_ref()?.waiting.as_ref());
            let (reason, message) = match (unscheduled, waiting) {
                (Some(c), _) => (
                    c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
                    c.message.clone(),
                ),
                (None, Some(w)) => (
                    w.reason
                        .clone()
                        .unwrap_or_else(|| "ContainerCreating".into()),
                    w.message.clone(),
                ),
                (None, None) => ("Pending".into(), None),
            };
            Assessment::new(State::Pending, &reason)
                .message(message.as_ref())
                .episode(scheduled.and_then(|c| c.last_transition_time.clone()))
        }
        "Running" if ready.is_some_and(|c| c.status == "True") => {
            Assessment::new(State::Healthy, "Ready").episode(ready_since)
        }
        "Running" => {
            let reason = ready
                .and_then(|c| c.reason.clone())
                .unwrap_or_else(|| "NotReady".into());
            Assessment::new(State::Degraded, &reason)
                .message(ready.and_then(|c| c.message.as_ref()))
                .episode(ready_since)
        }
        other => Assessment::new(State::Degraded, other)
            .message(status.message.as_ref())
            .episode(ready_since),
    }
}

/// Why a container makes its pod `Failing`, if it does.
fn failing(c: &ContainerStatusView) -> Option<(String, Option<String>)> {
    let state = c.state.as_ref();
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        if let Some(r) = w.reason.as_deref().filter(|r| FAILING_WAITING.contains(r)) {
            return Some((r.to_owned(), w.message.clone()));
        }
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        if t.reason.as_deref() == Some("OOMKilled") {
            return Some(("OOMKilled".into(), t.message.clone()));
        }
    }
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    match last {
        Some(t) if !c.ready && c.restart_count > 0 && t.exit_code != 0 => Some((
            t.reason.clone().unwrap_or_else(|| "Error".into()),
            t.message.clone(),
        )),
        _ => None,
    }
}

/// A Deployment's health.
pub fn deployment(d: &Deployment) -> Assessment {
    let generation = d.metadata.generation.unwrap_or(0);
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Assessment::new(State::Progressing, "RollingOut")
            .episode(Some(format!("g{generation}")));
    };
    let condition = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t);
    let since = |c: &k8s_openapi::api::apps::v1::DeploymentCondition| {
        stamp(c.last_transition_time.as_ref())
    };
    let observed = status.observed_generation.unwrap_or(0);
    if let Some(c) = condition("Progressing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return Assessment::new(State::Failed, "ProgressDeadlineExceeded")
            .message(c.message.as_ref())
            .episode(since(c));
    }
    if let Some(c) = condition("ReplicaFailure").filter(|c| c.status == "True") {
        return Assessment::new(
            State::Degraded,
            c.reason.as_deref().unwrap_or("ReplicaFailure"),
        )
        .message(c.message.as_ref())
        .episode(since(c));
    }
    if let Some(c) = condition("Available").filter(|c| c.status == "False") {
        return Assessment::new(
            State::Degraded,
            c.reason.as_deref().unwrap_or("MinimumReplicasUnavailable"),
        )
        .message(c.message.as_ref())
        .episode(since(c));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let rolling =
        observed < generation || updated < desired || replicas > updated || available < updated;
    if rolling {
        let message = format!(
            "{updated} of {desired} replicas updated, {available} available, {replicas} in total"
        );
        return Assessment::new(State::Progressing, "RollingOut")
            .message(Some(&message))
            .episode(Some(format!("g{generation}")));
    }
    let episode = condition("Available")
        .and_then(since)
        .or(Some(format!("g{observed}")));
    let reason = if desired == 0 {
        "ScaledToZero"
    } else {
        "Available"
    };
    Assessment::new(State::Healthy, reason).episode(episode)
}

/// What a Service's health depends on besides the Service itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// EndpointSlices naming the service.
    pub slices: usize,
    /// Ready endpoints across them.
    pub ready: usize,
}

/// What of a Service its health depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceShape {
    /// `type: ExternalName`.
    pub external: bool,
    /// It has a non-empty selector.
    pub selects: bool,
}

impl ServiceShape {
    /// The shape of `s`.
    pub fn of(s: &Service) -> Self {
        let spec = s.spec.as_ref();
        ServiceShape {
            external: spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName"),
            selects: spec
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| !sel.is_empty()),
        }
    }
}

/// A Service's health, given its endpoints.
pub fn service(s: &Service, endpoints: Endpoints) -> Assessment {
    service_shape(ServiceShape::of(s), endpoints)
}

/// A Service's health from its shape and endpoints.
pub fn service_shape(shape: ServiceShape, endpoints: Endpoints) -> Assessment {
    if shape.external {
        return Assessment::new(State::Healthy, "ExternalName");
    }
    if !shape.selects && endpoints.slices == 0 {
        return Assessment::new(State::Healthy, "NoSelector");
    }
    if endpoints.ready > 0 {
        Assessment::new(State::Healthy, "EndpointsReady")
    } else {
        let message = format!("no ready endpoint in {} EndpointSlice(s)", endpoints.slices);
        Assessment::new(State::Degraded, "NoReadyEndpoints").message(Some(&message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_with(status: serde_json::Value) -> PodView {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": status}),
        )
        .unwrap()
    }

    fn ready(status: &str) -> serde_json::Value {
        json!({"type": "Ready", "status": status, "reason": if status == "True" { serde_json::Value::Null } else { json!("ContainersNotReady") },
               "lastTransitionTime": "2026-11-29T00:00:00Z"})
    }

    #[test]
    fn pod_states() {
        let healthy = pod_with(json!({"phase": "Running", "conditions": [ready("True")],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}}]}));
        let a = pod(&healthy);
        assert_eq!((a.state, a.reason.as_str()), (State::Healthy, "Ready"));
        assert_eq!(a.episode, "2026-11-29T00:00:00Z");

        let not_ready = pod_with(json!({"phase": "Running", "conditions": [ready("False")],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}}]}));
        assert_eq!(pod(&not_ready).state, State::Degraded);
        assert_eq!(pod(&not_ready).reason, "ContainersNotReady");

        for reason in ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"] {
            let p = pod_with(json!({"phase": "Running", "conditions": [ready("False")],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                   "state": {"waiting": {"reason": reason, "message": "back-off"}}}]}));
            let a = pod(&p);
            assert_eq!(
                (a.state, a.reason.as_str(), a.message.as_str()),
                (State::Failing, reason, "back-off")
            );
        }

        let oom = pod_with(json!({"phase": "Running", "conditions": [ready("False")],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 1, "image": "i", "imageID": "",
               "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(pod(&oom).reason, "OOMKilled");
        assert_eq!(pod(&oom).state, State::Failing);

        // Restarted once but ready again: healthy.
        let recovered = pod_with(json!({"phase": "Running", "conditions": [ready("True")],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "image": "i", "imageID": "",
               "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
        assert_eq!(pod(&recovered).state, State::Healthy);

        let evicted =
            pod_with(json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}));
        assert_eq!(
            (pod(&evicted).state, pod(&evicted).reason.as_str()),
            (State::Failing, "Evicted")
        );

        let done = pod_with(json!({"phase": "Succeeded"}));
        assert_eq!(pod(&done).state, State::Succeeded);

        let unschedulable = pod_with(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}));
        let a = pod(&unschedulable);
        assert_eq!(
            (a.state, a.reason.as_str()),
            (State::Pending, "Unschedulable")
        );

        let creating = pod_with(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
               "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod(&creating).reason, "ContainerCreating");
        let pulling = pod_with(
            json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false,
            "restartCount": 0, "image": "i", "imageID": "", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        );
        assert_eq!(pod(&pulling).state, State::Failing);
    }

    fn deployment_with(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d", "namespace": "ns", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "app", "image": "i"}]}}},
            "status": status}))
        .unwrap()
    }

    fn cond(t: &str, s: &str, reason: &str) -> serde_json::Value {
        json!({"type": t, "status": s, "reason": reason, "message": format!("{t} {reason}"),
               "lastTransitionTime": "2026-11-29T00:00:00Z", "lastUpdateTime": "2026-11-29T00:00:00Z"})
    }

    #[test]
    fn deployment_states() {
        let steady = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [cond("Available", "True", "MinimumReplicasAvailable"), cond("Progressing", "True", "NewReplicaSetAvailable")]});
        let a = deployment(&deployment_with(2, 3, steady.clone()));
        assert_eq!((a.state, a.reason.as_str()), (State::Healthy, "Available"));
        assert_eq!(
            deployment(&deployment_with(3, 3, steady)).state,
            State::Progressing
        );

        let rolling = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
            "conditions": [cond("Available", "True", "MinimumReplicasAvailable"), cond("Progressing", "True", "ReplicaSetUpdated")]});
        assert_eq!(
            deployment(&deployment_with(2, 3, rolling)).state,
            State::Progressing
        );

        let deadline = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
            "conditions": [cond("Available", "True", "MinimumReplicasAvailable"), cond("Progressing", "False", "ProgressDeadlineExceeded")]});
        let a = deployment(&deployment_with(2, 3, deadline));
        assert_eq!(
            (a.state, a.reason.as_str()),
            (State::Failed, "ProgressDeadlineExceeded")
        );
        assert_eq!(a.message, "Progressing ProgressDeadlineExceeded");

        let unavailable = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 0,
            "conditions": [cond("Available", "False", "MinimumReplicasUnavailable")]});
        assert_eq!(
            deployment(&deployment_with(2, 3, unavailable)).state,
            State::Degraded
        );

        let quota = json!({"observedGeneration": 2, "replicas": 0, "updatedReplicas": 0,
            "conditions": [cond("ReplicaFailure", "True", "FailedCreate")]});
        let a = deployment(&deployment_with(2, 3, quota));
        assert_eq!(
            (a.state, a.reason.as_str()),
            (State::Degraded, "FailedCreate")
        );

        let zero = json!({"observedGeneration": 2, "conditions": [cond("Available", "True", "MinimumReplicasAvailable")]});
        assert_eq!(
            deployment(&deployment_with(2, 0, zero)).reason,
            "ScaledToZero"
        );
    }

    #[test]
    fn service_states() {
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "s"}}}),
        )
        .unwrap();
        assert_eq!(
            service(
                &svc,
                Endpoints {
                    slices: 1,
                    ready: 2
                }
            )
            .state,
            State::Healthy
        );
        let a = service(
            &svc,
            Endpoints {
                slices: 1,
                ready: 0,
            },
        );
        assert_eq!(
            (a.state, a.reason.as_str()),
            (State::Degraded, "NoReadyEndpoints")
        );
        assert_eq!(service(&svc, Endpoints::default()).state, State::Degraded);
        let bare: Service =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {}})).unwrap();
        assert_eq!(service(&bare, Endpoints::default()).reason, "NoSelector");
        let ext: Service = serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "x.example"}})).unwrap();
        assert_eq!(service(&ext, Endpoints::default()).reason, "ExternalName");
    }
}
