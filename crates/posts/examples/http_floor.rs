//! The floor under `POST /rank` on this machine: an axum server that reads
//! the request body and answers a constant, with no parsing and no ranking.
//! `bench/rank/run.sh` measures it beside the ranking server, so the table
//! shows how much of a request's cost is the HTTP stack and loopback TCP
//! alone (which no handler can win back).
//!
//! Run: `cargo run --release -p posts --example http_floor -- PORT`.

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;

// The allocator of the `celeriac` binary, so the floor is comparable.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8001);
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
    use axum::serve::ListenerExt as _;
    // TCP_NODELAY, as the ranking server sets it.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await
}
