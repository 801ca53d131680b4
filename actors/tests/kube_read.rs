//! The read API across clusters (`sre_actors::kubernetes::read`) against two fake API servers
//! (`sre_test_support::kube`): get / list of every built-in kind by cluster name, selectors and
//! namespaces, describe with the object's events only, Warning events, logs, a CRD through
//! discovery, Secrets as metadata only whichever way they are asked for, error mapping, and
//! lazy connection behind the cluster's circuit.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use ractor::Actor;
use serde_json::{json, Value};
use sre_actors::kubernetes::client::Guard;
use sre_actors::kubernetes::read::{
    ClusterReader, EventQuery, Involved, Kind, ListQuery, LogQuery, ReadError,
};
use sre_actors::providers::client::install_crypto_provider;
use sre_actors::providers::{
    BreakerConfig, CallPolicy, CircuitArgs, CircuitBoard, CircuitHandle, ProviderCircuit,
    ProviderMetrics,
};
use sre_config::{ClusterConfig, SecretRef, SecretStore};
use sre_test_support::kube::{self as fake, FakeKube};

const TAIL: u32 = 3;

async fn client(fake: &FakeKube) -> Client {
    install_crypto_provider();
    let kc = Kubeconfig::from_yaml(&fake.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted");
    Client::try_from(config).expect("client")
}

/// A reader over `prod` and `staging`.
async fn reader(prod: &FakeKube, staging: &FakeKube) -> ClusterReader {
    let clients = BTreeMap::from([
        ("prod".to_owned(), client(prod).await),
        ("staging".to_owned(), client(staging).await),
    ]);
    ClusterReader::from_clients(clients, TAIL)
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().expect("name").to_owned())
        .collect()
}

fn list(ns: Option<&str>) -> ListQuery {
    ListQuery {
        namespace: ns.map(str::to_owned),
        ..ListQuery::default()
    }
}

/// A core event with its last time set (`type` Warning unless `normal`).
fn event(
    ns: &str,
    name: &str,
    kind: &str,
    involved: &str,
    last: &str,
    normal: bool,
) -> serde_json::Value {
    let mut e = fake::warning_event(ns, name, kind, involved, "BackOff", name, 1);
    e["lastTimestamp"] = json!(last);
    e["firstTimestamp"] = json!(last);
    if normal {
        e["type"] = json!("Normal");
    }
    e
}

#[tokio::test]
async fn get_and_list_every_built_in_kind_on_each_cluster() {
    let (prod, staging) = (FakeKube::start().await, FakeKube::start().await);
    for (f, tag) in [(&prod, "p"), (&staging, "s")] {
        f.apply(fake::pod("web", &format!("{tag}-pod")));
        f.apply(fake::deployment("web", &format!("{tag}-deploy"), 2));
        f.apply(fake::service("web", &format!("{tag}-svc")));
        f.apply(fake::config_map("web", &format!("{tag}-cm")));
        f.apply(event(
            "web",
            &format!("{tag}-ev"),
            "Pod",
            "x",
            "2025-01-01T00:00:00Z",
            false,
        ));
    }
    let r = reader(&prod, &staging).await;
    assert_eq!(r.clusters(), ["prod", "staging"]);

    let kinds = [
        (Kind::Pods, "Pod", "v1", "pod"),
        (Kind::Deployments, "Deployment", "apps/v1", "deploy"),
        (Kind::Services, "Service", "v1", "svc"),
        (Kind::ConfigMaps, "ConfigMap", "v1", "cm"),
        (Kind::Events, "Event", "v1", "ev"),
    ];
    for (cluster, tag) in [("prod", "p"), ("staging", "s")] {
        for (kind, kind_name, api_version, suffix) in &kinds {
            let name = format!("{tag}-{suffix}");
            let obj = r.get(cluster, kind, Some("web"), &name).await.unwrap();
            assert_eq!(obj["kind"], *kind_name, "{cluster} {kind}");
            assert_eq!(obj["apiVersion"], *api_version);
            assert_eq!(obj["metadata"]["name"], name);
            assert_eq!(obj["metadata"]["namespace"], "web");

            let listed = r.list(cluster, kind, &list(None)).await.unwrap();
            assert_eq!(names(&listed.items), [name.as_str()], "{cluster} {kind}");
            assert_eq!(listed.items[0]["kind"], *kind_name);
            assert_eq!(listed.items[0]["apiVersion"], *api_version);
            assert_eq!(listed.continue_token, None);
        }
    }
    let d = r
        .get("prod", &Kind::Deployments, Some("web"), "p-deploy")
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["status"]["readyReplicas"], 2);
    let cm = r
        .get("staging", &Kind::parse("cm").unwrap(), Some("web"), "s-cm")
        .await
        .unwrap();
    assert_eq!(cm["data"]["config.yaml"], "log_level: info\n");

    // Each cluster sees only its own objects.
    assert!(matches!(
        r.get("staging", &Kind::Pods, Some("web"), "p-pod").await,
        Err(ReadError::NotFound(_))
    ));
}

