//! The Loki, Tempo and Grafana query clients against fakes that speak the real APIs, on paused
//! tokio time: selectors with hostile label values, both Tempo trace shapes and the v1
//! fallback, trace search, dashboard lookup and links, annotations; and, through the shared
//! upstream client, a 5xx retried, a 429 honoured, a stall timing out, a body over the cap.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::observability::grafana::{
    DashboardRef, GrafanaClient, GrafanaError, NewAnnotation,
};
use sre_actors::observability::loki::{Direction, LogQuery, LogRange, LokiClient, LokiError};
use sre_actors::observability::tempo::{TempoClient, TempoError};
use sre_actors::providers::{
    BreakerConfig, ProviderMetrics, Providers, UpstreamClient, UpstreamError,
};
use sre_config::{RetryConfig, SecretString, Upstream};
use sre_supervision::{Observer, RestartPolicy, Supervisor, SupervisorMsg};
use sre_test_support::grafana::{dashboard, FakeGrafana};
use sre_test_support::loki::{stream, FakeLoki};
use sre_test_support::tempo::{resource_spans, span, FakeTempo, V1Shape};
use sre_test_support::Reply;
use tokio::time::Instant;

struct Rig {
    providers: Providers,
    _root: ActorRef<SupervisorMsg>,
}

async fn rig() -> Rig {
    let retry = RetryConfig {
        max_attempts: 3,
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(60),
    };
    let breaker = BreakerConfig {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(60),
        minimum_calls: 100,
        open_duration: Duration::from_secs(30),
        half_open_trials: 1,
    };
    let upstreams = ["loki", "tempo", "grafana"]
        .into_iter()
        .map(|name| Upstream {
            name: name.into(),
            base_url: None,
            timeout: retry.timeout,
        })
        .collect();
    let mut registry = Registry::default();
    let providers = Providers::from_upstreams(
        upstreams,
        breaker,
        retry,
        ProviderMetrics::new(&mut registry),
    );
    let spec = providers.supervisor(RestartPolicy::default(), Observer::default());
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    Rig {
        providers,
        _root: root,
    }
}

impl Rig {
    fn client(&self, name: &str) -> UpstreamClient {
        self.providers.client(name).unwrap()
    }
}

fn base(url: &str) -> url::Url {
    format!("{url}/").parse().unwrap()
}

// ---------------------------------------------------------------- Loki

const T0: i64 = 1_700_000_000_000_000_000;
const HOSTILE: &str = "we\"ird\\app";
const INJECTION: &str = "x\"} or {app=~\".+";

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn loki() -> FakeLoki {
    FakeLoki::start(vec![
        stream(
            &[("app", HOSTILE), ("env", "prod")],
            &[(T0 + 3, "a3 plain"), (T0 + 1, "a1 said \"hello\"")],
        ),
        stream(&[("app", "other"), ("env", "prod")], &[(T0 + 2, "b2")]),
        stream(&[("app", INJECTION)], &[(T0 + 4, "injected")]),
    ])
    .await
}

fn window(limit: usize, direction: Direction) -> LogRange {
    LogRange {
        start: DateTime::from_timestamp_nanos(T0),
        end: DateTime::from_timestamp_nanos(T0 + 1_000),
        limit,
        direction,
    }
}

fn by_app(app: &str, contains: Option<&str>) -> LogQuery {
    LogQuery::Labels {
        labels: labels(&[("app", app)]),
        contains: contains.map(str::to_owned),
    }
}

