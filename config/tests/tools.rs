//! `tools`: tokens with roles, the old single token refused with its replacement spelled out,
//! no tokens refused unless allowed on loopback, and the limits.

use sre_config::Config;

fn parse(yaml: &str) -> Result<Config, String> {
    Config::parse(yaml, "t.yaml").map_err(|e| e.to_string())
}

#[test]
fn tokens_with_roles_parse_and_are_needed_secrets() {
    let c = parse("tools:\n  enabled: true\n  tokens:\n    - {name: srecoder, role: agent, secret_ref: platform/a}\n    - {name: oncall, role: approver, secret_ref: platform/b}\n").unwrap();
    assert_eq!(c.tools.tokens.len(), 2);
    assert_eq!(c.tools.max_pending_approvals, 1000);
    assert_eq!(c.tools.max_output_bytes, 256 * 1024);
    assert_eq!(c.tools.audit.topic, "sre.integration.audit.v1");
    let needs: Vec<String> = c.secret_needs().iter().map(|n| n.path.clone()).collect();
    assert!(
        needs.contains(&"tools.tokens.1.secret_ref".to_owned()),
        "{needs:?}"
    );
}

#[test]
fn the_old_single_token_is_refused_with_its_replacement() {
    let e = parse("tools:\n  enabled: true\n  auth_secret_ref: platform/sre-tools-token\n")
        .unwrap_err();
    assert!(
        e.contains("tools.auth_secret_ref: replaced by tools.tokens"),
        "{e}"
    );
    assert!(e.contains("secret_ref: platform/sre-tools-token"), "{e}");
}

#[test]
fn no_tokens_is_refused_unless_allowed_on_loopback() {
    let e = parse("tools:\n  enabled: true\n").unwrap_err();
    assert!(
        e.contains("tools.tokens: tools are enabled without tokens"),
        "{e}"
    );
    let c = parse("tools:\n  enabled: true\n  allow_unauthenticated: true\n").unwrap();
    c.check_exposure("t.yaml").unwrap();
    let c = parse(
        "server:\n  listen: 0.0.0.0:8080\ntools:\n  enabled: true\n  allow_unauthenticated: true\n",
    )
    .unwrap();
    let e = c.check_exposure("t.yaml").unwrap_err().to_string();
    assert!(
        e.contains("tools without tokens are served only on a loopback address"),
        "{e}"
    );
    let c =
        parse("tools:\n  enabled: true\n  allow_unauthenticated: true\n  listen: 0.0.0.0:9090\n")
            .unwrap();
    assert!(c.check_exposure("t.yaml").is_err());
}

#[test]
fn limits_and_duplicate_names_are_checked() {
    let e = parse("tools:\n  enabled: true\n  tokens:\n    - {name: a, role: agent, secret_ref: p/a}\n    - {name: a, role: approver, secret_ref: p/b}\n  call_timeout: 40s\n  max_pending_approvals: 0\n  audit: {topic: sre.domain.intents.v1}\n").unwrap_err();
    for want in [
        "tools.tokens.1.name: duplicate name \"a\"",
        "tools.call_timeout",
        "tools.max_pending_approvals: must be at least 1",
        "tools.audit.topic: must differ from intents.topic",
    ] {
        assert!(e.contains(want), "{want} missing: {e}");
    }
    let e =
        parse("tools:\n  tokens:\n    - {name: a, role: admin, secret_ref: p/a}\n").unwrap_err();
    assert!(e.contains("tools.tokens.0.role"), "{e}");
}

#[test]
fn the_mcp_door_is_configured_with_sane_defaults_and_checked() {
    let c = parse("tools:\n  enabled: true\n  allow_unauthenticated: true\n").unwrap();
    assert_eq!(c.tools.mcp.max_sessions, 256);
    assert_eq!(
        c.tools.mcp.session_idle,
        std::time::Duration::from_secs(300)
    );
    assert_eq!(c.tools.mcp.allowed_hosts, None);
    assert!(c
        .tools
        .mcp
        .allowed_origins
        .contains(&"http://localhost:*".to_owned()));
    let c = parse(
        "tools:\n  enabled: true\n  allow_unauthenticated: true\n  mcp:\n    allowed_origins: [\"https://inspector.example.com\", \"http://localhost:*\"]\n    allowed_hosts: [sre.example.com]\n    max_sessions: 16\n    session_idle: 30s\n",
    )
    .unwrap();
    assert_eq!(c.tools.mcp.max_sessions, 16);
    assert_eq!(
        c.tools.mcp.allowed_hosts,
        Some(vec!["sre.example.com".to_owned()])
    );
    let e = parse(
        "tools:\n  mcp:\n    allowed_origins: [\"inspector.example.com\", \"https://x.example/path\", \"ftp://x\"]\n    allowed_hosts: []\n    max_sessions: 0\n    session_idle: 0s\n",
    )
    .unwrap_err();
    for want in [
        "tools.mcp.allowed_origins[0]: \"inspector.example.com\" is not an origin",
        "tools.mcp.allowed_origins[1]",
        "tools.mcp.allowed_origins[2]",
        "tools.mcp.allowed_hosts: must list at least one host",
        "tools.mcp.max_sessions: must be between 1 and 100000, got 0",
        "tools.mcp.session_idle: must be between 1s and 24h",
    ] {
        assert!(e.contains(want), "{want} missing: {e}");
    }
    // Ports are numbers or `*`; IPv6 hosts are bracketed.
    let c = parse("tools:\n  mcp:\n    allowed_origins: [\"http://[::1]:*\", \"https://a.example:8443\", \"http://[fe80::1]\"]\n").unwrap();
    assert_eq!(c.tools.mcp.allowed_origins.len(), 3);
    let e = parse("tools:\n  mcp:\n    allowed_origins: [\"http://a.example:port\", \"http://[::1\", \"http://a:b:c\", \"http://\"]\n").unwrap_err();
    for i in 0..4 {
        let want = format!("tools.mcp.allowed_origins[{i}]");
        assert!(e.contains(&want), "{want} missing: {e}");
    }
    let e = parse("tools:\n  mcp:\n    origins: []\n").unwrap_err();
    assert!(e.contains("origins"), "{e}");
}
