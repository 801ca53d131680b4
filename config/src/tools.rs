//! `tools.write_policy`: where the Kubernetes write tools (`k8s.exec_command`,
//! `k8s.apply_manifest`, `k8s.delete_resource`, `k8s.rollout_restart`) may act, checked by
//! each tool's preview and call alike (an approval never widens it).
//!
//! The defaults are safe: no cluster listed means no writes anywhere; a listed cluster takes
//! writes only in the namespaces it lists, and to cluster-scoped objects only with
//! `cluster_scoped: true`; the kinds in [`DANGEROUS_KINDS`] are never deleted unless listed in
//! `allow_dangerous_kinds`.
//!
//! ```yaml
//! tools:
//!   write_policy:
//!     clusters:
//!       prod:
//!         namespaces: [payments, checkout]
//!       staging:
//!         namespaces: ["*"]        # any namespace
//!         cluster_scoped: true     # and cluster-scoped objects
//!     kinds:
//!       allow: []                  # empty: any kind not denied
//!       deny: [ClusterRoleBinding, ValidatingWebhookConfiguration]
//!     allow_dangerous_kinds: []    # e.g. [Namespace] to let the agent delete namespaces
//!     exec:
//!       default_timeout: 30s
//!       max_timeout: 5m
//!       max_output_bytes: 65536
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Collector;
use crate::Config;

/// Kinds `k8s.delete_resource` refuses unless named in
/// [`WritePolicyConfig::allow_dangerous_kinds`]: deleting one takes much else with it (every
/// object of a namespace or a CRD, a node's pods, a volume's data, everyone's permissions or
/// admission).
pub const DANGEROUS_KINDS: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// The longest exec timeout a configuration may allow.
pub const EXEC_TIMEOUT_CEILING: Duration = Duration::from_secs(3600);
/// The most output per stream (stdout, stderr) a configuration may allow an exec to return.
pub const EXEC_OUTPUT_CEILING: usize = 4 << 20;

/// `tools.write_policy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritePolicyConfig {
    /// Per cluster (by `kubernetes_integration.clusters[].name`): where writes may go. A
    /// cluster not listed takes no writes at all. Default: none.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterWritePolicy>,
    /// Which kinds may be written (applied, deleted, restarted, exec'd into: `Pod`).
    #[serde(default)]
    pub kinds: KindRules,
    /// Kinds of [`DANGEROUS_KINDS`] that `k8s.delete_resource` may delete (they still need
    /// the cluster's `cluster_scoped: true`). Default: none.
    #[serde(default)]
    pub allow_dangerous_kinds: Vec<String>,
    /// Limits of `k8s.exec_command`.
    #[serde(default)]
    pub exec: ExecLimits,
}

/// `tools.write_policy.clusters.<name>`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterWritePolicy {
    /// Namespaces writes may go to: names, or `"*"` for any. Default: none.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Whether cluster-scoped objects (Namespaces, ClusterRoles, CRDs, …) may be written.
    /// Default: false.
    #[serde(default)]
    pub cluster_scoped: bool,
}

/// `tools.write_policy.kinds`: kind names as in a manifest (`Deployment`, `ConfigMap`),
/// matched exactly. Deny wins over allow.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRules {
    /// Only these kinds may be written; empty (the default) allows any kind not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These kinds are never written. Default: none.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `tools.write_policy.exec`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecLimits {
    /// Timeout of a command whose call gives none. Default 30s.
    #[serde(default = "default_exec_timeout", with = "humantime_serde")]
    pub default_timeout: Duration,
    /// The longest `timeout_seconds` a call may ask for. Default 5m, at most 1h.
    #[serde(default = "default_exec_max_timeout", with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Bytes of stdout and of stderr returned (each; the rest is dropped and the output marked
    /// `truncated`). Default 65536, at most 4 MiB.
    #[serde(default = "default_exec_max_output")]
    pub max_output_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            default_timeout: default_exec_timeout(),
            max_timeout: default_exec_max_timeout(),
            max_output_bytes: default_exec_max_output(),
        }
    }
}

fn default_exec_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_exec_max_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_exec_max_output() -> usize {
    64 << 10
}

