//! Checks that span fields (exactly one kubeconfig source, unique names, a default provider that
//! is configured, sane restart and circuit numbers), and the list of secrets each enabled
//! integration needs.

use std::collections::HashSet;
use std::time::Duration;

use url::Url;

use crate::error::Collector;
use crate::{
    ArgoCdIntegration, Config, EnvironmentEntry, PageProvider, SecretNeed, TicketProvider,
    WebhookAuth,
};

/// Paths the HTTP server owns; a webhook may not take them.
const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/v1/"];

pub(crate) fn validate(c: &Config, e: &mut Collector) {
    kubernetes(c, e);
    argocd(c, e);
    observability(c, e);
    ticketing(c, e);
    paging(c, e);
    supervision(c, e);
    intents(c, e);
    facts(c, e);
    server(c, e);
    crate::tools::validate_write_policy(c, e);
    tools(c, e);
}

fn tools(c: &Config, e: &mut Collector) {
    let t = &c.tools;
    let p = "tools";
    if let Some(r) = &t.auth_secret_ref {
        e.push(
            format!("{p}.auth_secret_ref"),
            format!("replaced by tools.tokens, where each token has a name and a role: write `tokens: [{{name: srecoder, role: agent, secret_ref: {r}}}]` and add an approver token"),
        );
    }
    unique(
        e,
        &format!("{p}.tokens"),
        t.tokens.iter().map(|t| t.name.as_str()),
    );
    e.check(
        !t.approval_ttl.is_zero(),
        &format!("{p}.approval_ttl"),
        || "must be greater than zero".into(),
    );
    e.check(
        t.max_pending_approvals >= 1,
        &format!("{p}.max_pending_approvals"),
        || "must be at least 1".into(),
    );
    e.check(
        t.max_output_bytes >= 1024,
        &format!("{p}.max_output_bytes"),
        || "must be at least 1024 bytes".into(),
    );
    e.check(
        t.max_body_bytes >= 1024,
        &format!("{p}.max_body_bytes"),
        || "must be at least 1024 bytes".into(),
    );
    e.check(
        !t.audit.topic.is_empty(),
        &format!("{p}.audit.topic"),
        || "must not be empty".into(),
    );
    e.check(
        (1..=100_000).contains(&t.mcp.max_sessions),
        &format!("{p}.mcp.max_sessions"),
        || format!("must be between 1 and 100000, got {}", t.mcp.max_sessions),
    );
    e.check(
        t.mcp.session_idle >= Duration::from_secs(1)
            && t.mcp.session_idle <= Duration::from_secs(86_400),
        &format!("{p}.mcp.session_idle"),
        || "must be between 1s and 24h".into(),
    );
    for (i, origin) in t.mcp.allowed_origins.iter().enumerate() {
        e.check(
            origin_pattern_ok(origin),
            &format!("{p}.mcp.allowed_origins[{i}]"),
            || {
                format!(
                    "{origin:?} is not an origin: write scheme://host or scheme://host:port \
                     (http or https; :* for any port; no path)"
                )
            },
        );
    }
    if let Some(hosts) = &t.mcp.allowed_hosts {
        e.check(!hosts.is_empty(), &format!("{p}.mcp.allowed_hosts"), || {
            "must list at least one host, or be left out to serve any".into()
        });
        for (i, host) in hosts.iter().enumerate() {
            e.check(
                !host.is_empty() && !host.contains(['/', ' ']),
                &format!("{p}.mcp.allowed_hosts[{i}]"),
                || format!("{host:?} is not a host: write name or name:port"),
            );
        }
    }
    e.check(
        t.audit.topic != c.intents.topic,
        &format!("{p}.audit.topic"),
        || "must differ from intents.topic (audit records are not intents)".into(),
    );
    // Against the server's limits only when served (a disabled section keeps its defaults).
    if t.enabled {
        e.check(
            !t.call_timeout.is_zero() && t.call_timeout < c.server.request_timeout,
            &format!("{p}.call_timeout"),
            || {
                format!(
                    "{} must be greater than zero and shorter than server.request_timeout ({}), or the request is cut off before the tool's timeout can be answered",
                    humantime::format_duration(t.call_timeout),
                    humantime::format_duration(c.server.request_timeout)
                )
            },
        );
        e.check(
            t.audit.timeout < c.server.request_timeout,
            &format!("{p}.audit.timeout"),
            || "must be shorter than server.request_timeout".into(),
        );
    }
    if let Some(listen) = t.listen {
        e.check(
            listen != c.server.listen || listen.port() == 0,
            &format!("{p}.listen"),
            || format!("{listen} is server.listen already: leave tools.listen out to serve the tools there, or give them another address"),
        );
    }
    if t.enabled && t.tokens.is_empty() && !t.allow_unauthenticated {
        e.push(
            format!("{p}.tokens"),
            "tools are enabled without tokens: configure tokens (name, role agent or approver, secret_ref), or set allow_unauthenticated: true on a loopback listener",
        );
    }
}

