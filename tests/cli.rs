//! The binary as operators use it: `check-config` on good and bad files, `run` with SIGTERM
//! (readiness off, drain, clean exit) and a second signal (abort), and `status`.
//! Synchronisation is on the program's own log lines, never on sleeps.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;

use common::process::{Running, BIN};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples"))
}

fn check_config(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn check_config_accepts_the_production_example() {
    let (code, out) = check_config(&examples().join("production.yaml"), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid"), "{out}");
    assert!(
        out.contains("clusters [local, dev, staging, production]"),
        "{out}"
    );
    assert!(
        out.contains("environments [local, dev, staging, production]"),
        "{out}"
    );
}

#[test]
fn check_config_reads_the_cluster_kubeconfigs() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.kubeconfig");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://10.0.0.1:6443\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.kubeconfig");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n",
    )
    .unwrap();
    let file = dir.path().join("k8s.yaml");
    let write = |clusters: &str| {
        std::fs::write(
            &file,
            format!("observability_integration: {{enabled: false}}\nkubernetes_integration:\n  enabled: true\n  clusters:\n{clusters}"),
        )
        .unwrap()
    };
    write(&format!(
        "    - {{name: dev, kubeconfig_path: {}}}\n",
        good.display()
    ));
    let (code, out) = check_config(&file, &[]);
    assert_eq!(code, 0, "{out}");
    write(&format!(
        "    - {{name: dev, kubeconfig_path: {}}}\n    - {{name: staging, kubeconfig_path: {}}}\n    - {{name: prod, kubeconfig_path: /nonexistent/kubeconfig}}\n",
        good.display(),
        bad.display()
    ));
    let (code, out) = check_config(&file, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("kubernetes_integration.clusters.1.kubeconfig_path: cluster \"staging\": invalid kubeconfig"), "{out}");
    assert!(
        out.contains("kubernetes_integration.clusters.2.kubeconfig_path: cluster \"prod\""),
        "{out}"
    );
    assert!(out.contains("No such file"), "{out}");
    assert!(out.contains("2 problem(s) found"), "{out}");
}

#[test]
fn check_config_names_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kubernetes_integration:\n  enabled: true\n  poll_interval: often\n  clusters:\n    - name: dev\n      in_cluster: true\n      colour: red\npaging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n  escalation:\n    business_hours:\n      timezone: Mars/Base\n",
    )
    .unwrap();
    let (code, out) = check_config(&bad, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("kubernetes_integration.poll_interval: invalid value: string \"often\", expected a duration"), "{out}");
    assert!(
        out.contains("kubernetes_integration.clusters.0.colour: unknown key `colour`"),
        "{out}"
    );
    assert!(out.contains("paging_integration.escalation.business_hours.timezone: unknown time zone \"Mars/Base\""), "{out}");
    assert!(out.contains("3 problem(s) found"), "{out}");
}

#[test]
fn check_config_names_a_missing_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let jira = secrets.path().join("platform/jira-credentials");
    std::fs::create_dir_all(&jira).unwrap();
    std::fs::write(jira.join("email"), "sre@example.com").unwrap();
    std::fs::write(jira.join("api_token"), "tok").unwrap();
    let file = secrets.path().join("ticketing.yaml");
    std::fs::write(
        &file,
        "ticketing_integration:\n  enabled: true\n  jira:\n    base_url: https://x.atlassian.net\n    project_key: SRE\n    secret_ref: platform/jira-credentials\n  github:\n    repo: org/sre-incidents\n    secret_ref: platform/github-token\n",
    )
    .unwrap();
    let (code, out) = check_config(&file, &["--secrets-dir", secrets.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ticketing_integration.github.secret_ref: secret platform/github-token has no key \"token\""), "{out}");
    assert!(!out.contains("jira"), "the jira secret is there: {out}");
    assert!(!out.contains("tok\n"), "secret values never print: {out}");
}

