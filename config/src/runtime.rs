//! The program's own sections: `server`, `intents`, `facts`, `supervision`, `tools`,
//! `telemetry` and `secrets`. Every field has a default that runs on a laptop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// `server`: the HTTP listener, its limits, and who may read the operator endpoints.
///
/// Every limit has a default that is safe on an exposed port: a client that sends half a
/// request header is cut off after `header_read_timeout`, an idle keep-alive connection after
/// `idle_timeout`, a request that is not answered within `request_timeout` gets `408`, and no
/// more than `max_connections` connections are served at once (further clients wait in the
/// kernel's accept queue until one closes).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address (env `SRE_LISTEN_ADDR`). A non-loopback address with an unauthenticated
    /// webhook is refused unless the webhook sets `allow_unauthenticated: true`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long readiness is false before the listener closes, so load
    /// balancers stop sending traffic first.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long in-flight requests may take to finish once the listener closed.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Serve `POST /v1/supervision/restart` (restarts one actor). Off by default; when on, put
    /// it behind `ops_auth` on any address others can reach.
    #[serde(default)]
    pub allow_restart: bool,
    /// How long a client may take to send a request's header, from the moment the connection
    /// opens (or, on a kept-alive connection, from the first byte of the next request). Past it
    /// the connection is closed without an answer. Default 10s.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long one request may take from its complete header to the answer, body upload
    /// included; past it the client gets `408` and the connection is closed. Must be longer
    /// than `intents.publish_timeout` (the webhook answers `503` itself by then). Default 30s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request before it is closed.
    /// Longer than the idle timeout of AlertManager's HTTP client (90s) by default, so the
    /// client, not the server, closes idle connections and never sends on a closing one.
    /// Default 95s.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections served at once; the next one is accepted when one closes. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bearer token for `/metrics`, `/v1/supervision` and `/v1/supervision/restart`
    /// (`/healthz` and `/readyz` stay open for probes). None (the default): those endpoints
    /// are open to anyone who reaches the port.
    #[serde(default)]
    pub ops_auth: Option<OpsAuth>,
}

/// `server.ops_auth`: callers of the operator endpoints send `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsAuth {
    /// Secret holding `token`.
    pub secret_ref: crate::SecretRef,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
            drain_timeout: default_drain_timeout(),
            allow_restart: false,
            header_read_timeout: default_header_read_timeout(),
            request_timeout: default_request_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            ops_auth: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("static address")
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(2)
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(95)
}
fn default_max_connections() -> usize {
    1024
}

/// `intents`: where intents go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentsConfig {
    /// Topic (also the embedded log's name).
    #[serde(default = "default_intents_topic")]
    pub topic: String,
    /// `ce_source` prefix: `<source>/<integration>`.
    #[serde(default = "default_source")]
    pub source: String,
    /// Which sink is used.
    #[serde(default)]
    pub sink: SinkKind,
    /// Longest a webhook waits for its intents to become durable before answering 503 (the
    /// write still completes, and AlertManager's retry then finds it).
    #[serde(default = "default_publish_timeout", with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// Embedded log settings.
    #[serde(default)]
    pub embedded: EmbeddedSink,
    /// Kafka settings.
    #[serde(default)]
    pub kafka: KafkaConfig,
}

impl Default for IntentsConfig {
    fn default() -> Self {
        IntentsConfig {
            topic: default_intents_topic(),
            source: default_source(),
            sink: SinkKind::default(),
            publish_timeout: default_publish_timeout(),
            embedded: EmbeddedSink::default(),
            kafka: KafkaConfig::default(),
        }
    }
}

fn default_intents_topic() -> String {
    "sre.domain.intents.v1".into()
}
fn default_publish_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_source() -> String {
    "sre-integration".into()
}

/// `intents.sink`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Segmented JSON Lines log under `embedded.data_dir`.
    #[default]
    Embedded,
    /// Kafka via rdkafka.
    Kafka,
}

/// `intents.embedded`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSink {
    /// Directory of the log segments.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A segment is closed when it reaches this size.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Closed segments older than this are deleted.
    #[serde(default = "default_retention_age", with = "humantime_serde")]
    pub retention_age: Duration,
    /// Closed segments beyond this total size are deleted, oldest first.
    #[serde(default = "default_retention_bytes")]
    pub retention_bytes: u64,
}