fn facts(c: &Config, e: &mut Collector) {
    let f = &c.facts;
    let p = "facts";
    for (key, d) in [
        ("poll_interval", f.poll_interval),
        ("min_backoff", f.min_backoff),
        ("commit_interval", f.commit_interval),
        ("ledger_retention", f.ledger_retention),
    ] {
        e.check(!d.is_zero(), &format!("{p}.{key}"), || {
            "must be greater than zero".into()
        });
    }
    e.check(
        (1..=1024).contains(&f.concurrency),
        &format!("{p}.concurrency"),
        || "must be between 1 and 1024".into(),
    );
    e.check(
        f.max_backoff >= f.min_backoff,
        &format!("{p}.max_backoff"),
        || "must be at least facts.min_backoff".into(),
    );
    for (key, t) in [
        ("topic", &f.topic),
        ("dead_letter_topic", &f.dead_letter_topic),
        ("ledger_topic", &f.ledger_topic),
    ] {
        e.check(
            !t.trim().is_empty() && !t.contains('/'),
            &format!("{p}.{key}"),
            || "must be a topic name (not empty, no '/')".into(),
        );
    }
}

/// The longest dedup window accepted: a day. Longer is a typo (`5h` for `5m`) or a design
/// mistake: the window is held in memory and rebuilt from the log at every start.
const MAX_DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn server(c: &Config, e: &mut Collector) {
    let s = &c.server;
    let p = "server";
    for (key, d) in [
        ("header_read_timeout", s.header_read_timeout),
        ("request_timeout", s.request_timeout),
        ("idle_timeout", s.idle_timeout),
    ] {
        e.check(!d.is_zero(), &format!("{p}.{key}"), || {
            "must be greater than zero".into()
        });
    }
    e.check(
        s.request_timeout > c.intents.publish_timeout,
        &format!("{p}.request_timeout"),
        || {
            format!(
                "{} must be longer than intents.publish_timeout ({}), or the webhook is cut off before it can answer 503",
                humantime::format_duration(s.request_timeout),
                humantime::format_duration(c.intents.publish_timeout)
            )
        },
    );
    e.check(
        s.max_connections >= 1,
        &format!("{p}.max_connections"),
        || "must be at least 1".into(),
    );
}

/// What `run` and `check-config` refuse after the environment is applied: an unauthenticated
/// webhook on an address other hosts can reach, unless allowed explicitly; unauthenticated
/// tools on such an address, ever.
pub(crate) fn exposure(c: &Config, e: &mut Collector) {
    let t = &c.tools;
    let tools_listen = t.listen.unwrap_or(c.server.listen);
    if t.enabled && t.tokens.is_empty() && !tools_listen.ip().is_loopback() {
        e.push(
            "tools.allow_unauthenticated",
            format!(
                "tools without tokens are served only on a loopback address, but they listen on {tools_listen}: configure tools.tokens"
            ),
        );
    }
    let Some(am) = c.alertmanager() else { return };
    if !matches!(am.auth, WebhookAuth::None) || am.allow_unauthenticated {
        return;
    }
    if c.server.listen.ip().is_loopback() {
        return;
    }
    e.push(
        format!("{}.auth", alertmanager_path(c)),
        format!(
            "the webhook has no authentication (type: none) but server.listen is {}, which other hosts can reach: configure bearer or basic auth, listen on a loopback address, or set allow_unauthenticated: true beside auth to accept anyone's alerts",
            c.server.listen
        ),
    );
}

