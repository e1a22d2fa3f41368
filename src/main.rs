//! The `partway` binary: parse flags, connect the stores, serve until SIGTERM.

use clap::Parser;
use partway::{Config, Partway, shutdown_signal};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = match Config::parse().validate() {
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
