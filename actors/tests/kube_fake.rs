//! The fake Kubernetes API server (`sre_test_support::kube`) against the real kube-rs client, on
//! paused tokio time: paginated and filtered lists, metadata-only lists, logs, injected
//! failures, discovery of a registered CRD, and `kube::runtime::watcher` through modifications,
//! deletions, expired (410) and dropped watches, a killed and restarted server.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod, Secret};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, LogParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use sre_actors::providers::client::install_crypto_provider;
use sre_test_support::kube::{self as fake, FakeKube};

async fn client_for(kubeconfig: &str) -> Client {
    install_crypto_provider();
    let kc = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted");
    Client::try_from(config).expect("client")
}

async fn client(fake: &FakeKube) -> Client {
    client_for(&fake.kubeconfig()).await
}

fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> u16 {
    match r {
        Err(kube::Error::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next item of a stream, within a minute of (virtual) time.
async fn next<S: Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(60), s.next())
        .await
        .expect("an item within a minute")
        .expect("stream still open")
}

fn describe<K: ResourceExt>(item: Result<Event<K>, watcher::Error>) -> String {
    match item {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(o)) => format!("InitApply({})", o.name_any()),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(o)) => format!("Apply({})", o.name_any()),
        Ok(Event::Delete(o)) => format!("Delete({})", o.name_any()),
        Err(watcher::Error::WatchError(s)) => format!("Err({})", s.code),
        Err(e) => format!("Err({e})"),
    }
}

async fn events<S, K>(s: &mut S, n: usize) -> Vec<String>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
    K: ResourceExt,
{
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(describe(next(s).await));
    }
    out
}

/// Skips errors until the next event (a reconnecting watcher reports its failed attempts).
async fn next_event<S, K>(s: &mut S) -> String
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
    K: ResourceExt,
{
    loop {
        if let Ok(ev) = next(s).await {
            return describe(Ok(ev));
        }
    }
}

fn names<K: ResourceExt>(items: impl IntoIterator<Item = K>) -> Vec<String> {
    items.into_iter().map(|o| o.name_any()).collect()
}

fn with_label(mut obj: Value, key: &str, value: &str) -> Value {
    obj["metadata"]["labels"][key] = json!(value);
    obj
}

