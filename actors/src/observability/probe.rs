//! `UpstreamProbe`: one actor per configured observability upstream (spec §9 health checks).
//! Every `interval` it asks the upstream's own readiness endpoint — Prometheus `/-/ready`, Loki
//! and Tempo `/ready`, Grafana `/api/health` — through the upstream's client and circuit, and
//! reports the answer:
//!
//! - `sre_upstream_up{provider}`: 1 while the last probe succeeded, 0 otherwise;
//! - the readiness report's `degraded` detail (`upstream <name>: <why>`) while it fails — never
//!   a blocking condition: the webhook path does not depend on these upstreams;
//! - the circuit: probes are calls like any other, so an upstream that stops answering opens its
//!   circuit (shown in `/v1/supervision`) and a recovered one closes it again.
//!
//! A failed probe is the upstream's problem, not this actor's: it never fails the actor.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use reqwest::Url;
use sre_supervision::Readiness;
use tracing::Instrument;

use super::credentials::Credentials;
use crate::providers::UpstreamClient;
use crate::timer::Timer;

/// The readiness endpoint of each kind of upstream.
pub fn health_path(provider: &str) -> Option<&'static str> {
    match provider {
        "prometheus" => Some("-/ready"),
        "loki" | "tempo" => Some("ready"),
        "grafana" => Some("api/health"),
        _ => None,
    }
}

/// `{provider}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

/// `sre_upstream_up{provider}`.
#[derive(Clone, Debug, Default)]
pub struct ProbeMetrics {
    up: Family<ProviderLabel, Gauge>,
}

impl ProbeMetrics {
    /// Registers the family.
    pub fn new(registry: &mut Registry) -> Self {
        let m = ProbeMetrics::default();
        registry.register(
            "sre_upstream_up",
            "1 while the upstream's last health probe succeeded",
            m.up.clone(),
        );
        m
    }
}

/// The actor.
pub struct UpstreamProbe;

/// Its arguments.
#[derive(Clone)]
pub struct ProbeArgs {
    /// The upstream's client (its name is the provider).
    pub client: UpstreamClient,
    /// The readiness endpoint.
    pub url: Url,
    /// Credentials the upstream wants (none for Grafana's `/api/health`).
    pub credentials: Credentials,
    /// Time between probes.
    pub interval: Duration,
    /// Where the upstream's trouble is reported.
    pub readiness: Readiness,
    /// Metrics.
    pub metrics: ProbeMetrics,
}

/// Messages.
pub enum ProbeMsg {
    /// Time to probe.
    Probe,
}

/// Private state.
pub struct ProbeState {
    args: ProbeArgs,
    up: Gauge,
    condition: String,
    /// The last probe's problem (none: healthy), to log changes only.
    last: Option<Option<String>>,
    timer: Timer<ProbeMsg>,
}

impl Actor for UpstreamProbe {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProbeMsg>,
        args: ProbeArgs,
    ) -> Result<ProbeState, ActorProcessingErr> {
        let provider = args.client.provider().to_owned();
        let up = args
            .metrics
            .up
            .get_or_create(&ProviderLabel {
                provider: provider.clone(),
            })
            .clone();
        myself.send_message(ProbeMsg::Probe)?;
        Ok(ProbeState {
            args,
            up,
            condition: format!("upstream {provider}"),
            last: None,
            timer: Timer::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Probe => {
                let span =
                    tracing::info_span!("health_probe", provider = %state.args.client.provider());
                on_probe(&myself, state).instrument(span).await;
            }
        }
        Ok(())
    }
}

async fn on_probe(myself: &ActorRef<ProbeMsg>, state: &mut ProbeState) {
    state.timer.fired();
    let url = state.args.url.clone();
    let credentials = &state.args.credentials;
    let problem = match credentials.unavailable() {
        Some(why) => Some(format!("credentials unavailable: {why}")),
        None => match state
            .args
            .client
            .send(None, |http| credentials.apply(http.get(url.clone())))
            .await
        {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!(
                "health check answered HTTP {}",
                resp.status().as_u16()
            )),
            Err(e) => Some(e.to_string()),
        },
    };
    state.up.set(i64::from(problem.is_none()));
    if state.last.as_ref() != Some(&problem) {
        let provider = state.args.client.provider();
        match &problem {
            None => tracing::info!(provider = %provider, "upstream healthy"),
            Some(why) => tracing::warn!(provider = %provider, problem = %why, "upstream unhealthy"),
        }
        state.last = Some(problem.clone());
    }
    state.args.readiness.set_degraded(&state.condition, problem);
    state
        .timer
        .set(myself, state.args.interval, || ProbeMsg::Probe);
}
