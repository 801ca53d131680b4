//! The command line: `run`, `check-config`, `status`, `intents tail`, `approvals
//! list|show|approve|deny` (the running server's `/v1/approvals`), `audit tail`.
//!
//! `run` and `check-config` refuse an unauthenticated webhook on an address other hosts can
//! reach (see `Config::check_exposure`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sre_config::{Config, ConfigErrors, SecretStore};

use crate::app::AppHandle;

/// sre-integration: signals in as intents, facts out as tickets and pages, tools for the agent.
#[derive(Debug, Parser)]
#[command(name = "sre-integration", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (default configuration: the embedded local one).
    Run {
        /// Configuration file.
        #[arg(long, short, env = "SRE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file, including the secrets it references.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Resolve secret references in this directory instead of `secrets.dir`.
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
    },
    /// Read the intents the embedded sink holds.
    Intents {
        /// What to do with them.
        #[command(subcommand)]
        command: IntentsCommand,
    },
    /// The embedded facts source (without Kafka).
    Facts {
        /// What to do.
        #[command(subcommand)]
        command: FactsCommand,
    },
    /// Read the incident ledger.
    Incidents {
        /// What to do.
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Print the live supervision tree of a running instance.
    Status {
        /// Base URL of the instance.
        #[arg(long, env = "SRE_STATUS_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Bearer token for the operator endpoints (`server.ops_auth`).
        #[arg(long, env = "SRE_STATUS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// List, show, approve or deny the agent's pending writes on a running instance.
    Approvals {
        /// What to do.
        #[command(subcommand)]
        command: ApprovalsCommand,
        /// Base URL of the instance's tool endpoints (`tools.listen`, else `server.listen`).
        #[arg(
            long,
            global = true,
            env = "SRE_TOOLS_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
        /// A bearer token of `tools.tokens` (an approver's, to approve or deny).
        #[arg(long, global = true, env = "SRE_TOOLS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Read the audit trail of the agent tools.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `approvals` verbs.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// The pending approvals, oldest first.
    List,
    /// One approval (arguments, preview, status), as JSON.
    Show {
        /// The approval id.
        id: String,
    },
    /// Approve a pending write (it then runs once, when the agent calls it with this id).
    Approve {
        /// The approval id.
        id: String,
        /// Why (audited).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending write.
    Deny {
        /// The approval id.
        id: String,
        /// Why (audited, and told to the agent).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the last audit records, one JSON object per line (the embedded log, or the Kafka
    /// topic when `intents.sink` is kafka).
    Tail {
        /// Configuration file (for `intents`, `tools.audit.topic`).
        #[arg(long, short, env = "SRE_CONFIG")]
        config: Option<PathBuf>,
        /// Keep printing records as they are appended.
        #[arg(long, short)]
        follow: bool,
        /// How many of the existing records to print first (per partition on Kafka).
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
    },
}

/// `intents` verbs.
#[derive(Debug, Subcommand)]
pub enum IntentsCommand {
    /// Print the last records of the embedded log, one JSON object per line.
    Tail {
        /// Configuration file (for `intents.embedded.data_dir` and `intents.topic`).
        #[arg(long, short, env = "SRE_CONFIG")]
        config: Option<PathBuf>,
        /// Keep printing records as they are appended.
        #[arg(long, short)]
        follow: bool,
        /// Only records of this intent type (`IngestAlertRequested`, ...).
        #[arg(long = "type", short = 't')]
        kind: Option<String>,
        /// How many of the existing records to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
    },
}

/// `facts` verbs.
#[derive(Debug, Subcommand)]
pub enum FactsCommand {
    /// Append facts to the embedded facts log (`<facts.data_dir>/<facts.topic>/`), durably.
    /// Each line of the file is one record: `{"key":"incident:<id>","headers":{"ce_type":
    /// "IncidentCreated","ce_id":"..."},"value":{...}}`.
    Append {
        /// Configuration file (for `facts.data_dir` and `facts.topic`).
        #[arg(long, short, env = "SRE_CONFIG")]
        config: Option<PathBuf>,
        /// JSON-lines file of records (`-` for standard input).
        #[arg(long, short)]
        file: PathBuf,
    },
}

/// `incidents` verbs.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Print one incident's ledger entry as JSON (from the local ledger log, or the Kafka
    /// topic with `intents.sink: kafka`); exit 1 when the ledger has no such incident.
    Show {
        /// Configuration file.
        #[arg(long, short, env = "SRE_CONFIG")]
        config: Option<PathBuf>,
        /// The incident id.
        id: String,
    },
}

/// Exit code for configuration problems.
pub const EXIT_CONFIG: u8 = 2;

fn load(path: Option<&PathBuf>) -> Result<Config, ConfigErrors> {
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    Ok(config)
}

/// [`load`], then the checks of what the listener exposes (after the environment, which can
/// move the listen address).
fn load_to_serve(path: Option<&PathBuf>) -> Result<Config, ConfigErrors> {
    let config = load(path)?;
    let origin = path.map_or("embedded local.yaml".into(), |p| p.display().to_string());
    config.check_exposure(&origin)?;
    Ok(config)
}

fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    eprintln!("{} problem(s) found", errors.0.len());
}

/// `check-config FILE`.
///
/// Secret references are resolved when the secrets directory exists (as it does in the pod);
/// away from the deployment, where it does not, they are listed but not resolved.
pub fn check_config(file: &PathBuf, secrets_dir: Option<&PathBuf>) -> ExitCode {
    let config = match load_to_serve(Some(file)) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let store = SecretStore::new(secrets_dir.unwrap_or(&config.secrets.dir));
    let needs = config.secret_needs();
    let resolved = store.dir().is_dir();
    if resolved {
        if let Err(errors) = config.check_secrets(&store, &file.display().to_string()) {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let kubeconfigs = kubeconfig_problems(&config, &store, resolved);
    if !kubeconfigs.is_empty() {
        for p in &kubeconfigs {
            eprintln!("error: {}: {p}", file.display());
        }
        eprintln!("{} problem(s) found", kubeconfigs.len());
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}: valid", file.display());
    for line in config.summary() {
        println!("  {line}");
    }
    let unserved = crate::app::not_yet_served(&config);
    if !unserved.is_empty() {
        println!("  enabled but not served by this build yet:");
        for section in unserved {
            println!("    {section}");
        }
    }
    if !needs.is_empty() {
        if resolved {
            println!(
                "  secrets: {} reference(s) resolved in {}",
                needs.len(),
                store.dir().display()
            );
        } else {
            println!(
                "  secrets: {} reference(s) not resolved: {} does not exist here (pass --secrets-dir to check them)",
                needs.len(),
                store.dir().display()
            );
            for n in &needs {
                println!("    {}: {} keys [{}]", n.path, n.secret, n.keys.join(", "));
            }
        }
    }
    ExitCode::SUCCESS
}

/// Every cluster kubeconfig that cannot be used: files always, Secrets when they can be read
/// here (`in_cluster` is only known in the pod).
fn kubeconfig_problems(config: &Config, store: &SecretStore, secrets_here: bool) -> Vec<String> {
    let Some(k) = config.kubernetes() else {
        return Vec::new();
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot check the kubeconfigs: {e}")],
    };
    k.clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.kubeconfig_path.is_some() || (secrets_here && c.kubeconfig_secret_ref.is_some())
        })
        .filter_map(|(i, c)| {
            let key = if c.kubeconfig_path.is_some() {
                "kubeconfig_path"
            } else {
                "kubeconfig_secret_ref"
            };
            runtime
                .block_on(sre_actors::kubernetes::client::config(c, store))
                .err()
                .map(|e| {
                    format!(
                        "kubernetes_integration.clusters.{i}.{key}: cluster {:?}: {e}",
                        c.name
                    )
                })
        })
        .collect()
}

/// `status --url URL [--token TOKEN]`.
pub async fn status(url: &str, token: Option<&str>) -> ExitCode {
    let endpoint = format!("{}/v1/supervision", url.trim_end_matches('/'));
    sre_actors::providers::client::install_crypto_provider();
    let result = async {
        let mut req = reqwest::Client::new()
            .get(&endpoint)
            .timeout(std::time::Duration::from_secs(10));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?.error_for_status()?;
        resp.json::<crate::http::tree::Node>().await
    }
    .await;
    match result {
        Ok(tree) => {
            print!("{}", crate::http::tree::render(&tree));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot read {endpoint}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `run [--config FILE]`.
pub async fn run(config: Option<&PathBuf>) -> ExitCode {
    let config = match load_to_serve(config) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _telemetry = match crate::telemetry::init(&config.telemetry) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut app = match AppHandle::start(config).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Both listeners are registered before the first signal can arrive, and stay registered
    // through the shutdown, so a second signal is never missed (however soon it follows).
    let mut signals = ShutdownSignals::new();
    tokio::select! {
        () = signals.recv() => {}
        () = app.stopped() => {
            tracing::error!("the root supervisor stopped on its own");
            return ExitCode::FAILURE;
        }
    }
    tokio::spawn(async move {
        signals.recv().await;
        eprintln!("second signal: aborting");
        std::process::exit(130);
    });
    app.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM listeners. Registered when made: a signal that arrives before the
/// first wait is kept for it.
struct ShutdownSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            ShutdownSignals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    /// The next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.int) => tracing::info!("SIGINT received"),
                () = next(&mut self.term) => tracing::info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received");
        }
    }
}

/// `intents tail`.
pub async fn intents_tail(
    config: Option<&PathBuf>,
    follow: bool,
    kind: Option<&str>,
    lines: usize,
) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(k) = kind {
        if sre_intents::IntentType::parse(k).is_none() {
            eprintln!("error: unknown intent type {k:?}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let dir = config.intents.embedded.data_dir.join(&config.intents.topic);
    let wanted =
        |r: &sre_sink::stored::StoredRecord| kind.is_none_or(|k| r.header("ce_type") == Some(k));
    // A closed pipe (`| head`) ends the command quietly.
    let print = |r: &sre_sink::stored::StoredRecord| {
        use std::io::Write;
        let line = serde_json::to_string(r).unwrap_or_default();
        writeln!(std::io::stdout().lock(), "{line}").is_ok()
    };
    tail_embedded(&dir, lines, follow, wanted, print).await
}

/// `approvals <verb> --url URL [--token TOKEN]`.
pub async fn approvals(url: &str, token: Option<&str>, command: &ApprovalsCommand) -> ExitCode {
    sre_actors::providers::client::install_crypto_provider();
    let base = format!("{}/v1/approvals", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let (req, what) = match command {
        ApprovalsCommand::List => (client.get(&base), "list"),
        ApprovalsCommand::Show { id } => (client.get(format!("{base}/{id}")), "show"),
        ApprovalsCommand::Approve { id, reason } => (
            client
                .post(format!("{base}/{id}/approve"))
                .json(&serde_json::json!({ "reason": reason })),
            "approve",
        ),
        ApprovalsCommand::Deny { id, reason } => (
            client
                .post(format!("{base}/{id}/deny"))
                .json(&serde_json::json!({ "reason": reason })),
            "deny",
        ),
    };
    let mut req = req.timeout(std::time::Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let result = async {
        let resp = req.send().await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let (status, body) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach {base}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !status.is_success() {
        let reason = body["reason"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        eprintln!("error: {reason} (HTTP {})", status.as_u16());
        return ExitCode::FAILURE;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_owned();
    let _ = match what {
        "list" => {
            let list = body["approvals"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                writeln!(out, "no pending approvals")
            } else {
                let _ = writeln!(
                    out,
                    "{:<36}  {:<22}  {:<16}  {:<25}  ARGUMENTS",
                    "ID", "TOOL", "REQUESTED BY", "EXPIRES AT"
                );
                list.iter().try_for_each(|a| {
                    writeln!(
                        out,
                        "{:<36}  {:<22}  {:<16}  {:<25}  {}",
                        text(a, "approval_id"),
                        text(a, "tool"),
                        text(a, "requested_by"),
                        text(a, "expires_at"),
                        a["arguments"]
                    )
                })
            }
        }
        "show" => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        ),
        _ => writeln!(
            out,
            "{} {}: {} asked by {}{}",
            text(&body, "status"),
            text(&body, "approval_id"),
            text(&body, "tool"),
            text(&body, "requested_by"),
            body["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    ExitCode::SUCCESS
}

/// `audit tail [-f] [-n N]`.
pub async fn audit_tail(config: Option<&PathBuf>, follow: bool, lines: usize) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let topic = config.tools.audit.topic.clone();
    let print = |r: &sre_sink::stored::StoredRecord| {
        use std::io::Write;
        let line = serde_json::to_string(&r.value).unwrap_or_default();
        writeln!(std::io::stdout().lock(), "{line}").is_ok()
    };
    if config.intents.sink == sre_config::SinkKind::Kafka {
        let options = sre_sink::kafka::KafkaOptions::from_config(
            &config.intents.kafka,
            SecretStore::new(&config.secrets.dir),
        );
        let result = tokio::task::spawn_blocking(move || {
            sre_sink::kafka::read_topic(&options, &topic, lines, follow, |r| print(&r))
        })
        .await;
        return match result {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("error: cannot read the audit topic: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let dir = config.intents.embedded.data_dir.join(&topic);
    tail_embedded(&dir, lines, follow, |_| true, print).await
}

/// Prints the last `lines` records of the embedded log in `dir` that `wanted` keeps, then (with
/// `follow`) each new one as it is appended. Unreadable lines (crash garbage) are skipped and
/// counted on stderr; `print` answering false (a closed pipe, `| head`) ends it quietly.
async fn tail_embedded(
    dir: &std::path::Path,
    lines: usize,
    follow: bool,
    wanted: impl Fn(&sre_sink::stored::StoredRecord) -> bool,
    print: impl Fn(&sre_sink::stored::StoredRecord) -> bool,
) -> ExitCode {
    let report = |skipped: u64| {
        if skipped > 0 {
            eprintln!(
                "warning: skipped {skipped} unreadable line(s) in {}",
                dir.display()
            );
        }
    };
    let mut follower = sre_sink::embedded::Follower::new(dir);
    let existing = match follower.poll() {
        Ok(scan) => scan,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    report(existing.skipped_lines);
    let matching: Vec<_> = existing.records.iter().filter(|r| wanted(r)).collect();
    for r in &matching[matching.len().saturating_sub(lines)..] {
        if !print(r) {
            return ExitCode::SUCCESS;
        }
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    loop {
        match follower.poll() {
            Ok(scan) => {
                report(scan.skipped_lines);
                if !scan.records.iter().filter(|r| wanted(r)).all(&print) {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                eprintln!("error: cannot follow {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// One line of `facts append`'s input.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FactLine {
    key: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    value: Box<serde_json::value::RawValue>,
}

/// The most bytes `facts append` reads.
const MAX_APPEND_BYTES: u64 = 256 * 1024 * 1024;

/// `facts append --file FILE`.
pub fn facts_append(config: Option<&PathBuf>, file: &PathBuf) -> ExitCode {
    use std::io::Read;
    let config = match load(config) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.intents.sink == sre_config::SinkKind::Kafka {
        eprintln!(
            "error: with intents.sink: kafka the facts come from the topic {}; produce them there",
            config.facts.topic
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_APPEND_BYTES)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_APPEND_BYTES).read_to_string(&mut text))
    };
    if let Err(e) = read {
        eprintln!("error: cannot read {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<FactLine>(line) {
            Ok(l) => records.push(sre_intents::IntentRecord {
                topic: config.facts.topic.clone(),
                key: l.key,
                headers: l
                    .headers
                    .into_iter()
                    .map(|(k, v)| (std::borrow::Cow::Owned(k), v))
                    .collect(),
                value: l.value,
            }),
            Err(e) => {
                eprintln!("error: {} line {}: {e}", file.display(), i + 1);
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let dir = config.facts.data_dir.join(&config.facts.topic);
    let result = sre_sink::embedded::Log::open(&dir, sre_sink::embedded::LogOptions::default())
        .map_err(|e| e.to_string())
        .and_then(|mut log| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let offsets = log.append(&records, now).map_err(|e| e.to_string())?;
            log.sync().map_err(|e| e.to_string())?;
            Ok(offsets)
        });
    match result {
        Ok(offsets) => {
            println!("appended {} fact(s) to {}", offsets.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `incidents show ID`.
pub fn incidents_show(config: Option<&PathBuf>, id: &str) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let f = &config.facts;
    let loaded = match crate::app::ledger_store(&config) {
        sre_actors::facts::store::LedgerStore::Local(_) => {
            sre_actors::facts::store::read_local(&f.data_dir.join(&f.ledger_topic))
        }
        sre_actors::facts::store::LedgerStore::Kafka(mut k) => k.load(),
    };
    match loaded {
        Ok(loaded) => match loaded.entries.get(id) {
            Some((entry, _)) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(entry).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no incident {id:?} in the ledger");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
