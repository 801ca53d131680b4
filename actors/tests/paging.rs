//! The paging targets against fake PagerDuty and OpsGenie servers that speak the real APIs,
//! calling `apply` / `fire_due` the way the facts consumer does, on paused tokio time: the
//! exact trigger / acknowledge / resolve shapes, OpsGenie's request-status confirmation,
//! refusals with the provider's errors, 429 honoured, a provider down (unavailable, then the
//! circuit opens), business-hours deferral, routes, and keys that never print.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use serde_json::{json, Value};
use sre_actors::facts::action::{ActionError, FactAction};
use sre_actors::facts::entry::{IncidentEntry, Lifecycle, TargetRecord};
use sre_actors::paging::metrics::PagingMetrics;
use sre_actors::paging::{self, opsgenie::OpsGenie, pagerduty::PagerDuty};
use sre_actors::providers::{CircuitState, ProviderMetrics, Providers};
use sre_config::{Config, SecretStore};
use sre_intents::facts::{Created, Fact, FactBody, FactSeverity, Link};
use sre_supervision::{Observer, RestartPolicy, Supervisor, SupervisorMsg};
use sre_test_support::opsgenie::FakeOpsGenie;
use sre_test_support::pagerduty::FakePagerDuty;
use sre_test_support::Reply;
use tokio::time::Instant;

/// 32 characters, as PagerDuty wants.
const PD_KEY: &str = "R0UT1NGKEYdefault000000000000001";
const PD_PAYMENTS_KEY: &str = "R0UT1NGKEYpayments00000000000002";
const GENIE_KEY: &str = "9f1c7a52-genie-key-0000-secret01";

struct Rig {
    targets: Vec<Arc<dyn FactAction>>,
    providers: Providers,
    metrics: PagingMetrics,
    secrets: tempfile::TempDir,
    config: Config,
    _root: ActorRef<SupervisorMsg>,
}

impl Rig {
    fn target(&self, name: &str) -> &dyn FactAction {
        self.targets
            .iter()
            .find(|t| t.target() == name)
            .map(|t| t.as_ref())
            .unwrap_or_else(|| panic!("no target {name}"))
    }

    fn circuit(&self, name: &str) -> CircuitState {
        self.providers.board().get(name).unwrap().state
    }

    /// The targets of another paging section over the same circuits and secrets.
    fn rebuilt(&self, paging_yaml: &str) -> Vec<Arc<dyn FactAction>> {
        let config = Config::parse(&format!("{SUPERVISION}{paging_yaml}"), "t.yaml").unwrap();
        paging::targets(
            &config,
            &self.providers,
            &SecretStore::new(self.secrets.path()),
            &self.metrics,
        )
        .unwrap()
    }
}

const SUPERVISION: &str = r#"
supervision:
  retry:
    max_attempts: 3
    backoff_min: 200ms
    backoff_max: 2s
    timeout: 2s
    max_retry_after: 60s
  circuit:
    failure_rate_threshold: 0.5
    window: 60s
    minimum_calls: 4
    open_duration: 30s
    half_open_trials: 1
"#;

fn write_secret(dir: &std::path::Path, secret: &str, key: &str, value: &str) {
    let d = dir.join(secret);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(key), format!("{value}\n")).unwrap();
}

async fn rig(paging_yaml: &str) -> Rig {
    let secrets = tempfile::tempdir().unwrap();
    write_secret(secrets.path(), "platform/pd", "routing_key", PD_KEY);
    write_secret(
        secrets.path(),
        "payments/pd",
        "routing_key",
        PD_PAYMENTS_KEY,
    );
    write_secret(secrets.path(), "platform/og", "api_key", GENIE_KEY);
    write_secret(secrets.path(), "platform/short", "routing_key", "too-short");
    let config = Config::parse(&format!("{SUPERVISION}{paging_yaml}"), "t.yaml").unwrap();
    let mut registry = Registry::default();
    let providers = Providers::new(&config, ProviderMetrics::new(&mut registry));
    let spec = providers.supervisor(RestartPolicy::default(), Observer::default());
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    let metrics = PagingMetrics::new(&mut registry);
    let targets = paging::targets(
        &config,
        &providers,
        &SecretStore::new(secrets.path()),
        &metrics,
    )
    .unwrap();
    Rig {
        targets,
        providers,
        metrics,
        secrets,
        config,
        _root: root,
    }
}

fn pagerduty_yaml(url: &str) -> String {
    format!(
        "paging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n    events_url: {url}\n"
    )
}

