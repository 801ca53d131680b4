//! The configuration as operators meet it: the shipped examples load, and each kind of mistake
//! is reported with the file, the key path and what was expected, all in one run.

use std::path::Path;

use sre_config::{Config, SecretStore};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
}

#[test]
fn embedded_default_is_valid_and_needs_no_secret() {
    let c = Config::embedded();
    assert!(c.alertmanager().is_some());
    assert!(c.kubernetes().is_none());
    assert!(c.secret_needs().is_empty());
    assert_eq!(
        c.upstreams()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["prometheus"]
    );
}

#[test]
fn production_example_has_every_section_and_upstream() {
    let c = Config::load(&examples().join("production.yaml")).unwrap();
    let names: Vec<String> = c.upstreams().into_iter().map(|u| u.name).collect();
    for want in [
        "jira",
        "github",
        "pagerduty",
        "prometheus",
        "loki",
        "tempo",
        "grafana",
        "argocd:local",
        "argocd:dev",
        "argocd:staging",
        "argocd:production",
        "k8s:local",
        "k8s:dev",
        "k8s:staging",
        "k8s:production",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing upstream {want} in {names:?}"
        );
    }
    let argocd = c
        .upstreams()
        .into_iter()
        .find(|u| u.name == "argocd:dev")
        .unwrap();
    assert_eq!(
        argocd.base_url.unwrap().as_str(),
        "https://argocd-server.argocd.svc.cluster.local/"
    );
    assert_eq!(c.kubernetes().unwrap().poll_interval.as_secs(), 60);
    assert_eq!(
        c.alertmanager().unwrap().idempotency.dedup_window.as_secs(),
        300
    );
    let summary = c.summary().join("\n");
    assert!(
        summary.contains("clusters [local, dev, staging, production]"),
        "{summary}"
    );
    assert!(
        summary.contains("listen: 0.0.0.0:8080, at most 1024 connections; /metrics and /v1/supervision need the bearer token of platform/sre-ops-token"),
        "{summary}"
    );
}

#[test]
fn every_structural_mistake_is_named_in_one_run() {
    let text = r#"
observability_integration:
  enabled: true
  alertmanager:
    idempotency:
      dedup_window: five minutes
    colour: blue
paging_integration:
  enabled: true
  pagerduty:
    routing_key_ref: platform/pd
  escalation:
    business_hours:
      timezone: Mars/Base
server:
  listen: 0.0.0.0:8080
  bogus: 1
"#;
    let errs = Config::parse(text, "bad.yaml").unwrap_err();
    let all = errs.to_string();
    assert!(
        all.contains("bad.yaml: observability_integration.alertmanager.idempotency.dedup_window:"),
        "{all}"
    );
    assert!(
        all.contains(
            "bad.yaml: observability_integration.alertmanager.colour: unknown key `colour`"
        ),
        "{all}"
    );
    assert!(
        all.contains(
            "bad.yaml: paging_integration.escalation.business_hours.timezone: unknown time zone \"Mars/Base\""
        ),
        "{all}"
    );
    assert!(
        all.contains("bad.yaml: server.bogus: unknown key `bogus`"),
        "{all}"
    );
    assert_eq!(errs.0.len(), 4, "{all}");
}

#[test]
fn cross_field_mistakes_are_all_reported() {
    let text = r#"
kubernetes_integration:
  enabled: true
  clusters:
    - name: dev
    - name: dev
      kubeconfig_path: /k
      in_cluster: true
  watch:
    event_max_age: 0s
ticketing_integration:
  enabled: true
  default_provider: github
  jira:
    base_url: https://x.atlassian.net
    project_key: sre
    secret_ref: platform/jira
supervision:
  restart:
    jitter: 1.5
"#;
    let errs = Config::parse(text, "x.yaml").unwrap_err();
    for want in [
        "kubernetes_integration.clusters.0: cluster \"dev\" needs exactly one of",
        "kubernetes_integration.clusters.1.name: duplicate name \"dev\"",
        "kubernetes_integration.clusters.1: cluster \"dev\" needs exactly one of kubeconfig_secret_ref, kubeconfig_path, in_cluster (found 2)",
        "kubernetes_integration.watch.event_max_age: must be greater than zero",
        "ticketing_integration.default_provider: is github but the github section is missing",
        "ticketing_integration.jira.project_key",
        "supervision.restart.jitter: 1.5 is outside [0, 1)",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }
}

