//! The read tools (`sre_actors::tools::{k8s_read, obs}`) against the fakes: every tool's output
//! shape, its JSON Schema (within what the gate's validator checks, rejecting bad arguments, as
//! does the tool itself), the cluster enum, error mapping (404 → not found, bad query → invalid arguments),
//! a cluster whose circuit is open answering `unavailable` at once while another cluster
//! answers, and `obs.*` tools registered only for configured backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use serde_json::{json, Value};
use sre_actors::kubernetes::client::Guard;
use sre_actors::kubernetes::read::ClusterReader;
use sre_actors::observability::grafana::GrafanaClient;
use sre_actors::observability::loki::LokiClient;
use sre_actors::observability::prometheus::PrometheusClient;
use sre_actors::observability::tempo::TempoClient;
use sre_actors::providers::client::install_crypto_provider;
use sre_actors::providers::{
    BreakerConfig, CallPolicy, CircuitArgs, CircuitBoard, CircuitHandle, ProviderCircuit,
    ProviderMetrics, Providers,
};
use sre_actors::tools::tool::{Tool, ToolError};
use sre_actors::tools::ObsClients;
use sre_actors::tools::{read_tools, schema};
use sre_config::{ClusterConfig, RetryConfig, SecretRef, SecretStore, Upstream};
use sre_supervision::{Observer, RestartPolicy, Supervisor, SupervisorMsg};
use sre_test_support::grafana::{dashboard, FakeGrafana};
use sre_test_support::kube::{self as fake, FakeKube};
use sre_test_support::loki::{stream, FakeLoki};
use sre_test_support::prometheus::FakePrometheus;
use sre_test_support::tempo::{resource_spans, span, FakeTempo};

type Tools = BTreeMap<&'static str, Arc<dyn Tool>>;

fn by_name(tools: Vec<Arc<dyn Tool>>) -> Tools {
    tools.into_iter().map(|t| (t.spec().name, t)).collect()
}