#[tokio::test]
async fn selectors_namespaces_and_limits() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    f.apply(fake::pod("a", "web-1"));
    let mut db = fake::pod("a", "db-1");
    db["metadata"]["labels"] = json!({"app": "db", "tier": "data"});
    db["status"]["phase"] = json!("Pending");
    f.apply(db);
    f.apply(fake::pod("b", "web-2"));
    let r = reader(&f, &other).await;
    let q = |ns: Option<&str>, labels: Option<&str>, fields: Option<&str>| ListQuery {
        namespace: ns.map(str::to_owned),
        label_selector: labels.map(str::to_owned),
        field_selector: fields.map(str::to_owned),
        ..ListQuery::default()
    };
    let got = |l: sre_actors::kubernetes::read::Listed| names(&l.items);

    assert_eq!(
        got(r
            .list("prod", &Kind::Pods, &q(None, None, None))
            .await
            .unwrap()),
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        got(r
            .list("prod", &Kind::Pods, &q(Some("a"), None, None))
            .await
            .unwrap()),
        ["db-1", "web-1"]
    );
    assert_eq!(
        got(r
            .list("prod", &Kind::Pods, &q(None, Some("tier=data"), None))
            .await
            .unwrap()),
        ["db-1"]
    );
    assert_eq!(
        got(r
            .list("prod", &Kind::Pods, &q(None, Some("app!=db"), None))
            .await
            .unwrap()),
        ["web-1", "web-2"]
    );
    assert_eq!(
        got(r
            .list(
                "prod",
                &Kind::Pods,
                &q(None, None, Some("status.phase=Running"))
            )
            .await
            .unwrap()),
        ["web-1", "web-2"]
    );
    assert_eq!(
        got(r
            .list(
                "prod",
                &Kind::Pods,
                &q(Some("b"), Some("app=web-2"), Some("metadata.name=web-2"))
            )
            .await
            .unwrap()),
        ["web-2"]
    );
    assert_eq!(
        got(r
            .list("prod", &Kind::Pods, &q(Some("c"), None, None))
            .await
            .unwrap()),
        Vec::<String>::new()
    );

    // Pages.
    let first = r
        .list(
            "prod",
            &Kind::Pods,
            &ListQuery {
                limit: Some(2),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&first.items), ["db-1", "web-1"]);
    assert_eq!(first.remaining, Some(1));
    let rest = r
        .list(
            "prod",
            &Kind::Pods,
            &ListQuery {
                limit: Some(2),
                continue_token: first.continue_token.clone(),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&rest.items), ["web-2"]);
    assert_eq!(rest.continue_token, None);

    // Limits sent: the default, the asked and the capped.
    f.clear_requests();
    for limit in [None, Some(7), Some(1_000_000)] {
        let query = ListQuery {
            limit,
            ..ListQuery::default()
        };
        r.list("prod", &Kind::Pods, &query).await.unwrap();
    }
    let sent: Vec<String> = f
        .requests()
        .iter()
        .filter(|q| q.verb == "list")
        .map(|q| q.param("limit").unwrap_or("").to_owned())
        .collect();
    assert_eq!(sent, ["500", "7", "5000"]);

    // A selector the API rejects.
    assert!(matches!(
        r.list("prod", &Kind::Pods, &q(None, Some("a in (b"), None))
            .await,
        Err(ReadError::Invalid(_))
    ));
}

