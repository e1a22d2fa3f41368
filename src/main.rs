//! The `partway` binary: parse flags, connect the stores, serve until SIGTERM.

use clap::Parser;
use partway::config::LogFormat;
use partway::{Config, Partway, shutdown_signal};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Logs to stdout at the RUST_LOG level (default info), in `format`; text
/// is coloured only on a terminal.
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_logs(config.log_format);
    let settings = match config.validate() {
        Ok(s) => s,
        Err(message) => {
            eprintln!("partway: {message}");
            return ExitCode::from(2);
        }
    };
    let partway = match Partway::from_settings(&settings).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("partway: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.hooks.hooks_replay_dead {
        return match partway.replay_dead_letters().await {
            Ok(moved) => {
                println!("{moved} dead-lettered events moved back into the outbox");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("partway: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("partway: cannot listen on {}: {e}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %settings.listen,
        base_path = %settings.http.base_path,
        backend = %settings.backend.describe(),
        "partway ready"
    );
    match partway.serve(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("partway: {e}");
            ExitCode::FAILURE
        }
    }
}
