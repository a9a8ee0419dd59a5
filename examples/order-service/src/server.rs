//! Serving the router over TCP with the limits a service facing hostile clients needs, which
//! `axum::serve` leaves out: a client gets a bounded time to send a request's headers
//! ([`ServerLimits::header_timeout`]) and its body ([`ServerLimits::body_timeout`]), an idle
//! keep-alive connection is closed ([`ServerLimits::idle_timeout`]), the open connections are
//! capped ([`ServerLimits::max_connections`]; one more is answered `503` and closed instead of
//! starving the others), and a shutdown lets requests in flight finish for a bounded time
//! ([`ServerLimits::shutdown_timeout`]), then closes what is left.
//!
//! Each connection is watched by a task of its own: the bytes read (counted by `Watched`, a
//! wrapper of the socket) and the requests handed to the router (counted by the connection's
//! service) tell it what the connection is doing: idle (no request in flight, nothing read),
//! sending a request's head (bytes read, no request yet), or in a request. The watchdog closes
//! an idle connection after the idle timeout and one that has not finished a head within the
//! header timeout; a request's body carries its own deadline ([`DeadlineBody`]), which the
//! body extractor turns into `408`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// How long clients may take, and how many may be connected; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// From a request's first byte to the end of its headers (default 10 s).
    pub header_timeout: Duration,
    /// From a request's headers to the end of its body (default 30 s).
    pub body_timeout: Duration,
    /// How long a connection may sit with no request in flight and nothing sent (default
    /// 60 s).
    pub idle_timeout: Duration,
    /// How long a shutdown waits for requests in flight before it closes their connections
    /// (default 30 s).
    pub shutdown_timeout: Duration,
    /// Open connections at most; one more is answered `503` and closed (default 512).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// The answer to a connection over [`ServerLimits::max_connections`], written before it is
/// closed: the service's error format, `Retry-After` one second.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 97\r\n\
\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many open connections; try again shortly\"}}\n";

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish for up to [`ServerLimits::shutdown_timeout`] and closes every connection.
///
/// # Errors
/// Never for a client's misbehaviour (its connection is closed); accept errors are logged and
/// retried, so this returns `Ok` once the shutdown is done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Wakes every connection's task to close what the drain left open.
    let closing = Arc::new(Notify::new());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog times heads: hyper's own header timer would also cut idle connections.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: the connections open now keep working.
                    tracing::warn!(%error, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "too many connections; answering 503");
            tokio::spawn(shed(stream));
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            limits,
            builder: Arc::clone(&builder),
            watcher: graceful.watcher(),
            closing: Arc::clone(&closing),
            _permit: permit,
        };
        tokio::spawn(connection.run(stream));
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        drain = ?limits.shutdown_timeout,
        "shutting down: letting requests in flight finish"
    );
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown timeout; closing them");
        closing.notify_waiters();
    }
    Ok(())
}

/// Answers a connection over the cap with `503` and closes it.
async fn shed(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(OVERLOADED).await?;
        stream.shutdown().await
    })
    .await;
}

/// One accepted connection and what it is served with.
struct Connection {
    router: Router,
    limits: ServerLimits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    closing: Arc<Notify>,
    /// Held while the connection is open: its place under the cap.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let service = ConnectionService {
            router: self.router,
            activity: Arc::clone(&activity),
            body_timeout: self.limits.body_timeout,
        };
        let served = self.watcher.watch(
            self.builder
                .serve_connection(io, hyper_util::service::TowerToHyperService::new(service))
                .into_owned(),
        );
        tokio::select! {
            result = served => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
            }
            reason = watchdog(&activity, self.limits) => {
                tracing::debug!(reason, "closing a connection");
            }
            () = self.closing.notified() => {}
        }
    }
}

/// What a connection is doing, in milliseconds since it opened (0: never).
struct Activity {
    opened: Instant,
    /// Requests handed to the router and not yet answered.
    in_flight: AtomicU32,
    /// When the connection last had a request answered, or was opened.
    idle_since: AtomicU64,
    /// When the first byte of a request's head arrived, while no request was in flight.
    head_started: AtomicU64,
    /// When a response that ends the connection (`connection: close`) was handed to hyper.
    closing_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            closing_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        // At least 1, so that 0 can mean "never".
        u64::try_from(self.opened.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now();
            // Only the first byte of a head starts its clock.
            let _ = self
                .head_started
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn request_answered(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The answer ends the connection: hyper would otherwise wait for the rest of a request
    /// body the client may never send.
    fn closing(&self) {
        self.closing_since.store(self.now(), Ordering::Release);
    }
}

/// How long a connection whose answer ends it stays open for that answer to be written.
const CLOSING_GRACE: u64 = 500;

/// Resolves with the reason once the connection should be closed: idle too long, or a head
/// that did not arrive in time.
async fn watchdog(activity: &Activity, limits: ServerLimits) -> &'static str {
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let (header, idle) = (millis(limits.header_timeout), millis(limits.idle_timeout));
    loop {
        let now = activity.now();
        let closing_since = activity.closing_since.load(Ordering::Acquire);
        if closing_since != 0 && now.saturating_sub(closing_since) >= CLOSING_GRACE {
            return "the answer ended the connection";
        }
        let head_started = activity.head_started.load(Ordering::Acquire);
        let in_flight = activity.in_flight.load(Ordering::Acquire) > 0;
        // When the next deadline falls, if nothing changes meanwhile.
        let due = if head_started != 0 {
            if now.saturating_sub(head_started) >= header {
                return "a request's headers did not arrive within the header timeout";
            }
            head_started.saturating_add(header)
        } else if in_flight {
            // The request's body has its own deadline; the handler may take its time.
            now.saturating_add(header.min(idle))
        } else {
            let idle_since = activity.idle_since.load(Ordering::Acquire);
            if now.saturating_sub(idle_since) >= idle {
                return "idle longer than the idle timeout";
            }
            idle_since.saturating_add(idle)
        };
        let due = if closing_since == 0 {
            due
        } else {
            due.min(closing_since.saturating_add(CLOSING_GRACE))
        };
        // Looked at again at the deadline, or sooner when a head starts meanwhile.
        let wait = due.saturating_sub(now).clamp(10, header.max(10));
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// The socket, counting what is read into the connection's [`Activity`].
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
        if buf.filled().len() > before {
            self.activity.bytes_read();
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

/// The router as one connection serves it: each request counted into the connection's
/// [`Activity`], its body given the body deadline.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

impl tower::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let answered = Answered(Arc::clone(&self.activity));
        let deadline = Instant::now() + self.body_timeout;
        let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await;
            if let Ok(response) = &response
                && response
                    .headers()
                    .get(axum::http::header::CONNECTION)
                    .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"))
            {
                answered.0.closing();
            }
            drop(answered);
            response
        })
    }
}

/// Marks the request answered when dropped: also when the connection goes mid-request.
struct Answered(Arc<Activity>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.request_answered();
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

/// A request body that did not arrive whole before the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimedOut;

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