impl Default for EmbeddedSink {
    fn default() -> Self {
        EmbeddedSink {
            data_dir: default_data_dir(),
            segment_bytes: default_segment_bytes(),
            retention_age: default_retention_age(),
            retention_bytes: default_retention_bytes(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data/intents")
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_retention_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_retention_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// `intents.kafka` (also used by `facts` unless it sets its own brokers).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (env `SRE_KAFKA_BROKERS`).
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// librdkafka `client.id`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// librdkafka `linger.ms`.
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub linger: Duration,
    /// librdkafka `compression.type`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// How long a produce may take before the webhook answers 503.
    #[serde(default = "default_delivery_timeout", with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// TLS and SASL, shared by every Kafka client of the program (the intent producer, the
    /// dedup rebuild's reader, the facts consumer). Default: plaintext, no authentication.
    #[serde(default)]
    pub security: KafkaSecurity,
    /// Extra librdkafka properties (tuning: `socket.keepalive.enable`, `reconnect.backoff.ms`,
    /// ...). May not set `acks`, `request.required.acks` or `enable.idempotence` (the sink
    /// needs `acks=all` with idempotence), nor `security.protocol`, `sasl.*` or `ssl.*` (set
    /// those through `security`, so credentials come from secrets and never sit in the
    /// configuration).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// librdkafka properties `intents.kafka.properties` may not set, and why.
pub fn kafka_reserved_property(key: &str) -> Option<&'static str> {
    let key = key.trim();
    match key {
        "acks" | "request.required.acks" | "enable.idempotence" => {
            Some("cannot be overridden: the sink needs acks=all with idempotence")
        }
        "security.protocol" => Some("set intents.kafka.security.protocol instead"),
        k if k.starts_with("sasl.") => Some("set intents.kafka.security.sasl instead"),
        k if k.starts_with("ssl.") || k.starts_with("ssl_") => {
            Some("set intents.kafka.security.tls instead")
        }
        _ => None,
    }
}

/// `intents.kafka.security`.
///
/// ```yaml
/// security:
///   protocol: sasl_ssl
///   tls: {ca_path: /var/run/secrets/sre/kafka-tls/ca.crt}
///   sasl: {mechanism: SCRAM-SHA-512, secret_ref: platform/kafka-credentials}
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// librdkafka `security.protocol`: `plaintext` (default), `ssl`, `sasl_plaintext` or
    /// `sasl_ssl`.
    #[serde(default)]
    pub protocol: KafkaProtocol,
    /// TLS settings; only with `ssl` or `sasl_ssl`.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication; required with `sasl_plaintext` and `sasl_ssl`, refused otherwise.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
}

/// `intents.kafka.security.protocol`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KafkaProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS (the password of `PLAIN` crosses the network in clear: tests only).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl KafkaProtocol {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaProtocol::SaslSsl => "sasl_ssl",
        }
    }
    /// Whether it uses TLS.
    pub fn tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }
    /// Whether it uses SASL.
    pub fn sasl(self) -> bool {
        matches!(self, KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl)
    }
}

/// `intents.kafka.security.tls`. Files are PEM and read by librdkafka when a client is created
/// (mount them; a restart of the publisher picks up rotated files).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// CA certificates the brokers' certificates are verified against (librdkafka
    /// `ssl.ca.location`). Default: the system's trust store.
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// Client certificate, for brokers that require mutual TLS (`ssl.certificate.location`);
    /// needs `key_path`.
    #[serde(default)]
    pub cert_path: Option<PathBuf>,
    /// The client certificate's private key (`ssl.key.location`); needs `cert_path`.
    #[serde(default)]
    pub key_path: Option<PathBuf>,
    /// Check that a broker's certificate names the host connected to (default `true`;
    /// librdkafka `ssl.endpoint.identification.algorithm` `https`, or `none` when `false`).
    /// The certificate chain is verified either way.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// `intents.kafka.security.sasl`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// The secret holding keys `username` and `password` (read when a client is created).
    pub secret_ref: crate::SecretRef,
}

