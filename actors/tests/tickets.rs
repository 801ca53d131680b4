//! The ticket targets (Jira, GitHub) and the Grafana annotation target, built by their public
//! constructors from a configuration and called through `FactAction::apply` the way the facts
//! consumer does (the entry it passes is the state *before* the fact; its returned record is
//! folded back in), against fakes that speak the real APIs, on paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::facts::action::{ActionError, FactAction};
use sre_actors::facts::entry::{IncidentEntry, Lifecycle, TargetRecord};
use sre_actors::observability::annotations;
use sre_actors::providers::{ProviderMetrics, Providers};
use sre_actors::ticketing::github::GithubClient;
use sre_actors::ticketing::jira::{JiraClient, JiraCredentials};
use sre_actors::ticketing::{self, TicketMetrics};
use sre_config::{Config, SecretStore, SecretString};
use sre_intents::facts::{Created, Fact, FactBody, FactSeverity, Link};
use sre_supervision::{Observer, RestartPolicy, Supervisor, SupervisorMsg};
use sre_test_support::github::{self as gh, FakeGithub};
use sre_test_support::grafana::FakeGrafana;
use sre_test_support::jira::{self, FakeJira};
use sre_test_support::Reply;

const JIRA_TOKEN: &str = "ATATT-jira-secret-token";
const GH_TOKEN: &str = "github_pat_secret_token";
const GRAFANA_KEY: &str = "glsa_grafana_secret_key";

struct Rig {
    targets: Vec<Arc<dyn FactAction>>,
    grafana: Option<Arc<dyn FactAction>>,
    metrics: TicketMetrics,
    providers: Providers,
    _secrets: tempfile::TempDir,
    _root: ActorRef<SupervisorMsg>,
}

impl Rig {
    fn target(&self, name: &str) -> Arc<dyn FactAction> {
        self.targets
            .iter()
            .find(|t| t.target() == name)
            .cloned()
            .unwrap_or_else(|| panic!("no target {name}"))
    }
}

fn write_secret(dir: &std::path::Path, name: &str, key: &str, value: &str) {
    let d = dir.join("platform").join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(key), format!("{value}\n")).unwrap();
}

/// Targets from `ticketing` (YAML of `ticketing_integration`'s body, `{jira}`/`{github}`
/// replaced by the fakes' URLs) and, when `grafana` is given, the annotation target.
async fn rig(
    ticketing: &str,
    jira: Option<&str>,
    github: Option<&str>,
    grafana: Option<&str>,
) -> Rig {
    rig_with(ticketing, jira, github, grafana, "").await
}

/// [`rig`] with extra lines under `observability_integration.grafana`.
async fn rig_with(
    ticketing: &str,
    jira: Option<&str>,
    github: Option<&str>,
    grafana: Option<&str>,
    grafana_extra: &str,
) -> Rig {
    let mut doc = String::from(
        "supervision:\n  retry:\n    max_attempts: 3\n    backoff_min: 100ms\n    backoff_max: 1s\n    timeout: 2s\n    max_retry_after: 60s\n",
    );
    let enabled = !ticketing.trim().is_empty();
    doc.push_str(&format!("ticketing_integration:\n  enabled: {enabled}\n"));
    for line in ticketing
        .replace("{jira}", jira.unwrap_or("http://unused"))
        .replace("{github}", github.unwrap_or("http://unused"))
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        doc.push_str("  ");
        doc.push_str(line);
        doc.push('\n');
    }
    if let Some(url) = grafana {
        doc.push_str(&format!(
            "observability_integration:\n  enabled: true\n  grafana:\n    url: {url}\n    secret_ref: platform/grafana\n{grafana_extra}"
        ));
    }
    let config = Config::parse(&doc, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{doc}"));
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "jira", "email", "sre@example.com");
    write_secret(dir.path(), "jira", "api_token", JIRA_TOKEN);
    write_secret(dir.path(), "gh", "token", GH_TOKEN);
    write_secret(dir.path(), "grafana", "api_key", GRAFANA_KEY);
    let secrets = SecretStore::new(dir.path());
    let mut registry = Registry::default();
    let providers = Providers::new(&config, ProviderMetrics::new(&mut registry));
    let metrics = TicketMetrics::new(&mut registry);
    let spec = providers.supervisor(RestartPolicy::default(), Observer::default());
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    let targets = ticketing::targets(&config, &providers, &secrets, &metrics).unwrap();
    let grafana = annotations::target(&config, &providers, &secrets, &metrics).unwrap();
    Rig {
        targets,
        grafana,
        metrics,
        providers,
        _secrets: dir,
        _root: root,
    }
}