#[tokio::test(start_paused = true)]
async fn loki_selectors_escape_hostile_values_and_lines_keep_exact_timestamps() {
    let r = rig().await;
    let fake = loki().await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));

    let q = LogQuery::Labels {
        labels: labels(&[("app", HOSTILE), ("env", "prod")]),
        contains: None,
    };
    let out = c
        .search(&q, window(10, Direction::Forward), None)
        .await
        .unwrap();
    let lines: Vec<_> = out.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["a1 said \"hello\"", "a3 plain"]);
    assert!(!out.truncated);
    assert_eq!(out.lines[0].timestamp_ns, T0 + 1);
    assert_eq!(out.lines[0].time, "2023-11-14T22:13:20.000000001Z");
    assert_eq!(out.lines[0].labels["app"], HOSTILE);
    let sent = fake.requests().pop().unwrap();
    assert!(
        sent.uri.starts_with("/loki/api/v1/query_range?"),
        "{}",
        sent.uri
    );
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(sent.uri.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("query"), r#"{app="we\"ird\\app", env="prod"}"#);
    assert_eq!(get("start"), T0.to_string());
    assert_eq!(get("direction"), "forward");

    // A line filter with quotes; newest first.
    let out = c
        .search(
            &by_app(HOSTILE, Some("said \"hello\"")),
            window(10, Direction::Backward),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.lines.len(), 1);
    assert_eq!(out.lines[0].line, "a1 said \"hello\"");
    let out = c
        .search(
            &by_app(HOSTILE, None),
            window(10, Direction::Backward),
            None,
        )
        .await
        .unwrap();
    let lines: Vec<_> = out.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["a3 plain", "a1 said \"hello\""]);

    // A value that tries to close the selector selects only the stream with that exact value.
    let out = c
        .search(
            &by_app(INJECTION, None),
            window(10, Direction::Forward),
            None,
        )
        .await
        .unwrap();
    let lines: Vec<_> = out.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["injected"]);

    // The limit is passed on; reaching it marks the answer truncated.
    let out = c
        .search(&by_app(HOSTILE, None), window(1, Direction::Forward), None)
        .await
        .unwrap();
    assert_eq!(out.lines.len(), 1);
    assert!(out.truncated);

    // A limit above the cap is lowered to it, and says so; a tenant goes in its header.
    let c = c.with_tenant("team-a");
    let out = c
        .search(
            &by_app("other", None),
            window(10_000, Direction::Forward),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.lines.len(), 1);
    assert!(out.truncated);
    let sent = fake.requests().pop().unwrap();
    assert!(sent.uri.contains("&limit=5000&"), "{}", sent.uri);
    assert_eq!(sent.header("x-scope-orgid"), Some("team-a"));
}

#[tokio::test(start_paused = true)]
async fn loki_parse_errors_are_typed_and_bad_label_names_never_leave() {
    let r = rig().await;
    let fake = loki().await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));
    let err = c
        .search(
            &LogQuery::Raw("sum(rate({app=\"a\"}[1m]))".into()),
            window(10, Direction::Forward),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LokiError::BadQuery(m) if m.starts_with("parse error")),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1, "a 400 is not retried");

    let bad = LogQuery::Labels {
        labels: labels(&[("app-name", "x")]),
        contains: None,
    };
    let err = c
        .search(&bad, window(10, Direction::Forward), None)
        .await
        .unwrap_err();
    assert!(matches!(err, LokiError::Invalid(_)), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn loki_server_errors_are_retried_then_answered() {
    let r = rig().await;
    let fake = loki().await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));
    fake.push(Reply::status(503));
    fake.push(Reply::status(502));
    let out = c
        .search(&by_app("other", None), window(10, Direction::Forward), None)
        .await
        .unwrap();
    assert_eq!(out.lines[0].line, "b2");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn loki_throttling_waits_as_asked() {
    let r = rig().await;
    let fake = loki().await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));
    fake.push(Reply::throttle(7));
    let t0 = Instant::now();
    let out = c
        .search(&by_app("other", None), window(10, Direction::Forward), None)
        .await
        .unwrap();
    assert_eq!(out.lines.len(), 1);
    assert!(
        t0.elapsed() >= Duration::from_secs(7),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn loki_stall_times_out() {
    let r = rig().await;
    let fake = loki().await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));
    fake.fail_with(Reply::Stall);
    let err = c
        .search(&by_app("other", None), window(10, Direction::Forward), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LokiError::Upstream(UpstreamError::Timeout { attempts: 3, .. })
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn loki_answers_over_the_body_cap_fail() {
    let r = rig().await;
    let entries: Vec<(i64, String)> = (0..200).map(|i| (T0 + i, "y".repeat(100))).collect();
    let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
    let fake = FakeLoki::start(vec![stream(&[("app", "big")], &refs)]).await;
    let c = LokiClient::new(r.client("loki"), base(&fake.url())).with_max_body_bytes(4096);
    let err = c
        .search(&by_app("big", None), window(1000, Direction::Forward), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LokiError::Upstream(UpstreamError::BodyTooLarge { limit: 4096, .. })
        ),
        "{err}"
    );
    // Within the cap the same answer is fine.
    let c = LokiClient::new(r.client("loki"), base(&fake.url()));
    let out = c
        .search(&by_app("big", None), window(1000, Direction::Forward), None)
        .await
        .unwrap();
    assert_eq!(out.lines.len(), 200);
}

