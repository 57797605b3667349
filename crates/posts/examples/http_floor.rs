//! The floor under `POST /rank` on this machine: a server that reads the
//! request body and answers a constant, with no parsing and no ranking, on
//! the ranking server's own serving stack (`celeriac_serve::serve`: hyper
//! HTTP/1.1 through axum, `TCP_NODELAY`, the per-connection header-read and
//! idle timeouts; the same allocator). `bench/rank/run.sh` measures it
//! beside the ranking server, so the table shows how much of a request's
//! cost is the HTTP stack and loopback TCP alone (which no handler can win
//! back).
//!
//! `--axum-serve` serves with plain `axum::serve` instead (no timeouts),
//! to measure what the timeouts' watchdog costs.
//!
//! Run: `cargo run --release -p posts --example http_floor -- PORT [--axum-serve]`.

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use celeriac_serve::ConnectionTimeouts;

// The allocator of the `celeriac` binary, so the floor is comparable.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(8001);
    let plain_axum = args.iter().any(|a| a == "--axum-serve");
    let app = Router::new().route(
        "/rank",
        post(|body: Bytes| async move {
            // Touch the body so that reading it cannot be optimised away.
            let answer = if body.is_empty() {
                r#"{"ranked_ids":null}"#
            } else {
                r#"{"ranked_ids":[]}"#
            };
            ([(header::CONTENT_TYPE, "application/json")], answer)
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    if plain_axum {
        use axum::serve::ListenerExt as _;
        // TCP_NODELAY, as the ranking server sets it.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        return axum::serve(listener, app).await;
    }
    // The ranking server's stack, with its default timeouts; runs until
    // the process is stopped.
    celeriac_serve::serve(
        listener,
        app,
        ConnectionTimeouts::default(),
        std::future::pending(),
    )
    .await
}