#[tokio::test]
async fn describe_returns_the_object_and_only_its_events_newest_first() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    f.apply(fake::pod("web", "api-1"));
    f.apply(fake::pod("web", "api-2"));
    f.apply(fake::deployment("web", "api-1", 1));
    f.apply(event(
        "web",
        "e-old",
        "Pod",
        "api-1",
        "2025-01-01T00:00:00Z",
        true,
    ));
    f.apply(event(
        "web",
        "e-new",
        "Pod",
        "api-1",
        "2025-01-01T00:05:00Z",
        false,
    ));
    f.apply(event(
        "web",
        "e-mid",
        "Pod",
        "api-1",
        "2025-01-01T00:01:00Z",
        false,
    ));
    f.apply(event(
        "web",
        "e-other-pod",
        "Pod",
        "api-2",
        "2025-01-01T00:02:00Z",
        false,
    ));
    f.apply(event(
        "web",
        "e-deploy",
        "Deployment",
        "api-1",
        "2025-01-01T00:03:00Z",
        false,
    ));
    f.apply(event(
        "other",
        "e-other-ns",
        "Pod",
        "api-1",
        "2025-01-01T00:04:00Z",
        false,
    ));
    let r = reader(&f, &other).await;

    let d = r
        .describe("prod", &Kind::Pods, Some("web"), "api-1")
        .await
        .unwrap();
    assert_eq!(d.object["kind"], "Pod");
    assert_eq!(d.object["metadata"]["name"], "api-1");
    assert_eq!(names(&d.events), ["e-new", "e-mid", "e-old"]);

    let d = r
        .describe("prod", &Kind::Deployments, Some("web"), "api-1")
        .await
        .unwrap();
    assert_eq!(d.object["kind"], "Deployment");
    assert_eq!(names(&d.events), ["e-deploy"]);

    let selectors: Vec<String> = f
        .requests()
        .iter()
        .filter(|q| q.verb == "list" && q.resource.as_deref() == Some("events"))
        .map(|q| {
            assert_eq!(q.path, "/api/v1/namespaces/web/events");
            q.param("fieldSelector").unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(
        selectors,
        [
            "involvedObject.name=api-1,involvedObject.kind=Pod,involvedObject.namespace=web",
            "involvedObject.name=api-1,involvedObject.kind=Deployment,involvedObject.namespace=web",
        ]
    );

    assert!(matches!(
        r.describe("prod", &Kind::Pods, Some("web"), "gone").await,
        Err(ReadError::NotFound(_))
    ));
}

#[tokio::test]
async fn events_by_namespace_object_and_warning() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    f.apply(event(
        "web",
        "w1",
        "Pod",
        "api-1",
        "2025-01-01T00:01:00Z",
        false,
    ));
    f.apply(event(
        "web",
        "n1",
        "Pod",
        "api-1",
        "2025-01-01T00:02:00Z",
        true,
    ));
    f.apply(event(
        "web",
        "w2",
        "Pod",
        "api-2",
        "2025-01-01T00:03:00Z",
        false,
    ));
    f.apply(event(
        "web",
        "w3",
        "Deployment",
        "api-1",
        "2025-01-01T00:00:30Z",
        false,
    ));
    f.apply(event(
        "db",
        "w4",
        "Pod",
        "pg-0",
        "2025-01-01T00:04:00Z",
        false,
    ));
    let r = reader(&f, &other).await;
    let ev = |q: EventQuery| {
        let r = r.clone();
        async move { names(&r.events("prod", &q).await.unwrap()) }
    };

    assert_eq!(
        ev(EventQuery::default()).await,
        ["w4", "w2", "n1", "w1", "w3"]
    );
    assert_eq!(
        ev(EventQuery {
            namespace: Some("web".into()),
            ..EventQuery::default()
        })
        .await,
        ["w2", "n1", "w1", "w3"]
    );
    assert_eq!(
        ev(EventQuery {
            namespace: Some("web".into()),
            warnings_only: true,
            ..EventQuery::default()
        })
        .await,
        ["w2", "w1", "w3"]
    );
    assert_eq!(
        ev(EventQuery {
            namespace: Some("web".into()),
            involved: Some(Involved {
                kind: Some(Kind::Pods),
                name: "api-1".into(),
            }),
            warnings_only: true,
            limit: None,
        })
        .await,
        ["w1"]
    );
    assert_eq!(
        ev(EventQuery {
            involved: Some(Involved {
                kind: None,
                name: "api-1".into(),
            }),
            ..EventQuery::default()
        })
        .await,
        ["n1", "w1", "w3"]
    );
    assert_eq!(
        ev(EventQuery {
            limit: Some(2),
            ..EventQuery::default()
        })
        .await,
        ["w4", "w2"]
    );
    assert!(f
        .requests()
        .iter()
        .filter(|q| q.verb == "list")
        .any(|q| q.param("fieldSelector") == Some("type=Warning")));
}