async fn client(f: &FakeKube) -> kube::Client {
    install_crypto_provider();
    let kc = Kubeconfig::from_yaml(&f.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Asserts `args` pass (or fail) the tool's schema, and that the tool itself refuses what the
/// schema refuses.
async fn check_args(tool: &Arc<dyn Tool>, args: Value, valid: bool) {
    let spec = tool.spec();
    schema::check_supported(&spec.input_schema)
        .unwrap_or_else(|e| panic!("{}: the gate cannot check this schema: {e}", spec.name));
    assert_eq!(
        schema::validate(&spec.input_schema, &args).is_ok(),
        valid,
        "{}: schema on {args}",
        spec.name
    );
    if !valid {
        let r = tool.call(&args).await;
        assert!(
            matches!(r, Err(ToolError::InvalidArguments(_))),
            "{}: tool on {args}: {r:?}",
            spec.name
        );
    }
}

#[tokio::test]
async fn k8s_tools_answer_structured_json_and_refuse_bad_arguments() {
    let (prod, staging) = (FakeKube::start().await, FakeKube::start().await);
    let mut pod = fake::pod("web", "api-1");
    pod["metadata"]["labels"] = json!({"app": "api"});
    prod.apply(pod);
    prod.apply(fake::pod("web", "api-2"));
    prod.apply(fake::pod("web", "api-3"));
    prod.apply(fake::deployment("web", "api", 2));
    prod.apply(fake::secret("web", "db", [("password", "hunter2")]));
    prod.apply(fake::warning_event(
        "web",
        "ev1",
        "Pod",
        "api-1",
        "BackOff",
        "back-off restarting",
        3,
    ));
    prod.apply(fake::warning_event(
        "web",
        "ev2",
        "Pod",
        "api-2",
        "Failed",
        "image pull",
        1,
    ));
    prod.set_logs(
        "web",
        "api-1",
        "app",
        [
            ("2025-01-01T00:01:00Z", "one"),
            ("2025-01-01T00:02:00Z", "two"),
            ("2025-01-01T00:03:00Z", "three"),
            ("2025-01-01T00:04:00Z", "four"),
        ],
    );
    prod.set_now("2025-01-01T00:05:30Z");
    staging.apply(fake::pod("web", "only-staging"));
    let reader = ClusterReader::from_clients(
        BTreeMap::from([
            ("prod".to_owned(), client(&prod).await),
            ("staging".to_owned(), client(&staging).await),
        ]),
        100,
    );
    let tools = by_name(read_tools(Some(reader), ObsClients::default()));
    assert_eq!(
        tools.keys().copied().collect::<Vec<_>>(),
        [
            "k8s.describe_resource",
            "k8s.get_events",
            "k8s.get_logs",
            "k8s.get_resource",
            "k8s.list_resources"
        ],
        "no obs.* tool without a backend"
    );
    for t in tools.values() {
        let spec = t.spec();
        assert!(!spec.write);
        assert!(!spec.description.is_empty() && !spec.description.contains('\n'));
        assert_eq!(spec.input_schema["type"], "object");
        assert_eq!(spec.input_schema["additionalProperties"], false);
        assert_eq!(
            spec.input_schema["properties"]["cluster"]["enum"],
            json!(["prod", "staging"]),
            "{}",
            spec.name
        );
        assert!(spec.input_schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("cluster")));
    }

    // get_resource
    let get = &tools["k8s.get_resource"];
    let args = json!({"cluster": "prod", "kind": "pods", "namespace": "web", "name": "api-1"});
    check_args(get, args.clone(), true).await;
    let out = get.call(&args).await.unwrap();
    assert_eq!(out["cluster"], "prod");
    assert_eq!(out["object"]["kind"], "Pod");
    assert_eq!(out["object"]["metadata"]["name"], "api-1");
    let secret = get
        .call(&json!({"cluster": "prod", "kind": "secret", "namespace": "web", "name": "db"}))
        .await
        .unwrap();
    assert_eq!(secret["object"]["kind"], "Secret");
    assert!(!secret.to_string().contains("hunter2"));
    assert!(secret["object"].get("data").is_none());
    // 404 → not found; the other cluster does not have it.
    let r = get
        .call(&json!({"cluster": "staging", "kind": "pods", "namespace": "web", "name": "api-1"}))
        .await;
    assert!(matches!(r, Err(ToolError::NotFound(_))), "{r:?}");
    for bad in [
        json!({"cluster": "dev", "kind": "pods", "namespace": "web", "name": "x"}),
        json!({"cluster": "prod", "kind": "pods", "namespace": "web"}),
        json!({"cluster": "prod", "kind": "pods", "name": "x", "extra": 1}),
        json!({"cluster": "prod", "kind": 3, "name": "x"}),
    ] {
        check_args(get, bad, false).await;
    }
    // A kind neither we nor the schema can know is refused by the tool.
    let r = get
        .call(&json!({"cluster": "prod", "kind": "widgets", "namespace": "web", "name": "x"}))
        .await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");

    // list_resources: selectors, limit, continue.
    let list = &tools["k8s.list_resources"];
    let out = list
        .call(&json!({"cluster": "prod", "kind": "po", "namespace": "web", "label_selector": "app=api"}))
        .await
        .unwrap();
    assert_eq!(out["count"], 1);
    assert_eq!(out["items"][0]["metadata"]["name"], "api-1");
    assert_eq!(out["kind"], "pods");
    let page1 = list
        .call(&json!({"cluster": "prod", "kind": "pods", "limit": 2}))
        .await
        .unwrap();
    assert_eq!(page1["count"], 2);
    let token = page1["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    let page2 = list
        .call(&json!({"cluster": "prod", "kind": "pods", "limit": 2, "continue": token}))
        .await
        .unwrap();
    assert_eq!(page2["count"], 1);
    assert_eq!(page2["continue"], Value::Null);
    check_args(
        list,
        json!({"cluster": "prod", "kind": "pods", "limit": 0}),
        false,
    )
    .await;
    check_args(
        list,
        json!({"cluster": "prod", "kind": "pods", "limit": 10_000}),
        false,
    )
    .await;

    // get_logs
    let logs = &tools["k8s.get_logs"];
    let out = logs
        .call(&json!({"cluster": "prod", "namespace": "web", "pod": "api-1", "tail": 2, "since": "150s"}))
        .await
        .unwrap();
    assert_eq!(out["lines"], json!(["three", "four"]));
    assert_eq!(out["line_count"], 2);
    assert_eq!(out["pod"], "api-1");
    check_args(
        logs,
        json!({"cluster": "prod", "namespace": "web", "pod": "api-1", "previous": "yes"}),
        false,
    )
    .await;
    let r = logs
        .call(&json!({"cluster": "prod", "namespace": "web", "pod": "api-1", "since": "a while"}))
        .await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");

    // describe_resource: the object and only its events.
    let describe = &tools["k8s.describe_resource"];
    let out = describe
        .call(&json!({"cluster": "prod", "kind": "pod", "namespace": "web", "name": "api-1"}))
        .await
        .unwrap();
    assert_eq!(out["object"]["metadata"]["name"], "api-1");
    let events = out["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "BackOff");

    // get_events: one object, or the namespace.
    let ev = &tools["k8s.get_events"];
    let out = ev
        .call(&json!({"cluster": "prod", "namespace": "web", "kind": "pods", "name": "api-2"}))
        .await
        .unwrap();
    assert_eq!(out["count"], 1);
    assert_eq!(out["events"][0]["reason"], "Failed");
    let out = ev
        .call(&json!({"cluster": "prod", "namespace": "web", "warnings_only": true}))
        .await
        .unwrap();
    assert_eq!(out["count"], 2);
    let r = ev.call(&json!({"cluster": "prod", "kind": "pods"})).await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");
    check_args(ev, json!({"namespace": "web"}), false).await;
}

fn policy() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 1,
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn a_cluster_with_an_open_circuit_answers_unavailable_at_once_and_others_answer() {
    install_crypto_provider();
    let (prod, staging) = (FakeKube::start().await, FakeKube::start().await);
    prod.apply(fake::pod("web", "api-1"));
    staging.apply(fake::pod("web", "api-1"));
    let dir = tempfile::tempdir().unwrap();
    let mut clusters = Vec::new();
    for (name, f) in [("prod", &prod), ("staging", &staging)] {
        let secret = SecretRef {
            namespace: "platform".into(),
            name: format!("{name}-kubeconfig"),
        };
        let path = dir.path().join(format!("platform/{name}-kubeconfig"));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("kubeconfig"), f.kubeconfig()).unwrap();
        clusters.push(ClusterConfig {
            name: name.into(),
            kubeconfig_secret_ref: Some(secret),
            kubeconfig_path: None,
            in_cluster: false,
        });
    }
    let metrics = ProviderMetrics::default();
    let mut guards = BTreeMap::new();
    let mut actors = Vec::new();
    for name in ["prod", "staging"] {
        let handle = CircuitHandle::new(&format!("k8s:{name}"));
        let (actor, task) = Actor::spawn(
            None,
            ProviderCircuit,
            CircuitArgs {
                config: BreakerConfig {
                    failure_rate_threshold: 0.5,
                    window: Duration::from_secs(60),
                    minimum_calls: 1,
                    open_duration: Duration::from_secs(600),
                    half_open_trials: 1,
                },
                handle: handle.clone(),
                metrics: metrics.clone(),
                board: CircuitBoard::default(),
            },
        )
        .await
        .unwrap();
        actors.push((actor, task));
        guards.insert(
            name.to_owned(),
            Guard {
                circuit: handle,
                policy: policy(),
                metrics: metrics.clone(),
            },
        );
    }
    // One failure opens prod's circuit.
    guards["prod"]
        .circuit
        .acquire()
        .await
        .unwrap()
        .record(false);
    assert!(
        guards["prod"].circuit.acquire().await.is_err(),
        "prod's circuit is open"
    );

    let reader = ClusterReader::new(
        clusters,
        SecretStore::new(dir.path()),
        |name| guards.get(name).cloned(),
        100,
    );
    let tools = by_name(read_tools(Some(reader), ObsClients::default()));
    let get = &tools["k8s.get_resource"];
    let args = |c: &str| json!({"cluster": c, "kind": "pods", "namespace": "web", "name": "api-1"});
    let r = get.call(&args("prod")).await;
    match r {
        Err(ToolError::Unavailable { upstream, reason }) => {
            assert_eq!(upstream, "k8s:prod");
            assert!(
                reason.contains("circuit") || reason.contains("open"),
                "{reason}"
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(prod.requests().is_empty(), "nothing reached prod");
    let out = get.call(&args("staging")).await.unwrap();
    assert_eq!(out["cluster"], "staging");
    assert_eq!(out["object"]["metadata"]["name"], "api-1");
    for (actor, task) in actors {
        actor.stop(None);
        task.await.unwrap();
    }
}

struct Rig {
    providers: Providers,
    _root: ActorRef<SupervisorMsg>,
}

async fn rig() -> Rig {
    let retry = RetryConfig {
        max_attempts: 1,
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(10),
    };
    let breaker = BreakerConfig {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(60),
        minimum_calls: 100,
        open_duration: Duration::from_secs(30),
        half_open_trials: 1,
    };
    let upstreams = ["prometheus", "loki", "tempo", "grafana"]
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

fn base(url: &str) -> url::Url {
    format!("{}/", url.trim_end_matches('/')).parse().unwrap()
}

const T0: i64 = 1_735_732_800; // 2025-01-01T12:00:00Z

#[tokio::test]
async fn obs_tools_exist_only_for_configured_backends_and_answer_structured_json() {
    let rig = rig().await;
    let prom = FakePrometheus::start(|q, t| match q {
        "up" => Ok(Some(if t > 0.0 { t.rem_euclid(100.0) } else { 1.0 })),
        "absent" => Ok(None),
        _ => Err(400),
    })
    .await;
    let prometheus = PrometheusClient::new(
        rig.providers.client("prometheus").unwrap(),
        base(&prom.url()),
    );

    // Only Prometheus configured: only its tool.
    let only = by_name(read_tools(
        None,
        ObsClients {
            prometheus: Some(prometheus.clone()),
            ..ObsClients::default()
        },
    ));
    assert_eq!(
        only.keys().copied().collect::<Vec<_>>(),
        ["obs.query_metrics"]
    );

    let ns = |s: i64| s * 1_000_000_000;
    let loki = FakeLoki::start(vec![stream(
        &[("namespace", "web"), ("app", "api")],
        &[
            (ns(T0 - 60), "GET /a 200"),
            (ns(T0 - 30), "GET /b 500 error"),
            (ns(T0 - 10), "GET /c 500 error"),
        ],
    )])
    .await;
    let tempo = FakeTempo::start(vec![(
        "abc123",
        vec![resource_spans(
            "checkout",
            vec![
                span(
                    "abc123",
                    "1",
                    None,
                    "POST /pay",
                    (ns(T0 - 20)) as u64,
                    (ns(T0 - 19)) as u64,
                    &[("http.status_code", "500")],
                ),
                span(
                    "abc123",
                    "2",
                    Some("1"),
                    "SELECT",
                    (ns(T0 - 20) + 1000) as u64,
                    (ns(T0 - 20) + 5000) as u64,
                    &[],
                ),
            ],
        )],
    )])
    .await;
    let grafana = FakeGrafana::start(
        Some("gkey"),
        vec![
            dashboard("abc", "API Latency", &["api"]),
            dashboard("def", "API Latency v2", &["api"]),
        ],
    )
    .await;
    let clients = ObsClients {
        prometheus: Some(prometheus),
        loki: Some(LokiClient::new(
            rig.providers.client("loki").unwrap(),
            base(&loki.url()),
        )),
        tempo: Some(TempoClient::new(
            rig.providers.client("tempo").unwrap(),
            base(&tempo.url()),
        )),
        grafana: Some(GrafanaClient::new(
            rig.providers.client("grafana").unwrap(),
            base(&grafana.url()),
            Some(sre_config::SecretString::new("gkey")),
        )),
    };
    let tools = by_name(read_tools(None, clients));
    assert_eq!(
        tools.keys().copied().collect::<Vec<_>>(),
        [
            "obs.get_dashboard_url",
            "obs.get_trace",
            "obs.query_metrics",
            "obs.search_logs",
            "obs.search_traces"
        ]
    );
    for t in tools.values() {
        let spec = t.spec();
        assert!(!spec.write);
        schema::check_supported(&spec.input_schema).expect("the gate can check the schema");
    }

    // query_metrics: instant and range.
    let qm = &tools["obs.query_metrics"];
    let out = qm
        .call(&json!({"query": "up", "time": "2025-01-01T12:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(out["mode"], "instant");
    assert_eq!(out["resultType"], "vector");
    assert_eq!(out["result"][0]["points"][0]["t"], json!(T0 as f64));
    assert_eq!(out["truncated"], false);
    let out = qm
        .call(&json!({"query": "up", "start": "2025-01-01T11:59:00Z", "end": "2025-01-01T12:00:00Z", "step": "30s"}))
        .await
        .unwrap();
    assert_eq!(out["mode"], "range");
    assert_eq!(out["resultType"], "matrix");
    assert_eq!(out["result"][0]["points"].as_array().unwrap().len(), 3);
    let out = qm.call(&json!({"query": "absent"})).await.unwrap();
    assert_eq!(out["result"], json!([]));
    check_args(qm, json!({"time": "now"}), false).await;
    check_args(qm, json!({"query": "up", "at": "now"}), false).await;
    let r = qm
        .call(&json!({"query": "up", "time": "now", "step": "1m"}))
        .await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");
    let r = qm.call(&json!({"query": "up", "time": "yesterday"})).await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");

    // search_logs
    let sl = &tools["obs.search_logs"];
    let out = sl
        .call(&json!({
            "query": "{namespace=\"web\"} |= \"error\"",
            "start": "2025-01-01T11:00:00Z", "end": "2025-01-01T12:00:00Z", "limit": 10,
        }))
        .await
        .unwrap();
    assert_eq!(out["count"], 2);
    assert_eq!(out["lines"][0]["line"], "GET /c 500 error", "newest first");
    assert_eq!(out["lines"][0]["labels"]["app"], "api");
    let r = sl.call(&json!({"query": "not logql"})).await;
    assert!(
        matches!(r, Err(ToolError::InvalidArguments(_))),
        "a bad query: {r:?}"
    );
    check_args(
        sl,
        json!({"query": "{a=\"b\"}", "direction": "sideways"}),
        false,
    )
    .await;

    // get_trace
    let gt = &tools["obs.get_trace"];
    let out = gt.call(&json!({"trace_id": "abc123"})).await.unwrap();
    assert_eq!(out["trace_id"], format!("{:0>32}", "abc123"));
    assert_eq!(out["span_count"], 2);
    assert_eq!(out["spans"][0]["name"], "POST /pay");
    assert_eq!(out["spans"][0]["service"], "checkout");
    let r = gt.call(&json!({"trace_id": "ffff"})).await;
    assert!(matches!(r, Err(ToolError::NotFound(_))), "{r:?}");
    check_args(gt, json!({"trace_id": "not-hex"}), false).await;

    // search_traces: by service; TraceQL the backend refuses is invalid arguments.
    let st = &tools["obs.search_traces"];
    let out = st
        .call(&json!({"service": "checkout", "start": "2025-01-01T11:00:00Z", "end": "2025-01-01T12:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(out["count"], 1);
    assert_eq!(out["traces"][0]["traceID"], format!("{:0>32}", "abc123"));
    let r = st
        .call(&json!({"query": "{ status = error }", "start": "2025-01-01T11:00:00Z", "end": "2025-01-01T12:00:00Z"}))
        .await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");
    assert!(
        tempo.requests().iter().any(|r| {
            url::Url::parse(&format!("http://x{}", r.uri))
                .unwrap()
                .query_pairs()
                .any(|(k, v)| k == "q" && v == "{ status = error }")
        }),
        "TraceQL sent as given"
    );
    check_args(st, json!({}), false).await;
    check_args(st, json!({"query": "{}", "service": "x"}), false).await;

    // get_dashboard_url
    let gd = &tools["obs.get_dashboard_url"];
    let out = gd
        .call(&json!({
            "title": "API Latency", "from": "2025-01-01T11:00:00Z", "to": "2025-01-01T12:00:00Z",
            "vars": {"env": "prod", "pod": ["a", "b"]},
        }))
        .await
        .unwrap();
    let url = out["url"].as_str().unwrap();
    assert!(url.contains("/d/abc/"), "{url}");
    assert!(
        url.contains("from=1735729200000") && url.contains("to=1735732800000"),
        "{url}"
    );
    assert!(
        url.contains("var-env=prod") && url.contains("var-pod=a") && url.contains("var-pod=b"),
        "{url}"
    );
    let r = gd.call(&json!({"tag": "api"})).await;
    assert!(
        matches!(r, Err(ToolError::InvalidArguments(_))),
        "ambiguous: {r:?}"
    );
    let r = gd.call(&json!({"uid": "nope"})).await;
    assert!(matches!(r, Err(ToolError::NotFound(_))), "{r:?}");
    check_args(gd, json!({"from": "now-1h"}), false).await;
    check_args(gd, json!({"uid": "abc", "vars": {"env": 3}}), false).await;
    let r = gd
        .call(&json!({"uid": "abc", "vars": {"bad-name": "x"}}))
        .await;
    assert!(matches!(r, Err(ToolError::InvalidArguments(_))), "{r:?}");
}
