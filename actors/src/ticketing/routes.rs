//! Where an incident's ticket goes: the first of `ticketing_integration.routes` whose
//! `service` and `environment` (each one given) equal the incident's, else the default
//! provider with its own project / repository. The destination chosen at `IncidentCreated` is
//! stored in the target's ledger record (`detail.project` / `detail.repo`), so later facts
//! follow the ticket wherever routes say now.

use sre_config::{TicketProvider, TicketRoute, TicketingIntegration};
use sre_intents::facts::Created;

/// A ticket's home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A Jira project.
    Jira {
        /// Project key.
        project: String,
    },
    /// A GitHub repository.
    Github {
        /// `owner/repo`.
        repo: String,
    },
}

impl Destination {
    /// The provider.
    pub fn provider(&self) -> TicketProvider {
        match self {
            Destination::Jira { .. } => TicketProvider::Jira,
            Destination::Github { .. } => TicketProvider::Github,
        }
    }
}

/// The routing table, from the configuration.
#[derive(Clone, Debug)]
pub struct Router {
    default: TicketProvider,
    jira_project: Option<String>,
    github_repo: Option<String>,
    routes: Vec<TicketRoute>,
}

impl Router {
    /// The table of a validated `ticketing_integration`; `None` when no provider is configured.
    pub fn new(t: &TicketingIntegration) -> Option<Router> {
        let default = t.default_provider.or(match (&t.jira, &t.github) {
            (Some(_), _) => Some(TicketProvider::Jira),
            (None, Some(_)) => Some(TicketProvider::Github),
            (None, None) => None,
        })?;
        Some(Router {
            default,
            jira_project: t.jira.as_ref().map(|j| j.project_key.clone()),
            github_repo: t.github.as_ref().map(|g| g.repo.clone()),
            routes: t.routes.clone(),
        })
    }

    /// Where `created`'s ticket goes; `None` when the chosen provider is not configured
    /// (validation refuses such a configuration).
    pub fn route(&self, created: &Created) -> Option<Destination> {
        let matches = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let route = self.routes.iter().find(|r| {
            (r.service.is_some() || r.environment.is_some())
                && matches(&r.service, &created.service)
                && matches(&r.environment, &created.environment)
        });
        let provider = route.and_then(|r| r.provider).unwrap_or(self.default);
        match provider {
            TicketProvider::Jira => Some(Destination::Jira {
                project: route
                    .and_then(|r| r.project_key.clone())
                    .or_else(|| self.jira_project.clone())?,
            }),
            TicketProvider::Github => Some(Destination::Github {
                repo: route
                    .and_then(|r| r.repo.clone())
                    .or_else(|| self.github_repo.clone())?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sre_intents::facts::FactSeverity;

    fn created(service: &str, env: &str) -> Created {
        Created {
            title: "t".into(),
            severity: FactSeverity::High,
            summary: String::new(),
            service: Some(service.into()),
            environment: Some(env.into()),
            cluster: None,
            namespace: None,
            labels: Default::default(),
            alert_fingerprints: vec![],
            links: vec![],
        }
    }

    #[test]
    fn first_matching_route_wins_else_the_default() {
        let t: TicketingIntegration = serde_norway::from_str(
            r#"
enabled: true
default_provider: jira
jira: {base_url: "https://x.atlassian.net", project_key: SRE, secret_ref: a/b}
github: {repo: org/inc, secret_ref: a/c}
routes:
  - {service: checkout, environment: prod, project_key: PAY}
  - {environment: dev, provider: github, repo: org/dev}
  - {service: checkout, provider: github}
"#,
        )
        .unwrap();
        let r = Router::new(&t).unwrap();
        let jira = |p: &str| Destination::Jira { project: p.into() };
        let gh = |p: &str| Destination::Github { repo: p.into() };
        assert_eq!(r.route(&created("checkout", "prod")), Some(jira("PAY")));
        assert_eq!(r.route(&created("checkout", "dev")), Some(gh("org/dev")));
        assert_eq!(
            r.route(&created("checkout", "staging")),
            Some(gh("org/inc"))
        );
        assert_eq!(r.route(&created("search", "prod")), Some(jira("SRE")));
    }
}
