//! Mounting partway inside an existing axum application, under `/uploads/`.
//!
//! ```text
//! cargo run --example embed
//! curl -i -X POST http://127.0.0.1:3000/uploads/ -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 5'
//! ```
//!
//! This uses the embedded local store (`./data-embed`); pass the same flags
//! as the `partway` binary (`--s3-bucket`, `--redis-url`, ...) to use S3 and
//! Redis instead. The application's own routes live beside partway's.

use axum::Router;
use axum::routing::get;
use clap::Parser;
use partway::{Config, Partway};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let mut args = vec![
        "embed".to_owned(),
        "--base-path".into(),
        "/uploads/".into(),
        "--data-dir".into(),
        "./data-embed".into(),
    ];
    args.extend(std::env::args().skip(1));
    let settings = Config::parse_from(args).validate()?;
    let partway = Partway::from_settings(&settings).await?;

    let app = Router::new()
        .route(
            "/",
            get(|| async { "my application; uploads go to /uploads/\n" }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .merge(partway.router());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    partway::server::serve(
        listener,
        app,
        partway.service().clone(),
        partway::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