#[tokio::test]
async fn logs_with_tail_since_and_container() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    let mut pod = fake::pod("web", "api-1");
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy:1"}));
    f.apply(pod);
    f.apply(fake::pod("web", "solo"));
    let lines: Vec<(String, String)> = (0..6)
        .map(|i| (format!("2025-01-01T00:0{i}:00Z"), format!("app line {i}")))
        .collect();
    f.set_logs("web", "api-1", "app", lines.clone());
    f.set_logs("web", "solo", "app", lines);
    f.set_logs(
        "web",
        "api-1",
        "sidecar",
        [("2025-01-01T00:00:00Z", "sidecar says hi")],
    );
    f.set_now("2025-01-01T00:05:30Z");
    let r = reader(&f, &other).await;
    let logs = |pod: &'static str, q: LogQuery| {
        let r = r.clone();
        async move { r.logs("prod", "web", pod, &q).await }
    };
    let app = |tail: Option<u32>, since: Option<Duration>| LogQuery {
        container: Some("app".into()),
        tail,
        since,
        previous: false,
    };

    // The default tail comes from `log_tail_lines`.
    assert_eq!(
        logs("api-1", app(None, None)).await.unwrap(),
        "app line 3\napp line 4\napp line 5\n"
    );
    assert_eq!(
        logs("api-1", app(Some(1), None)).await.unwrap(),
        "app line 5\n"
    );
    assert_eq!(
        logs("api-1", app(Some(100), Some(Duration::from_secs(150))))
            .await
            .unwrap(),
        "app line 3\napp line 4\napp line 5\n"
    );
    assert_eq!(
        logs("api-1", app(Some(100), Some(Duration::from_millis(90_500))))
            .await
            .unwrap(),
        "app line 4\napp line 5\n"
    );
    let sidecar = LogQuery {
        container: Some("sidecar".into()),
        ..LogQuery::default()
    };
    assert_eq!(logs("api-1", sidecar).await.unwrap(), "sidecar says hi\n");
    // One container: no container needed; two: the API asks for one.
    assert_eq!(
        logs("solo", LogQuery::default()).await.unwrap(),
        "app line 3\napp line 4\napp line 5\n"
    );
    assert!(matches!(
        logs("api-1", LogQuery::default()).await,
        Err(ReadError::Invalid(m)) if m.contains("container name must be specified")
    ));
    assert!(matches!(
        logs("gone", LogQuery::default()).await,
        Err(ReadError::NotFound(_))
    ));

    let log_requests: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|q| q.verb == "log")
        .collect();
    let first = &log_requests[0];
    assert_eq!(first.path, "/api/v1/namespaces/web/pods/api-1/log");
    assert_eq!(first.param("tailLines"), Some("3"));
    assert_eq!(first.param("container"), Some("app"));
    assert!(first.param("limitBytes").is_some());
    assert_eq!(log_requests[2].param("sinceSeconds"), Some("150"));
    assert_eq!(log_requests[3].param("sinceSeconds"), Some("91"));
}