/// `intents.kafka.security.sasl.mechanism`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password sent as they are (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: default_brokers(),
            client_id: default_client_id(),
            linger: default_linger(),
            compression: default_compression(),
            delivery_timeout: default_delivery_timeout(),
            security: KafkaSecurity::default(),
            properties: BTreeMap::new(),
        }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_client_id() -> String {
    "sre-integration".into()
}
fn default_linger() -> Duration {
    Duration::from_millis(1)
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `facts`: the consumer of `sre.domain.facts.v1` (DESIGN §3.3a–b).
///
/// Where facts come from follows `intents.sink`: with `kafka`, a consumer group on `topic`
/// (brokers and security from `intents.kafka`, `brokers` overriding the brokers); with
/// `embedded` (the laptop default), the local log `<data_dir>/<topic>/` in the embedded intent
/// log's line format, its committed position kept in `<data_dir>/<topic>.position`. The
/// incident ledger is the compacted topic `ledger_topic` with Kafka, the local log
/// `<data_dir>/<ledger_topic>/` otherwise; dead letters go to `dead_letter_topic` (or
/// `<data_dir>/<dead_letter_topic>/`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsConfig {
    /// Whether facts are consumed.
    #[serde(default)]
    pub enabled: bool,
    /// Topic.
    #[serde(default = "default_facts_topic")]
    pub topic: String,
    /// Consumer group.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Bootstrap servers (default: `intents.kafka.brokers`).
    #[serde(default)]
    pub brokers: Option<String>,
    /// Topic for facts that cannot be parsed or that a target rejected for good.
    #[serde(default = "default_dead_letter")]
    pub dead_letter_topic: String,
    /// The incident ledger's compacted topic (with `intents.sink: kafka`), keyed
    /// `incident:<id>`, with as many partitions as `topic`. Never created by the program:
    /// a missing topic is reported and the consumer does not start.
    #[serde(default = "default_ledger_topic")]
    pub ledger_topic: String,
    /// Resolved or closed incidents are forgotten (tombstoned) this long after their last
    /// change.
    #[serde(default = "default_ledger_retention", with = "humantime_serde")]
    pub ledger_retention: Duration,
    /// The local ledger log is rewritten with only its live entries once it holds this many
    /// lines (and more than twice the live entries).
    #[serde(default = "default_ledger_compact_lines")]
    pub ledger_compact_lines: u64,
    /// Directory of the embedded facts source, its position file, the local ledger and the
    /// local dead-letter log (used without Kafka).
    #[serde(default = "default_facts_data_dir")]
    pub data_dir: PathBuf,
    /// How often the embedded source looks for new facts.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Facts of different incidents worked on at once per partition, not counting facts that
    /// wait for an unavailable target (at most 32 × this many in hand, up to 4096); one
    /// incident's facts always one at a time, in order. `1` handles a partition strictly in
    /// offset order.
    #[serde(default = "default_facts_concurrency")]
    pub concurrency: usize,
    /// First wait before a fact whose target is unavailable is applied again; doubled on
    /// every attempt up to `max_backoff`. A wait the provider asked for (`Retry-After`, the
    /// time until an open circuit allows a trial) is honoured exactly instead.
    #[serde(default = "default_min_backoff", with = "humantime_serde")]
    pub min_backoff: Duration,
    /// Longest wait between two attempts of the same fact.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How often handled offsets are committed (also on rebalance and shutdown).
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
}

impl Default for FactsConfig {
    fn default() -> Self {
        FactsConfig {
            enabled: false,
            topic: default_facts_topic(),
            group_id: default_group(),
            brokers: None,
            dead_letter_topic: default_dead_letter(),
            ledger_topic: default_ledger_topic(),
            ledger_retention: default_ledger_retention(),
            ledger_compact_lines: default_ledger_compact_lines(),
            data_dir: default_facts_data_dir(),
            poll_interval: default_poll_interval(),
            concurrency: default_facts_concurrency(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            commit_interval: default_commit_interval(),
        }
    }
}

fn default_facts_topic() -> String {
    "sre.domain.facts.v1".into()
}
fn default_group() -> String {
    "sre-integration".into()
}
fn default_dead_letter() -> String {
    "sre.integration.facts.dlq.v1".into()
}
fn default_ledger_topic() -> String {
    "sre.integration.incidents.v1".into()
}
fn default_ledger_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_ledger_compact_lines() -> u64 {
    100_000
}
fn default_facts_data_dir() -> PathBuf {
    PathBuf::from("data/facts")
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_facts_concurrency() -> usize {
    32
}
fn default_min_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}

/// `supervision`: restart policy, circuits and outbound retries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// How failed actors are restarted.
    #[serde(default)]
    pub restart: RestartConfig,
    /// Circuit defaults for every upstream.
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// Outbound call policy for every upstream.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `supervision.restart`: one-for-one, exponential backoff with jitter, intensity, parking.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartConfig {
    /// First restart delay.
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    /// Largest restart delay.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Random spread of each delay, as a fraction (0.2 = ±20%).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// More than this many restarts within `period` parks the child.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// The intensity window.
    #[serde(default = "default_period", with = "humantime_serde")]
    pub period: Duration,
    /// How long a parked child waits before it is tried again.
    #[serde(default = "default_cool_down", with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            jitter: default_jitter(),
            max_restarts: default_max_restarts(),
            period: default_period(),
            cool_down: default_cool_down(),
        }
    }
}

fn default_backoff_min() -> Duration {
    Duration::from_millis(100)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}