#[tokio::test(start_paused = true)]
async fn lists_paginate_and_filter() {
    let fake = FakeKube::start().await;
    for (ns, name, tier) in [
        ("shop", "web-1", "front"),
        ("shop", "web-2", "front"),
        ("shop", "db-1", "db"),
        ("ops", "agent-1", "infra"),
        ("ops", "loose", ""),
    ] {
        let mut p = fake::pod(ns, name);
        if !tier.is_empty() {
            p = with_label(p, "tier", tier);
        }
        fake.apply(p);
    }
    let mut off_node = fake::pod("ops", "pending-1");
    off_node["spec"]["nodeName"] = json!("node-2");
    off_node["status"]["phase"] = json!("Pending");
    fake.apply(off_node);
    let client = client(&fake).await;
    let pods: Api<Pod> = Api::all(client.clone());

    // Pages of two, sorted by namespace then name, until the continue token runs out.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = pods.list(&lp).await.expect("list page");
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(names(page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["agent-1", "loose", "pending-1", "db-1", "web-1", "web-2"]
    );
    assert_eq!(pages, 3);
    assert_eq!(fake.lists("pods"), 3);
    let continued = fake.requests();
    assert!(continued[1].param("continue").is_some());

    let select = |labels: &str, fields: &str| {
        let pods = pods.clone();
        let mut lp = ListParams::default();
        if !labels.is_empty() {
            lp = lp.labels(labels);
        }
        if !fields.is_empty() {
            lp = lp.fields(fields);
        }
        async move { names(pods.list(&lp).await.expect("list").items) }
    };
    assert_eq!(select("app=web-1", "").await, ["web-1"]);
    assert_eq!(select("tier==front", "").await, ["web-1", "web-2"]);
    assert_eq!(
        select("tier!=front", "").await,
        ["agent-1", "loose", "pending-1", "db-1"]
    );
    assert_eq!(select("tier in (db, infra)", "").await, ["agent-1", "db-1"]);
    assert_eq!(
        select("tier notin (front,db)", "").await,
        ["agent-1", "loose", "pending-1"]
    );
    assert_eq!(select("!tier", "").await, ["loose", "pending-1"]);
    assert_eq!(select("tier,app=db-1", "").await, ["db-1"]);
    assert_eq!(
        select("", "metadata.namespace=ops").await,
        ["agent-1", "loose", "pending-1"]
    );
    assert_eq!(select("", "status.phase!=Running").await, ["pending-1"]);
    assert_eq!(
        select("", "spec.nodeName==node-2,metadata.name=pending-1").await,
        ["pending-1"]
    );
    assert_eq!(
        select("tier", "metadata.name!=web-2").await,
        ["agent-1", "db-1", "web-1"]
    );

    // Namespaced collection, and a namespaced get / not found.
    let shop: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert_eq!(
        names(shop.list(&ListParams::default()).await.unwrap().items),
        ["db-1", "web-1", "web-2"]
    );
    let web = shop.get("web-1").await.expect("get");
    assert_eq!(
        web.metadata.uid.as_deref(),
        Some(fake::uid_for("Pod", "shop", "web-1").as_str())
    );
    assert_eq!(web.status.unwrap().phase.as_deref(), Some("Running"));
    match shop.get("nope").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "pods \"nope\" not found");
        }
        other => panic!("expected 404, got {other:?}"),
    }

    // Events by involved object and type.
    fake.apply(fake::warning_event(
        "shop",
        "web-1.17a1",
        "Pod",
        "web-1",
        "BackOff",
        "Back-off restarting failed container app",
        5,
    ));
    fake.apply(fake::warning_event(
        "shop",
        "web-2.17a2",
        "Pod",
        "web-2",
        "Unhealthy",
        "Readiness probe failed",
        1,
    ));
    fake.apply(fake::warning_event(
        "shop",
        "web.17a3",
        "Deployment",
        "web",
        "ProgressDeadlineExceeded",
        "stuck",
        1,
    ));
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), "shop");
    let lp = ListParams::default()
        .fields("involvedObject.kind=Pod,involvedObject.name=web-1,type=Warning");
    let found = events.list(&lp).await.unwrap().items;
    assert_eq!(names(found.clone()), ["web-1.17a1"]);
    assert_eq!(found[0].count, Some(5));
    assert_eq!(
        found[0].involved_object.uid.as_deref(),
        web.metadata.uid.as_deref()
    );
    assert_eq!(
        found[0].source.as_ref().unwrap().component.as_deref(),
        Some("kubelet")
    );

    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
}

#[tokio::test(start_paused = true)]
async fn watcher_follows_changes_relists_after_410_and_resumes_after_a_drop() {
    let fake = FakeKube::start().await;
    fake.apply(fake::pod("shop", "a"));
    fake.apply(fake::pod("shop", "b"));
    let api: Api<Pod> = Api::all(client(&fake).await);
    let mut w = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();

    assert_eq!(
        events(&mut w, 4).await,
        ["Init", "InitApply(a)", "InitApply(b)", "InitDone"]
    );
    let t0 = tokio::time::Instant::now();
    fake.apply(with_label(fake::pod("shop", "a"), "version", "2"));
    assert_eq!(describe(next(&mut w).await), "Apply(a)");
    assert!(fake.delete("v1", "Pod", Some("shop"), "b"));
    assert_eq!(describe(next(&mut w).await), "Delete(b)");
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "events arrive without the clock moving"
    );
    let watch = fake
        .requests()
        .into_iter()
        .find(|r| r.is_watch())
        .expect("a watch");
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(watch.param("timeoutSeconds"), Some("290"));
    assert_eq!(fake.open_watches(), 1);

    // 410: the open watch gets an ERROR event; `a` goes while nobody watches; the relist shows it gone.
    fake.expire_watches();
    assert!(fake.delete("v1", "Pod", Some("shop"), "a"));
    fake.apply(fake::pod("shop", "c"));
    assert_eq!(
        events(&mut w, 4).await,
        ["Err(410)", "Init", "InitApply(c)", "InitDone"]
    );
    assert_eq!(fake.lists("pods"), 2);

    // A dropped watch resumes from the last resource version without relisting.
    fake.apply(fake::pod("shop", "d"));
    assert_eq!(describe(next(&mut w).await), "Apply(d)");
    fake.disconnect_watches();
    fake.apply(fake::pod("shop", "e"));
    assert_eq!(next_event(&mut w).await, "Apply(e)");
    assert_eq!(fake.lists("pods"), 2);
    let watches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.is_watch())
        .collect();
    assert_eq!(watches.len(), 3);
    assert_eq!(
        watches[2].param("resourceVersion"),
        Some(
            fake.get("v1", "Pod", Some("shop"), "d").unwrap()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
        )
    );
    assert_eq!(fake.open_watches(), 1);

    // Dropped while the history is compacted past its version: the rewatch gets a 410 and the
    // watcher relists.
    fake.disconnect_watches();
    fake.apply(fake::pod("shop", "f"));
    fake.compact();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("InitDone") {
        seen.push(describe(next(&mut w).await));
    }
    let expired = seen.iter().position(|s| s == "Err(410)").expect("a 410");
    assert_eq!(
        seen[expired..],
        [
            "Err(410)",
            "Init",
            "InitApply(c)",
            "InitApply(d)",
            "InitApply(e)",
            "InitApply(f)",
            "InitDone"
        ]
    );
    assert_eq!(fake.lists("pods"), 3);
}