#[tokio::test]
async fn custom_kinds_through_discovery() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    f.register_kind("example.com", "v1", "Widget", "widgets", true);
    f.register_kind("example.com", "v1", "Gadget", "gadgets", false);
    f.apply(json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "web", "labels": {"size": "big"}},
        "spec": {"colour": "blue"},
    }));
    f.apply(json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w2", "namespace": "db"},
        "spec": {"colour": "red"},
    }));
    f.apply(json!({
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"on": true},
    }));
    f.apply(event(
        "web",
        "e1",
        "Widget",
        "w1",
        "2025-01-01T00:00:00Z",
        false,
    ));
    let r = reader(&f, &other).await;
    let widget = Kind::parse("example.com/v1/Widget").unwrap();
    assert_eq!(widget, Kind::custom("example.com", "v1", "Widget"));

    let w = r.get("prod", &widget, Some("web"), "w1").await.unwrap();
    assert_eq!(w["apiVersion"], "example.com/v1");
    assert_eq!(w["kind"], "Widget");
    assert_eq!(w["spec"]["colour"], "blue");
    let all = r.list("prod", &widget, &list(None)).await.unwrap();
    assert_eq!(names(&all.items), ["w2", "w1"]);
    assert!(all.items.iter().all(|o| o["kind"] == "Widget"));
    let web = r.list("prod", &widget, &list(Some("web"))).await.unwrap();
    assert_eq!(names(&web.items), ["w1"]);
    let big = ListQuery {
        label_selector: Some("size=big".into()),
        ..ListQuery::default()
    };
    assert_eq!(
        names(&r.list("prod", &widget, &big).await.unwrap().items),
        ["w1"]
    );
    let d = r
        .describe("prod", &widget, Some("web"), "w1")
        .await
        .unwrap();
    assert_eq!(names(&d.events), ["e1"]);

    // Cluster-scoped: no namespace needed.
    let gadget = Kind::custom("example.com", "v1", "Gadget");
    let g = r.get("prod", &gadget, None, "g1").await.unwrap();
    assert_eq!(g["spec"]["on"], true);
    assert_eq!(g["metadata"].get("namespace"), None);

    // A namespaced kind without a namespace.
    assert!(matches!(
        r.get("prod", &widget, None, "w1").await,
        Err(ReadError::Invalid(_))
    ));

    // Discovery ran once per kind.
    let discoveries = f
        .requests()
        .iter()
        .filter(|q| q.path == "/apis/example.com/v1")
        .count();
    assert_eq!(discoveries, 2);

    // Kinds the cluster does not serve.
    for kind in [
        Kind::custom("example.com", "v1", "Nope"),
        Kind::custom("nope.example.com", "v1", "Widget"),
    ] {
        assert!(
            matches!(
                r.get("prod", &kind, Some("web"), "w1").await,
                Err(ReadError::UnknownKind(_))
            ),
            "{kind}"
        );
    }
    // Only `prod` has the CRD.
    assert!(matches!(
        r.list("staging", &widget, &list(None)).await,
        Err(ReadError::UnknownKind(_))
    ));
}

const PLAIN: &str = "hunter2-plaintext-password";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn assert_no_secret_data(v: &Value) {
    let text = v.to_string();
    for needle in [
        PLAIN.to_owned(),
        b64(PLAIN),
        "\"data\"".into(),
        "stringData".into(),
    ] {
        assert!(!text.contains(&needle), "{needle} in {text}");
    }
}