/// Where the effective AlertManager section is written.
fn alertmanager_path(c: &Config) -> &'static str {
    if c.observability()
        .and_then(|o| o.alertmanager.as_ref())
        .is_some()
    {
        "observability_integration.alertmanager"
    } else {
        "alertmanager_integration"
    }
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn unique<'a>(e: &mut Collector, path: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if !dns_label(n) {
            e.push(
                format!("{path}.{i}.name"),
                format!("invalid name {n:?}: expected a lowercase DNS label (a-z, 0-9, '-')"),
            );
        }
        if !seen.insert(n) {
            e.push(format!("{path}.{i}.name"), format!("duplicate name {n:?}"));
        }
    }
}

fn kubernetes(c: &Config, e: &mut Collector) {
    let Some(k) = c.kubernetes() else { return };
    let p = "kubernetes_integration";
    e.check(!k.clusters.is_empty(), &format!("{p}.clusters"), || {
        "enabled but no clusters are configured".into()
    });
    unique(
        e,
        &format!("{p}.clusters"),
        k.clusters.iter().map(|c| c.name.as_str()),
    );
    for (i, cl) in k.clusters.iter().enumerate() {
        let sources = [
            cl.kubeconfig_secret_ref.is_some(),
            cl.kubeconfig_path.is_some(),
            cl.in_cluster,
        ]
        .iter()
        .filter(|b| **b)
        .count();
        e.check(sources == 1, &format!("{p}.clusters.{i}"), || {
            format!(
                "cluster {:?} needs exactly one of kubeconfig_secret_ref, kubeconfig_path, in_cluster (found {sources})",
                cl.name
            )
        });
    }
    e.check(
        !k.watch.namespaces.is_empty(),
        &format!("{p}.watch.namespaces"),
        || "empty: list namespace globs such as \"ameide-*\"".into(),
    );
    for (i, ns) in k.watch.namespaces.iter().enumerate() {
        e.check(
            !ns.is_empty() && ns.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '*'),
            &format!("{p}.watch.namespaces.{i}"),
            || format!("invalid namespace glob {ns:?}: expected lowercase letters, digits, '-' and '*'"),
        );
    }
    e.check(
        !k.poll_interval.is_zero(),
        &format!("{p}.poll_interval"),
        || "must be greater than zero".into(),
    );
    e.check(
        !k.watch.event_max_age.is_zero(),
        &format!("{p}.watch.event_max_age"),
        || "must be greater than zero (every Warning event would be too old)".into(),
    );
}

/// The API URL of an ArgoCD environment.
pub(crate) fn argocd_url(a: &ArgoCdIntegration, env: &EnvironmentEntry) -> Result<Url, String> {
    let server = match env {
        EnvironmentEntry::Detailed(d) if d.server.is_some() => d.server.clone(),
        _ => a.argocd_server.clone(),
    };
    let Some(server) = server else {
        return Err("no ArgoCD server: set argocd_server, or server on the environment".into());
    };
    let with_scheme = if server.contains("://") {
        server.clone()
    } else {
        format!("https://{server}")
    };
    Url::parse(&with_scheme).map_err(|err| format!("invalid ArgoCD server {server:?}: {err}"))
}

fn argocd(c: &Config, e: &mut Collector) {
    let Some(a) = c.argocd() else { return };
    let p = "argocd_integration";
    e.check(
        !a.environments.is_empty(),
        &format!("{p}.environments"),
        || "enabled but no environments are configured".into(),
    );
    unique(
        e,
        &format!("{p}.environments"),
        a.environments.iter().map(|e| e.name()),
    );
    for (i, env) in a.environments.iter().enumerate() {
        if let Err(msg) = argocd_url(a, env) {
            e.push(format!("{p}.environments.{i}"), msg);
        }
    }
    e.check(
        !a.poll_interval.is_zero(),
        &format!("{p}.poll_interval"),
        || "must be greater than zero".into(),
    );
}