fn default_jitter() -> f64 {
    0.2
}
fn default_max_restarts() -> u32 {
    5
}
fn default_period() -> Duration {
    Duration::from_secs(60)
}
fn default_cool_down() -> Duration {
    Duration::from_secs(300)
}

/// `supervision.circuit`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Failure rate (0..1] over the window at which the circuit opens.
    #[serde(default = "default_failure_rate")]
    pub failure_rate_threshold: f64,
    /// Sliding window of recorded outcomes.
    #[serde(default = "default_circuit_window", with = "humantime_serde")]
    pub window: Duration,
    /// Fewer calls than this in the window never open the circuit.
    #[serde(default = "default_minimum_calls")]
    pub minimum_calls: u32,
    /// How long an open circuit fails fast before trying again.
    #[serde(default = "default_open_duration", with = "humantime_serde")]
    pub open_duration: Duration,
    /// Successful trial calls in half-open that close the circuit.
    #[serde(default = "default_trials")]
    pub half_open_trials: u32,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failure_rate_threshold: default_failure_rate(),
            window: default_circuit_window(),
            minimum_calls: default_minimum_calls(),
            open_duration: default_open_duration(),
            half_open_trials: default_trials(),
        }
    }
}

fn default_failure_rate() -> f64 {
    0.5
}
fn default_circuit_window() -> Duration {
    Duration::from_secs(60)
}
fn default_minimum_calls() -> u32 {
    10
}
fn default_open_duration() -> Duration {
    Duration::from_secs(30)
}
fn default_trials() -> u32 {
    3
}

/// `supervision.retry`: the outbound call policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per call, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay.
    #[serde(default = "default_retry_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    /// Largest retry delay.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Per-attempt timeout (a backend's own `timeout` wins).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A `Retry-After` longer than this fails the call instead of waiting.
    #[serde(default = "default_max_retry_after", with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_attempts(),
            backoff_min: default_retry_min(),
            backoff_max: default_retry_max(),
            timeout: default_timeout(),
            max_retry_after: default_max_retry_after(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_retry_min() -> Duration {
    Duration::from_millis(200)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_retry_after() -> Duration {
    Duration::from_secs(60)
}

/// `tools`: the SRECoder tool gateway (MCP at `/mcp`, REST at `/v1/tools`, approvals at
/// `/v1/approvals`).
///
/// ```yaml
/// tools:
///   enabled: true
///   approval_ttl: 15m
///   tokens:
///     - {name: srecoder, role: agent, secret_ref: platform/sre-tools-token}
///     - {name: oncall, role: approver, secret_ref: platform/sre-tools-approver-token}
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Whether tool endpoints are served.
    #[serde(default)]
    pub enabled: bool,
    /// How long an approval stays valid after it was requested: an approval granted later, or
    /// redeemed later, is refused. Default 15m.
    #[serde(default = "default_approval_ttl", with = "humantime_serde")]
    pub approval_ttl: Duration,
    /// Bearer tokens the callers present, each with a name (the identity audited and checked
    /// against self-approval) and a role. Required when `enabled`, unless
    /// `allow_unauthenticated` is set on a loopback listener.
    #[serde(default)]
    pub tokens: Vec<ToolToken>,
    /// Replaced by `tokens` (kept only to say so: a configuration that sets it is refused with
    /// the replacement spelled out).
    #[serde(default)]
    pub auth_secret_ref: Option<crate::SecretRef>,
    /// Where the Kubernetes write tools may act (see [`crate::tools`]). Default: nowhere.
    #[serde(default)]
    pub write_policy: crate::tools::WritePolicyConfig,
    /// Serve the tools without tokens (every caller is the agent `anonymous`: reads run, writes
    /// are held for an approval nobody can grant). Only on a loopback listener; default false.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// A separate listener for `/mcp`, `/v1/tools` and `/v1/approvals`; none (the default):
    /// they are served on `server.listen`. Served under the `server` limits either way.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Most approvals pending at once; a write asked beyond that is refused (503) until some
    /// are decided or expire. Default 1000.
    #[serde(default = "default_max_pending")]
    pub max_pending_approvals: usize,
    /// A tool's output is cut to this many bytes of JSON (`truncated: true`). Default 256 KiB.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// Longest a tool may run (and a write's preview may take); past it the call fails with a
    /// timeout (504). Shorter than `server.request_timeout`. Default 20s.
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Largest request body of `POST /v1/tools/<name>` and `/v1/approvals/*` (413 beyond).
    /// Default 1 MiB.
    #[serde(default = "default_tools_body_bytes")]
    pub max_body_bytes: usize,
    /// Where every call and decision is recorded.
    #[serde(default)]
    pub audit: ToolsAudit,
    /// The `/mcp` door's origins, hosts and sessions (its request body limit is
    /// `max_body_bytes`).
    #[serde(default)]
    pub mcp: McpConfig,
}

/// `tools.mcp`: the MCP door (streamable HTTP).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Browser origins allowed to call (`scheme://host[:port]`, `:*` for any port): a request
    /// carrying an `Origin` header not listed is refused (403, DNS-rebinding protection); one
    /// without `Origin` (every non-browser agent) passes. Default: the loopback origins
    /// `http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`.
    #[serde(default = "default_mcp_origins")]
    pub allowed_origins: Vec<String>,
    /// When set, only these `Host` values (`name` or `name:port`) are served. Default: any
    /// (the door is behind the bearer token).
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Sessions open at once; a new one past this is refused (503). Default 256.
    #[serde(default = "default_mcp_sessions")]
    pub max_sessions: usize,
    /// A session without traffic for this long is closed. Default 5m.
    #[serde(default = "default_mcp_idle", with = "humantime_serde")]
    pub session_idle: Duration,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allowed_origins: default_mcp_origins(),
            allowed_hosts: None,
            max_sessions: default_mcp_sessions(),
            session_idle: default_mcp_idle(),
        }
    }
}