#[tokio::test]
async fn secrets_are_metadata_only_whichever_way_they_are_asked_for() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    let mut s = fake::secret("web", "db-creds", [("password", PLAIN)]);
    s["metadata"]["labels"] = json!({"app": "db"});
    s["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration":
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": b64(PLAIN)}}).to_string(),
        "owner": "team-db",
    });
    s["stringData"] = json!({"password": PLAIN});
    f.apply(s);
    f.apply(fake::secret("db", "other", [("token", PLAIN)]));
    f.apply(event(
        "web",
        "e1",
        "Secret",
        "db-creds",
        "2025-01-01T00:00:00Z",
        false,
    ));
    let r = reader(&f, &other).await;
    f.clear_requests();

    let check = |v: &Value| {
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Secret");
        assert_no_secret_data(v);
    };
    let custom = [
        Kind::Custom {
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
        },
        Kind::Custom {
            group: String::new(),
            version: "v1".into(),
            kind: "secrets".into(),
        },
        Kind::parse("v1/Secret").unwrap(),
        Kind::Secrets,
    ];
    for kind in &custom {
        let got = r.get("prod", kind, Some("web"), "db-creds").await.unwrap();
        check(&got);
        assert_eq!(got["metadata"]["name"], "db-creds");
        assert_eq!(got["metadata"]["namespace"], "web");
        assert_eq!(got["metadata"]["labels"], json!({"app": "db"}));
        assert_eq!(got["metadata"]["annotations"], json!({"owner": "team-db"}));

        let listed = r.list("prod", kind, &list(None)).await.unwrap();
        assert_eq!(names(&listed.items), ["other", "db-creds"]);
        listed.items.iter().for_each(check);
        let labelled = ListQuery {
            label_selector: Some("app=db".into()),
            ..ListQuery::default()
        };
        let listed = r.list("prod", kind, &labelled).await.unwrap();
        assert_eq!(names(&listed.items), ["db-creds"]);
        listed.items.iter().for_each(check);

        let d = r
            .describe("prod", kind, Some("web"), "db-creds")
            .await
            .unwrap();
        check(&d.object);
        assert_eq!(names(&d.events), ["e1"]);
    }

    // Every request for secrets asked for metadata only; none went to discovery.
    let requests = f.requests();
    let secrets: Vec<_> = requests
        .iter()
        .filter(|q| q.resource.as_deref() == Some("secrets"))
        .collect();
    assert_eq!(secrets.len(), custom.len() * 4);
    for q in &secrets {
        let accept = q.accept.as_deref().unwrap_or("");
        assert!(
            accept.contains("as=PartialObjectMetadata"),
            "{} {}?{} Accept: {accept}",
            q.method,
            q.path,
            q.query
        );
    }
    assert!(requests.iter().all(|q| q.verb != "discovery"));
}

#[tokio::test]
async fn errors_are_typed() {
    let (f, other) = (FakeKube::start().await, FakeKube::start().await);
    f.apply(fake::pod("web", "api-1"));
    let r = reader(&f, &other).await;

    assert!(matches!(
        r.get("nowhere", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::UnknownCluster(c)) if c == "nowhere"
    ));
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "nope").await,
        Err(ReadError::NotFound(m)) if m.contains("nope")
    ));
    assert!(matches!(
        r.get("prod", &Kind::Pods, None, "api-1").await,
        Err(ReadError::Invalid(_))
    ));
    assert!(matches!(Kind::parse("widgets"), Err(ReadError::Invalid(_))));

    f.fail_with(403);
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        r.list("prod", &Kind::Secrets, &list(None)).await,
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        r.logs("prod", "web", "api-1", &LogQuery::default()).await,
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        r.events("prod", &EventQuery::default()).await,
        Err(ReadError::Forbidden(_))
    ));
    assert!(matches!(
        r.get(
            "prod",
            &Kind::custom("example.com", "v1", "Widget"),
            Some("web"),
            "w"
        )
        .await,
        Err(ReadError::Forbidden(_))
    ));
    f.fail_with(401);
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unauthorized(_))
    ));
    f.fail_with(500);
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Api { code: 500, .. })
    ));
    // The other cluster does not notice.
    assert!(r.list("staging", &Kind::Pods, &list(None)).await.is_ok());
    f.recover();
    assert!(r
        .get("prod", &Kind::Pods, Some("web"), "api-1")
        .await
        .is_ok());

    // Nothing listening.
    f.kill();
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unavailable { cluster, .. }) if cluster == "prod"
    ));
}