/// Starts `run` with a configuration whose shutdown grace is `grace`.
fn start(grace: &str) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: {grace}\n  drain_timeout: 5s\nintents:\n  embedded:\n    data_dir: {}\nobservability_integration:\n  enabled: true\n  alertmanager: {{}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    (Running::start(&cfg), dir)
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn run_serves_then_sigterm_drains_and_exits_cleanly() {
    let (mut r, _dir) = start("2s");
    assert_eq!(http_get(r.addr, "/readyz").0, 200);

    let status = Command::new(BIN)
        .args(["status", "--url", &format!("http://{}", r.addr)])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{tree}");
    assert!(tree.starts_with("root  running\n"), "{tree}");
    assert!(tree.contains("─ http  running"), "{tree}");
    assert!(tree.contains("─ publisher  running"), "{tree}");

    r.signal("-TERM");
    r.wait_for("shutting down: readiness is false");
    let (code, body) = http_get(r.addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    r.wait_for("\"stopped\"");
    let exit = r.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn a_second_signal_aborts() {
    let (mut r, _dir) = start("10m");
    r.signal("-TERM");
    r.wait_for("shutting down: readiness is false");
    r.signal("-INT");
    let exit = r.child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
}

#[test]
fn status_reports_an_unreachable_instance() {
    let out = Command::new(BIN)
        .args(["status", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read http://127.0.0.1:9/v1/supervision"));
}

/// Runs `cmd` and returns its exit code and stderr; a process still running after 30s (it did
/// not refuse to start) is killed and reported with no code.
fn run_until_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut code = None;
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            code = status.code();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, err)
}

#[test]
fn an_unauthenticated_webhook_on_a_reachable_address_is_refused_at_start_and_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!(
                "server:\n  listen: 0.0.0.0:0\nintents:\n  embedded:\n    data_dir: {}\nobservability_integration:\n  enabled: true\n  alertmanager:\n    auth: {{type: none}}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap()
    };
    write("");
    let why = "observability_integration.alertmanager.auth: the webhook has no authentication (type: none) but server.listen is 0.0.0.0:0";
    let (code, out) = check_config(&file, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(why), "{out}");
    let (code, text) = run_until_exit(Command::new(BIN).args(["run", "--config"]).arg(&file));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(why), "{text}");
    // The environment can expose the embedded configuration too.
    let (code, text) = run_until_exit(
        Command::new(BIN)
            .arg("run")
            .env_remove("SRE_CONFIG")
            .env("SRE_LISTEN_ADDR", "0.0.0.0:0"),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("embedded local.yaml: observability_integration.alertmanager.auth: the webhook has no authentication"), "{text}");

    write("    allow_unauthenticated: true\n");
    let (code, out) = check_config(&file, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn status_sends_the_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secrets/platform/ops-token");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "ops-s3cret").unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 0s\n  ops_auth: {{secret_ref: platform/ops-token}}\nintents:\n  embedded:\n    data_dir: {}\nsecrets:\n  dir: {}\n",
            dir.path().join("data").display(),
            dir.path().join("secrets").display()
        ),
    )
    .unwrap();
    let mut r = Running::start(&cfg);
    let url = format!("http://{}", r.addr);
    let out = Command::new(BIN)
        .args(["status", "--url", &url])
        .env_remove("SRE_STATUS_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["status", "--url", &url])
        .env("SRE_STATUS_TOKEN", "ops-s3cret")
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tree}");
    assert!(tree.starts_with("root  running\n"), "{tree}");
    r.signal("-TERM");
    assert_eq!(r.child.wait().unwrap().code(), Some(0));
}

#[test]
fn intents_tail_skips_and_counts_unreadable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("intents:\n  embedded:\n    data_dir: {}\n", data.display()),
    )
    .unwrap();
    let log = data.join("sre.domain.intents.v1");
    std::fs::create_dir_all(&log).unwrap();
    // A record, a crash's zero bytes, another record, a torn line.
    let line = |offset: u64| {
        format!(
            "{{\"offset\":{offset},\"timestamp\":1,\"topic\":\"sre.domain.intents.v1\",\"key\":\"k{offset}\",\"headers\":{{\"ce_type\":\"IngestAlertRequested\"}},\"value\":{{}}}}\n"
        )
    };
    let mut bytes = line(0).into_bytes();
    bytes.extend_from_slice(&[0u8; 512]);
    bytes.push(b'\n');
    bytes.extend_from_slice(line(1).as_bytes());
    bytes.extend_from_slice(b"{\"offset\":2,\"tim");
    std::fs::write(log.join(format!("{:020}.jsonl", 0)), bytes).unwrap();

    let out = Command::new(BIN)
        .args(["intents", "tail", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
        .collect();
    assert_eq!(keys, ["\"k0\"", "\"k1\""]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("skipped 1 unreadable line"), "{stderr}");
}

/// `facts append` feeds the embedded facts source, `run` applies the facts to the local
/// incident ledger, and `incidents show` prints the entry (exit 1 for an unknown incident).
#[test]
fn facts_append_then_incidents_show() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 0s\nintents:\n  embedded:\n    data_dir: {}\nfacts:\n  enabled: true\n  data_dir: {}\n  poll_interval: 20ms\n",
            dir.path().join("intents").display(),
            dir.path().join("facts").display()
        ),
    )
    .unwrap();
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(
        &facts,
        concat!(
            r#"{"key":"incident:inc-1","headers":{"ce_type":"IncidentCreated","ce_id":"f-1"},"value":{"incidentId":"inc-1","occurredAt":"2026-12-07T09:00:00Z","revision":1,"title":"Checkout down","severity":"critical"}}"#,
            "\n",
            r#"{"key":"incident:inc-1","headers":{"ce_type":"IncidentAcknowledged","ce_id":"f-2"},"value":{"incidentId":"inc-1","occurredAt":"2026-12-07T09:01:00Z","revision":2,"acknowledgedBy":"ana"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["facts", "append", "--config"])
        .arg(&cfg)
        .arg("--file")
        .arg(&facts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("appended 2 fact(s)"));
    let show = |id: &str| {
        Command::new(BIN)
            .args(["incidents", "show", "--config"])
            .arg(&cfg)
            .arg(id)
            .output()
            .unwrap()
    };
    let running = Running::start(&cfg);
    let mut entry = serde_json::Value::Null;
    for _ in 0..500 {
        let out = show("inc-1");
        if out.status.success() {
            entry = serde_json::from_slice(&out.stdout).unwrap();
            if entry["revision"] == 2 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(running);
    assert_eq!(entry["lifecycle"], "acknowledged", "{entry}");
    assert_eq!(entry["last_ce_id"], "f-2");
    assert_eq!(entry["created"]["title"], "Checkout down");
    assert_eq!(show("inc-unknown").status.code(), Some(1));
}