/// Whether `s` can be a Kubernetes kind name (`Deployment`).
fn kind_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Whether `s` can be a namespace name (a lowercase DNS label of at most 63 characters).
fn namespace_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks `tools.write_policy`: listed clusters are configured, namespaces and kinds are
/// well-formed, no kind is both allowed and denied, dangerous kinds are known, exec limits
/// are within bounds.
pub(crate) fn validate_write_policy(c: &Config, e: &mut Collector) {
    let w = &c.tools.write_policy;
    let p = "tools.write_policy";
    let known: Vec<&str> = c
        .kubernetes()
        .map(|k| k.clusters.iter().map(|cl| cl.name.as_str()).collect())
        .unwrap_or_default();
    for (name, cl) in &w.clusters {
        let cp = format!("{p}.clusters.{name}");
        e.check(known.contains(&name.as_str()), &cp, || {
            if known.is_empty() {
                format!("cluster {name:?} is not configured: kubernetes_integration has no clusters")
            } else {
                format!(
                    "cluster {name:?} is not configured in kubernetes_integration.clusters (known: {})",
                    known.join(", ")
                )
            }
        });
        for (i, ns) in cl.namespaces.iter().enumerate() {
            e.check(ns == "*" || namespace_name(ns), &format!("{cp}.namespaces.{i}"), || {
                format!("invalid namespace {ns:?}: expected a namespace name (a lowercase DNS label) or \"*\" for any")
            });
        }
    }
    for (list, kinds) in [("allow", &w.kinds.allow), ("deny", &w.kinds.deny)] {
        for (i, k) in kinds.iter().enumerate() {
            e.check(kind_name(k), &format!("{p}.kinds.{list}.{i}"), || {
                format!(
                    "invalid kind {k:?}: expected a kind name as in a manifest, such as Deployment"
                )
            });
        }
    }
    for k in &w.kinds.allow {
        e.check(!w.kinds.deny.contains(k), &format!("{p}.kinds"), || {
            format!("{k:?} is both allowed and denied")
        });
    }
    for (i, k) in w.allow_dangerous_kinds.iter().enumerate() {
        e.check(
            DANGEROUS_KINDS.contains(&k.as_str()),
            &format!("{p}.allow_dangerous_kinds.{i}"),
            || {
                format!(
                    "{k:?} is not a dangerous kind (nothing to allow): expected one of {}",
                    DANGEROUS_KINDS.join(", ")
                )
            },
        );
    }
    let x = &w.exec;
    e.check(
        !x.default_timeout.is_zero(),
        &format!("{p}.exec.default_timeout"),
        || "must be greater than zero".into(),
    );
    e.check(
        x.max_timeout >= x.default_timeout && x.max_timeout <= EXEC_TIMEOUT_CEILING,
        &format!("{p}.exec.max_timeout"),
        || {
            format!(
                "must be at least exec.default_timeout ({}) and at most {}",
                humantime::format_duration(x.default_timeout),
                humantime::format_duration(EXEC_TIMEOUT_CEILING)
            )
        },
    );
    e.check(
        (1..=EXEC_OUTPUT_CEILING).contains(&x.max_output_bytes),
        &format!("{p}.exec.max_output_bytes"),
        || format!("must be between 1 and {EXEC_OUTPUT_CEILING}"),
    );
}

impl WritePolicyConfig {
    /// The policy of `cluster`, if it takes writes.
    pub fn cluster(&self, cluster: &str) -> Option<&ClusterWritePolicy> {
        self.clusters.get(cluster)
    }

    /// Whether `kind` may be written at all (deny wins; an empty allow list allows any).
    pub fn kind_allowed(&self, kind: &str) -> bool {
        !self.kinds.deny.iter().any(|k| k == kind)
            && (self.kinds.allow.is_empty() || self.kinds.allow.iter().any(|k| k == kind))
    }

    /// Whether `kind` is dangerous to delete and not allowed to be.
    pub fn dangerous_refused(&self, kind: &str) -> bool {
        DANGEROUS_KINDS.contains(&kind) && !self.allow_dangerous_kinds.iter().any(|k| k == kind)
    }
}

impl ClusterWritePolicy {
    /// Whether writes may go to `namespace`.
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}
