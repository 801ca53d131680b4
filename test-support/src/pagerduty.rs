//! A fake PagerDuty Events API v2: `POST /v2/enqueue` with PagerDuty's answers —
//! `202 {"status":"success","message":"Event processed","dedup_key":…}`, and `400
//! {"status":"invalid event","message":"Event object is invalid","errors":[…]}` for a missing
//! or malformed routing key (32 characters), an unknown `event_action`, a trigger without
//! `payload.summary` / `payload.source` or with a severity outside critical / error / warning /
//! info. Every accepted event is recorded in order ([`FakePagerDuty::events`]), with
//! PagerDuty's de-duplication: a trigger whose `dedup_key` names an open (triggered or
//! acknowledged) incident of the same routing key opens nothing new, so
//! [`FakePagerDuty::incidents_opened`] and [`FakePagerDuty::events_received`] differ when
//! something pages twice. Acknowledge and resolve change the incident they name (PagerDuty
//! accepts them for an unknown key too, and does nothing). Faults (429 + `Retry-After`, 5xx,
//! stalls) come from [`Server`], which it dereferences to.

use std::ops::Deref;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::faults::{Request, Server};

/// An incident the fake opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// Its routing key (the service it opened on).
    pub routing_key: String,
    /// Its dedup key.
    pub dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// The trigger's `payload.summary`.
    pub summary: String,
}

/// The fake's data.
#[derive(Clone, Debug, Default)]
pub struct PagerDuty {
    /// Accepted events, in order (routing key included, as sent).
    pub events: Vec<Value>,
    /// Incidents, in the order opened.
    pub incidents: Vec<Incident>,
}

/// A running fake PagerDuty; stops when dropped.
pub struct FakePagerDuty(Server<PagerDuty>);

impl Deref for FakePagerDuty {
    type Target = Server<PagerDuty>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakePagerDuty {
    /// Starts the fake.
    pub async fn start() -> FakePagerDuty {
        FakePagerDuty(Server::start(PagerDuty::default(), handle).await)
    }

    /// Accepted events, in order.
    pub fn events(&self) -> Vec<Value> {
        self.with_state(|p| p.events.clone())
    }

    /// How many events were accepted.
    pub fn events_received(&self) -> usize {
        self.with_state(|p| p.events.len())
    }

    /// How many incidents were opened (a de-duplicated trigger opens none).
    pub fn incidents_opened(&self) -> usize {
        self.with_state(|p| p.incidents.len())
    }

    /// The incidents.
    pub fn incidents(&self) -> Vec<Incident> {
        self.with_state(|p| p.incidents.clone())
    }

    /// `(event_action, dedup_key, routing_key)` of every accepted event, in order.
    pub fn actions(&self) -> Vec<(String, String, String)> {
        self.events()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("event_action"), s("dedup_key"), s("routing_key"))
            })
            .collect()
    }
}

fn invalid(errors: &[&str]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        })),
    )
        .into_response()
}

fn handle(state: &Mutex<PagerDuty>, req: Request) -> Response {
    if (&req.method, req.path.as_str()) != (&Method::POST, "/v2/enqueue") {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&req.body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "invalid request", "message": "Event object is invalid", "errors": ["Invalid JSON"]})),
        )
            .into_response();
    };
    let routing_key = event["routing_key"].as_str().unwrap_or_default().to_owned();
    if routing_key.is_empty() {
        return invalid(&["'routing_key' is missing or blank"]);
    }
    if routing_key.len() != 32 {
        return invalid(&["Length of 'routing_key' is incorrect (should be 32 characters)"]);
    }
    let action = event["event_action"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut dedup_key = event["dedup_key"].as_str().unwrap_or_default().to_owned();
    let mut p = state.lock().expect("fake");
    match action.as_str() {
        "trigger" => {
            let payload = &event["payload"];
            let summary = payload["summary"].as_str().unwrap_or_default();
            let mut errors = Vec::new();
            if summary.trim().is_empty() {
                errors.push("'payload.summary' is missing or blank");
            }
            if payload["source"].as_str().unwrap_or_default().is_empty() {
                errors.push("'payload.source' is missing or blank");
            }
            if !matches!(
                payload["severity"].as_str(),
                Some("critical" | "error" | "warning" | "info")
            ) {
                errors.push("'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')");
            }
            if !errors.is_empty() {
                return invalid(&errors);
            }
            if dedup_key.is_empty() {
                dedup_key = format!("{:032x}", p.events.len() + 1);
            }
            let open = p.incidents.iter().any(|i| {
                i.routing_key == routing_key && i.dedup_key == dedup_key && i.status != "resolved"
            });
            if !open {
                p.incidents.push(Incident {
                    routing_key: routing_key.clone(),
                    dedup_key: dedup_key.clone(),
                    status: "triggered".into(),
                    summary: summary.to_owned(),
                });
            }
        }
        "acknowledge" | "resolve" => {
            if dedup_key.is_empty() {
                return invalid(&["'dedup_key' is missing or blank"]);
            }
            let to = if action == "acknowledge" {
                "acknowledged"
            } else {
                "resolved"
            };
            if let Some(i) = p.incidents.iter_mut().find(|i| {
                i.routing_key == routing_key && i.dedup_key == dedup_key && i.status != "resolved"
            }) {
                i.status = to.into();
            }
        }
        _ => {
            return invalid(&["'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"]);
        }
    }
    p.events.push(event);
    (
        StatusCode::ACCEPTED,
        Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
    )
        .into_response()
}