fn sli(c: &Config, e: &mut Collector) {
    let Some(o) = c.observability() else { return };
    let Some(sli) = &o.sli_calculation else {
        return;
    };
    let p = "observability_integration.sli_calculation";
    e.check(o.prometheus.is_some(), p, || {
        "needs observability_integration.prometheus (the SLOs are queried there)".into()
    });
    e.check(!sli.catch_up.is_zero(), &format!("{p}.catch_up"), || {
        "must be greater than zero".into()
    });
    let mut seen = std::collections::HashSet::new();
    for (i, slo) in sli.slos.iter().enumerate() {
        let at = format!("{p}.slos[{i}]");
        e.check(
            !slo.name.is_empty()
                && slo
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            &format!("{at}.name"),
            || format!("{:?}: expected letters, digits, '-', '_' or '.'", slo.name),
        );
        e.check(
            seen.insert(slo.name.as_str()),
            &format!("{at}.name"),
            || {
                format!(
                    "{:?} is used by another SLO: names must be unique",
                    slo.name
                )
            },
        );
        e.check(
            slo.objective > 0.0 && slo.objective < 100.0,
            &format!("{at}.objective"),
            || {
                format!(
                    "{} is not a percentage above 0 and below 100",
                    slo.objective
                )
            },
        );
        for (field, q) in [("good", &slo.good), ("total", &slo.total)] {
            e.check(!q.trim().is_empty(), &format!("{at}.{field}"), || {
                "a PromQL expression is required".into()
            });
            e.check(
                q.matches('(').count() == q.matches(')').count()
                    && q.matches('{').count() == q.matches('}').count()
                    && q.matches('[').count() == q.matches(']').count(),
                &format!("{at}.{field}"),
                || format!("unbalanced brackets in {q:?}"),
            );
        }
    }
}

fn observability(c: &Config, e: &mut Collector) {
    sli(c, e);
    if let Some(g) = c.observability().and_then(|o| o.grafana.as_ref()) {
        let mut seen = HashSet::new();
        for (i, uid) in g.annotations.dashboard_uids.iter().enumerate() {
            e.check(
                !uid.trim().is_empty() && seen.insert(uid.as_str()),
                &format!("observability_integration.grafana.annotations.dashboard_uids[{i}]"),
                || format!("{uid:?}: expected a non-empty dashboard uid, listed once"),
            );
        }
    }
    let new = c
        .observability()
        .and_then(|o| o.alertmanager.as_ref())
        .is_some();
    let legacy = c
        .alertmanager_integration
        .as_ref()
        .is_some_and(|l| l.enabled);
    e.check(!(new && legacy), "alertmanager_integration", || {
        "both alertmanager_integration (legacy) and observability_integration.alertmanager are enabled: keep one".into()
    });
    let path = if new {
        "observability_integration.alertmanager"
    } else {
        "alertmanager_integration"
    };
    if let Some(am) = c.alertmanager() {
        e.check(
            am.webhook_path.starts_with('/'),
            &format!("{path}.webhook_path"),
            || format!("{:?} must start with '/'", am.webhook_path),
        );
        e.check(
            !RESERVED_PATHS
                .iter()
                .any(|r| am.webhook_path.starts_with(r)),
            &format!("{path}.webhook_path"),
            || {
                format!(
                    "{:?} collides with the server's own endpoints",
                    am.webhook_path
                )
            },
        );
        let window = am.idempotency.dedup_window;
        e.check(
            !window.is_zero(),
            &format!("{path}.idempotency.dedup_window"),
            || "must be greater than zero".into(),
        );
        e.check(
            window <= MAX_DEDUP_WINDOW,
            &format!("{path}.idempotency.dedup_window"),
            || {
                format!(
                    "{} is longer than 24h: the window is held in memory and rebuilt from the log at start",
                    humantime::format_duration(window)
                )
            },
        );
        let retention = c.intents.embedded.retention_age;
        e.check(
            c.intents.sink != crate::SinkKind::Embedded || retention >= window,
            "intents.embedded.retention_age",
            || {
                format!(
                    "{} is shorter than {path}.idempotency.dedup_window ({}): keys would leave the log before the window, and a restart would publish their alerts again",
                    humantime::format_duration(retention),
                    humantime::format_duration(window)
                )
            },
        );
        e.check(am.max_alerts >= 1, &format!("{path}.max_alerts"), || {
            "must be at least 1".into()
        });
        e.check(
            am.idempotency.max_entries >= 1000,
            &format!("{path}.idempotency.max_entries"),
            || "must be at least 1000 keys".into(),
        );
        e.check(
            am.max_body_bytes >= 1024,
            &format!("{path}.max_body_bytes"),
            || "must be at least 1024 bytes".into(),
        );
    }
}