// ---------------------------------------------------------------- Tempo

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const NS: u64 = 1_700_000_000_000_000_000;

async fn tempo() -> FakeTempo {
    FakeTempo::start(vec![
        (
            TRACE,
            vec![
                resource_spans(
                    "checkout",
                    vec![span(
                        TRACE,
                        "b7ad6b7169203331",
                        None,
                        "POST /checkout",
                        NS,
                        NS + 250_000_000,
                        &[("http.method", "POST")],
                    )],
                ),
                resource_spans(
                    "pay\"ments\\eu",
                    vec![span(
                        TRACE,
                        "00f067aa0ba902b7",
                        Some("b7ad6b7169203331"),
                        "charge",
                        NS + 10_000_000,
                        NS + 200_000_000,
                        &[],
                    )],
                ),
            ],
        ),
        (
            "1",
            vec![resource_spans(
                "checkout",
                vec![span(
                    "1",
                    "2",
                    None,
                    "GET /",
                    NS + 5_000_000_000,
                    NS + 5_001_000_000,
                    &[],
                )],
            )],
        ),
    ])
    .await
}

fn assert_trace(out: &sre_actors::observability::tempo::TraceOutput) {
    assert_eq!(out.spans.len(), 2);
    let (root, child) = (&out.spans[0], &out.spans[1]);
    assert_eq!(root.trace_id, TRACE);
    assert_eq!(root.span_id, "b7ad6b7169203331");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.service.as_deref(), Some("checkout"));
    assert_eq!(root.duration_ns, 250_000_000);
    assert_eq!(root.attributes["http.method"], "POST");
    assert_eq!(child.name, "charge");
    assert_eq!(child.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(child.service.as_deref(), Some("pay\"ments\\eu"));
    assert_eq!(
        (child.start_ns, child.end_ns),
        (NS + 10_000_000, NS + 200_000_000)
    );
}

#[tokio::test(start_paused = true)]
async fn tempo_reads_the_v2_shape() {
    let r = rig().await;
    let fake = tempo().await;
    let c = TempoClient::new(r.client("tempo"), base(&fake.url()));
    let out = c.trace(&TRACE.to_uppercase(), None).await.unwrap();
    assert_trace(&out);
    assert!(!out.truncated);
    let paths: Vec<String> = fake.requests().iter().map(|q| q.uri.clone()).collect();
    assert_eq!(paths, [format!("/api/v2/traces/{TRACE}")]);
    assert_eq!(
        fake.requests()[0].header("accept"),
        Some("application/json")
    );

    let out = TempoClient::new(r.client("tempo"), base(&fake.url()))
        .with_max_spans(1)
        .trace(TRACE, None)
        .await
        .unwrap();
    assert_eq!(out.spans.len(), 1);
    assert!(out.truncated);
}