fn jira_only(extra: &str) -> String {
    format!(
        "jira:\n  base_url: {{jira}}\n  project_key: SRE\n  secret_ref: platform/jira\n  labels: [sre-integration]\n{extra}"
    )
}

fn github_only(extra: &str) -> String {
    format!(
        "github:\n  repo: org/incidents\n  api_url: {{github}}\n  secret_ref: platform/gh\n  labels: [incident]\n{extra}"
    )
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
}

fn fact(incident: &str, revision: u64, body: FactBody) -> Fact {
    Fact {
        ce_id: format!("{incident}-f{revision}"),
        incident_id: incident.into(),
        occurred_at: t0() + chrono::Duration::minutes(revision as i64 * 5),
        revision,
        correlation_id: format!("corr-{revision}"),
        traceparent: None,
        body,
    }
}

fn created_body(service: &str, env: &str) -> FactBody {
    FactBody::IncidentCreated(Created {
        title: "Checkout is failing".into(),
        severity: FactSeverity::Critical,
        summary: "5xx above 20% for 10 minutes".into(),
        service: Some(service.into()),
        environment: Some(env.into()),
        cluster: Some("eu-1".into()),
        namespace: Some("shop".into()),
        labels: Default::default(),
        alert_fingerprints: vec!["fp-abc123".into()],
        links: vec![Link {
            title: "Runbook".into(),
            url: "https://runbooks.example.com/checkout".into(),
        }],
    })
}

fn created(incident: &str) -> Fact {
    fact(incident, 1, created_body("checkout", "prod"))
}
fn acked(incident: &str) -> Fact {
    fact(
        incident,
        2,
        FactBody::IncidentAcknowledged {
            acknowledged_by: Some("ana".into()),
        },
    )
}
fn resolved(incident: &str) -> Fact {
    fact(
        incident,
        3,
        FactBody::IncidentResolved {
            resolved_by: Some("ana".into()),
            resolution: Some("rolled back v42".into()),
        },
    )
}
fn closed(incident: &str) -> Fact {
    fact(
        incident,
        4,
        FactBody::IncidentClosed {
            closed_by: Some("bob".into()),
            reason: Some("postmortem done".into()),
        },
    )
}

/// What the consumer does after every target applied `fact`: the records, then the entry.
fn fold(entry: &mut IncidentEntry, target: &str, fact: &Fact, rec: Option<TargetRecord>) {
    if let Some(rec) = rec {
        entry.targets.insert(target.into(), rec);
    }
    entry.lifecycle = Lifecycle::after(fact);
    entry.revision = fact.revision;
    entry.last_ce_id = Some(fact.ce_id.clone());
    if let Some(c) = fact.created() {
        entry.created = Some(c.clone());
    }
}

async fn apply(
    t: &Arc<dyn FactAction>,
    f: &Fact,
    e: &IncidentEntry,
) -> Result<Option<TargetRecord>, ActionError> {
    t.apply(f, e, t0() + chrono::Duration::hours(1)).await
}

/// Applies the whole lifecycle, folding each record in; returns the entry.
async fn lifecycle(t: &Arc<dyn FactAction>, incident: &str) -> IncidentEntry {
    let mut entry = IncidentEntry::new(incident);
    for f in [
        created(incident),
        acked(incident),
        resolved(incident),
        closed(incident),
    ] {
        let rec = apply(t, &f, &entry)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", f.fact_type()));
        assert!(rec.is_some(), "{:?} made no record", f.fact_type());
        fold(&mut entry, t.target(), &f, rec);
    }
    entry
}