fn jira_key_ok(key: &str) -> bool {
    key.chars().next().is_some_and(|ch| ch.is_ascii_uppercase())
        && key
            .chars()
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
}

fn github_repo_ok(repo: &str) -> bool {
    repo.split_once('/')
        .is_some_and(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
}

fn ticketing(c: &Config, e: &mut Collector) {
    let Some(t) = c.ticketing() else { return };
    let p = "ticketing_integration";
    e.check(t.jira.is_some() || t.github.is_some(), p, || {
        "enabled but neither jira nor github is configured".into()
    });
    match t.default_provider {
        Some(TicketProvider::Jira) => {
            e.check(t.jira.is_some(), &format!("{p}.default_provider"), || {
                "is jira but the jira section is missing".into()
            })
        }
        Some(TicketProvider::Github) => {
            e.check(t.github.is_some(), &format!("{p}.default_provider"), || {
                "is github but the github section is missing".into()
            })
        }
        None => {}
    }
    if let Some(g) = &t.github {
        e.check(github_repo_ok(&g.repo), &format!("{p}.github.repo"), || {
            format!("{:?}: expected \"owner/repo\"", g.repo)
        });
        e.check(
            !g.resolved_label.trim().is_empty() && g.resolved_label.chars().count() <= 50,
            &format!("{p}.github.resolved_label"),
            || "must be 1 to 50 characters (GitHub's limit for a label)".into(),
        );
        for (i, l) in g.labels.iter().enumerate() {
            e.check(
                !l.trim().is_empty() && l.chars().count() <= 50 && !l.contains(','),
                &format!("{p}.github.labels[{i}]"),
                || format!("{l:?}: a label is 1 to 50 characters without commas"),
            );
        }
    }
    if let Some(j) = &t.jira {
        e.check(
            jira_key_ok(&j.project_key),
            &format!("{p}.jira.project_key"),
            || {
                format!(
                    "{:?}: expected an upper-case Jira project key such as \"SRE\"",
                    j.project_key
                )
            },
        );
        e.check(
            !j.issue_type.trim().is_empty(),
            &format!("{p}.jira.issue_type"),
            || "must not be empty".into(),
        );
        for (i, l) in j.labels.iter().enumerate() {
            e.check(
                !l.is_empty() && !l.chars().any(char::is_whitespace) && l.len() <= 255,
                &format!("{p}.jira.labels[{i}]"),
                || format!("{l:?}: a Jira label is 1 to 255 characters without spaces"),
            );
        }
    }
    for (i, r) in t.routes.iter().enumerate() {
        let rp = format!("{p}.routes[{i}]");
        e.check(r.service.is_some() || r.environment.is_some(), &rp, || {
            "matches nothing: give a service and/or an environment".into()
        });
        let provider = r
            .provider
            .or(t.default_provider)
            .or(match (&t.jira, &t.github) {
                (Some(_), _) => Some(TicketProvider::Jira),
                (None, Some(_)) => Some(TicketProvider::Github),
                (None, None) => None,
            });
        match provider {
            Some(TicketProvider::Jira) => {
                e.check(t.jira.is_some(), &format!("{rp}.provider"), || {
                    "is jira but the jira section is missing".into()
                });
                e.check(r.repo.is_none(), &format!("{rp}.repo"), || {
                    "is for GitHub but the route goes to jira".into()
                });
                if let Some(k) = &r.project_key {
                    e.check(jira_key_ok(k), &format!("{rp}.project_key"), || {
                        format!("{k:?}: expected an upper-case Jira project key such as \"OPS\"")
                    });
                }
            }
            Some(TicketProvider::Github) => {
                e.check(t.github.is_some(), &format!("{rp}.provider"), || {
                    "is github but the github section is missing".into()
                });
                e.check(
                    r.project_key.is_none(),
                    &format!("{rp}.project_key"),
                    || "is for Jira but the route goes to github".into(),
                );
                if let Some(repo) = &r.repo {
                    e.check(github_repo_ok(repo), &format!("{rp}.repo"), || {
                        format!("{repo:?}: expected \"owner/repo\"")
                    });
                }
            }
            None => {}
        }
    }
}

fn paging(c: &Config, e: &mut Collector) {
    let Some(pg) = c.paging() else { return };
    let p = "paging_integration";
    e.check(pg.pagerduty.is_some() || pg.opsgenie.is_some(), p, || {
        "enabled but neither pagerduty nor opsgenie is configured".into()
    });
    let configured = |provider: PageProvider| match provider {
        PageProvider::Pagerduty => pg.pagerduty.is_some(),
        PageProvider::Opsgenie => pg.opsgenie.is_some(),
    };
    match pg.default_provider {
        Some(provider) => e.check(
            configured(provider),
            &format!("{p}.default_provider"),
            || format!("is {0} but the {0} section is missing", provider.as_str()),
        ),
        None => e.check(
            pg.pagerduty.is_none() || pg.opsgenie.is_none(),
            &format!("{p}.default_provider"),
            || "both pagerduty and opsgenie are configured: say which one is the default".into(),
        ),
    }
    for (i, route) in pg.routes.iter().enumerate() {
        let at = format!("{p}.routes[{i}]");
        let Some(provider) = route.provider.or(pg.default_provider()) else {
            continue;
        };
        e.check(configured(provider), &format!("{at}.provider"), || {
            format!(
                "routes to {0} but the {0} section is missing",
                provider.as_str()
            )
        });
        e.check(
            route.routing_key_ref.is_none() || provider == PageProvider::Pagerduty,
            &format!("{at}.routing_key_ref"),
            || {
                format!(
                    "a routing key only applies to pagerduty, and this route pages {}",
                    provider.as_str()
                )
            },
        );
        e.check(
            route.team.is_none() || provider == PageProvider::Opsgenie,
            &format!("{at}.team"),
            || {
                format!(
                    "a team only applies to opsgenie, and this route pages {}",
                    provider.as_str()
                )
            },
        );
        e.check(
            route.team.as_deref().is_none_or(|t| !t.trim().is_empty()),
            &format!("{at}.team"),
            || "is empty".into(),
        );
        e.check(
            route.provider.is_some() || route.routing_key_ref.is_some() || route.team.is_some(),
            &at,
            || "names no provider, routing_key_ref or team: it would change nothing".into(),
        );
    }
    let names: Vec<String> = pg
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| r.name_at(i))
        .collect();
    for (i, name) in names.iter().enumerate() {
        e.check(
            !names[..i].contains(name) && name != "default",
            &format!("{p}.routes[{i}].name"),
            || format!("{name:?} is used twice (or is the reserved name \"default\")"),
        );
    }
    if let Some(og) = &pg.opsgenie {
        e.check(
            og.team.as_deref().is_none_or(|t| !t.trim().is_empty()),
            &format!("{p}.opsgenie.team"),
            || "is empty".into(),
        );
        e.check(
            !og.confirm_timeout.is_zero(),
            &format!("{p}.opsgenie.confirm_timeout"),
            || "must be longer than zero".into(),
        );
    }
    let bh = &pg.escalation.business_hours;
    e.check(
        bh.start < bh.end,
        &format!("{p}.escalation.business_hours"),
        || {
            format!(
                "start ({}) must be before end ({})",
                bh.start.0.format("%H:%M"),
                bh.end.0.format("%H:%M")
            )
        },
    );
    e.check(
        bh.days.is_none() || bh.include_weekends.is_none(),
        &format!("{p}.escalation.business_hours.include_weekends"),
        || "is deprecated and cannot be combined with days: list the days instead".into(),
    );
    if let Some(days) = &bh.days {
        e.check(
            !days.is_empty(),
            &format!("{p}.escalation.business_hours.days"),
            || "is empty: list at least one day (mon, tue, wed, thu, fri, sat, sun)".into(),
        );
        let mut seen = std::collections::BTreeSet::new();
        e.check(
            days.iter().all(|d| seen.insert(*d)),
            &format!("{p}.escalation.business_hours.days"),
            || "names a day twice".into(),
        );
    }
}