#[tokio::test(start_paused = true)]
async fn tempo_without_v2_falls_back_to_v1_in_both_shapes() {
    let r = rig().await;
    let fake = tempo().await;
    let c = TempoClient::new(r.client("tempo"), base(&fake.url()));
    for shape in [V1Shape::Batches, V1Shape::ResourceSpans] {
        fake.v1_only(shape);
        let before = fake.requests().len();
        assert_trace(&c.trace(TRACE, None).await.unwrap());
        let paths: Vec<String> = fake.requests()[before..]
            .iter()
            .map(|q| q.uri.clone())
            .collect();
        assert_eq!(
            paths,
            [
                format!("/api/v2/traces/{TRACE}"),
                format!("/api/traces/{TRACE}")
            ]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tempo_unknown_traces_are_not_found_and_bad_ids_never_leave() {
    let r = rig().await;
    let fake = tempo().await;
    let c = TempoClient::new(r.client("tempo"), base(&fake.url()));
    let err = c.trace("deadbeef", None).await.unwrap_err();
    assert!(
        matches!(&err, TempoError::NotFound(id) if id == "000000000000000000000000deadbeef"),
        "{err}"
    );
    let sent = fake.requests().len();
    for bad in ["", "xyz", "../../api/search", &"a".repeat(33)] {
        let err = c.trace(bad, None).await.unwrap_err();
        assert!(matches!(err, TempoError::Invalid(_)), "{bad}: {err}");
    }
    assert_eq!(fake.requests().len(), sent);
}

#[tokio::test(start_paused = true)]
async fn tempo_search_by_service_quotes_traceql_and_retries_5xx() {
    let r = rig().await;
    let fake = tempo().await;
    let c = TempoClient::new(r.client("tempo"), base(&fake.url()));
    let (start, end) = (
        Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        Utc.timestamp_opt(1_700_000_060, 0).unwrap(),
    );
    fake.push(Reply::status(500));
    let out = c
        .spans_by_service("pay\"ments\\eu", start, end, 20, None)
        .await
        .unwrap();
    assert_eq!(out.traces.len(), 1);
    let t = &out.traces[0];
    assert_eq!(t.trace_id, TRACE);
    assert_eq!(t.root_service_name.as_deref(), Some("checkout"));
    assert_eq!(t.root_trace_name.as_deref(), Some("POST /checkout"));
    assert_eq!((t.start_time_unix_nano, t.duration_ms), (NS, 250));
    assert!(!out.truncated);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "the 500 was retried");
    let query = reqs[1].uri.split_once('?').unwrap().1.to_owned();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        pairs[0],
        (
            "q".into(),
            r#"{ resource.service.name = "pay\"ments\\eu" }"#.into()
        )
    );
    assert_eq!(pairs[1], ("start".into(), "1700000000".into()));
    assert_eq!(pairs[2], ("end".into(), "1700000060".into()));

    // Two checkout traces, one asked: truncated.
    let out = c
        .spans_by_service("checkout", start, end, 1, None)
        .await
        .unwrap();
    assert_eq!(out.traces.len(), 1);
    assert!(out.truncated);
    assert_eq!(out.traces[0].trace_id.len(), 32);

    // More than the cap is asked as the cap; Tempo's 400 is a typed bad query.
    c.spans_by_service("checkout", start, end, 5000, None)
        .await
        .unwrap();
    assert!(fake.requests().last().unwrap().uri.ends_with("&limit=1000"));
    fake.push(Reply::Respond {
        status: 400,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: "invalid TraceQL query: parse error at line 1, col 3".into(),
    });
    let err = c
        .spans_by_service("checkout", start, end, 5, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TempoError::BadQuery(m) if m.starts_with("invalid TraceQL")),
        "{err}"
    );
}

// ---------------------------------------------------------------- Grafana

const KEY: &str = "glsa_test_key";

async fn grafana() -> FakeGrafana {
    FakeGrafana::start(
        Some(KEY),
        vec![
            dashboard("abc123", "API Latency", &["api", "slo"]),
            dashboard("def456", "API Latency v2", &["api"]),
            dashboard("ghi789", "Payments", &["payments"]),
        ],
    )
    .await
}

fn grafana_client(r: &Rig, fake: &FakeGrafana, key: &str) -> GrafanaClient {
    GrafanaClient::new(
        r.client("grafana"),
        base(&fake.url()),
        Some(SecretString::new(key)),
    )
}

