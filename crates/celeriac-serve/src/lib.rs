//! Serving an axum [`Router`] with a deadline on every connection: a client
//! that connects and sends nothing, sends half a request head, or keeps an
//! idle connection open, is disconnected.
//!
//! `axum::serve` sets no timeout at all, and hyper's own
//! `header_read_timeout` is the same for a half-sent head and an idle
//! keep-alive connection. [`serve`] is `axum::serve` (HTTP/1.1, as axum's
//! default features build it) with graceful shutdown and `TCP_NODELAY`,
//! plus a watchdog per connection that applies [`ConnectionTimeouts`]:
//!
//! | connection state | closed after |
//! |---|---|
//! | new, nothing received | [`header_read`](ConnectionTimeouts::header_read) from accept |
//! | part of a request head received | `header_read` from its first byte |
//! | a request in flight (handler, response, streaming) | never (the handler decides) |
//! | idle after a response (keep-alive) | [`idle`](ConnectionTimeouts::idle) from the response's end |
//!
//! The watchdog costs nothing per request on the hot path beyond a few
//! relaxed atomic operations: it keeps one timer per connection, re-armed
//! only when it fires, and reads the connection's state then.
//!
//! A response given before its request's body was read to the end (a 401,
//! 403, 405, 413 or 415 answered without reading it) carries `Connection:
//! close`. hyper closes such a connection after the response anyway when
//! the rest of the body has not arrived yet, but without saying so; a
//! client that pools connections would send its next request on the
//! closing one and get no answer ("remote end closed connection without
//! response").

#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service as _;

/// Default [`ConnectionTimeouts::header_read`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionTimeouts::idle`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection may wait on its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// Longest wait for a complete request head: from accept for the first
    /// request, from the first byte for later ones.
    pub header_read: Duration,
    /// Longest wait for the next request on an idle keep-alive connection.
    pub idle: Duration,
}

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        ConnectionTimeouts {
            header_read: DEFAULT_HEADER_READ_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, closing
/// connections that outwait `timeouts`.
///
/// On shutdown, no new connection is accepted, idle ones are closed, and
/// requests in flight are finished before this returns (as
/// `axum::serve(..).with_graceful_shutdown(..)`).
///
/// # Errors
/// None in practice: failed accepts are logged and retried (after a second
/// for errors such as too many open files).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a receiver; `closed()` waits until all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!("accepting a connection: {e}");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        tokio::spawn(connection(
            stream,
            router.clone(),
            timeouts,
            stop_rx.clone(),
            open_rx.clone(),
        ));
    }
    drop(listener);
    // Ignored error: no connection is listening, so none needs telling.
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Errors of one connection that say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serve one connection until it ends, its client outwaits `timeouts`, or
/// the server stops.
async fn connection(
    stream: TcpStream,
    router: Router,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = Tracked {
        router,
        activity: Arc::clone(&activity),
    };
    let mut conn = pin!(http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades());
    let mut watchdog = pin!(tokio::time::sleep_until(
        activity.started + timeouts.header_read
    ));
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::trace!("connection ended: {e}");
                }
                return;
            }
            () = watchdog.as_mut() => {
                let deadline = activity.deadline(&timeouts);
                if deadline <= Instant::now() {
                    tracing::debug!("closing a connection whose client sent nothing in time");
                    return;
                }
                watchdog.as_mut().reset(deadline);
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the watchdog reads: kept up to date by the connection's reads and
/// its requests.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted; the times below count from it.
    started: Instant,
    /// Requests in flight (handler running or response being sent).
    in_flight: AtomicUsize,
    /// When the first byte of a request head arrived on an idle connection
    /// (milliseconds), [`NONE`] while none did.
    head_started: AtomicU64,
    /// When the last request in flight finished (milliseconds).
    idle_since: AtomicU64,
    /// Whether a request has finished (the idle timeout applies, not the
    /// header timeout).
    served: AtomicBool,
}

/// "No time": no request head is being read.
const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            served: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64, after: Duration) -> Instant {
        self.started + Duration::from_millis(ms) + after
    }

    /// Bytes arrived: the start of a request head if the connection was
    /// idle.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now_ms(), Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection must be closed if nothing changes. While a
    /// request is in flight there is none: the answer is one header timeout
    /// from now, when the watchdog looks again.
    fn deadline(&self, timeouts: &ConnectionTimeouts) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Instant::now() + timeouts.header_read;
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NONE {
            return self.at(head, timeouts.header_read);
        }
        if self.served.load(Ordering::Relaxed) {
            self.at(self.idle_since.load(Ordering::Relaxed), timeouts.idle)
        } else {
            self.at(0, timeouts.header_read)
        }
    }
}

/// The TCP stream, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as a hyper service, counting requests in flight.
#[derive(Clone)]
struct Tracked {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let guard = InFlight(Arc::clone(&self.activity));
        let body_read = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(
            request.body(),
        )));
        let request = request.map(|body| {
            Body::new(ReadBody {
                body,
                read: Arc::clone(&body_read),
            })
        });
        // Router is always ready: `call` needs no `poll_ready` first.
        let inner = self.router.clone().call(request);
        TrackedFuture {
            inner,
            guard: Some(guard),
            body_read,
        }
    }
}

/// One request in flight; dropped when its response has been sent (or
/// abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A request body that records when it has been read to its end.
struct ReadBody {
    body: Incoming,
    read: Arc<AtomicBool>,
}

impl http_body::Body for ReadBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The router's future, handing the in-flight mark to the response body
/// and closing the connection after a response to an unread body.
struct TrackedFuture {
    inner: <Router as tower::Service<Request>>::Future,
    guard: Option<InFlight>,
    body_read: Arc<AtomicBool>,
}

impl Future for TrackedFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => return Poll::Pending,
        };
        if !self.body_read.load(Ordering::Relaxed) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let guard = self.guard.take();
        Poll::Ready(Ok(response.map(|body| TrackedBody {
            body,
            _guard: guard,
        })))
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been sent.
struct TrackedBody {
    body: Body,
    _guard: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_connection_state() {
        let timeouts = ConnectionTimeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let activity = Activity::new();
        let start = activity.started;
        // New and silent: the header timeout from accept.
        assert_eq!(activity.deadline(&timeouts), start + timeouts.header_read);
        // A request in flight: no deadline yet (checked again later).
        activity.request_started();
        let later = activity.deadline(&timeouts);
        assert!(later >= Instant::now() + timeouts.header_read - Duration::from_millis(50));
        // Bytes arriving while a request runs do not start a head.
        activity.on_read();
        assert_eq!(activity.head_started.load(Ordering::Relaxed), NONE);
        // Served and idle: the idle timeout from the response's end.
        activity.request_finished();
        let idle = activity.deadline(&timeouts);
        assert!(
            idle >= start + timeouts.idle && idle < start + timeouts.idle + Duration::from_secs(5)
        );
        // The next head started: the header timeout from its first byte.
        activity.on_read();
        let head = activity.deadline(&timeouts);
        assert!(head < start + timeouts.idle && head >= start + timeouts.header_read);
    }
}
