//! The `sre-integration` binary; see the library for what each verb does.

use std::process::ExitCode;

use clap::Parser;
use sre_integration::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file, secrets_dir } => {
            cli::check_config(&file, secrets_dir.as_ref())
        }
        Command::Run { config } => runtime().block_on(cli::run(config.as_ref())),
        Command::Status { url } => runtime().block_on(cli::status(&url)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