fn supervision(c: &Config, e: &mut Collector) {
    let r = &c.supervision.restart;
    let p = "supervision.restart";
    e.check(
        !r.backoff_min.is_zero(),
        &format!("{p}.backoff_min"),
        || "must be greater than zero".into(),
    );
    e.check(
        r.backoff_min <= r.backoff_max,
        &format!("{p}.backoff_max"),
        || "must not be smaller than backoff_min".into(),
    );
    e.check(
        (0.0..1.0).contains(&r.jitter),
        &format!("{p}.jitter"),
        || format!("{} is outside [0, 1)", r.jitter),
    );
    e.check(r.max_restarts >= 1, &format!("{p}.max_restarts"), || {
        "must be at least 1".into()
    });
    e.check(!r.period.is_zero(), &format!("{p}.period"), || {
        "must be greater than zero".into()
    });
    e.check(!r.cool_down.is_zero(), &format!("{p}.cool_down"), || {
        "must be greater than zero".into()
    });

    let cb = &c.supervision.circuit;
    let p = "supervision.circuit";
    e.check(
        cb.failure_rate_threshold > 0.0 && cb.failure_rate_threshold <= 1.0,
        &format!("{p}.failure_rate_threshold"),
        || format!("{} is outside (0, 1]", cb.failure_rate_threshold),
    );
    e.check(!cb.window.is_zero(), &format!("{p}.window"), || {
        "must be greater than zero".into()
    });
    e.check(cb.minimum_calls >= 1, &format!("{p}.minimum_calls"), || {
        "must be at least 1".into()
    });
    e.check(
        !cb.open_duration.is_zero(),
        &format!("{p}.open_duration"),
        || "must be greater than zero".into(),
    );
    e.check(
        cb.half_open_trials >= 1,
        &format!("{p}.half_open_trials"),
        || "must be at least 1".into(),
    );

    let rt = &c.supervision.retry;
    let p = "supervision.retry";
    e.check(rt.max_attempts >= 1, &format!("{p}.max_attempts"), || {
        "must be at least 1".into()
    });
    e.check(
        rt.backoff_min <= rt.backoff_max,
        &format!("{p}.backoff_max"),
        || "must not be smaller than backoff_min".into(),
    );
    e.check(!rt.timeout.is_zero(), &format!("{p}.timeout"), || {
        "must be greater than zero".into()
    });
}