fn unavailable_wait(e: &ActionError) -> Option<Duration> {
    match e {
        ActionError::Unavailable { retry_after, .. } => *retry_after,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Jira

#[tokio::test(start_paused = true)]
async fn jira_lifecycle_makes_one_ticket_with_labels_comments_and_done() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    let entry = lifecycle(&t, "inc-1").await;

    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "exactly one ticket");
    let i = &issues[0];
    assert_eq!(i.summary, "Checkout is failing");
    assert_eq!(i.issue_type, "Task");
    assert_eq!(i.priority.as_deref(), Some("Highest"));
    assert_eq!(
        i.labels,
        ["sre-incident-inc-1", "severity-critical", "sre-integration"]
    );
    let d = i.description.to_string();
    for want in [
        "5xx above 20%",
        "eu-1 / shop",
        "fp-abc123",
        r#""href":"https://runbooks.example.com/checkout""#,
    ] {
        assert!(d.contains(want), "{want} in {d}");
    }
    assert_eq!(i.comments.len(), 3, "ack, resolve, close: {:?}", i.comments);
    let texts: Vec<String> = i.comments.iter().map(|c| c.to_string()).collect();
    assert!(texts[0].contains("Acknowledged by ana"), "{}", texts[0]);
    assert!(
        texts[1].contains("Resolved by ana") && texts[1].contains("rolled back v42"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].contains("Closed by bob") && texts[2].contains("postmortem done"),
        "{}",
        texts[2]
    );
    assert_eq!(i.status_name(), "Done");

    let rec = entry.target("jira").unwrap();
    assert_eq!(rec.key.as_deref(), Some("SRE-1"));
    assert_eq!(rec.state, "closed");
    assert_eq!(rec.revision, 4);
    assert_eq!(rec.detail["project"], "SRE");
    assert!(
        rec.detail["url"].ends_with("/browse/SRE-1"),
        "{:?}",
        rec.detail
    );
    assert_eq!(r.metrics.ticket_count("jira", "create", "success"), 1);
    assert_eq!(r.metrics.ticket_count("jira", "comment", "success"), 3);

    // A replayed Created (its record known) does nothing at Jira.
    let before = fake.requests().len();
    let again = apply(&t, &created("inc-1"), &entry).await.unwrap().unwrap();
    assert_eq!(again.key.as_deref(), Some("SRE-1"));
    assert_eq!(
        fake.requests().len(),
        before,
        "no call for a known ticket's Created"
    );
}

#[tokio::test(start_paused = true)]
async fn jira_resolve_applied_again_after_a_crash_comments_once() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    let mut entry = IncidentEntry::new("inc-2");
    let f = created("inc-2");
    let rec = apply(&t, &f, &entry).await.unwrap();
    fold(&mut entry, "jira", &f, rec);
    // Resolved is applied, then the process dies before the ledger write: the consumer
    // applies the same fact to the same entry again.
    let first = apply(&t, &resolved("inc-2"), &entry)
        .await
        .unwrap()
        .unwrap();
    let again = apply(&t, &resolved("inc-2"), &entry)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.state.as_str(), again.state.as_str()),
        ("resolved", "resolved")
    );
    let i = &fake.issues()[0];
    assert_eq!(
        i.comments.len(),
        1,
        "the marker stops a second comment: {:?}",
        i.comments
    );
    assert!(i.comments[0].to_string().contains("sre-fact:inc-2-f3"));
    assert_eq!(i.status_name(), "Done");
    let transitions = fake
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.uri.ends_with("/transitions"))
        .count();
    assert_eq!(transitions, 1, "already done: no second transition");
}

#[tokio::test(start_paused = true)]
async fn jira_finds_the_ticket_a_crash_left_behind_across_pages() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    fake.with_state(|j| j.page_size = 1);
    fake.seed("SRE", "other", &["sre-incident-inc-9"]);
    let old = fake.seed(
        "SRE",
        "Checkout is failing",
        &["sre-incident-inc-3", "severity-critical"],
    );
    let dup = fake.seed("SRE", "Checkout is failing", &["sre-incident-inc-3"]);
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    // The crash: the ticket exists, the ledger has nothing.
    let rec = apply(&t, &created("inc-3"), &IncidentEntry::new("inc-3"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.key.as_deref(),
        Some(old.as_str()),
        "the oldest of {old}, {dup}"
    );
    assert_eq!(rec.state, "found");
    assert_eq!(fake.issues().len(), 3, "no new ticket");
    let searches: Vec<serde_json::Value> = fake
        .requests()
        .iter()
        .filter(|q| q.uri.ends_with("/rest/api/3/search/jql"))
        .map(|q| serde_json::from_slice(&q.body).unwrap())
        .collect();
    assert_eq!(searches.len(), 2, "two pages of one");
    assert_eq!(
        searches[0]["jql"],
        "labels = \"sre-incident-inc-3\" ORDER BY created ASC"
    );
    assert_eq!(searches[1]["nextPageToken"], "page-1");
    assert_eq!(r.metrics.ticket_count("jira", "found", "success"), 1);
}