#[tokio::test(start_paused = true)]
async fn grafana_dashboard_links_by_uid_title_and_tag() {
    let r = rig().await;
    let fake = grafana().await;
    let c = grafana_client(&r, &fake, KEY);
    let from = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let to = Utc.timestamp_opt(1_700_003_600, 0).unwrap();
    let vars = vec![
        ("service".to_owned(), "api".to_owned()),
        ("env".to_owned(), "prod eu&x".to_owned()),
    ];
    let url = c
        .dashboard_url(&DashboardRef::Uid("abc123".into()), from, to, &vars, None)
        .await
        .unwrap();
    assert_eq!(
        url.as_str(),
        format!(
            "{}/d/abc123/api-latency?orgId=1&from=1700000000000&to=1700003600000&var-service=api&var-env=prod+eu%26x",
            fake.url()
        )
    );
    let sent = &fake.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        sent.uri.contains("type=dash-db") && sent.uri.contains("dashboardUIDs=abc123"),
        "{}",
        sent.uri
    );

    // A title that is a substring of another: the exact title wins.
    let by_title = DashboardRef::Search {
        title: Some("api latency".into()),
        tag: None,
    };
    let url = c
        .dashboard_url(&by_title, from, to, &[], None)
        .await
        .unwrap();
    assert!(url.path().ends_with("/d/abc123/api-latency"), "{url}");

    // A tag on two dashboards: ambiguous, naming both.
    let by_tag = DashboardRef::Search {
        title: None,
        tag: Some("api".into()),
    };
    match c.dashboard_url(&by_tag, from, to, &[], None).await {
        Err(GrafanaError::Ambiguous(hits)) => {
            let uids: Vec<_> = hits.iter().map(|h| h.uid.as_str()).collect();
            assert_eq!(uids, ["abc123", "def456"]);
        }
        other => panic!("{other:?}"),
    }
    // Title and tag together narrow it down.
    let both = DashboardRef::Search {
        title: Some("latency".into()),
        tag: Some("slo".into()),
    };
    let url = c.dashboard_url(&both, from, to, &[], None).await.unwrap();
    assert!(url.path().ends_with("/d/abc123/api-latency"), "{url}");

    let bad_var = vec![("env&x".to_owned(), "prod".to_owned())];
    let sent = fake.requests().len();
    let err = c
        .dashboard_url(
            &DashboardRef::Uid("abc123".into()),
            from,
            to,
            &bad_var,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GrafanaError::Invalid(_)), "{err}");
    assert_eq!(fake.requests().len(), sent);

    let none = DashboardRef::Search {
        title: Some("nothing".into()),
        tag: None,
    };
    let err = c
        .dashboard_url(&none, from, to, &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, GrafanaError::NotFound(_)), "{err}");
    let err = c
        .dashboard_url(&DashboardRef::Uid("zzz".into()), from, to, &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, GrafanaError::NotFound(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn grafana_annotations_are_created_once_and_ended() {
    let r = rig().await;
    let fake = grafana().await;
    let c = grafana_client(&r, &fake, KEY);
    let start = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let new = NewAnnotation {
        dashboard_uid: Some("abc123".into()),
        panel_id: None,
        time: start,
        time_end: None,
        tags: vec!["incident".into(), "sev2".into()],
        text: "INC-42 opened".into(),
    };
    let id = c.create_annotation(&new, None).await.unwrap();
    assert_eq!(id, 1);
    let a = &fake.annotations()[0];
    assert_eq!(a["dashboardUID"], "abc123");
    assert_eq!(a["time"], 1_700_000_000_000i64);
    assert_eq!(a["tags"], serde_json::json!(["incident", "sev2"]));
    assert_eq!(a["text"], "INC-42 opened");
    assert!(a.get("timeEnd").is_none());

    // The end time, retried through a 503 (setting a value is safe to repeat).
    fake.push(Reply::status(503));
    let end = start + chrono::Duration::minutes(42);
    c.end_annotation(id, end, None).await.unwrap();
    assert_eq!(fake.annotations()[0]["timeEnd"], 1_700_002_520_000i64);
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|q| q.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1].uri, "/api/annotations/1");

    let err = c.end_annotation(99, end, None).await.unwrap_err();
    assert!(matches!(err, GrafanaError::NotFound(_)), "{err}");

    // A create that meets a 5xx is not repeated: it may have been applied.
    fake.push(Reply::status(502));
    let before = fake.requests().len();
    let err = c.create_annotation(&new, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            GrafanaError::Upstream(UpstreamError::Status {
                status: 502,
                attempts: 1,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(fake.requests().len(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn grafana_refused_keys_are_typed_and_keys_never_print() {
    let r = rig().await;
    let fake = grafana().await;
    let c = grafana_client(&r, &fake, "wrong-key");
    let err = c
        .find_dashboard(&DashboardRef::Uid("abc123".into()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GrafanaError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-key"));
    assert!(!format!("{c:?}").contains("wrong-key"));
}
