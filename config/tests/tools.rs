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