#[test]
fn a_missing_secret_names_the_integration_that_needs_it() {
    let c = Config::load(&examples().join("production.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gh = dir.path().join("platform/github-token");
    std::fs::create_dir_all(&gh).unwrap();
    std::fs::write(gh.join("token"), "ghp_x").unwrap();
    let errs = c
        .check_secrets(&SecretStore::new(dir.path()), "production.yaml")
        .unwrap_err();
    assert!(errs.mentions("production.yaml: ticketing_integration.jira.secret_ref: secret platform/jira-credentials has no key \"email\""), "{errs}");
    assert!(
        errs.mentions("paging_integration.pagerduty.routing_key_ref"),
        "{errs}"
    );
    assert!(
        !errs.mentions("ticketing_integration.github"),
        "the github token exists: {errs}"
    );
    assert!(!errs.mentions("ghp_x"));
}

#[test]
fn legacy_alertmanager_section_maps_onto_the_new_one() {
    let text = "alertmanager_integration:\n  enabled: true\n  webhook_path: /hooks/am\n  idempotency:\n    dedup_window: 2m\n";
    let c = Config::parse(text, "legacy.yaml").unwrap();
    let am = c.alertmanager().unwrap();
    assert_eq!(am.webhook_path, "/hooks/am");
    assert_eq!(am.idempotency.dedup_window.as_secs(), 120);

    let both = "alertmanager_integration:\n  enabled: true\nobservability_integration:\n  enabled: true\n  alertmanager: {}\n";
    let errs = Config::parse(both, "both.yaml").unwrap_err();
    assert!(errs.mentions("keep one"), "{errs}");
}

#[test]
fn environment_overrides_apply_and_are_checked() {
    let mut c = Config::embedded();
    c.apply_env(|k| match k {
        "SRE_LISTEN_ADDR" => Some("0.0.0.0:9000".into()),
        "SRE_KAFKA_BROKERS" => Some("k1:9092,k2:9092".into()),
        "SRE_LOG_FORMAT" => Some("json".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.intents.kafka.brokers, "k1:9092,k2:9092");
    assert_eq!(c.telemetry.log_format, sre_config::LogFormat::Json);
    let errs = c
        .apply_env(|k| (k == "SRE_LOG_FORMAT").then(|| "xml".to_string()))
        .unwrap_err();
    assert!(
        errs.mentions("environment: SRE_LOG_FORMAT: unknown log format \"xml\""),
        "{errs}"
    );
}

#[test]
fn yaml_syntax_errors_carry_a_line() {
    let errs = Config::parse("server:\n  listen: [\n", "broken.yaml").unwrap_err();
    assert!(errs.mentions("broken.yaml: not valid YAML (line"), "{errs}");
}

#[test]
fn absurd_dedup_windows_and_a_retention_shorter_than_the_window_are_refused() {
    let doc = |window: &str, retention: &str| {
        format!(
            "observability_integration:\n  enabled: true\n  alertmanager:\n    idempotency:\n      dedup_window: {window}\nintents:\n  sink: embedded\n  embedded:\n    retention_age: {retention}\n"
        )
    };
    let errs = Config::parse(&doc("0s", "7d"), "w.yaml").unwrap_err();
    assert!(
        errs.mentions("w.yaml: observability_integration.alertmanager.idempotency.dedup_window: must be greater than zero"),
        "{errs}"
    );
    let errs = Config::parse(&doc("25h", "7d"), "w.yaml").unwrap_err();
    assert!(
        errs.mentions("observability_integration.alertmanager.idempotency.dedup_window: 1day 1h is longer than 24h"),
        "{errs}"
    );
    let errs = Config::parse(&doc("10m", "5m"), "w.yaml").unwrap_err();
    assert!(
        errs.mentions("w.yaml: intents.embedded.retention_age: 5m is shorter than observability_integration.alertmanager.idempotency.dedup_window (10m)"),
        "{errs}"
    );
    assert_eq!(errs.0.len(), 1, "{errs}");
    // Equal is enough; and the Kafka sink's retention is the broker's business.
    Config::parse(&doc("10m", "10m"), "w.yaml").unwrap();
    Config::parse(
        &doc("10m", "5m").replace("sink: embedded", "sink: kafka"),
        "w.yaml",
    )
    .unwrap();
    let c = Config::parse(&doc("24h", "7d"), "w.yaml").unwrap();
    assert_eq!(
        c.alertmanager().unwrap().idempotency.dedup_window.as_secs(),
        86400
    );
}

#[test]
fn server_limits_have_safe_defaults_and_are_checked() {
    let c = Config::embedded();
    assert_eq!(c.server.header_read_timeout.as_secs(), 10);
    assert_eq!(c.server.request_timeout.as_secs(), 30);
    assert_eq!(c.server.idle_timeout.as_secs(), 95);
    assert_eq!(c.server.max_connections, 1024);
    assert_eq!(c.alertmanager().unwrap().max_alerts, 1000);
    assert!(c.server.ops_auth.is_none());

    let text = "server:\n  header_read_timeout: 0s\n  request_timeout: 5s\n  max_connections: 0\n  ops_auth:\n    secret_ref: platform/ops-token\nobservability_integration:\n  enabled: true\n  alertmanager:\n    max_alerts: 0\n";
    let errs = Config::parse(text, "s.yaml").unwrap_err();
    for want in [
        "s.yaml: server.header_read_timeout: must be greater than zero",
        "s.yaml: server.request_timeout: 5s must be longer than intents.publish_timeout (10s)",
        "s.yaml: server.max_connections: must be at least 1",
        "s.yaml: observability_integration.alertmanager.max_alerts: must be at least 1",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }
    assert_eq!(errs.0.len(), 4, "{errs}");

    let c = Config::parse(
        "server:\n  ops_auth:\n    secret_ref: platform/ops-token\n",
        "s.yaml",
    )
    .unwrap();
    assert!(c
        .secret_needs()
        .iter()
        .any(|n| n.path == "server.ops_auth.secret_ref" && n.keys == ["token"]));
}

#[test]
fn an_unauthenticated_webhook_is_refused_on_a_reachable_address_unless_allowed() {
    let mut c = Config::embedded();
    c.check_exposure("local.yaml").unwrap();
    c.apply_env(|k| (k == "SRE_LISTEN_ADDR").then(|| "0.0.0.0:8080".to_string()))
        .unwrap();
    let errs = c.check_exposure("local.yaml").unwrap_err();
    assert!(
        errs.mentions("local.yaml: observability_integration.alertmanager.auth: the webhook has no authentication (type: none) but server.listen is 0.0.0.0:8080"),
        "{errs}"
    );
    assert!(errs.mentions("allow_unauthenticated: true"), "{errs}");

    let allowed = "observability_integration:\n  enabled: true\n  alertmanager:\n    allow_unauthenticated: true\nserver:\n  listen: 0.0.0.0:8080\n";
    Config::parse(allowed, "a.yaml")
        .unwrap()
        .check_exposure("a.yaml")
        .unwrap();
    let legacy = "alertmanager_integration:\n  enabled: true\nserver:\n  listen: \"[::]:8080\"\n";
    let errs = Config::parse(legacy, "l.yaml")
        .unwrap()
        .check_exposure("l.yaml")
        .unwrap_err();
    assert!(
        errs.mentions("l.yaml: alertmanager_integration.auth: the webhook has no authentication"),
        "{errs}"
    );
    let production = Config::load(&examples().join("production.yaml")).unwrap();
    production.check_exposure("production.yaml").unwrap();
}

#[test]
fn slo_definitions_are_checked_each_with_its_key_path() {
    let doc = "observability_integration:\n  enabled: true\n  sli_calculation:\n    schedule: '*/5 * * * *'\n    timezone: Europe/Berlin\n    slos:\n      - {name: a, service: s, objective: 99.9, good: 'sum(x[$window])', total: 'sum(y[$window])'}\n      - {name: a, service: s, objective: 100, good: '  ', total: 'sum(y[$window]'}\n      - {name: 'b:c', service: s, objective: 0, good: 'x', total: 'y'}\n";
    let errs = Config::parse(doc, "s.yaml").unwrap_err();
    for want in [
        "s.yaml: observability_integration.sli_calculation: needs observability_integration.prometheus",
        "s.yaml: observability_integration.sli_calculation.slos[1].name: \"a\" is used by another SLO: names must be unique",
        "s.yaml: observability_integration.sli_calculation.slos[1].objective: 100 is not a percentage above 0 and below 100",
        "s.yaml: observability_integration.sli_calculation.slos[1].good: a PromQL expression is required",
        "s.yaml: observability_integration.sli_calculation.slos[1].total: unbalanced brackets",
        "s.yaml: observability_integration.sli_calculation.slos[2].name: \"b:c\": expected letters, digits",
        "s.yaml: observability_integration.sli_calculation.slos[2].objective: 0 is not a percentage",
    ] {
        assert!(errs.mentions(want), "{want}\n{errs}");
    }
    assert_eq!(errs.0.len(), 7, "{errs}");
    let ok = doc.lines().take(7).collect::<Vec<_>>().join("\n").replace(
        "  enabled: true\n",
        "  enabled: true\n  prometheus: {url: 'http://prometheus:9090/'}\n",
    );
    let c = Config::parse(&ok, "s.yaml").unwrap();
    let sli = c.observability().unwrap().sli_calculation.as_ref().unwrap();
    assert_eq!(sli.slos.len(), 1);
    assert_eq!(sli.catch_up, std::time::Duration::from_secs(3600));
    assert_eq!(sli.query_delay, std::time::Duration::from_secs(30));
}

#[test]
fn kafka_security_is_typed_and_properties_cannot_take_it_over() {
    let ok = r#"
intents:
  sink: kafka
  kafka:
    brokers: k:9093
    security:
      protocol: sasl_ssl
      tls: {ca_path: /ca.pem}
      sasl: {mechanism: SCRAM-SHA-256, secret_ref: platform/kafka}
"#;
    let c = Config::parse(ok, "ok.yaml").unwrap();
    let needs = c.secret_needs();
    assert!(
        needs
            .iter()
            .any(|n| n.path == "intents.kafka.security.sasl.secret_ref"
                && n.secret.to_string() == "platform/kafka"
                && n.keys == ["username", "password"]),
        "{needs:?}"
    );

    let bad = r#"
intents:
  sink: kafka
  kafka:
    security:
      protocol: sasl_plaintext
      tls: {cert_path: /c.pem}
    properties:
      acks: "1"
      enable.idempotence: "false"
      security.protocol: plaintext
      sasl.password: hunter2
      ssl.ca.location: /x
"#;
    let errs = Config::parse(bad, "x.yaml").unwrap_err();
    for want in [
        "intents.kafka.properties.acks: cannot be overridden",
        "intents.kafka.properties.enable.idempotence: cannot be overridden",
        "intents.kafka.properties.security.protocol: set intents.kafka.security.protocol instead",
        "intents.kafka.properties.sasl.password: set intents.kafka.security.sasl instead",
        "intents.kafka.properties.ssl.ca.location: set intents.kafka.security.tls instead",
        "intents.kafka.security.sasl: protocol sasl_plaintext needs sasl",
        "intents.kafka.security.tls: protocol sasl_plaintext does not use TLS",
        "intents.kafka.security.tls: cert_path and key_path go together",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }
    assert!(!errs.to_string().contains("hunter2"), "{errs}");

    let wrong = "intents:\n  kafka:\n    security:\n      sasl: {mechanism: SCRAM-SHA-1, secret_ref: a/b}\n";
    let errs = Config::parse(wrong, "w.yaml").unwrap_err();
    assert!(errs.to_string().contains("SCRAM-SHA-512"), "{errs}");
}

#[test]
fn query_backend_credentials_are_secrets_the_program_needs() {
    let doc = "observability_integration:\n  enabled: true\n  prometheus:\n    url: https://prometheus:9090/\n    auth: {type: basic, secret_ref: monitoring/prometheus-proxy}\n    ca_cert_path: /etc/ca.pem\n  loki:\n    url: http://loki:3100/\n    auth: {type: bearer, secret_ref: monitoring/loki}\n";
    let c = Config::parse(doc, "q.yaml").unwrap();
    let needs: Vec<(String, Vec<&str>)> = c
        .secret_needs()
        .into_iter()
        .map(|n| (n.path, n.keys.to_vec()))
        .collect();
    assert!(
        needs.contains(&(
            "observability_integration.prometheus.auth.secret_ref".into(),
            vec!["username", "password"]
        )),
        "{needs:?}"
    );
    assert!(
        needs.contains(&(
            "observability_integration.loki.auth.secret_ref".into(),
            vec!["token"]
        )),
        "{needs:?}"
    );
    let bad = doc.replace("type: basic", "type: digest");
    assert!(Config::parse(&bad, "q.yaml").is_err());
}

#[test]
fn paging_routes_escalation_and_business_days_are_checked() {
    let text = r#"
paging_integration:
  enabled: true
  pagerduty:
    routing_key_ref: platform/pd
  routes:
    - service: checkout
      provider: opsgenie
    - service: search
      team: search
    - environment: dev
  escalation:
    medium: business_hours_only
    business_hours:
      start: "18:00"
      end: "09:00"
      days: [mon, fri]
      include_weekends: true
"#;
    let errs = Config::parse(text, "pg.yaml").unwrap_err();
    for want in [
        "pg.yaml: paging_integration.routes[0].provider: routes to opsgenie but the opsgenie section is missing",
        "pg.yaml: paging_integration.routes[1].team: a team only applies to opsgenie, and this route pages pagerduty",
        "pg.yaml: paging_integration.routes[2]: names no provider, routing_key_ref or team",
        "pg.yaml: paging_integration.escalation.business_hours: start (18:00) must be before end (09:00)",
        "pg.yaml: paging_integration.escalation.business_hours.include_weekends: is deprecated",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }

    let unknown_day = "paging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n  escalation:\n    business_hours:\n      days: [mon, funday]\n";
    let errs = Config::parse(unknown_day, "day.yaml").unwrap_err();
    assert!(
        errs.mentions("day.yaml: paging_integration.escalation.business_hours.days"),
        "{errs}"
    );
    assert!(errs.mentions("funday"), "{errs}");

    let both = "paging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n  opsgenie:\n    api_key_ref: platform/og\n";
    let errs = Config::parse(both, "both.yaml").unwrap_err();
    assert!(
        errs.mentions("both.yaml: paging_integration.default_provider: both pagerduty and opsgenie are configured"),
        "{errs}"
    );

    let ok = r#"
paging_integration:
  enabled: true
  opsgenie:
    api_key_ref: platform/og
  routes:
    - severity: critical
      team: night-watch
  escalation:
    low: immediate
    business_hours:
      include_weekends: true
"#;
    let c = Config::parse(ok, "ok.yaml").unwrap();
    let pg = c.paging().unwrap();
    assert_eq!(
        pg.default_provider(),
        Some(sre_config::PageProvider::Opsgenie)
    );
    assert_eq!(pg.routes[0].severity, [sre_config::PageSeverity::Critical]);
    assert_eq!(
        pg.escalation.policy(sre_config::PageSeverity::Low),
        sre_config::EscalationPolicy::Immediate
    );
    assert_eq!(
        pg.escalation.policy(sre_config::PageSeverity::Medium),
        sre_config::EscalationPolicy::Never
    );
    assert_eq!(pg.escalation.business_hours.business_days().len(), 7);
    assert_eq!(
        sre_config::BusinessHours::default().business_days(),
        sre_config::Day::ALL[..5]
    );
}

#[test]
fn production_example_pages_through_routes() {
    let c = Config::load(&examples().join("production.yaml")).unwrap();
    let pg = c.paging().unwrap();
    assert_eq!(pg.routes.len(), 2);
    assert_eq!(pg.routes[1].team.as_deref(), Some("data-platform"));
    let needs = c.secret_needs();
    assert!(needs
        .iter()
        .any(|n| n.path == "paging_integration.routes[0].routing_key_ref"));
}

#[test]
fn ticket_routes_and_providers_are_checked() {
    let text = r#"
observability_integration:
  enabled: true
  grafana:
    url: http://grafana:3000
    annotations:
      dashboard_uids: ["abc", "abc", ""]
ticketing_integration:
  enabled: true
  jira:
    base_url: https://x.atlassian.net
    project_key: SRE
    secret_ref: platform/jira
    labels: ["two words"]
  github:
    repo: org/incidents
    secret_ref: platform/gh
  routes:
    - project_key: OPS
    - service: checkout
      provider: github
      project_key: OPS
    - environment: dev
      provider: jira
      repo: org/dev
    - service: api
      provider: github
      repo: not-a-repo
"#;
    let errs = Config::parse(text, "x.yaml").unwrap_err();
    for want in [
        "ticketing_integration.jira.labels[0]: \"two words\": a Jira label is 1 to 255 characters without spaces",
        "ticketing_integration.routes[0]: matches nothing",
        "ticketing_integration.routes[1].project_key: is for Jira but the route goes to github",
        "ticketing_integration.routes[2].repo: is for GitHub but the route goes to jira",
        "ticketing_integration.routes[3].repo: \"not-a-repo\": expected \"owner/repo\"",
        "observability_integration.grafana.annotations.dashboard_uids[1]",
        "observability_integration.grafana.annotations.dashboard_uids[2]",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }
    let ok = text
        .replace("    - project_key: OPS\n", "")
        .replace("    labels: [\"two words\"]\n", "")
        .replace("      project_key: OPS\n", "")
        .replace("      repo: org/dev\n", "")
        .replace("repo: not-a-repo", "repo: org/api")
        .replace("[\"abc\", \"abc\", \"\"]", "[\"abc\"]");
    let c = Config::parse(&ok, "x.yaml").unwrap_or_else(|e| panic!("{e}\n{ok}"));
    let needs = c.secret_needs();
    let jira = needs
        .iter()
        .find(|n| n.path == "ticketing_integration.jira.secret_ref")
        .unwrap();
    assert_eq!(jira.keys, ["email", "api_token"]);
}
