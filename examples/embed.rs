//! Embedding partway in an application, configured in code, under `/uploads/`.
//!
//! ```text
//! cargo run --example embed
//! curl -i -X POST http://127.0.0.1:3000/uploads/ -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 5'
//! ```
//!
//! This uses the embedded local store (`./data-embed`); call
//! `.backend(Backend::S3 { .. })` on the builder to use S3 and Redis instead.
//! The application's own routes are served beside partway's, a layer wraps
//! them all (here a response header; authentication goes the same way), and
//! `serve` runs the expiry reaper and shuts down gracefully on ctrl-c or
//! SIGTERM.

use axum::Router;
use axum::http::HeaderValue;
use axum::routing::get;
use partway::{Partway, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "my application; uploads go to /uploads/\n" }),
        )
        .route("/health", get(|| async { "ok\n" }));
    let partway = Partway::builder()
        .base_path("/uploads/")
        .data_dir("./data-embed")
        .routes(app)
        .wrap(|router| {
            router.layer(axum::middleware::map_response(
                |mut response: axum::response::Response| async move {
                    let served_by = HeaderValue::from_static("my-application");
                    response.headers_mut().insert("x-served-by", served_by);
                    response
                },
            ))
        })
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    partway.serve(listener, shutdown_signal()).await?;
    Ok(())
}
