//! Where an incident pages (`paging_integration.default_provider` and `routes`): the first route
//! whose every given condition (service, environment, severity) matches the incident decides
//! the provider, the PagerDuty routing key and the OpsGenie team; an incident no route matches
//! pages through the default provider with its own key / team.
//!
//! The choice is stored in the target record's `detail` ([`RouteChoice::to_detail`]) when the
//! page is triggered or deferred, and read back from there ([`RouteChoice::from_detail`]) for
//! the acknowledge and resolve, so they follow the trigger even if the routes change meanwhile.

use std::collections::BTreeMap;

use sre_config::{PageProvider, PageRoute, PagingIntegration, SecretRef};
use sre_intents::facts::Created;

use super::escalation::page_severity;

/// `detail` key of the route's name.
pub const DETAIL_ROUTE: &str = "route";
/// `detail` key of the PagerDuty routing key's secret reference (never the key).
pub const DETAIL_ROUTING_KEY_REF: &str = "routing_key_ref";
/// `detail` key of the OpsGenie responder team.
pub const DETAIL_TEAM: &str = "team";

/// Where one incident pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChoice {
    /// The route's name (`default` when no route matched).
    pub name: String,
    /// The provider.
    pub provider: PageProvider,
    /// PagerDuty: the routing key's secret.
    pub routing_key_ref: Option<SecretRef>,
    /// OpsGenie: the responder team.
    pub team: Option<String>,
}

impl RouteChoice {
    /// The choice as record detail entries.
    pub fn to_detail(&self, detail: &mut BTreeMap<String, String>) {
        detail.insert(DETAIL_ROUTE.into(), self.name.clone());
        if let Some(r) = &self.routing_key_ref {
            detail.insert(DETAIL_ROUTING_KEY_REF.into(), r.to_string());
        }
        if let Some(t) = &self.team {
            detail.insert(DETAIL_TEAM.into(), t.clone());
        }
    }

    /// The choice a record was made with, for `provider`; `None` when the record names none.
    pub fn from_detail(
        provider: PageProvider,
        detail: &BTreeMap<String, String>,
    ) -> Option<RouteChoice> {
        Some(RouteChoice {
            name: detail.get(DETAIL_ROUTE)?.clone(),
            provider,
            routing_key_ref: detail
                .get(DETAIL_ROUTING_KEY_REF)
                .and_then(|r| r.parse().ok()),
            team: detail.get(DETAIL_TEAM).cloned(),
        })
    }
}

/// The routes of a configuration.
#[derive(Clone, Debug)]
pub struct Router {
    routes: Vec<(String, PageRoute)>,
    default_provider: PageProvider,
    default_routing_key: Option<SecretRef>,
    default_team: Option<String>,
}

impl Router {
    /// From the (validated) paging section; `None` when it names no usable default provider.
    pub fn from_config(pg: &PagingIntegration) -> Option<Router> {
        Some(Router {
            routes: pg
                .routes
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name_at(i), r.clone()))
                .collect(),
            default_provider: pg.default_provider()?,
            default_routing_key: pg.pagerduty.as_ref().map(|p| p.routing_key_ref.clone()),
            default_team: pg.opsgenie.as_ref().and_then(|o| o.team.clone()),
        })
    }

    /// Where `incident` pages.
    pub fn pick(&self, incident: &Created) -> RouteChoice {
        let matched = self.routes.iter().find(|(_, r)| matches(r, incident));
        let (name, provider, key, team) = match matched {
            Some((name, r)) => (
                name.clone(),
                r.provider.unwrap_or(self.default_provider),
                r.routing_key_ref.clone(),
                r.team.clone(),
            ),
            None => ("default".to_owned(), self.default_provider, None, None),
        };
        match provider {
            PageProvider::Pagerduty => RouteChoice {
                name,
                provider,
                routing_key_ref: key.or_else(|| self.default_routing_key.clone()),
                team: None,
            },
            PageProvider::Opsgenie => RouteChoice {
                name,
                provider,
                routing_key_ref: None,
                team: team.or_else(|| self.default_team.clone()),
            },
        }
    }

    /// Every routing key the routes name, the default's included.
    pub fn routing_keys(&self) -> Vec<SecretRef> {
        let mut out: Vec<SecretRef> = self.default_routing_key.iter().cloned().collect();
        for (_, r) in &self.routes {
            if let Some(k) = &r.routing_key_ref {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        out
    }
}

fn matches(route: &PageRoute, incident: &Created) -> bool {
    let same = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    same(&route.service, &incident.service)
        && same(&route.environment, &incident.environment)
        && (route.severity.is_empty() || route.severity.contains(&page_severity(incident.severity)))
}

#[cfg(test)]
mod tests {
    use sre_intents::facts::FactSeverity;

    use super::*;

    fn incident(service: &str, env: &str, severity: FactSeverity) -> Created {
        Created {
            title: "t".into(),
            severity,
            summary: String::new(),
            service: Some(service.into()),
            environment: Some(env.into()),
            cluster: None,
            namespace: None,
            labels: BTreeMap::new(),
            alert_fingerprints: Vec::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn first_matching_route_wins_and_the_default_fills_in() {
        let pg: PagingIntegration = serde_norway::from_str(
            r#"
enabled: true
default_provider: pagerduty
pagerduty: {routing_key_ref: platform/pd}
opsgenie: {api_key_ref: platform/og, team: sre}
routes:
  - {name: pay, service: checkout, environment: prod, routing_key_ref: pay/pd}
  - {service: checkout, severity: [critical], provider: opsgenie}
  - {name: data, severity: high, provider: opsgenie, team: data}
"#,
        )
        .unwrap();
        let r = Router::from_config(&pg).unwrap();
        let c = r.pick(&incident("checkout", "prod", FactSeverity::Critical));
        assert_eq!(c.name, "pay");
        assert_eq!(c.provider, PageProvider::Pagerduty);
        assert_eq!(c.routing_key_ref.unwrap().to_string(), "pay/pd");

        let c = r.pick(&incident("checkout", "dev", FactSeverity::Critical));
        assert_eq!(c.name, "routes[1]");
        assert_eq!(c.provider, PageProvider::Opsgenie);
        assert_eq!(c.team.as_deref(), Some("sre"));

        let c = r.pick(&incident("search", "dev", FactSeverity::High));
        assert_eq!((c.name.as_str(), c.team.as_deref()), ("data", Some("data")));

        let c = r.pick(&incident("search", "dev", FactSeverity::Critical));
        assert_eq!(c.name, "default");
        assert_eq!(
            c.routing_key_ref.as_ref().unwrap().to_string(),
            "platform/pd"
        );

        let mut detail = BTreeMap::new();
        c.to_detail(&mut detail);
        assert_eq!(
            RouteChoice::from_detail(PageProvider::Pagerduty, &detail),
            Some(c)
        );
        assert_eq!(r.routing_keys().len(), 2);
    }
}
