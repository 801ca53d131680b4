//! A fake OpsGenie Alert API, asynchronous like the real one:
//!
//! - `POST /v2/alerts` (create), `POST /v2/alerts/<identifier>/acknowledge` and `.../close`
//!   (`identifierType=alias|id`, `id` when absent) answer `202 {"result":"Request will be
//!   processed","took":…,"requestId":…}`; what the request does is decided when it arrives but
//!   only visible after [`FakeOpsGenie::set_processing_delay`] (tokio time): until then
//!   `GET /v2/alerts/requests/<requestId>` answers `404 {"message":"Request not found. It might
//!   not be processed, yet."}`, afterwards `200 {"data":{"success","action","processedAt",
//!   "integrationId","isSuccess","status","alertId","alias"},"took","requestId"}`.
//! - A create for the alias of an open alert opens nothing new (OpsGenie de-duplicates it and
//!   counts it); an acknowledge / close of an alias with no alert fails its request (`isSuccess:
//!   false`, `"Alert does not exist"`). [`FakeOpsGenie::fail_next_request`] makes the next
//!   request fail with a given status text.
//! - A create without `message`, or with a bad `priority`, answers `422` with OpsGenie's
//!   `errors` object; a missing or wrong `Authorization: GenieKey <key>` answers `401`.
//!
//! Every accepted request is recorded in order ([`FakeOpsGenie::events`]); faults (429 +
//! `Retry-After`, 5xx, stalls) come from [`Server`], which it dereferences to.

use std::ops::Deref;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::faults::{Request, Server};

/// An alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// OpsGenie's id.
    pub id: String,
    /// The alias.
    pub alias: String,
    /// `open` or `closed`.
    pub status: String,
    /// Whether acknowledged.
    pub acknowledged: bool,
    /// Creates de-duplicated into it, the first included.
    pub count: u32,
    /// The create request's body.
    pub create: Value,
}

/// One accepted request.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `create`, `acknowledge` or `close`.
    pub action: String,
    /// The alert's identifier as sent (alias for a create).
    pub identifier: String,
    /// `identifierType` as sent (`alias` for a create).
    pub identifier_type: String,
    /// The body.
    pub body: Value,
    /// The request id answered.
    pub request_id: String,
}

#[derive(Clone, Debug)]
struct Processed {
    id: String,
    ready_at: Instant,
    action: &'static str,
    success: bool,
    status: String,
    alert_id: String,
    alias: String,
}

/// The fake's data.
#[derive(Clone, Debug)]
pub struct OpsGenie {
    /// The accepted key.
    pub api_key: String,
    /// Alerts, in the order opened.
    pub alerts: Vec<Alert>,
    /// Accepted requests, in order.
    pub events: Vec<Event>,
    /// How long a request stays unprocessed.
    pub processing_delay: Duration,
    /// The next request fails with this status.
    pub fail_next: Option<String>,
    /// Request-status lookups received.
    pub lookups: usize,
    requests: Vec<Processed>,
    ids: usize,
}

/// A running fake OpsGenie; stops when dropped.
pub struct FakeOpsGenie(Server<OpsGenie>);

impl Deref for FakeOpsGenie {
    type Target = Server<OpsGenie>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakeOpsGenie {
    /// Starts the fake, accepting `api_key`; requests are processed at once.
    pub async fn start(api_key: &str) -> FakeOpsGenie {
        let state = OpsGenie {
            api_key: api_key.into(),
            alerts: Vec::new(),
            events: Vec::new(),
            processing_delay: Duration::ZERO,
            fail_next: None,
            lookups: 0,
            requests: Vec::new(),
            ids: 0,
        };
        FakeOpsGenie(Server::start(state, handle).await)
    }

    /// Requests become visible to the status lookup this long after they arrive.
    pub fn set_processing_delay(&self, delay: Duration) {
        self.with_state(|o| o.processing_delay = delay);
    }

    /// The next request (create, acknowledge or close) fails with `status`.
    pub fn fail_next_request(&self, status: &str) {
        self.with_state(|o| o.fail_next = Some(status.into()));
    }

    /// Accepted requests, in order.
    pub fn events(&self) -> Vec<Event> {
        self.with_state(|o| o.events.clone())
    }

    /// `(action, identifier)` of every accepted request, in order.
    pub fn actions(&self) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .map(|e| (e.action, e.identifier))
            .collect()
    }

    /// The alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        self.with_state(|o| o.alerts.clone())
    }

    /// Alerts opened (a de-duplicated create opens none).
    pub fn alerts_opened(&self) -> usize {
        self.with_state(|o| o.alerts.len())
    }

    /// Request-status lookups received.
    pub fn lookups(&self) -> usize {
        self.with_state(|o| o.lookups)
    }
}

impl OpsGenie {
    fn next_id(&mut self) -> String {
        self.ids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.ids)
    }
}

fn error(status: StatusCode, message: &str, request_id: &str, errors: Option<Value>) -> Response {
    let mut body = json!({"message": message, "took": 0.001, "requestId": request_id});
    if let Some(e) = errors {
        body["errors"] = e;
    }
    (status, Json(body)).into_response()
}