fn intents(c: &Config, e: &mut Collector) {
    e.check(!c.intents.topic.is_empty(), "intents.topic", || {
        "must not be empty".into()
    });
    e.check(
        c.intents.embedded.segment_bytes >= 4096,
        "intents.embedded.segment_bytes",
        || "must be at least 4096 bytes".into(),
    );
    e.check(
        !c.intents.kafka.brokers.trim().is_empty(),
        "intents.kafka.brokers",
        || "must list at least one broker".into(),
    );
    kafka_security(c, e);
}

fn kafka_security(c: &Config, e: &mut Collector) {
    let k = &c.intents.kafka;
    for key in k.properties.keys() {
        if let Some(why) = crate::kafka_reserved_property(key) {
            e.push(format!("intents.kafka.properties.{key}"), why);
        }
    }
    let p = "intents.kafka.security";
    let s = &k.security;
    let protocol = s.protocol.as_str();
    match (&s.sasl, s.protocol.sasl()) {
        (None, true) => e.push(
            format!("{p}.sasl"),
            format!("protocol {protocol} needs sasl (mechanism and secret_ref)"),
        ),
        (Some(_), false) => e.push(
            format!("{p}.sasl"),
            format!("protocol {protocol} does not use SASL: use sasl_plaintext or sasl_ssl"),
        ),
        _ => {}
    }
    if let Some(tls) = &s.tls {
        e.check(s.protocol.tls(), &format!("{p}.tls"), || {
            format!("protocol {protocol} does not use TLS: use ssl or sasl_ssl")
        });
        e.check(
            tls.cert_path.is_some() == tls.key_path.is_some(),
            &format!("{p}.tls"),
            || "cert_path and key_path go together (a client certificate and its key)".into(),
        );
    }
}

