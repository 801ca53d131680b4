//! The write policy (`tools.write_policy`, see [`sre_config::tools`]) as the write tools
//! apply it, in their previews and calls alike: a cluster takes writes only when listed, a
//! namespaced object only in a listed namespace, a cluster-scoped one only with
//! `cluster_scoped: true`, a kind only when allowed and not denied, and a dangerous kind is
//! deleted only when named in `allow_dangerous_kinds`. Every refusal is
//! [`ToolError::Forbidden`] with the reason and the key that would allow it.

use sre_config::{ClusterWritePolicy, WritePolicyConfig};

use super::tool::ToolError;

/// The checks of the write tools.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WritePolicy {
    config: WritePolicyConfig,
}

impl WritePolicy {
    /// The policy `config` describes.
    pub fn new(config: WritePolicyConfig) -> Self {
        WritePolicy { config }
    }

    /// The configuration.
    pub fn config(&self) -> &WritePolicyConfig {
        &self.config
    }

    fn cluster(&self, cluster: &str) -> Result<&ClusterWritePolicy, ToolError> {
        self.config.cluster(cluster).ok_or_else(|| {
            ToolError::Forbidden(format!(
                "cluster {cluster:?} takes no writes (tools.write_policy.clusters has no entry for it)"
            ))
        })
    }

    /// Whether `cluster` takes writes at all (checked before anything is asked of it).
    pub fn check_cluster(&self, cluster: &str) -> Result<(), ToolError> {
        self.cluster(cluster).map(|_| ())
    }

    /// Whether `kind` may be written (`tools.write_policy.kinds`).
    pub fn check_kind(&self, kind: &str) -> Result<(), ToolError> {
        if self.config.kinds.deny.iter().any(|k| k == kind) {
            return Err(ToolError::Forbidden(format!(
                "kind {kind} is denied (tools.write_policy.kinds.deny)"
            )));
        }
        if !self.config.kind_allowed(kind) {
            return Err(ToolError::Forbidden(format!(
                "kind {kind} is not in tools.write_policy.kinds.allow"
            )));
        }
        Ok(())
    }

    /// Whether an object of `kind` in `namespace` (`None`: cluster-scoped) on `cluster` may be
    /// written.
    pub fn check_object(
        &self,
        cluster: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(), ToolError> {
        let c = self.cluster(cluster)?;
        self.check_kind(kind)?;
        match namespace {
            Some(ns) if c.namespace_allowed(ns) => Ok(()),
            Some(ns) => Err(ToolError::Forbidden(format!(
                "namespace {ns:?} on cluster {cluster:?} takes no writes (not in tools.write_policy.clusters.{cluster}.namespaces)"
            ))),
            None if c.cluster_scoped => Ok(()),
            None => Err(ToolError::Forbidden(format!(
                "{kind} is cluster-scoped and cluster {cluster:?} takes no cluster-scoped writes (tools.write_policy.clusters.{cluster}.cluster_scoped is false)"
            ))),
        }
    }

    /// [`check_object`](Self::check_object), and a dangerous kind only when allowed.
    pub fn check_delete(
        &self,
        cluster: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(), ToolError> {
        self.check_object(cluster, kind, namespace)?;
        if self.config.dangerous_refused(kind) {
            return Err(ToolError::Forbidden(format!(
                "deleting a {kind} is refused unless tools.write_policy.allow_dangerous_kinds lists it"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sre_config::KindRules;

    use super::*;

    fn policy() -> WritePolicy {
        WritePolicy::new(WritePolicyConfig {
            clusters: BTreeMap::from([
                (
                    "prod".to_owned(),
                    ClusterWritePolicy {
                        namespaces: vec!["web".into()],
                        cluster_scoped: false,
                    },
                ),
                (
                    "dev".to_owned(),
                    ClusterWritePolicy {
                        namespaces: vec!["*".into()],
                        cluster_scoped: true,
                    },
                ),
            ]),
            kinds: KindRules {
                allow: vec![],
                deny: vec!["Secret".into()],
            },
            allow_dangerous_kinds: vec!["Namespace".into()],
            ..WritePolicyConfig::default()
        })
    }

    #[test]
    fn clusters_namespaces_and_scopes() {
        let p = policy();
        assert!(p.check_object("prod", "Deployment", Some("web")).is_ok());
        let forbidden = |r: Result<(), ToolError>, needle: &str| match r {
            Err(ToolError::Forbidden(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{other:?}"),
        };
        forbidden(
            p.check_object("prod", "Deployment", Some("kube-system")),
            "tools.write_policy.clusters.prod.namespaces",
        );
        forbidden(p.check_object("prod", "Namespace", None), "cluster_scoped");
        forbidden(
            p.check_object("staging", "Deployment", Some("web")),
            "no entry",
        );
        forbidden(p.check_object("dev", "Secret", Some("x")), "kinds.deny");
        assert!(p.check_object("dev", "ConfigMap", Some("anything")).is_ok());
        assert!(p.check_delete("dev", "Namespace", None).is_ok());
        forbidden(
            p.check_delete("dev", "CustomResourceDefinition", None),
            "allow_dangerous_kinds",
        );
        assert!(WritePolicy::default()
            .check_object("dev", "Pod", Some("x"))
            .is_err());
    }
}