fn opsgenie_yaml(url: &str) -> String {
    format!(
        "paging_integration:\n  enabled: true\n  opsgenie:\n    api_key_ref: platform/og\n    api_url: {url}\n    team: sre\n"
    )
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A Monday inside business hours.
const MONDAY_NOON: &str = "2026-12-07T12:00:00Z";

fn created(severity: FactSeverity, service: &str) -> Created {
    Created {
        title: "Checkout error rate above 5%".into(),
        severity,
        summary: "5xx on /pay".into(),
        service: Some(service.into()),
        environment: Some("prod".into()),
        cluster: Some("eu-1".into()),
        namespace: Some("shop".into()),
        labels: [("alertname".to_owned(), "HighErrorRate".to_owned())].into(),
        alert_fingerprints: vec!["fp1".into()],
        links: vec![Link {
            title: "runbook".into(),
            url: "https://runbooks/checkout".into(),
        }],
    }
}

fn fact(incident: &str, revision: u64, body: FactBody) -> Fact {
    Fact {
        ce_id: format!("ce-{incident}-{revision}"),
        incident_id: incident.into(),
        occurred_at: at("2026-12-07T11:59:00Z"),
        revision,
        correlation_id: format!("corr-{incident}-{revision}"),
        traceparent: None,
        body,
    }
}

fn created_fact(incident: &str, c: Created) -> Fact {
    fact(incident, 1, FactBody::IncidentCreated(c))
}

/// `f` applied by `t` to a new incident on Monday noon, which succeeds with a record.
async fn applied(t: &dyn FactAction, f: &Fact) -> TargetRecord {
    t.apply(f, &IncidentEntry::new(&f.incident_id), at(MONDAY_NOON))
        .await
        .unwrap()
        .unwrap()
}

/// `f` applied by `t` to a new incident on Monday noon, which fails.
async fn refused(t: &dyn FactAction, f: &Fact) -> ActionError {
    t.apply(f, &IncidentEntry::new(&f.incident_id), at(MONDAY_NOON))
        .await
        .unwrap_err()
}

fn ack(incident: &str, revision: u64) -> Fact {
    fact(
        incident,
        revision,
        FactBody::IncidentAcknowledged {
            acknowledged_by: Some("ana".into()),
        },
    )
}

fn resolved(incident: &str, revision: u64) -> Fact {
    fact(
        incident,
        revision,
        FactBody::IncidentResolved {
            resolved_by: Some("ana".into()),
            resolution: Some("rolled back".into()),
        },
    )
}

/// The entry as the consumer keeps it after `fact` and `record`.
fn after(
    entry: &IncidentEntry,
    fact: &Fact,
    target: &str,
    record: Option<TargetRecord>,
) -> IncidentEntry {
    let mut e = entry.clone();
    if let Some(c) = fact.created() {
        e.created = Some(c.clone());
    }
    e.lifecycle = Lifecycle::after(fact);
    e.revision = fact.revision;
    e.last_ce_id = Some(fact.ce_id.clone());
    if let Some(r) = record {
        e.targets.insert(target.into(), r);
    }
    e
}

fn body(r: &sre_test_support::Recorded) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

// ---------------------------------------------------------------- PagerDuty

#[tokio::test(start_paused = true)]
async fn pagerduty_trigger_acknowledge_resolve_in_the_documented_shapes() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    let now = at(MONDAY_NOON);

    let f1 = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let e0 = IncidentEntry::new("inc-1");
    let rec = t.apply(&f1, &e0, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "triggered");
    assert_eq!(rec.key.as_deref(), Some("inc-1"));
    assert_eq!(rec.correlation_id, "corr-inc-1-1");
    assert_eq!(rec.detail["route"], "default");
    assert_eq!(rec.detail["routing_key_ref"], "platform/pd");
    assert!(rec.due.is_none());

    let sent = pd.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].uri, "/v2/enqueue");
    assert_eq!(sent[0].header("x-correlation-id"), Some("corr-inc-1-1"));
    assert_eq!(
        body(&sent[0]),
        json!({
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": "inc-1",
            "client": "sre-integration",
            "links": [{"href": "https://runbooks/checkout", "text": "runbook"}],
            "payload": {
                "summary": "Checkout error rate above 5%",
                "source": "eu-1/shop",
                "severity": "critical",
                "timestamp": "2026-12-07T11:59:00.000Z",
                "component": "checkout",
                "group": "prod",
                "class": "HighErrorRate",
                "custom_details": {
                    "incident_id": "inc-1",
                    "title": "Checkout error rate above 5%",
                    "summary": "5xx on /pay",
                    "severity": "critical",
                    "service": "checkout",
                    "environment": "prod",
                    "cluster": "eu-1",
                    "namespace": "shop",
                    "labels": {"alertname": "HighErrorRate"},
                    "alert_fingerprints": ["fp1"],
                    "links": [{"href": "https://runbooks/checkout", "text": "runbook"}],
                    "correlation_id": "corr-inc-1-1",
                    "route": "default"
                }
            }
        })
    );

    // A crash between the call and the ledger write replays the trigger: PagerDuty
    // de-duplicates it, no second incident opens.
    t.apply(&f1, &e0, now).await.unwrap().unwrap();
    assert_eq!(pd.events_received(), 2);
    assert_eq!(pd.incidents_opened(), 1);

    let e1 = after(&e0, &f1, "pagerduty", Some(rec));
    let f2 = ack("inc-1", 2);
    let rec = t.apply(&f2, &e1, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "acknowledged");
    assert_eq!(rec.revision, 2);
    assert_eq!(rec.detail["route"], "default");
    let e2 = after(&e1, &f2, "pagerduty", Some(rec));
    // A second acknowledgement means nothing new.
    assert!(t.apply(&ack("inc-1", 3), &e2, now).await.unwrap().is_none());

    let f3 = resolved("inc-1", 3);
    let rec = t.apply(&f3, &e2, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "resolved");
    let e3 = after(&e2, &f3, "pagerduty", Some(rec));
    // Closing a resolved incident calls nothing.
    let closed = fact(
        "inc-1",
        4,
        FactBody::IncidentClosed {
            closed_by: None,
            reason: None,
        },
    );
    assert!(t.apply(&closed, &e3, now).await.unwrap().is_none());

    let sent = pd.requests();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        body(&sent[2]),
        json!({"routing_key": PD_KEY, "event_action": "acknowledge", "dedup_key": "inc-1"})
    );
    assert_eq!(sent[2].header("x-correlation-id"), Some("corr-inc-1-2"));
    assert_eq!(
        body(&sent[3]),
        json!({"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "inc-1"})
    );
    assert_eq!(pd.incidents()[0].status, "resolved");
    assert_eq!(r.metrics.pages("pagerduty", "trigger", "success"), 2);
    assert_eq!(r.metrics.pages("pagerduty", "acknowledge", "success"), 1);
    assert_eq!(r.metrics.pages("pagerduty", "resolve", "success"), 1);
}

#[tokio::test(start_paused = true)]
async fn pagerduty_severities_map_and_long_titles_are_cut_on_a_character() {
    let pd = FakePagerDuty::start().await;
    let yaml = format!(
        "{}  escalation:\n    high: immediate\n    medium: immediate\n    low: immediate\n    info: immediate\n",
        pagerduty_yaml(&pd.url())
    );
    let r = rig(&yaml).await;
    let t = r.target("pagerduty");
    let now = at(MONDAY_NOON);
    for (i, sev) in [
        FactSeverity::Critical,
        FactSeverity::High,
        FactSeverity::Medium,
        FactSeverity::Low,
        FactSeverity::Info,
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = created(sev, "checkout");
        c.title = "é".repeat(3000);
        let f = created_fact(&format!("inc-{i}"), c);
        t.apply(&f, &IncidentEntry::new(f.incident_id.clone()), now)
            .await
            .unwrap()
            .unwrap();
    }
    let events = pd.events();
    let severities: Vec<&str> = events
        .iter()
        .map(|e| e["payload"]["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["critical", "error", "warning", "info", "info"]);
    let summary = events[0]["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.starts_with("éé"));
}

#[tokio::test(start_paused = true)]
async fn pagerduty_refusals_are_rejected_with_its_errors_and_never_show_the_key() {
    let pd = FakePagerDuty::start().await;
    let yaml = format!(
        "{}  default_provider: pagerduty\n  routes:\n    - service: legacy\n      routing_key_ref: platform/short\n",
        pagerduty_yaml(&pd.url())
    );
    let r = rig(&yaml).await;
    let t = r.target("pagerduty");
    let now = at(MONDAY_NOON);
    let f = created_fact("inc-1", created(FactSeverity::Critical, "legacy"));
    let err = t
        .apply(&f, &IncidentEntry::new("inc-1"), now)
        .await
        .unwrap_err();
    match &err {
        ActionError::Rejected { target, reason } => {
            assert_eq!(*target, "pagerduty");
            assert!(
                reason.contains("HTTP 400")
                    && reason
                        .contains("Length of 'routing_key' is incorrect (should be 32 characters)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("too-short"));
    assert_eq!(pd.requests().len(), 1, "a refusal is not retried");
    assert_eq!(r.metrics.pages("pagerduty", "trigger", "rejected"), 1);

    // A provider that echoes what it was sent: the key is scrubbed from the reason.
    pd.push(Reply::status(400).with_body(json!({
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": [format!("routing key {PD_KEY} is not a known integration")]
    })));
    let f = created_fact("inc-2", created(FactSeverity::Critical, "checkout"));
    let err = t
        .apply(&f, &IncidentEntry::new("inc-2"), now)
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("is not a known integration"), "{text}");
    assert!(!text.contains(PD_KEY), "{text}");
    let targets = format!("{:?}", r.config.paging());
    assert!(!targets.contains(PD_KEY));
    let client = PagerDuty::new(
        r.providers.client("pagerduty").unwrap(),
        r.config.paging().unwrap().pagerduty.as_ref().unwrap(),
        &[r.config
            .paging()
            .unwrap()
            .pagerduty
            .as_ref()
            .unwrap()
            .routing_key_ref
            .clone()],
        &SecretStore::new(r.secrets.path()),
    )
    .unwrap();
    let debug = format!("{client:?}");
    assert!(
        debug.contains("platform/pd") && !debug.contains(PD_KEY),
        "{debug}"
    );
}

#[tokio::test(start_paused = true)]
async fn pagerduty_throttling_waits_as_asked_then_pages() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    pd.push(Reply::throttle(7).with_body(json!({"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly. Please retry later."})));
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    // The throttle comes back at once with PagerDuty's wait: the facts consumer waits it out
    // without holding a place another incident could use.
    let started = Instant::now();
    let err = refused(t, &f).await;
    assert!(
        matches!(&err, ActionError::Unavailable { target: "pagerduty", retry_after: Some(w), reason } if *w == Duration::from_secs(7) && reason.contains("throttled")),
        "{err:?}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "nothing slept in the call"
    );
    assert_eq!(
        r.circuit("pagerduty"),
        CircuitState::Closed,
        "a throttle is no failure"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    let rec = applied(t, &f).await;
    assert_eq!(rec.state, "triggered");
    assert_eq!(pd.requests().len(), 2);
    assert_eq!(pd.incidents_opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_throttle_that_names_no_wait_is_retried_with_backoff_in_the_call() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    pd.push(Reply::status(429));
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let rec = applied(r.target("pagerduty"), &f).await;
    assert_eq!(rec.state, "triggered");
    assert_eq!(pd.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn pagerduty_down_is_unavailable_and_opens_its_circuit() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    pd.fail_with(Reply::status(503));
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let e = IncidentEntry::new("inc-1");
    pd.fail_with(Reply::Respond {
        status: 503,
        headers: Vec::new(),
        body: format!("{{\"message\":\"overloaded while handling {PD_KEY}\"}}"),
    });
    let err = t.apply(&f, &e, at(MONDAY_NOON)).await.unwrap_err();
    assert!(
        matches!(&err, ActionError::Unavailable { target: "pagerduty", reason, .. } if reason.contains("HTTP 503") && reason.contains("[redacted]")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains(PD_KEY));
    assert_eq!(pd.requests().len(), 3, "retried by the upstream client");
    let _ = t.apply(&f, &e, at(MONDAY_NOON)).await.unwrap_err();
    assert_eq!(r.circuit("pagerduty"), CircuitState::Open);
    let before = pd.requests().len();
    let err = t.apply(&f, &e, at(MONDAY_NOON)).await.unwrap_err();
    match err {
        ActionError::Unavailable {
            reason,
            retry_after,
            ..
        } => {
            assert!(reason.contains("circuit open"), "{reason}");
            assert!(retry_after.is_some_and(|d| d <= Duration::from_secs(30)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pd.requests().len(), before, "an open circuit sends nothing");
    assert_eq!(pd.incidents_opened(), 0);
    assert_eq!(r.metrics.pages("pagerduty", "trigger", "unavailable"), 3);

    // Back up after the open period: the same fact pages once.
    pd.clear();
    tokio::time::advance(Duration::from_secs(31)).await;
    let rec = t.apply(&f, &e, at(MONDAY_NOON)).await.unwrap().unwrap();
    assert_eq!(rec.state, "triggered");
    assert_eq!(pd.incidents_opened(), 1);
}

// ---------------------------------------------------------------- escalation

#[tokio::test(start_paused = true)]
async fn a_high_incident_after_hours_is_deferred_and_paged_at_nine() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    // Friday 2026-12-04 17:59 pages at once; 18:01 waits for Monday 09:00 (UTC, Mon–Fri).
    let f0 = created_fact("inc-0", created(FactSeverity::High, "checkout"));
    let rec = t
        .apply(
            &f0,
            &IncidentEntry::new("inc-0"),
            at("2026-12-04T17:59:00Z"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "triggered");

    let f = created_fact("inc-1", created(FactSeverity::High, "checkout"));
    let e0 = IncidentEntry::new("inc-1");
    let rec = t
        .apply(&f, &e0, at("2026-12-04T18:01:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "deferred");
    assert_eq!(rec.due, Some(at("2026-12-07T09:00:00Z")));
    assert_eq!(rec.key, None);
    assert_eq!(rec.detail["route"], "default");
    assert_eq!(
        pd.events_received(),
        1,
        "nothing sent for the deferred page"
    );
    assert_eq!(r.metrics.deferred(), 1);
    let e1 = after(&e0, &f, "pagerduty", Some(rec));

    // Not due yet.
    assert!(t
        .fire_due(&e1, at("2026-12-07T08:59:00Z"))
        .await
        .unwrap()
        .is_none());
    let rec = t
        .fire_due(&e1, at("2026-12-07T09:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "triggered");
    assert_eq!(rec.due, None);
    assert_eq!(rec.key.as_deref(), Some("inc-1"));
    assert_eq!(rec.revision, 1);
    assert_eq!(rec.detail["deferred_until"], "2026-12-07T09:00:00Z");
    assert_eq!(r.metrics.deferred(), 0);
    let last = pd.requests().pop().unwrap();
    assert_eq!(last.header("x-correlation-id"), Some("corr-inc-1-1"));
    let event = body(&last);
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], "inc-1");
    assert_eq!(event["payload"]["severity"], "error");
    assert_eq!(pd.incidents_opened(), 2);
    assert_eq!(r.metrics.pages("pagerduty", "defer", "success"), 1);

    // Fired again (a replay of the wake-up): the record is no longer deferred.
    let e2 = after(&e1, &f, "pagerduty", Some(rec));
    assert!(t
        .fire_due(&e2, at("2026-12-07T09:01:00Z"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn a_deferred_page_is_dropped_when_the_incident_moves_on_first() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    let saturday = at("2026-12-05T10:00:00Z");
    let f = created_fact("inc-1", created(FactSeverity::High, "checkout"));
    let e0 = IncidentEntry::new("inc-1");
    let rec = t.apply(&f, &e0, saturday).await.unwrap().unwrap();
    assert_eq!(rec.due, Some(at("2026-12-07T09:00:00Z")));
    let e1 = after(&e0, &f, "pagerduty", Some(rec));

    let f2 = resolved("inc-1", 2);
    let rec = t.apply(&f2, &e1, saturday).await.unwrap().unwrap();
    assert_eq!(rec.state, "dropped");
    assert_eq!(rec.due, None);
    assert_eq!(rec.revision, 2);
    assert_eq!(r.metrics.deferred(), 0);
    let e2 = after(&e1, &f2, "pagerduty", Some(rec));
    assert!(t
        .fire_due(&e2, at("2026-12-07T09:00:00Z"))
        .await
        .unwrap()
        .is_none());
    assert!(t
        .apply(&ack("inc-1", 3), &e2, saturday)
        .await
        .unwrap()
        .is_none());

    // The consumer woke the page without the acknowledgement's record (entry says
    // acknowledged, record still deferred): dropped, not paged.
    let f = created_fact("inc-2", created(FactSeverity::High, "checkout"));
    let e0 = IncidentEntry::new("inc-2");
    let rec = t.apply(&f, &e0, saturday).await.unwrap().unwrap();
    let mut e1 = after(&e0, &f, "pagerduty", Some(rec));
    e1.lifecycle = Lifecycle::Acknowledged;
    let rec = t
        .fire_due(&e1, at("2026-12-07T09:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "dropped");
    assert_eq!(rec.due, None);

    assert!(pd.requests().is_empty(), "nothing ever paged");
    assert_eq!(r.metrics.pages("pagerduty", "drop", "success"), 2);
}

#[tokio::test(start_paused = true)]
async fn facts_for_incidents_never_paged_do_nothing() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    let now = at(MONDAY_NOON);
    // Medium is `never` by default.
    let f = created_fact("inc-1", created(FactSeverity::Medium, "checkout"));
    let e0 = IncidentEntry::new("inc-1");
    assert!(t.apply(&f, &e0, now).await.unwrap().is_none());
    let e1 = after(&e0, &f, "pagerduty", None);
    assert!(t.apply(&ack("inc-1", 2), &e1, now).await.unwrap().is_none());
    assert!(t
        .apply(&resolved("inc-1", 3), &e1, now)
        .await
        .unwrap()
        .is_none());
    assert!(t.fire_due(&e1, now).await.unwrap().is_none());
    assert!(pd.requests().is_empty());
}

// ---------------------------------------------------------------- OpsGenie

#[tokio::test(start_paused = true)]
async fn opsgenie_create_is_confirmed_through_the_request_status_then_ack_and_close() {
    let og = FakeOpsGenie::start(GENIE_KEY).await;
    og.set_processing_delay(Duration::from_secs(2));
    let r = rig(&opsgenie_yaml(&og.url())).await;
    let t = r.target("opsgenie");
    let now = at(MONDAY_NOON);
    let mut c = created(FactSeverity::Critical, "checkout");
    c.title = "x".repeat(200);
    let f1 = created_fact("inc-1", c);
    let e0 = IncidentEntry::new("inc-1");
    let rec = t.apply(&f1, &e0, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "triggered");
    assert_eq!(rec.key.as_deref(), Some("inc-1"));
    assert_eq!(rec.detail["alert_id"], "alert-1");
    assert_eq!(rec.detail["team"], "sre");
    assert!(
        og.lookups() >= 2,
        "a 404 while unprocessed, then the status"
    );

    let sent = og.requests();
    assert_eq!(sent[0].uri, "/v2/alerts");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("GenieKey {GENIE_KEY}").as_str())
    );
    assert_eq!(sent[0].header("x-correlation-id"), Some("corr-inc-1-1"));
    let create = body(&sent[0]);
    assert_eq!(create["alias"], "inc-1");
    assert_eq!(create["message"].as_str().unwrap().chars().count(), 130);
    assert_eq!(create["priority"], "P1");
    assert_eq!(
        create["responders"],
        json!([{"type": "team", "name": "sre"}])
    );
    assert_eq!(create["entity"], "checkout");
    assert_eq!(create["source"], "sre-integration");
    assert_eq!(
        create["tags"],
        json!([
            "sre-incident",
            "severity:critical",
            "service:checkout",
            "env:prod",
            "cluster:eu-1"
        ])
    );
    assert_eq!(create["details"]["incident_id"], "inc-1");
    assert_eq!(
        create["details"]["link: runbook"],
        "https://runbooks/checkout"
    );
    assert_eq!(create["details"]["label: alertname"], "HighErrorRate");
    assert!(create["description"]
        .as_str()
        .unwrap()
        .contains("runbook: https://runbooks/checkout"));
    assert!(sent[1].uri.starts_with("/v2/alerts/requests/"));

    let e1 = after(&e0, &f1, "opsgenie", Some(rec));
    let f2 = ack("inc-1", 2);
    let rec = t.apply(&f2, &e1, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "acknowledged");
    let e2 = after(&e1, &f2, "opsgenie", Some(rec));
    let f3 = resolved("inc-1", 3);
    let rec = t.apply(&f3, &e2, now).await.unwrap().unwrap();
    assert_eq!(rec.state, "resolved");

    let events = og.events();
    let actions: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.identifier.as_str(),
                e.identifier_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "inc-1", "alias"),
            ("acknowledge", "inc-1", "alias"),
            ("close", "inc-1", "alias")
        ]
    );
    assert_eq!(events[1].body["note"], "Acknowledged by ana");
    assert_eq!(events[2].body["note"], "Resolved by ana: rolled back");
    let alert = &og.alerts()[0];
    assert_eq!(
        (alert.status.as_str(), alert.acknowledged),
        ("closed", true)
    );
    assert_eq!(r.metrics.pages("opsgenie", "resolve", "success"), 1);

    // A create replayed after a crash (before the ledger write): OpsGenie de-duplicates the
    // open alert's alias, no second alert opens.
    let f = created_fact("inc-9", created(FactSeverity::Critical, "checkout"));
    t.apply(&f, &IncidentEntry::new("inc-9"), now)
        .await
        .unwrap()
        .unwrap();
    t.apply(&f, &IncidentEntry::new("inc-9"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(og.alerts_opened(), 2);
    assert_eq!(og.alerts()[1].count, 2);
}

#[tokio::test(start_paused = true)]
async fn opsgenie_failed_requests_and_refusals_are_rejected() {
    let og = FakeOpsGenie::start(GENIE_KEY).await;
    let r = rig(&opsgenie_yaml(&og.url())).await;
    let t = r.target("opsgenie");
    let now = at(MONDAY_NOON);
    og.fail_next_request("Alert limit exceeded for integration");
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let err = t
        .apply(&f, &IncidentEntry::new("inc-1"), now)
        .await
        .unwrap_err();
    match &err {
        ActionError::Rejected { target, reason } => {
            assert_eq!(*target, "opsgenie");
            assert!(
                reason.contains("(Create) failed: Alert limit exceeded for integration"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.metrics.pages("opsgenie", "trigger", "rejected"), 1);

    // Acknowledging an alias OpsGenie does not know fails its request.
    let mut entry = IncidentEntry::new("inc-2");
    let mut rec = TargetRecord::for_fact(&f, "triggered", now);
    rec.detail.insert("route".into(), "default".into());
    entry.targets.insert("opsgenie".into(), rec);
    let err = t.apply(&ack("inc-2", 2), &entry, now).await.unwrap_err();
    assert!(
        matches!(&err, ActionError::Rejected { reason, .. } if reason.contains("Alert does not exist")),
        "{err:?}"
    );

    // A 422 carries OpsGenie's field errors.
    og.push(Reply::status(422).with_body(json!({
        "message": "Request body is not processable. Please check the errors.",
        "errors": {"message": "Message can not be empty."},
        "took": 0.001,
        "requestId": "r-422"
    })));
    let f = created_fact("inc-3", created(FactSeverity::Critical, "checkout"));
    let err = t
        .apply(&f, &IncidentEntry::new("inc-3"), now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::Rejected { reason, .. } if reason.contains("HTTP 422") && reason.contains("message: Message can not be empty.")),
        "{err:?}"
    );

    // A wrong key: refused, and the key never shows.
    let wrong = FakeOpsGenie::start("another-key").await;
    let r2 = rig(&opsgenie_yaml(&wrong.url())).await;
    let err = r2
        .target("opsgenie")
        .apply(&f, &IncidentEntry::new("inc-3"), now)
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("HTTP 401") && text.contains("Could not authenticate"),
        "{text}"
    );
    assert!(!text.contains(GENIE_KEY), "{text}");
    let og_config = r2.config.paging().unwrap().opsgenie.as_ref().unwrap();
    let client = OpsGenie::new(
        r2.providers.client("opsgenie").unwrap(),
        og_config,
        &SecretStore::new(r2.secrets.path()),
    )
    .unwrap();
    let debug = format!("{client:?}");
    assert!(
        debug.contains("[redacted]") && !debug.contains(GENIE_KEY),
        "{debug}"
    );
}

#[tokio::test(start_paused = true)]
async fn opsgenie_requests_not_processed_in_time_are_unavailable() {
    let og = FakeOpsGenie::start(GENIE_KEY).await;
    og.set_processing_delay(Duration::from_secs(600));
    let r = rig(&opsgenie_yaml(&og.url())).await;
    let t = r.target("opsgenie");
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let started = Instant::now();
    let err = refused(t, &f).await;
    assert!(
        matches!(&err, ActionError::Unavailable { reason, .. } if reason.contains("not processed within 30s")),
        "{err:?}"
    );
    assert!(
        started.elapsed() <= Duration::from_secs(31),
        "{:?}",
        started.elapsed()
    );
    let lookups = og.lookups();
    assert!((3..=15).contains(&lookups), "bounded polling: {lookups}");
}

#[tokio::test(start_paused = true)]
async fn opsgenie_throttling_waits_as_asked_then_pages() {
    let og = FakeOpsGenie::start(GENIE_KEY).await;
    let r = rig(&opsgenie_yaml(&og.url())).await;
    og.push(Reply::throttle(3));
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let t = r.target("opsgenie");
    let err = refused(t, &f).await;
    assert!(
        matches!(&err, ActionError::Unavailable { target: "opsgenie", retry_after: Some(w), .. } if *w == Duration::from_secs(3)),
        "{err:?}"
    );
    assert_eq!(og.alerts_opened(), 0);
    let rec = applied(t, &f).await;
    assert_eq!(rec.state, "triggered");
    assert_eq!(og.alerts_opened(), 1);
}

// ---------------------------------------------------------------- routes

#[tokio::test(start_paused = true)]
async fn routes_pick_provider_key_and_team_and_follow_ups_keep_the_route() {
    let pd = FakePagerDuty::start().await;
    let og = FakeOpsGenie::start(GENIE_KEY).await;
    let providers_yaml = format!(
        "paging_integration:\n  enabled: true\n  default_provider: pagerduty\n  pagerduty:\n    routing_key_ref: platform/pd\n    events_url: {}\n  opsgenie:\n    api_key_ref: platform/og\n    api_url: {}\n",
        pd.url(),
        og.url()
    );
    let yaml = format!(
        "{providers_yaml}  routes:\n    - name: payments\n      service: checkout\n      environment: prod\n      routing_key_ref: payments/pd\n    - name: data\n      service: warehouse\n      severity: [critical]\n      provider: opsgenie\n      team: data-platform\n"
    );
    let r = rig(&yaml).await;
    let (pdt, ogt) = (r.target("pagerduty"), r.target("opsgenie"));
    let now = at(MONDAY_NOON);

    // checkout/prod → PagerDuty with the payments key; OpsGenie does nothing.
    let f = created_fact("inc-pay", created(FactSeverity::Critical, "checkout"));
    let e0 = IncidentEntry::new("inc-pay");
    assert!(ogt.apply(&f, &e0, now).await.unwrap().is_none());
    let rec = pdt.apply(&f, &e0, now).await.unwrap().unwrap();
    assert_eq!(rec.detail["route"], "payments");
    assert_eq!(rec.detail["routing_key_ref"], "payments/pd");
    assert_eq!(
        pd.actions()[0],
        ("trigger".into(), "inc-pay".into(), PD_PAYMENTS_KEY.into())
    );
    let e1 = after(&e0, &f, "pagerduty", Some(rec));

    // warehouse critical → OpsGenie, team data-platform; PagerDuty does nothing.
    let w = created_fact("inc-wh", created(FactSeverity::Critical, "warehouse"));
    let w0 = IncidentEntry::new("inc-wh");
    assert!(pdt.apply(&w, &w0, now).await.unwrap().is_none());
    let rec = ogt.apply(&w, &w0, now).await.unwrap().unwrap();
    assert_eq!(rec.detail["route"], "data");
    assert_eq!(
        og.events()[0].body["responders"],
        json!([{"type": "team", "name": "data-platform"}])
    );
    // warehouse high → no route matches (severity) → the default: PagerDuty, default key.
    let h = created_fact("inc-wh-high", created(FactSeverity::High, "warehouse"));
    let rec = pdt
        .apply(&h, &IncidentEntry::new("inc-wh-high"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.detail["route"], "default");
    assert_eq!(pd.actions()[1].2, PD_KEY);

    // The routes change (payments route removed); the acknowledgement still goes where the
    // trigger went.
    let rebuilt = r.rebuilt(&providers_yaml);
    let pdt2 = rebuilt.iter().find(|t| t.target() == "pagerduty").unwrap();
    let rec = pdt2
        .apply(&ack("inc-pay", 2), &e1, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.detail["route"], "payments");
    assert_eq!(
        pd.actions()[2],
        (
            "acknowledge".into(),
            "inc-pay".into(),
            PD_PAYMENTS_KEY.into()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_provider_times_out_as_unavailable() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    pd.fail_with(Reply::Stall);
    let f = created_fact("inc-1", created(FactSeverity::Critical, "checkout"));
    let err = r
        .target("pagerduty")
        .apply(&f, &IncidentEntry::new("inc-1"), at(MONDAY_NOON))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::Unavailable { reason, .. } if reason.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(pd.incidents_opened(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_after_the_window_waits_for_the_next_one_and_the_gauge_is_seeded() {
    let pd = FakePagerDuty::start().await;
    let r = rig(&pagerduty_yaml(&pd.url())).await;
    let t = r.target("pagerduty");
    let f = created_fact("inc-1", created(FactSeverity::High, "checkout"));
    let e0 = IncidentEntry::new("inc-1");
    let rec = t
        .apply(&f, &e0, at("2026-12-05T10:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    let e1 = after(&e0, &f, "pagerduty", Some(rec));

    // A restart: fresh metrics learn the deferred page from the ledger.
    let fresh = PagingMetrics::default();
    fresh.observe_entry(&e1);
    assert_eq!(fresh.deferred(), 1);
    fresh.observe_entry(&e1);
    assert_eq!(fresh.deferred(), 1, "an entry counts once");

    // The pod was down all Monday: woken at 19:00, the page waits for Tuesday 09:00.
    let rec = t
        .fire_due(&e1, at("2026-12-07T19:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "deferred");
    assert_eq!(rec.due, Some(at("2026-12-08T09:00:00Z")));
    assert!(pd.requests().is_empty());
    let e2 = after(&e1, &f, "pagerduty", Some(rec));
    let rec = t
        .fire_due(&e2, at("2026-12-08T09:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "triggered");
    assert_eq!(pd.incidents_opened(), 1);
}
