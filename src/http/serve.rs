//! The accept loop and the limits every connection lives under, so that no client can pin the
//! server's resources:
//!
//! - at most `max_connections` connections are served at once: a permit of a semaphore is taken
//!   *before* `accept`, moved into the connection's task and released when that task ends, on
//!   every path (finished, timed out, aborted on shutdown). Clients beyond the limit wait in the
//!   kernel's accept queue;
//! - a connection has `header_read_timeout` to send a complete request head, counted from the
//!   accept, and on a kept-alive connection from the first byte of the next request;
//! - a kept-alive connection without a request in progress is closed after `idle_timeout`;
//! - a request has `request_timeout` from its complete head to the answer (body upload
//!   included); past it the client gets `408` and the connection is closed;
//! - a request head is at most [`MAX_HEAD_BYTES`] (`431` beyond), so the memory the open
//!   connections hold is bounded too.
//!
//! The head and idle deadlines are kept by one watchdog per connection that reads the
//! connection's `Phase`: the socket wrapper moves it from idle to head on the first byte, the
//! service marks it busy for the life of a request. hyper's own `header_read_timeout` is not
//! used: it starts counting as soon as a kept-alive connection goes idle, which would make the
//! idle timeout no longer than the header timeout.
//!
//! Metrics:
//! - `sre_http_connections`: connections open now (at most `server.max_connections`).
//! - `sre_http_timeouts_total{phase}`: connections closed or requests answered `408` by a limit,
//!   `phase` ∈ header, idle, request.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sre_config::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The largest request head (request line and headers) a connection may send; larger heads
/// get `431`. AlertManager's are well under 1 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The limits of `server`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// From accept (or the next request's first byte) to a complete head.
    pub header_read_timeout: Duration,
    /// From a complete head to the answer.
    pub request_timeout: Duration,
    /// Between requests on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(s: &ServerConfig) -> Self {
        Limits {
            header_read_timeout: s.header_read_timeout,
            request_timeout: s.request_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
        }
    }
}

/// `{phase}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// The server's connection metrics (see the module documentation).
#[derive(Clone)]
pub struct HttpMetrics {
    open: Gauge,
    header_timeouts: Counter,
    idle_timeouts: Counter,
    request_timeouts: Counter,
}

impl HttpMetrics {
    /// Registers the metrics.
    pub fn new(registry: &mut Registry) -> Self {
        let open = Gauge::default();
        registry.register(
            "sre_http_connections",
            "HTTP connections open now (at most server.max_connections)",
            open.clone(),
        );
        let timeouts = Family::<PhaseLabel, Counter>::default();
        registry.register(
            "sre_http_timeouts",
            "Connections closed, or requests answered 408, by a server limit",
            timeouts.clone(),
        );
        let counter = |phase| timeouts.get_or_create(&PhaseLabel { phase }).clone();
        HttpMetrics {
            open,
            header_timeouts: counter("header"),
            idle_timeouts: counter("idle"),
            request_timeouts: counter("request"),
        }
    }
}

/// Where a connection is, for its watchdog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head since then.
    Head(Instant),
    /// Kept alive since then, no byte of the next request yet.
    Idle(Instant),
    /// A request is being handled (bounded by the service's own timeout).
    Busy,
}

/// One connection's phase, shared by its socket wrapper, its service and its watchdog.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        })
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
        // One waiter (the watchdog); the permit is stored if it is not waiting right now.
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection that starts the next request's head.
    fn on_bytes(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Marks the connection busy until the returned guard drops (the request ended, however).
    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.set(Phase::Busy);
        BusyGuard(self.clone())
    }

    /// Resolves when a head or idle deadline passes.
    async fn watchdog(&self, limits: Limits) -> Expired {
        loop {
            let phase = self.get();
            let (deadline, which) = match phase {
                Phase::Head(since) => (since + limits.header_read_timeout, Expired::Header),
                Phase::Idle(since) => (since + limits.idle_timeout, Expired::Idle),
                Phase::Busy => {
                    self.changed.notified().await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if self.get() == phase {
                        return which;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Which deadline closed a connection.
#[derive(Clone, Copy, Debug)]
enum Expired {
    Header,
    Idle,
}

struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.set(Phase::Idle(Instant::now()));
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_bytes();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Decrements the open-connections gauge however the connection's task ends.
struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits
/// for open connections to finish their requests (the caller bounds that wait; dropping this
/// future aborts every connection, since they live in its `JoinSet`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: HttpMetrics,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: nothing a restart would fix; wait
                    // for connections to close. A client that hung up before accept is no
                    // error at all.
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "cannot accept a connection; retrying in 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        metrics.open.inc();
        let open = OpenGuard(metrics.open.clone());
        let (router, metrics, shutdown) = (router.clone(), metrics.clone(), shutdown.clone());
        connections.spawn(async move {
            let _permit = permit;
            let _open = open;
            connection(stream, router, limits, metrics, shutdown).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection: hyper's HTTP/1 state machine, its watchdog, and graceful shutdown.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    metrics: HttpMetrics,
    shutdown: CancellationToken,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let service = {
        let (activity, metrics) = (activity.clone(), metrics.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = activity.busy();
            let (router, metrics) = (router.clone(), metrics.clone());
            async move {
                let _busy = busy;
                match tokio::time::timeout(limits.request_timeout, router.oneshot(req)).await {
                    Ok(response) => response,
                    Err(_) => {
                        metrics.request_timeouts.inc();
                        Ok(request_timeout(limits.request_timeout))
                    }
                }
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog keeps the head deadline (see the module documentation).
        .header_read_timeout(None)
        // hyper buffers a request head up to this size (its default is ~400 KiB): a larger one
        // is answered 431. Bounds what max_connections half-sent heads can hold in memory.
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            expired = activity.watchdog(limits) => {
                match expired {
                    Expired::Header => metrics.header_timeouts.inc(),
                    Expired::Idle => metrics.idle_timeouts.inc(),
                };
                tracing::debug!(?expired, "closing a connection past its deadline");
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn request_timeout(limit: Duration) -> Response<axum::body::Body> {
    let body = format!(
        r#"{{"error":"request not complete within server.request_timeout ({})"}}"#,
        humantime_secs(limit)
    );
    let mut resp = Response::new(axum::body::Body::from(body));
    *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn humantime_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
