//! Real TCP against [`celeriac_serve::serve`]: a response given before the
//! request's body was read says `Connection: close` and the connection is
//! closed, so a pooling client never sends its next request on it; a body
//! read to its end, or no body, keeps the connection open for the next
//! request.

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use celeriac_serve::ConnectionTimeouts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

async fn start() -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let router = Router::new()
        .route("/ignore", post(|| async { "ignored" }))
        .route("/echo", post(|body: String| async move { body }))
        .route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(celeriac_serve::serve(
        listener,
        router,
        ConnectionTimeouts::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Read one response (head and a `content-length` body) as lowercase text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no response within 10 s: {received:?}"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(n > 0, "closed before a whole response: {received:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server closes the connection within two seconds.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_response_to_an_unread_body_closes_the_connection_and_says_so() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The head now, the body never: the handler answers without it.
    stream
        .write_all(b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(closed(&mut stream).await, "the connection stayed open");
}

#[tokio::test]
async fn a_read_body_or_none_keeps_the_connection() {
    let (addr, _stop) = start().await;
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = read_response(&mut stream).await;
    assert!(response.ends_with("hello"), "{response}");
    assert!(!response.contains("connection: close"), "{response}");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = read_response(&mut stream).await;
    assert!(response.ends_with("hello"), "{response}");
    assert!(!response.contains("connection: close"), "{response}");
    // A body-less request to a route that reads nothing: still open.
    stream
        .write_all(b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = read_response(&mut stream).await;
    assert!(!response.contains("connection: close"), "{response}");
    assert!(
        !closed(&mut stream).await,
        "closed after a body-less request"
    );
}
