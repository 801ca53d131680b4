//! `tools.write_policy`: safe defaults (no cluster listed, no writes), what the shipped
//! production example allows, and each mistake reported with its key path.

use std::path::Path;
use std::time::Duration;

use sre_config::Config;

#[test]
fn defaults_allow_no_writes() {
    let c = Config::embedded();
    let w = &c.tools.write_policy;
    assert!(w.clusters.is_empty());
    assert!(w.cluster("local").is_none());
    assert!(w.kind_allowed("Deployment"));
    assert!(w.dangerous_refused("Namespace"));
    assert!(w.dangerous_refused("CustomResourceDefinition"));
    assert!(!w.dangerous_refused("Deployment"));
    assert_eq!(w.exec.default_timeout, Duration::from_secs(30));
    assert_eq!(w.exec.max_timeout, Duration::from_secs(300));
    assert_eq!(w.exec.max_output_bytes, 65536);
}

#[test]
fn the_production_example_limits_writes_per_cluster() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/production.yaml"
    ));
    let c = Config::load(path).unwrap();
    let w = &c.tools.write_policy;
    assert!(w.cluster("dev").is_none());
    let prod = w.cluster("production").unwrap();
    assert!(prod.namespace_allowed("ameide-payments"));
    assert!(!prod.namespace_allowed("kube-system"));
    assert!(!prod.cluster_scoped);
    assert!(w.cluster("staging").unwrap().namespace_allowed("anything"));
    assert!(!w.kind_allowed("ClusterRoleBinding"));
}

#[test]
fn kind_rules_deny_wins_and_allow_limits() {
    let text = r#"
kubernetes_integration:
  enabled: true
  clusters:
    - name: prod
      kubeconfig_path: /k
tools:
  write_policy:
    clusters:
      prod: {namespaces: [web], cluster_scoped: true}
    kinds: {allow: [Deployment, ConfigMap, Namespace], deny: [Secret]}
    allow_dangerous_kinds: [Namespace]
"#;
    let c = Config::parse(text, "x.yaml").unwrap();
    let w = &c.tools.write_policy;
    assert!(w.kind_allowed("Deployment"));
    assert!(!w.kind_allowed("Pod"), "not in the allow list");
    assert!(!w.kind_allowed("Secret"));
    assert!(!w.dangerous_refused("Namespace"));
    assert!(w.dangerous_refused("CustomResourceDefinition"));
    assert!(w.cluster("prod").unwrap().cluster_scoped);
}

#[test]
fn mistakes_are_named_with_their_key_path() {
    let text = r#"
kubernetes_integration:
  enabled: true
  clusters:
    - name: prod
      kubeconfig_path: /k
tools:
  write_policy:
    clusters:
      prod: {namespaces: ["Web_1"]}
      nowhere: {namespaces: [web]}
    kinds: {allow: [Deployment, "deployment"], deny: [Deployment]}
    allow_dangerous_kinds: [Deployment]
    exec: {default_timeout: 0s, max_timeout: 2h, max_output_bytes: 0}
"#;
    let errs = Config::parse(text, "x.yaml").unwrap_err();
    for want in [
        "x.yaml: tools.write_policy.clusters.prod.namespaces.0: invalid namespace \"Web_1\"",
        "tools.write_policy.clusters.nowhere: cluster \"nowhere\" is not configured in kubernetes_integration.clusters (known: prod)",
        "tools.write_policy.kinds.allow.1: invalid kind \"deployment\"",
        "tools.write_policy.kinds: \"Deployment\" is both allowed and denied",
        "tools.write_policy.allow_dangerous_kinds.0: \"Deployment\" is not a dangerous kind",
        "tools.write_policy.exec.default_timeout: must be greater than zero",
        "tools.write_policy.exec.max_timeout: must be at least",
        "tools.write_policy.exec.max_output_bytes: must be between 1 and",
    ] {
        assert!(errs.mentions(want), "missing {want:?} in\n{errs}");
    }
    let unknown = "tools:\n  write_policy:\n    clusterz: {}\n";
    let errs = Config::parse(unknown, "x.yaml").unwrap_err();
    assert!(errs.mentions("clusterz"), "{errs}");
}