#[tokio::test(start_paused = true)]
async fn jira_unknown_issue_type_is_rejected_with_jiras_message() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(
        &jira_only("  issue_type: Incident\n"),
        Some(&fake.url()),
        None,
        None,
    )
    .await;
    let err = apply(
        &r.target("jira"),
        &created("inc-4"),
        &IncidentEntry::new("inc-4"),
    )
    .await
    .unwrap_err();
    match &err {
        ActionError::Rejected { target, reason } => {
            assert_eq!(*target, "jira");
            assert!(
                reason.contains("HTTP 400")
                    && reason.contains("issuetype: Specify a valid issue type"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.issues().is_empty());
    assert_eq!(r.metrics.ticket_count("jira", "create", "rejected"), 1);
}

#[tokio::test(start_paused = true)]
async fn jira_throttling_is_handed_back_with_the_wait() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    // The search is throttled (Retry-After 5 s): handed back at once with the wait (the facts
    // consumer waits it out without holding a place), then the ticket is made.
    fake.push(jira::throttle(5));
    let started = tokio::time::Instant::now();
    let err = apply(&t, &created("inc-5"), &IncidentEntry::new("inc-5"))
        .await
        .unwrap_err();
    assert_eq!(unavailable_wait(&err), Some(Duration::from_secs(5)));
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "nothing slept in the call"
    );
    let rec = apply(&t, &created("inc-5"), &IncidentEntry::new("inc-5"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.key.as_deref(), Some("SRE-1"));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "throttled search, search, create");
    // A throttled create is handed back with Jira's wait too; it is sent once, so nothing was
    // created, and the next apply makes the one ticket.
    fake.push(Reply::json(
        serde_json::json!({"issues": [], "isLast": true}),
    ));
    fake.push(jira::throttle(120));
    let f = created("inc-6");
    let err = apply(&t, &f, &IncidentEntry::new("inc-6"))
        .await
        .unwrap_err();
    let wait = unavailable_wait(&err).expect("a wait");
    assert!(wait > Duration::from_secs(60), "{wait:?}");
    assert_eq!(fake.issues().len(), 1);
    apply(&t, &f, &IncidentEntry::new("inc-6"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.issues().len(), 2);
    assert_eq!(r.metrics.ticket_count("jira", "create", "unavailable"), 1);
}

#[tokio::test(start_paused = true)]
async fn jira_outage_is_unavailable_and_nothing_is_lost() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    fake.fail_with(Reply::status(502));
    let err = apply(&t, &created("inc-7"), &IncidentEntry::new("inc-7"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ActionError::Unavailable { target: "jira", .. }),
        "{err:?}"
    );
    fake.fail_with(Reply::Stall);
    let err = apply(&t, &created("inc-7"), &IncidentEntry::new("inc-7"))
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::Unavailable { .. }), "{err:?}");
    fake.clear();
    let rec = apply(&t, &created("inc-7"), &IncidentEntry::new("inc-7"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.key.as_deref(), Some("SRE-1"));
    assert_eq!(fake.issues().len(), 1);
}

// ---------------------------------------------------------------- GitHub

#[tokio::test(start_paused = true)]
async fn github_lifecycle_makes_one_issue_with_labels_comments_and_closed() {
    let fake = FakeGithub::start("org/incidents", GH_TOKEN).await;
    let r = rig(&github_only(""), None, Some(&fake.url()), None).await;
    let t = r.target("github");
    let entry = lifecycle(&t, "inc-1").await;

    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "exactly one issue");
    let i = &issues[0];
    assert_eq!(i.title, "Checkout is failing");
    assert_eq!(
        i.labels,
        [
            "sre-incident:inc-1",
            "severity:critical",
            "incident",
            "resolved"
        ]
    );
    assert!(
        i.body
            .contains("[Runbook](https://runbooks.example.com/checkout)"),
        "{}",
        i.body
    );
    assert!(i.body.contains("`fp-abc123`"), "{}", i.body);
    assert_eq!(i.comments.len(), 3, "{:?}", i.comments);
    assert!(i.comments[0].contains("Acknowledged by ana"));
    assert!(i.comments[1].contains("rolled back v42"));
    assert!(i.comments[2].contains("postmortem done"));
    assert_eq!(i.state, "closed");
    assert_eq!(i.state_reason.as_deref(), Some("completed"));
    let labels = fake.labels();
    let sev = labels
        .iter()
        .find(|l| l.name == "severity:critical")
        .unwrap();
    assert_eq!(
        sev.color, "b60205",
        "created by us, not by the issue create"
    );
    assert!(labels
        .iter()
        .any(|l| l.name == "resolved" && l.color == "0e8a16"));

    let rec = entry.target("github").unwrap();
    assert_eq!(rec.key.as_deref(), Some("1"));
    assert_eq!(rec.detail["repo"], "org/incidents");
    assert_eq!(
        rec.detail["url"],
        "https://github.com/org/incidents/issues/1"
    );
    for q in fake.requests() {
        assert_eq!(
            q.header("accept"),
            Some("application/vnd.github+json"),
            "{}",
            q.uri
        );
        assert_eq!(q.header("x-github-api-version"), Some("2022-11-28"));
        assert!(q
            .header("user-agent")
            .unwrap()
            .starts_with("sre-integration/"));
    }
}