#[tokio::test]
async fn connects_lazily_behind_the_circuit_and_retries_a_failed_connect() {
    install_crypto_provider();
    let f = FakeKube::start_with_token("token-rotated").await;
    f.apply(fake::pod("web", "api-1"));
    let dir = tempfile::tempdir().unwrap();
    let secret = SecretRef {
        namespace: "platform".into(),
        name: "prod-kubeconfig".into(),
    };
    let cluster = |name: &str| ClusterConfig {
        name: name.into(),
        kubeconfig_secret_ref: Some(secret.clone()),
        kubeconfig_path: None,
        in_cluster: false,
    };
    let handle = CircuitHandle::new("k8s:prod");
    let metrics = ProviderMetrics::default();
    let guard = Guard {
        circuit: handle.clone(),
        policy: CallPolicy {
            timeout: Duration::from_secs(30),
            max_attempts: 1,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
        },
        metrics: metrics.clone(),
    };
    let r = ClusterReader::new(
        vec![cluster("prod"), cluster("unguarded")],
        SecretStore::new(dir.path()),
        move |name| (name == "prod").then(|| guard.clone()),
        TAIL,
    );
    assert_eq!(r.clusters(), ["prod", "unguarded"]);
    assert!(f.requests().is_empty(), "nothing connects up front");

    // The kubeconfig is not there yet: this call fails, the next one tries again.
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unavailable { cluster, reason })
            if cluster == "prod" && reason.contains("cannot connect")
    ));
    let path = dir.path().join("platform/prod-kubeconfig");
    std::fs::create_dir_all(&path).unwrap();
    // (still holding the token from before a rotation)
    std::fs::write(
        path.join("kubeconfig"),
        f.kubeconfig().replace("token-rotated", "token-stale"),
    )
    .unwrap();

    // Connected, but its circuit actor is not running: nothing reaches the cluster.
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unavailable { cluster, reason })
            if cluster == "prod" && reason.contains("k8s:prod")
    ));
    assert!(f.requests().is_empty());

    let (actor, task) = Actor::spawn(
        None,
        ProviderCircuit,
        CircuitArgs {
            config: BreakerConfig {
                failure_rate_threshold: 0.5,
                window: Duration::from_secs(60),
                minimum_calls: 10,
                open_duration: Duration::from_secs(30),
                half_open_trials: 1,
            },
            handle,
            metrics,
            board: CircuitBoard::default(),
        },
    )
    .await
    .unwrap();
    // The stale token is refused; once the Secret holds the rotated one, the next call
    // reconnects with it.
    assert!(matches!(
        r.get("prod", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unauthorized(_))
    ));
    std::fs::write(path.join("kubeconfig"), f.kubeconfig()).unwrap();
    let pod = r
        .get("prod", &Kind::Pods, Some("web"), "api-1")
        .await
        .unwrap();
    assert_eq!(pod["metadata"]["name"], "api-1");

    // A cluster without a circuit is unavailable, not unguarded.
    assert!(matches!(
        r.get("unguarded", &Kind::Pods, Some("web"), "api-1").await,
        Err(ReadError::Unavailable { cluster, .. }) if cluster == "unguarded"
    ));
    actor.stop(None);
    task.await.unwrap();
}
