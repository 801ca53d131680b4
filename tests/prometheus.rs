//! Real Prometheus (Debian package `prometheus`) scrapes `/metrics`, and `promtool check
//! metrics` accepts the exposition. Prometheus is a separate process on its own schedule, so
//! this test polls its API (bounded) for the scrape result.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::process::{free_port, require, Peer};
use sre_config::Config;
use sre_integration::app::AppHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_and_promtool_accepts_the_exposition() {
    require("prometheus");
    require("promtool");
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace = Duration::ZERO;
    let app = AppHandle::start(config).await.unwrap();
    let target = app.addr().await.unwrap();

    // promtool lints the classic text format that non-OpenMetrics clients get.
    let body = reqwest::get(format!("http://{target}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes (negotiating OpenMetrics) and ingests every family.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sre-integration\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Peer::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let query = |q: &'static str| {
        let client = client.clone();
        let api = api.clone();
        async move {
            let resp = client
                .get(format!("{api}/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = resp.json().await.ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        }
    };
    let mut up = None;
    for _ in 0..300 {
        up = query("up{job=\"sre-integration\"}").await;
        if up.as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "Prometheus never scraped the target successfully"
    );

    let targets: serde_json::Value = client
        .get(format!("{api}/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");

    assert_eq!(
        query("sre_supervisor_child_up{supervisor=\"ingest\",child=\"http\"}")
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        query("sre_supervisor_child_restarts_total{supervisor=\"providers\",child=\"prometheus\"}")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        query("sre_circuit_state{provider=\"prometheus\"}")
            .await
            .as_deref(),
        Some("0")
    );
    app.shutdown().await;
}

/// The Prometheus query client against real Prometheus on backfilled data: every window's
/// increase is exact, so the answers can be asserted to the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_client_reads_exact_numbers_from_backfilled_data() {
    use chrono::{TimeZone, Utc};
    use sre_actors::observability::prometheus::{PrometheusError, QueryData, Range};
    require("prometheus");
    require("promtool");
    let dir = tempfile::tempdir().unwrap();
    // One hour of samples every minute, ending ten minutes ago on a 5-minute boundary:
    // 2,000 good requests a minute (10,000 per 5 minutes), and 7 errors in one 5-minute window.
    let end = Utc::now().timestamp() / 300 * 300 - 600;
    let start = end - 3600;
    let bad_end = end - 1800;
    let bad_start = bad_end - 300;
    let mut om = String::from("# TYPE http_requests counter\n");
    for (code, value) in [
        (
            "200",
            &(|t: i64| (t - start) / 60 * 2000) as &dyn Fn(i64) -> i64,
        ),
        ("500", &|t: i64| if t >= bad_start + 120 { 7 } else { 0 }),
    ] {
        for t in (start..=end).step_by(60) {
            om.push_str(&format!(
                "http_requests_total{{service=\"checkout\",code=\"{code}\"}} {} {t}\n",
                value(t)
            ));
        }
    }
    om.push_str("# EOF\n");
    let input = dir.path().join("input.om");
    std::fs::write(&input, om).unwrap();
    let tsdb = dir.path().join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = free_port();
    let _prom = Peer::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&ready).await {
            if r.status() == 200 {
                up = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "Prometheus did not become ready");

    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace = Duration::ZERO;
    let obs = config.observability_integration.as_mut().unwrap();
    obs.prometheus =
        Some(serde_norway::from_str(&format!("url: http://127.0.0.1:{port}/")).unwrap());
    let app = AppHandle::start(config).await.unwrap();
    let prom = sre_actors::observability::prometheus::PrometheusClient::new(
        app.providers().client("prometheus").unwrap(),
        format!("http://127.0.0.1:{port}/").parse().unwrap(),
    );
    let at = |t: i64| Some(Utc.timestamp_opt(t, 0).unwrap());
    let good = r#"sum(increase(http_requests_total{service="checkout",code!~"5.."}[5m]))"#;
    let bad = r#"sum(increase(http_requests_total{service="checkout",code=~"5.."}[5m]))"#;
    let total = r#"sum(increase(http_requests_total{service="checkout"}[5m]))"#;
    let scalar = |o: &sre_actors::observability::prometheus::QueryOutput| -> Option<f64> {
        let s = o.data.series();
        assert!(s.len() <= 1, "{o:?}");
        s.first().map(|s| s.points[0].v)
    };
    for (window_end, want_good, want_bad) in [
        (bad_end, 10_000.0, 7.0),
        (bad_end + 300, 10_000.0, 0.0),
        (end, 10_000.0, 0.0),
    ] {
        let g = prom.instant(good, at(window_end), None).await.unwrap();
        let b = prom.instant(bad, at(window_end), None).await.unwrap();
        let t = prom.instant(total, at(window_end), None).await.unwrap();
        assert_eq!(scalar(&g), Some(want_good), "good at {window_end}");
        assert_eq!(scalar(&b), Some(want_bad), "bad at {window_end}");
        assert_eq!(
            scalar(&t),
            Some(want_good + want_bad),
            "total at {window_end}"
        );
        assert!(!g.truncated && g.warnings.is_empty());
    }
    // A window before the data: no series at all, never a zero.
    let none = prom.instant(total, at(start - 3600), None).await.unwrap();
    assert_eq!(none.data, QueryData::Vector(Vec::new()));

    // GetMetricRange: one point per step, the bad window among them.
    let range = prom
        .range(
            total,
            Range {
                start: Utc.timestamp_opt(bad_end - 600, 0).unwrap(),
                end: Utc.timestamp_opt(bad_end + 600, 0).unwrap(),
                step: Duration::from_secs(300),
            },
            None,
        )
        .await
        .unwrap();
    let QueryData::Matrix(series) = &range.data else {
        panic!("{range:?}")
    };
    let values: Vec<f64> = series[0].points.iter().map(|p| p.v).collect();
    assert_eq!(values, [10_000.0, 10_000.0, 10_007.0, 10_000.0, 10_000.0]);

    // A query too long for a URL goes as a POST form, with the same answer.
    let mut alternatives: Vec<String> = (0..100).map(|i| format!("5{i:02}")).collect();
    alternatives.extend((0..600).map(|i| format!("9{i:03}")));
    let long = format!(
        r#"sum(increase(http_requests_total{{service="checkout",code=~"{}"}}[5m]))"#,
        alternatives.join("|")
    );
    assert!(long.len() > 2048);
    let b = prom.instant(&long, at(bad_end), None).await.unwrap();
    assert_eq!(scalar(&b), Some(7.0));

    // Prometheus' own errors are typed.
    let err = prom.instant("sum(", None, None).await.unwrap_err();
    assert!(matches!(err, PrometheusError::BadQuery(_)), "{err}");
    let err = prom.instant("  ", None, None).await.unwrap_err();
    assert!(matches!(err, PrometheusError::Invalid(_)), "{err}");

    // The SLI scheduler on the same data, its clock just after the window after the bad one,
    // the sink holding the window before: it computes the bad window and the next, exactly,
    // and reports an SLO of a service without data as no data.
    let sli: sre_config::SliCalculation = serde_norway::from_str(&format!(
        "schedule: '*/5 * * * *'\nquery_delay: 30s\ncatch_up: 1h\nslos:\n  - name: checkout\n    service: checkout\n    objective: 99.9\n    good: '{good}'\n    total: '{total}'\n  - name: ghost\n    service: ghost\n    objective: 99\n    good: 'sum(increase(http_requests_total{{service=\"ghost\"}}[$window]))'\n    total: 'sum(increase(http_requests_total{{service=\"ghost\"}}[$window]))'\n",
        good = good.replace("[5m]", "[$window]"),
        total = total.replace("[5m]", "[$window]"),
    ))
    .unwrap();
    let before = Utc.timestamp_opt(bad_end - 300, 0).unwrap();
    let done = [("checkout", before), ("ghost", before)].map(|(slo, end)| {
        (
            format!(
                "sli:{slo}:{}",
                end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            0u64,
        )
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let args = sre_actors::sli::scheduler::SliArgs {
        config: sli,
        prometheus: prom.clone(),
        delivery: sre_actors::ingest::claim::Delivery::new(
            None,
            sre_actors::ingest::dedup::DedupSource::Sli,
            sre_actors::emit::Emitter::Channel(tx),
            Duration::from_secs(30),
        ),
        recent: std::sync::Arc::new(move |_| Ok(done.to_vec())),
        topic: "sre.domain.intents.v1".into(),
        source: "sre-integration/sli".into(),
        clock: sre_actors::sli::scheduler::tokio_clock(
            Utc.timestamp_opt(bad_end + 300 + 31, 0).unwrap(),
        ),
        progress: Default::default(),
        metrics: Default::default(),
    };
    let (scheduler, _) = ractor::Actor::spawn(None, sre_actors::sli::scheduler::SliScheduler, args)
        .await
        .unwrap();
    let mut windows = std::collections::BTreeMap::new();
    while windows.len() < 4 {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the windows within 30 s")
            .unwrap();
        for r in batch {
            let v: serde_json::Value = serde_json::from_str(r.value.get()).unwrap();
            let end = chrono::DateTime::parse_from_rfc3339(v["windowEnd"].as_str().unwrap())
                .unwrap()
                .timestamp();
            windows.insert((v["slo"].as_str().unwrap().to_owned(), end), v);
        }
    }
    let w = &windows[&("checkout".to_owned(), bad_end)];
    assert_eq!(
        (w["good"].as_f64(), w["total"].as_f64()),
        (Some(10_000.0), Some(10_007.0))
    );
    // (JSON's decimal round trip may move the last bit.)
    assert!(
        (w["ratio"].as_f64().unwrap() - 10_000.0 / 10_007.0).abs() < 1e-12,
        "{w}"
    );
    assert_eq!(w["noData"], false);
    let w = &windows[&("checkout".to_owned(), bad_end + 300)];
    assert_eq!(
        (w["good"].as_f64(), w["total"].as_f64()),
        (Some(10_000.0), Some(10_000.0))
    );
    assert_eq!(w["ratio"].as_f64(), Some(1.0));
    for end in [bad_end, bad_end + 300] {
        let w = &windows[&("ghost".to_owned(), end)];
        assert_eq!(w["noData"], true, "{w}");
        assert!(w["ratio"].is_null(), "no data is never a ratio: {w}");
    }
    scheduler.stop(None);
    app.shutdown().await;
}