#[tokio::test(start_paused = true)]
async fn github_finds_a_closed_issue_past_a_pull_request_on_the_next_page() {
    let fake = FakeGithub::start("org/incidents", GH_TOKEN).await;
    fake.with_state(|g| g.page_size = 1);
    fake.seed("a PR mentioning it", &["sre-incident:inc-3"], "open", true);
    let n = fake.seed(
        "Checkout is failing",
        &["sre-incident:inc-3"],
        "closed",
        false,
    );
    let r = rig(&github_only(""), None, Some(&fake.url()), None).await;
    let rec = apply(
        &r.target("github"),
        &created("inc-3"),
        &IncidentEntry::new("inc-3"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rec.key, Some(n.to_string()));
    assert_eq!(rec.state, "found");
    assert_eq!(fake.issues().len(), 1, "no second issue");
    let lists: Vec<String> = fake
        .requests()
        .iter()
        .filter(|q| q.method == "GET" && q.uri.contains("/issues?"))
        .map(|q| q.uri.clone())
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(
        lists[0].contains("state=all") && lists[0].contains("labels=sre-incident%3Ainc-3"),
        "{}",
        lists[0]
    );
    assert!(lists[1].contains("page=2"), "{}", lists[1]);
}

#[tokio::test(start_paused = true)]
async fn github_rate_limits_are_throttling_never_rejections() {
    let fake = FakeGithub::start("org/incidents", GH_TOKEN).await;
    let r = rig(&github_only(""), None, Some(&fake.url()), None).await;
    let t = r.target("github");
    // Primary limit with a near reset: handed back with the wait, then it goes on.
    fake.push(gh::primary_limit(2));
    let err = apply(&t, &created("inc-5"), &IncidentEntry::new("inc-5"))
        .await
        .unwrap_err();
    assert!(
        unavailable_wait(&err).is_some_and(|w| w <= Duration::from_secs(3)),
        "{err:?}"
    );
    let rec = apply(&t, &created("inc-5"), &IncidentEntry::new("inc-5"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.key.as_deref(), Some("1"));
    // A secondary limit (403 + retry-after) is handed back as a wait.
    fake.push(gh::secondary_limit(30));
    let err = apply(&t, &created("inc-6"), &IncidentEntry::new("inc-6"))
        .await
        .unwrap_err();
    assert_eq!(unavailable_wait(&err), Some(Duration::from_secs(30)));
    // A primary limit far away: a wait too, not a rejection.
    fake.push(gh::primary_limit(3600));
    let err = apply(&t, &created("inc-6"), &IncidentEntry::new("inc-6"))
        .await
        .unwrap_err();
    assert!(
        unavailable_wait(&err).unwrap() > Duration::from_secs(3000),
        "{err:?}"
    );
    assert_eq!(fake.issues().len(), 1);
    apply(&t, &created("inc-6"), &IncidentEntry::new("inc-6"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.issues().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn github_outage_is_unavailable_and_a_bad_request_is_rejected() {
    let fake = FakeGithub::start("org/incidents", GH_TOKEN).await;
    let r = rig(&github_only(""), None, Some(&fake.url()), None).await;
    let t = r.target("github");
    fake.fail_with(Reply::status(500));
    let err = apply(&t, &created("inc-7"), &IncidentEntry::new("inc-7"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ActionError::Unavailable {
                target: "github",
                ..
            }
        ),
        "{err:?}"
    );
    fake.clear();
    // A ledger record naming an issue that is gone: GitHub's 404 is a rejection.
    let mut entry = IncidentEntry::new("inc-7");
    let mut rec = TargetRecord::for_fact(&created("inc-7"), "created", t0());
    rec.key = Some("99".into());
    rec.detail.insert("repo".into(), "org/incidents".into());
    entry.targets.insert("github".into(), rec);
    entry.lifecycle = Lifecycle::Open;
    let err = apply(&t, &acked("inc-7"), &entry).await.unwrap_err();
    match err {
        ActionError::Rejected { reason, .. } => {
            assert!(reason.contains("HTTP 404: Not Found"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- both

#[tokio::test(start_paused = true)]
async fn routes_pick_the_provider_and_project_and_later_facts_follow() {
    let jf = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE", "PAY"]).await;
    let gf = FakeGithub::start("org/incidents", GH_TOKEN).await;
    let cfg = format!(
        "default_provider: jira\n{}{}routes:\n  - service: checkout\n    environment: prod\n    project_key: PAY\n  - environment: dev\n    provider: github\n",
        jira_only(""),
        github_only("")
    );
    let r = rig(&cfg, Some(&jf.url()), Some(&gf.url()), None).await;
    let (j, g) = (r.target("jira"), r.target("github"));
    // checkout/prod → Jira project PAY; the GitHub target does nothing.
    let e = lifecycle(&j, "inc-a").await;
    assert_eq!(e.target("jira").unwrap().key.as_deref(), Some("PAY-1"));
    assert!(apply(&g, &created("inc-a"), &IncidentEntry::new("inc-a"))
        .await
        .unwrap()
        .is_none());
    // search/dev → GitHub; Jira skips it and keeps skipping later facts.
    let mut e = IncidentEntry::new("inc-b");
    for f in [
        fact("inc-b", 1, created_body("search", "dev")),
        acked("inc-b"),
        resolved("inc-b"),
    ] {
        assert!(
            apply(&j, &f, &e).await.unwrap().is_none(),
            "jira skips {:?}",
            f.fact_type()
        );
        let rec = apply(&g, &f, &e).await.unwrap();
        fold(&mut e, "github", &f, rec);
    }
    assert_eq!(e.target("github").unwrap().state, "resolved");
    // other/prod → the default (Jira SRE).
    let rec = apply(
        &j,
        &fact("inc-c", 1, created_body("other", "prod")),
        &IncidentEntry::new("inc-c"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rec.key.as_deref(), Some("SRE-1"));
    assert_eq!(jf.issues().len(), 2);
    assert_eq!(gf.issues().len(), 1);
    // The record's route wins over today's routes: an Ack for a PAY ticket comments there.
    let mut entry = IncidentEntry::new("inc-c");
    let mut moved = rec.clone();
    moved.key = Some("PAY-1".into());
    moved.detail.insert("project".into(), "PAY".into());
    entry.targets.insert("jira".into(), moved);
    entry.lifecycle = Lifecycle::Open;
    let before = jf.issues()[0].comments.len();
    apply(&j, &acked("inc-c"), &entry).await.unwrap().unwrap();
    assert_eq!(jf.issues()[0].comments.len(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_finished_incident_gets_no_ticket_unless_configured() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, None).await;
    let t = r.target("jira");
    // Resolved already (Created never reached this target), then a Created at a newer revision.
    let mut entry = IncidentEntry::new("inc-8");
    entry.created = created("inc-8").created().cloned();
    entry.lifecycle = Lifecycle::Resolved;
    entry.revision = 3;
    assert!(apply(&t, &created("inc-8"), &entry)
        .await
        .unwrap()
        .is_none());
    assert!(apply(&t, &closed("inc-8"), &entry).await.unwrap().is_none());
    // A Resolved for an incident this target never ticketed: no ticket either.
    let mut open = entry.clone();
    open.lifecycle = Lifecycle::Open;
    assert!(apply(&t, &resolved("inc-8"), &open)
        .await
        .unwrap()
        .is_none());
    assert!(fake.requests().is_empty(), "nothing asked of Jira");
    assert_eq!(r.metrics.ticket_count("jira", "skip", "success"), 3);

    let r = rig(
        &jira_only("create_for_resolved: true\n"),
        Some(&fake.url()),
        None,
        None,
    )
    .await;
    let rec = apply(&r.target("jira"), &closed("inc-8"), &entry)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, "closed");
    assert_eq!(fake.issues().len(), 1);
    assert_eq!(fake.issues()[0].status_name(), "Done");
}

#[tokio::test(start_paused = true)]
async fn tokens_never_show_in_errors_or_debug_output() {
    let jf = FakeJira::start("sre@example.com", "another-token", &["SRE"]).await;
    let gf = FakeGithub::start("org/incidents", "another-token").await;
    let g = FakeGrafana::start(Some("another-key"), vec![]).await;
    let cfg = format!(
        "default_provider: jira\n{}{}",
        jira_only(""),
        github_only("")
    );
    let r = rig(&cfg, Some(&jf.url()), Some(&gf.url()), Some(&g.url())).await;
    let mut texts = Vec::new();
    for t in r.targets.iter().chain(r.grafana.iter()) {
        // GitHub is not the default provider here: its target acts on a ticket it holds.
        let mut e = IncidentEntry::new("inc-9");
        let mut rec = TargetRecord::for_fact(&created("inc-9"), "created", t0());
        rec.key = Some("1".into());
        rec.detail.insert("repo".into(), "org/incidents".into());
        e.targets.insert("github".into(), rec);
        e.created = created("inc-9").created().cloned();
        let f = if t.target() == "github" {
            acked("inc-9")
        } else {
            created("inc-9")
        };
        let err = apply(t, &f, &e).await.unwrap_err();
        assert!(
            matches!(err, ActionError::Rejected { .. }),
            "{} {err:?}",
            t.target()
        );
        texts.push(format!("{err} {err:?}"));
    }
    // The clients and targets print without their credentials.
    let jira = JiraClient::new(
        r.providers.client("jira").unwrap(),
        jf.url().parse().unwrap(),
        JiraCredentials::Basic {
            email: SecretString::new("sre@example.com"),
            api_token: SecretString::new(JIRA_TOKEN),
        },
    );
    let github = GithubClient::new(
        r.providers.client("github").unwrap(),
        gf.url().parse().unwrap(),
        SecretString::new(GH_TOKEN),
    );
    texts.push(format!("{jira:?} {github:?}"));
    let all = texts.join("\n");
    for secret in [JIRA_TOKEN, GH_TOKEN, GRAFANA_KEY, "sre@example.com"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(all.contains("401"), "{all}");
}

// ---------------------------------------------------------------- Grafana

#[tokio::test(start_paused = true)]
async fn grafana_region_from_created_to_resolved_without_duplicates() {
    let g = FakeGrafana::start(Some(GRAFANA_KEY), vec![]).await;
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(&jira_only(""), Some(&fake.url()), None, Some(&g.url())).await;
    let (a, j) = (r.grafana.clone().expect("grafana target"), r.target("jira"));
    assert_eq!(a.target(), "grafana");
    let mut entry = IncidentEntry::new("inc-1");
    let f = created("inc-1");
    let arec = apply(&a, &f, &entry).await.unwrap().unwrap();
    let jrec = apply(&j, &f, &entry).await.unwrap();
    fold(&mut entry, "grafana", &f, Some(arec.clone()));
    fold(&mut entry, "jira", &f, jrec);
    let anns = g.annotations();
    assert_eq!(anns.len(), 1);
    assert_eq!(arec.key.as_deref(), Some("1"));
    assert_eq!(anns[0]["time"], t0().timestamp_millis() + 5 * 60_000);
    let tags: Vec<&str> = anns[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "sre-incident:inc-1",
            "severity:critical",
            "service:checkout"
        ]
    );
    let text = anns[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Checkout is failing")
            && text.contains("https://runbooks.example.com/checkout"),
        "{text}"
    );

    // A crash after the create: no record, the fact again → the same annotation.
    let again = apply(&a, &f, &IncidentEntry::new("inc-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.key.as_deref(), Some("1"));
    // A replay with the record: no call at all.
    let n = g.requests().len();
    apply(&a, &f, &entry).await.unwrap().unwrap();
    assert_eq!(g.requests().len(), n);
    assert_eq!(g.annotations().len(), 1);

    // Ack: the ticket's link joins the text.
    let f = acked("inc-1");
    let rec = apply(&a, &f, &entry).await.unwrap();
    fold(&mut entry, "grafana", &f, rec);
    assert!(g.annotations()[0]["text"]
        .as_str()
        .unwrap()
        .contains("/browse/SRE-1"));

    // Resolved: the end time is set; Closed afterwards changes nothing.
    let f = resolved("inc-1");
    let rec = apply(&a, &f, &entry).await.unwrap();
    fold(&mut entry, "grafana", &f, rec);
    assert_eq!(
        g.annotations()[0]["timeEnd"],
        f.occurred_at.timestamp_millis()
    );
    assert_eq!(entry.target("grafana").unwrap().state, "ended");
    let n = g.requests().len();
    let rec = apply(&a, &closed("inc-1"), &entry).await.unwrap().unwrap();
    assert_eq!(rec.state, "ended");
    assert_eq!(g.requests().len(), n);
    assert_eq!(g.annotations().len(), 1);
    assert_eq!(r.metrics.annotation_count("create", "success"), 1);
}

#[tokio::test(start_paused = true)]
async fn grafana_annotates_each_dashboard_and_ends_them_when_closed_unresolved() {
    let g = FakeGrafana::start(Some(GRAFANA_KEY), vec![]).await;
    let r = rig_with(
        "",
        None,
        None,
        Some(&g.url()),
        "    annotations:\n      dashboard_uids: [checkout, edge]\n",
    )
    .await;
    assert!(r.targets.is_empty());
    let a = r.grafana.clone().unwrap();
    // One of the two exists already (a crash in the middle of the creates).
    let pre = g.with_state(|s| {
        s.annotations.push(serde_json::json!({"id": 1, "dashboardUID": "checkout", "time": 1, "text": "x", "tags": ["sre-incident:inc-2"]}));
        1
    });
    let mut entry = IncidentEntry::new("inc-2");
    let f = created("inc-2");
    let rec = apply(&a, &f, &entry).await.unwrap().unwrap();
    assert_eq!(rec.key.as_deref(), Some(format!("{pre},2").as_str()));
    let anns = g.annotations();
    assert_eq!(anns.len(), 2);
    assert_eq!(anns[1]["dashboardUID"], "edge");
    fold(&mut entry, "grafana", &f, Some(rec));
    let f = closed("inc-2");
    apply(&a, &f, &entry).await.unwrap().unwrap();
    for ann in g.annotations() {
        assert_eq!(ann["timeEnd"], f.occurred_at.timestamp_millis(), "{ann}");
    }
}

#[tokio::test(start_paused = true)]
async fn grafana_down_is_unavailable_and_a_refusal_is_rejected() {
    let g = FakeGrafana::start(Some(GRAFANA_KEY), vec![]).await;
    let r = rig("", None, None, Some(&g.url())).await;
    let a = r.grafana.clone().unwrap();
    g.fail_with(Reply::status(503));
    let err = apply(&a, &created("inc-3"), &IncidentEntry::new("inc-3"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ActionError::Unavailable {
                target: "grafana",
                ..
            }
        ),
        "{err:?}"
    );
    g.clear();
    // Grafana refuses the create (its lookup answered normally).
    g.push(Reply::json(serde_json::json!([])));
    g.push(
        Reply::status(400).with_body(serde_json::json!({"message": "Failed to save annotation"})),
    );
    let err = apply(&a, &created("inc-3"), &IncidentEntry::new("inc-3"))
        .await
        .unwrap_err();
    match err {
        ActionError::Rejected { reason, .. } => {
            assert!(reason.contains("Failed to save annotation"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.metrics.annotation_count("create", "rejected"), 1);
    assert!(g.annotations().is_empty());
}

#[tokio::test(start_paused = true)]
async fn jira_transitions_by_name_a_missing_resolve_is_rejected_a_missing_close_only_comments() {
    let fake = FakeJira::start("sre@example.com", JIRA_TOKEN, &["SRE"]).await;
    let r = rig(
        &jira_only("  resolve_transition: In Progress\n  close_transition: Closed\n"),
        Some(&fake.url()),
        None,
        None,
    )
    .await;
    let t = r.target("jira");
    // The named resolve transition is applied (by its name), then Closed has no "Closed"
    // transition in this workflow: the comment stands alone, nothing is dead-lettered.
    let entry = lifecycle(&t, "inc-t").await;
    let i = &fake.issues()[0];
    assert_eq!(i.status_name(), "In Progress");
    assert_eq!(i.comments.len(), 3);
    assert_eq!(
        entry.target("jira").unwrap().detail["status"],
        "In Progress"
    );

    let r = rig(
        &jira_only("  resolve_transition: Shipped\n"),
        Some(&fake.url()),
        None,
        None,
    )
    .await;
    let t = r.target("jira");
    let mut entry = IncidentEntry::new("inc-u");
    let f = created("inc-u");
    let rec = apply(&t, &f, &entry).await.unwrap();
    fold(&mut entry, "jira", &f, rec);
    match apply(&t, &resolved("inc-u"), &entry).await.unwrap_err() {
        ActionError::Rejected { reason, .. } => assert!(
            reason.contains("has no transition named \"Shipped\"")
                && reason.contains("Done → Done"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}