fn handle(state: &Mutex<OpsGenie>, req: Request) -> Response {
    let mut o = state.lock().expect("fake");
    let request_id = o.next_id();
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(format!("GenieKey {}", o.api_key).as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Could not authenticate",
            &request_id,
            None,
        );
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (&req.method, segments.as_slice()) {
        (&Method::POST, ["v2", "alerts"]) => create(&mut o, &req, request_id),
        (&Method::POST, ["v2", "alerts", identifier, verb @ ("acknowledge" | "close")]) => {
            let identifier = (*identifier).to_owned();
            let verb: &'static str = if *verb == "close" {
                "close"
            } else {
                "acknowledge"
            };
            change(&mut o, &req, request_id, identifier, verb)
        }
        (&Method::GET, ["v2", "alerts", "requests", id]) => {
            o.lookups += 1;
            let now = Instant::now();
            match o.requests.iter().find(|r| r.id == *id && r.ready_at <= now) {
                None => error(
                    StatusCode::NOT_FOUND,
                    "Request not found. It might not be processed, yet.",
                    &request_id,
                    None,
                ),
                Some(r) => Json(json!({
                    "data": {
                        "success": r.success,
                        "action": r.action_label(),
                        "processedAt": "2026-12-07T09:00:00.123Z",
                        "integrationId": "c9cec2cb-e782-4ebb-bc1d-1b2fa703cf03",
                        "isSuccess": r.success,
                        "status": r.status,
                        "alertId": r.alert_id,
                        "alias": r.alias,
                    },
                    "took": 0.002,
                    "requestId": r.id,
                }))
                .into_response(),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not found", &request_id, None),
    }
}

impl Processed {
    fn action_label(&self) -> &'static str {
        match self.action {
            "create" => "Create",
            "acknowledge" => "Acknowledge",
            _ => "Close",
        }
    }
}

fn accepted(request_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(
            json!({"result": "Request will be processed", "took": 0.107, "requestId": request_id}),
        ),
    )
        .into_response()
}

fn create(o: &mut OpsGenie, req: &Request, request_id: String) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Could not parse request body",
            &request_id,
            None,
        );
    };
    let message = body["message"].as_str().unwrap_or_default();
    if message.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body is not processable. Please check the errors.",
            &request_id,
            Some(json!({"message": "Message can not be empty."})),
        );
    }
    if let Some(p) = body.get("priority") {
        if !matches!(p.as_str(), Some("P1" | "P2" | "P3" | "P4" | "P5")) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Request body is not processable. Please check the errors.",
                &request_id,
                Some(json!({"priority": "Priority should be one of [P1, P2, P3, P4, P5]"})),
            );
        }
    }
    let alias = body["alias"].as_str().unwrap_or_default().to_owned();
    let (success, status, alert_id) = if let Some(failure) = o.fail_next.take() {
        (false, failure, String::new())
    } else if let Some(a) = o
        .alerts
        .iter_mut()
        .find(|a| !alias.is_empty() && a.alias == alias && a.status == "open")
    {
        a.count += 1;
        (true, "Alert is deduplicated".to_owned(), a.id.clone())
    } else {
        let id = format!("alert-{}", o.alerts.len() + 1);
        o.alerts.push(Alert {
            id: id.clone(),
            alias: alias.clone(),
            status: "open".into(),
            acknowledged: false,
            count: 1,
            create: body.clone(),
        });
        (true, "Created alert".to_owned(), id)
    };
    record(
        o,
        "create",
        alias,
        "alias",
        body,
        &request_id,
        success,
        status,
        alert_id,
    );
    accepted(&request_id)
}

fn change(
    o: &mut OpsGenie,
    req: &Request,
    request_id: String,
    identifier: String,
    verb: &'static str,
) -> Response {
    let body = serde_json::from_slice::<Value>(&req.body).unwrap_or(json!({}));
    let identifier_type = req.param("identifierType").unwrap_or("id").to_owned();
    if !matches!(identifier_type.as_str(), "id" | "alias" | "tiny") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body is not processable. Please check the errors.",
            &request_id,
            Some(json!({"identifierType": "Invalid identifier type"})),
        );
    }
    let found = o
        .alerts
        .iter_mut()
        .rev()
        .find(|a| match identifier_type.as_str() {
            "alias" => a.alias == identifier,
            _ => a.id == identifier,
        });
    let (success, status, alert_id) = match (o.fail_next.take(), found) {
        (Some(failure), _) => (false, failure, String::new()),
        (None, None) => (false, "Alert does not exist".to_owned(), String::new()),
        (None, Some(a)) => {
            if verb == "close" {
                a.status = "closed".into();
                (true, "Closed alert".to_owned(), a.id.clone())
            } else if a.status == "closed" {
                (false, "Alert is already closed".to_owned(), a.id.clone())
            } else {
                a.acknowledged = true;
                (true, "Acknowledged alert".to_owned(), a.id.clone())
            }
        }
    };
    record(
        o,
        verb,
        identifier,
        &identifier_type,
        body,
        &request_id,
        success,
        status,
        alert_id,
    );
    accepted(&request_id)
}

#[allow(clippy::too_many_arguments)]
fn record(
    o: &mut OpsGenie,
    action: &'static str,
    identifier: String,
    identifier_type: &str,
    body: Value,
    request_id: &str,
    success: bool,
    status: String,
    alert_id: String,
) {
    o.events.push(Event {
        action: action.into(),
        identifier: identifier.clone(),
        identifier_type: identifier_type.into(),
        body,
        request_id: request_id.into(),
    });
    let ready_at = Instant::now() + o.processing_delay;
    o.requests.push(Processed {
        id: request_id.into(),
        ready_at,
        action,
        success,
        status,
        alert_id,
        alias: identifier,
    });
}
