//! Real TCP against [`celeriac_serve::serve`]: a silent connection, a
//! half-sent request head, a head dripped byte by byte and an idle
//! keep-alive connection are all closed within their timeout (never
//! before), while a request in flight outlives the header timeout and
//! normal requests are answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use celeriac_serve::ConnectionTimeouts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

const HEADER: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_millis(900);
/// Far more than either timeout: a connection still open then is a failure.
const LIMIT: Duration = Duration::from_secs(10);

struct Server {
    addr: std::net::SocketAddr,
    release: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Server {
    let release = Arc::new(Notify::new());
    let held = Arc::clone(&release);
    let router = Router::new().route("/", get(|| async { "hello" })).route(
        "/held",
        get(move || {
            let held = Arc::clone(&held);
            async move {
                held.notified().await;
                "released"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let timeouts = ConnectionTimeouts {
        header_read: HEADER,
        idle: IDLE,
    };
    tokio::spawn(celeriac_serve::serve(
        listener,
        router,
        timeouts,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        release,
        _stop: stop,
    }
}

/// Read until the server closes the connection (EOF or reset) or `limit`
/// passes; returns what was read and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read one complete response with a `content-length`; returns it as text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("response within the limit")
            .expect("read");
        assert!(n > 0, "closed before a full response: {text:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    let (received, closed) = read_until_closed(&mut stream, LIMIT).await;
    let waited = started.elapsed();
    assert!(closed, "still open after {LIMIT:?}");
    assert!(received.is_empty(), "{received:?}");
    assert!(
        waited >= HEADER - Duration::from_millis(20),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Half: ")
        .await
        .expect("write");
    let (received, closed) = read_until_closed(&mut stream, LIMIT).await;
    let waited = started.elapsed();
    assert!(closed, "still open after {LIMIT:?}");
    assert!(
        !String::from_utf8_lossy(&received).contains("hello"),
        "{received:?}"
    );
    assert!(
        waited >= HEADER - Duration::from_millis(20),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_head_dripped_byte_by_byte_is_cut_at_the_header_timeout() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    let head =
        b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in head {
        // Pacing the client (one byte per 50 ms, 4 s in all), not waiting
        // for the server: the server must cut it long before the end.
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => panic!("answered a head that never completed in time"),
            Err(_) => {}
        }
    }
    let waited = started.elapsed();
    assert!(closed, "the dripped head was read to the end ({waited:?})");
    assert!(
        waited >= HEADER - Duration::from_millis(20) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("write");
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello"), "{response}");
    }
    let idle_from = Instant::now();
    let (received, closed) = read_until_closed(&mut stream, LIMIT).await;
    let waited = idle_from.elapsed();
    assert!(closed, "still open after {LIMIT:?}");
    assert!(received.is_empty(), "{received:?}");
    // The idle timeout, not the (shorter) header timeout.
    assert!(
        waited >= IDLE - Duration::from_millis(20),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_request_in_flight_outlives_the_header_timeout() {
    let server = start().await;
    let mut held = TcpStream::connect(server.addr).await.expect("connect");
    held.write_all(b"GET /held HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    // A silent connection opened after it is closed: the header timeout
    // has passed for the held request's connection too.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, LIMIT).await;
    assert!(closed, "the silent connection stayed open");
    server.release.notify_one();
    let response = read_response(&mut held).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("released"), "{response}");
}