#[tokio::test(start_paused = true)]
async fn watcher_survives_a_killed_and_restarted_server() {
    let fake = FakeKube::start().await;
    fake.apply(fake::pod("shop", "a"));
    let api: Api<Pod> = Api::all(client(&fake).await);
    let mut w = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    assert_eq!(
        events(&mut w, 3).await,
        ["Init", "InitApply(a)", "InitDone"]
    );
    fake.apply(fake::pod("shop", "b"));
    assert_eq!(describe(next(&mut w).await), "Apply(b)");

    fake.kill();
    assert_eq!(fake.open_watches(), 0);
    assert!(api.list(&ListParams::default()).await.is_err());
    assert!(
        next(&mut w).await.is_err(),
        "the watcher reports the outage"
    );
    fake.restart();
    fake.apply(fake::pod("shop", "c"));
    assert_eq!(next_event(&mut w).await, "Apply(c)");
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap().items),
        ["a", "b", "c"]
    );
}

#[tokio::test(start_paused = true)]
async fn streaming_list_watcher_gets_initial_events_then_a_bookmark() {
    let fake = FakeKube::start().await;
    fake.apply(fake::pod("shop", "a"));
    fake.apply(fake::pod("shop", "b"));
    let api: Api<Pod> = Api::namespaced(client(&fake).await, "shop");
    let mut w = watcher::watcher(api, watcher::Config::default().streaming_lists())
        .default_backoff()
        .boxed();
    assert_eq!(
        events(&mut w, 4).await,
        ["Init", "InitApply(a)", "InitApply(b)", "InitDone"]
    );
    fake.apply(with_label(fake::pod("shop", "b"), "version", "2"));
    assert_eq!(describe(next(&mut w).await), "Apply(b)");
    let first = &fake.requests()[0];
    assert!(first.is_watch());
    assert_eq!(first.param("sendInitialEvents"), Some("true"));
    assert_eq!(first.param("resourceVersionMatch"), Some("NotOlderThan"));
    assert_eq!(fake.lists("pods"), 0);
}