fn default_mcp_origins() -> Vec<String> {
    ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}
fn default_mcp_sessions() -> usize {
    256
}
fn default_mcp_idle() -> Duration {
    Duration::from_secs(300)
}

/// `tools.tokens[]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ToolToken {
    /// The identity (`srecoder`, `oncall-alice`): audited, and an approver cannot approve a
    /// write asked under the same name.
    pub name: String,
    /// `agent` (lists and calls tools) or `approver` (also approves and denies writes).
    pub role: ToolRole,
    /// Secret holding the token under key `token`.
    pub secret_ref: crate::SecretRef,
}

/// `tools.tokens[].role`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolRole {
    /// Lists and calls tools; a write needs someone else's approval.
    Agent,
    /// Approves or denies pending writes, and may call tools like an agent.
    Approver,
}

/// `tools.audit`: the audit trail. With `intents.sink: embedded` it is a JSON Lines log in
/// `<intents.embedded.data_dir>/<topic>` (fsync'd before a call runs or answers); with
/// `intents.sink: kafka` it is the Kafka topic `topic` (acks=all awaited; create it first).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsAudit {
    /// Topic (also the embedded log's directory name). Default `sre.integration.audit.v1`.
    #[serde(default = "default_audit_topic")]
    pub topic: String,
    /// Longest an audit write may take; past it the call fails (no unaudited call). Default 10s.
    #[serde(default = "default_audit_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ToolsAudit {
    fn default() -> Self {
        ToolsAudit {
            topic: default_audit_topic(),
            timeout: default_audit_timeout(),
        }
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            enabled: false,
            approval_ttl: default_approval_ttl(),
            tokens: Vec::new(),
            auth_secret_ref: None,
            write_policy: Default::default(),
            allow_unauthenticated: false,
            listen: None,
            max_pending_approvals: default_max_pending(),
            max_output_bytes: default_max_output_bytes(),
            call_timeout: default_call_timeout(),
            max_body_bytes: default_tools_body_bytes(),
            audit: ToolsAudit::default(),
            mcp: McpConfig::default(),
        }
    }
}

fn default_approval_ttl() -> Duration {
    Duration::from_secs(900)
}
fn default_max_pending() -> usize {
    1000
}
fn default_max_output_bytes() -> usize {
    256 * 1024
}
fn default_call_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_tools_body_bytes() -> usize {
    1024 * 1024
}
fn default_audit_topic() -> String {
    "sre.integration.audit.v1".into()
}
fn default_audit_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `telemetry`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `pretty` or `json` (env `SRE_LOG_FORMAT`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `sre_actors=debug,info`); `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces (`http://otel-collector:4318`); none disables tracing export.
    #[serde(default)]
    pub otlp_endpoint: Option<Url>,
    /// `service.name` of exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::default(),
            log_level: default_log_level(),
            otlp_endpoint: None,
            service_name: default_service_name(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}
fn default_service_name() -> String {
    "sre-integration".into()
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected \"pretty\" or \"json\""
            )),
        }
    }
}

/// `secrets`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Directory of mounted Secrets: `<dir>/<namespace>/<name>/<key>`.
    #[serde(default = "default_secrets_dir")]
    pub dir: PathBuf,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            dir: default_secrets_dir(),
        }
    }
}

fn default_secrets_dir() -> PathBuf {
    PathBuf::from("/var/run/secrets/sre")
}
