//! The `sre-integration` binary; see the library for what each verb does.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the hot path allocates per alert (parsing, records), and
/// under load glibc's allocator took a third of the service's CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sre_integration::cli::{
    self, AuditCommand, Cli, Command, FactsCommand, IncidentsCommand, IntentsCommand,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file, secrets_dir } => {
            cli::check_config(&file, secrets_dir.as_ref())
        }
        Command::Run { config } => runtime().block_on(cli::run(config.as_ref())),
        Command::Status { url, token } => runtime().block_on(cli::status(&url, token.as_deref())),
        Command::Approvals {
            command,
            url,
            token,
        } => runtime().block_on(cli::approvals(&url, token.as_deref(), &command)),
        Command::Audit {
            command:
                AuditCommand::Tail {
                    config,
                    follow,
                    lines,
                },
        } => runtime().block_on(cli::audit_tail(config.as_ref(), follow, lines)),
        Command::Intents {
            command:
                IntentsCommand::Tail {
                    config,
                    follow,
                    kind,
                    lines,
                },
        } => runtime().block_on(cli::intents_tail(
            config.as_ref(),
            follow,
            kind.as_deref(),
            lines,
        )),
        Command::Facts {
            command: FactsCommand::Append { config, file },
        } => cli::facts_append(config.as_ref(), &file),
        Command::Incidents {
            command: IncidentsCommand::Show { config, id },
        } => cli::incidents_show(config.as_ref(), &id),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