pub(crate) fn secret_needs(c: &Config) -> Vec<SecretNeed> {
    let mut out = Vec::new();
    let mut need = |path: String, secret: &crate::SecretRef, keys: &'static [&'static str]| {
        out.push(SecretNeed {
            path,
            secret: secret.clone(),
            keys,
        })
    };
    if c.intents.sink == crate::SinkKind::Kafka || c.facts.enabled {
        if let Some(sasl) = &c.intents.kafka.security.sasl {
            need(
                "intents.kafka.security.sasl.secret_ref".into(),
                &sasl.secret_ref,
                &["username", "password"],
            );
        }
    }
    if let Some(k) = c.kubernetes() {
        for (i, cl) in k.clusters.iter().enumerate() {
            if let Some(r) = &cl.kubeconfig_secret_ref {
                need(
                    format!("kubernetes_integration.clusters.{i}.kubeconfig_secret_ref"),
                    r,
                    &["kubeconfig"],
                );
            }
        }
    }
    if let Some(a) = c.argocd() {
        if let Some(r) = &a.token_secret_ref {
            need("argocd_integration.token_secret_ref".into(), r, &["token"]);
        }
        for (i, env) in a.environments.iter().enumerate() {
            if let EnvironmentEntry::Detailed(d) = env {
                if let Some(r) = &d.secret_ref {
                    need(
                        format!("argocd_integration.environments.{i}.secret_ref"),
                        r,
                        &["token"],
                    );
                }
            }
        }
    }
    if let Some(o) = c.observability() {
        for (name, backend) in [
            ("prometheus", &o.prometheus),
            ("loki", &o.loki),
            ("tempo", &o.tempo),
        ] {
            let path = format!("observability_integration.{name}.auth.secret_ref");
            match backend.as_ref().map(|b| &b.auth) {
                Some(crate::UpstreamAuth::Bearer { secret_ref }) => {
                    need(path, secret_ref, &["token"])
                }
                Some(crate::UpstreamAuth::Basic { secret_ref }) => {
                    need(path, secret_ref, &["username", "password"])
                }
                _ => {}
            }
        }
    }
    if let Some(g) = c.observability().and_then(|o| o.grafana.as_ref()) {
        if let Some(r) = &g.secret_ref {
            need(
                "observability_integration.grafana.secret_ref".into(),
                r,
                &["api_key"],
            );
        }
    }
    if let Some(am) = c.alertmanager() {
        let path = format!("{}.auth.secret_ref", alertmanager_path(c));
        match &am.auth {
            WebhookAuth::None => {}
            WebhookAuth::Bearer { secret_ref } => need(path, secret_ref, &["token"]),
            WebhookAuth::Basic { secret_ref } => need(path, secret_ref, &["username", "password"]),
        }
    }
    if let Some(o) = &c.server.ops_auth {
        need(
            "server.ops_auth.secret_ref".into(),
            &o.secret_ref,
            &["token"],
        );
    }
    if let Some(t) = c.ticketing() {
        if let Some(j) = &t.jira {
            need(
                "ticketing_integration.jira.secret_ref".into(),
                &j.secret_ref,
                &["email", "api_token"],
            );
        }
        if let Some(g) = &t.github {
            need(
                "ticketing_integration.github.secret_ref".into(),
                &g.secret_ref,
                &["token"],
            );
        }
    }
    if let Some(p) = c.paging() {
        if let Some(pd) = &p.pagerduty {
            need(
                "paging_integration.pagerduty.routing_key_ref".into(),
                &pd.routing_key_ref,
                &["routing_key"],
            );
        }
        if let Some(og) = &p.opsgenie {
            need(
                "paging_integration.opsgenie.api_key_ref".into(),
                &og.api_key_ref,
                &["api_key"],
            );
        }
        for (i, route) in p.routes.iter().enumerate() {
            if let Some(r) = &route.routing_key_ref {
                need(
                    format!("paging_integration.routes[{i}].routing_key_ref"),
                    r,
                    &["routing_key"],
                );
            }
        }
    }
    if c.tools.enabled {
        for (i, t) in c.tools.tokens.iter().enumerate() {
            need(
                format!("tools.tokens.{i}.secret_ref"),
                &t.secret_ref,
                &["token"],
            );
        }
    }
    out
}

/// `scheme://host` or `scheme://host:port` (`:*` for any port), http or https, no path: what an
/// `Origin` header holds (an IPv6 host in brackets).
fn origin_pattern_ok(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    // The host ends at the port's colon, or past an IPv6 host's closing bracket.
    let host_end = if rest.starts_with('[') {
        match rest.find(']') {
            Some(i) => i + 1,
            None => return false,
        }
    } else {
        rest.find(':').unwrap_or(rest.len())
    };
    let (host, port) = rest.split_at(host_end);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => p == "*" || (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()),
    };
    matches!(scheme, "http" | "https") && host_ok && port_ok
}