#[tokio::test(start_paused = true)]
async fn raw_watch_replays_bookmarks_and_times_out() {
    let fake = FakeKube::start().await;
    fake.apply(fake::pod("shop", "a"));
    let rv = fake.resource_version();
    fake.apply(with_label(fake::pod("shop", "a"), "version", "2"));
    fake.apply(with_label(fake::pod("shop", "b"), "tier", "db"));
    let api: Api<Pod> = Api::namespaced(client(&fake).await, "shop");

    // From an old version: the history since, then live events, a bookmark, the end at the timeout.
    let wp = WatchParams::default().timeout(10);
    let mut s = api
        .watch(&wp, &rv.to_string())
        .await
        .expect("watch")
        .boxed();
    let kind = |e: WatchEvent<Pod>| match e {
        WatchEvent::Added(p) => format!("ADDED {}", p.name_any()),
        WatchEvent::Modified(p) => format!("MODIFIED {}", p.name_any()),
        WatchEvent::Deleted(p) => format!("DELETED {}", p.name_any()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    };
    assert_eq!(kind(next(&mut s).await.unwrap()), "MODIFIED a");
    assert_eq!(kind(next(&mut s).await.unwrap()), "ADDED b");
    fake.delete("v1", "Pod", Some("shop"), "a");
    assert_eq!(kind(next(&mut s).await.unwrap()), "DELETED a");
    fake.bookmark();
    assert_eq!(
        kind(next(&mut s).await.unwrap()),
        format!("BOOKMARK {}", fake.resource_version())
    );
    let started = tokio::time::Instant::now();
    assert!(
        s.next().await.is_none(),
        "the server ends the watch at timeoutSeconds"
    );
    assert!(started.elapsed() >= Duration::from_secs(9));

    // With a label selector, an object leaving the selection is DELETED for the watch.
    let lp = WatchParams::default().labels("tier=db");
    let mut s = api.watch(&lp, "0").await.expect("watch").boxed();
    assert_eq!(kind(next(&mut s).await.unwrap()), "ADDED b");
    fake.apply(with_label(fake::pod("shop", "b"), "tier", "web"));
    assert_eq!(kind(next(&mut s).await.unwrap()), "DELETED b");

    // Older than the compaction point: a single 410 ERROR event.
    fake.compact();
    let mut s = api
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .expect("watch")
        .boxed();
    assert_eq!(kind(next(&mut s).await.unwrap()), "ERROR 410");
    assert!(s.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn metadata_lists_and_watches_carry_no_data() {
    let fake = FakeKube::start().await;
    fake.apply(fake::secret(
        "shop",
        "db-password",
        [("password", "hunter2")],
    ));
    fake.apply(fake::secret("shop", "api-token", [("token", "t0ken")]));
    let client = client(&fake).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop");

    let full = secrets.get("db-password").await.unwrap();
    assert_eq!(full.data.unwrap()["password"].0, b"hunter2");
    let list = secrets
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(names(list.items), ["api-token", "db-password"]);
    let accept = fake.requests().last().unwrap().accept.clone().unwrap();
    assert!(accept.contains("as=PartialObjectMetadataList"), "{accept}");
    let one = secrets
        .get_metadata("api-token")
        .await
        .expect("metadata get");
    assert_eq!(
        one.metadata.uid.as_deref(),
        Some(fake::uid_for("Secret", "shop", "api-token").as_str())
    );

    // What actually crosses the wire: metadata only.
    let raw: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/shop/secrets", fake.url()))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["items"][0]["kind"], "PartialObjectMetadata");
    assert!(raw["items"][0].get("data").is_none());
    assert_eq!(raw["items"][0]["metadata"]["name"], "api-token");

    let mut w = watcher::watcher(
        Api::<PartialObjectMeta<Secret>>::namespaced(client, "shop"),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();
    assert_eq!(
        events(&mut w, 4).await,
        [
            "Init",
            "InitApply(api-token)",
            "InitApply(db-password)",
            "InitDone"
        ]
    );
    fake.apply(fake::secret("shop", "new", [("k", "v")]));
    assert_eq!(describe(next(&mut w).await), "Apply(new)");
}

#[tokio::test(start_paused = true)]
async fn logs_honour_container_tail_since_and_timestamps() {
    let fake = FakeKube::start().await;
    let mut p = fake::pod("shop", "web-1");
    p["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy:1.30"}));
    fake.apply(p);
    fake.set_logs(
        "shop",
        "web-1",
        "app",
        [
            ("2025-03-01T10:00:00Z", "starting"),
            ("2025-03-01T10:00:30Z", "listening on :8080"),
            ("2025-03-01T10:01:00Z", "GET /healthz 200"),
            ("2025-03-01T10:01:30Z", "panic: nil map"),
        ],
    );
    let pods: Api<Pod> = Api::namespaced(client(&fake).await, "shop");
    let app = |lp: LogParams| LogParams {
        container: Some("app".into()),
        ..lp
    };

    assert_eq!(
        api_code(pods.logs("web-1", &LogParams::default()).await),
        400
    );
    assert_eq!(
        api_code(pods.logs("nope", &app(LogParams::default())).await),
        404
    );
    let all = pods
        .logs("web-1", &app(LogParams::default()))
        .await
        .unwrap();
    assert_eq!(all.lines().count(), 4);
    let tail = pods
        .logs(
            "web-1",
            &app(LogParams {
                tail_lines: Some(2),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(tail, "GET /healthz 200\npanic: nil map\n");
    // Since the latest line by default, since the fake now once set.
    let since = pods
        .logs(
            "web-1",
            &app(LogParams {
                since_seconds: Some(60),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        since.lines().collect::<Vec<_>>(),
        ["listening on :8080", "GET /healthz 200", "panic: nil map"]
    );
    fake.set_now("2025-03-01T10:01:45Z");
    let stamped = pods
        .logs(
            "web-1",
            &app(LogParams {
                since_seconds: Some(30),
                timestamps: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(stamped, "2025-03-01T10:01:30.000000000Z panic: nil map\n");
    assert_eq!(
        pods.logs(
            "web-1",
            &LogParams {
                container: Some("sidecar".into()),
                ..Default::default()
            }
        )
        .await
        .unwrap(),
        ""
    );
    let log_req = fake
        .requests()
        .into_iter()
        .rfind(|r| r.verb == "log")
        .unwrap();
    assert_eq!(log_req.param("container"), Some("sidecar"));
}

#[tokio::test(start_paused = true)]
async fn injected_failures_auth_and_stalls() {
    let fake = FakeKube::start_with_token("s3cret").await;
    fake.apply(fake::pod("shop", "a"));
    let client = client(&fake).await;
    let pods: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let wrong = client_for(&fake.kubeconfig().replace("s3cret", "nope")).await;
    assert_eq!(
        api_code(Api::<Pod>::all(wrong).list(&ListParams::default()).await),
        401
    );

    fake.fail_with(403);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden")),
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(api_code(client.apiserver_version().await), 403);
    fake.fail_with(500);
    let shop: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert_eq!(api_code(shop.get("a").await.map(|_| ())), 500);
    fake.recover();
    assert!(pods.list(&ListParams::default()).await.is_ok());

    // A stalled request is held while (virtual) time passes, and answered on recover.
    fake.clear_requests();
    fake.stall();
    let pending = tokio::spawn({
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default())
                .await
                .map(|l| l.items.len())
        }
    });
    while fake.lists("pods") == 0 {
        // Until the fake holds the request; yielding does not advance the paused clock.
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!pending.is_finished(), "a stalled request is not answered");
    fake.recover();
    assert_eq!(pending.await.unwrap().unwrap(), 1);

    // On the client's clock, a stalled request times out.
    fake.stall();
    let stalled =
        tokio::time::timeout(Duration::from_secs(30), pods.list(&ListParams::default())).await;
    assert!(stalled.is_err(), "a stalled request is never answered");
    fake.recover();
    assert!(pods.list(&ListParams::default()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_registered_crd_is_discovered_and_listed() {
    let fake = FakeKube::start().await;
    fake.register_kind("example.com", "v1", "Widget", "widgets", true);
    fake.apply(json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "shop"},
        "spec": {"size": 3},
    }));
    let client = client(&fake).await;

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk)
        .await
        .expect("pinned kind");
    assert_eq!(ar.plural, "widgets");
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    let widgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = widgets
        .list(&ListParams::default())
        .await
        .expect("list widgets");
    assert_eq!(names(list.items.clone()), ["w1"]);
    assert_eq!(list.items[0].data["spec"]["size"], 3);

    let core = kube::discovery::pinned_kind(&client, &GroupVersionKind::gvk("", "v1", "Pod"))
        .await
        .unwrap();
    let pod = ApiResource::erase::<Pod>(&());
    assert_eq!((core.0.plural, core.0.kind), (pod.plural, pod.kind));
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(discovery.has_group("example.com") && discovery.has_group("apps"));
    let aggregated = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let (ar, _) = aggregated
        .resolve_gvk(&gvk)
        .expect("widget in aggregated discovery");
    assert_eq!(ar.plural, "widgets");
}
