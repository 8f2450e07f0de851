//! The HTTPS server: routes, the TLS accept loop, the plain-HTTP operations listener, and
//! graceful shutdown.
//!
//! Handlers do no CPU-heavy work: they check the envelope (method, content type, size),
//! hand the bytes to the evaluation pool and wait for its answer, or for the API server's
//! deadline, whichever comes first.

pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::admission;
use crate::decision::{OnError, Webhook};
use crate::gatekeeper::feed::ClusterFeed;
use crate::grant::GrantStore;
use crate::metrics::Metrics;
use crate::namespace::Namespaces;
use crate::pool::{Job, Outcome, Pool};

/// A TLS handshake that takes longer than this is dropped (slowloris, port scans).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to read a request's headers on a connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What readiness depends on. Liveness (`/healthz`) depends on nothing: a process that
/// answers is alive.
#[derive(Debug)]
pub struct Health {
    policies_loaded: AtomicBool,
    shutting_down: AtomicBool,
    /// A supervised part of the server stopped: why (see [`crate::supervise`]).
    failed: std::sync::OnceLock<String>,
    grants: GrantStore,
    namespaces: Namespaces,
    gatekeeper: ClusterFeed,
}

impl Health {
    pub fn new(grants: GrantStore, namespaces: Namespaces, gatekeeper: ClusterFeed) -> Arc<Self> {
        Arc::new(Self {
            policies_loaded: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            failed: std::sync::OnceLock::new(),
            grants,
            namespaces,
            gatekeeper,
        })
    }

    pub fn set_policies_loaded(&self) {
        self.policies_loaded.store(true, Ordering::Release);
    }

    /// Readiness fails first on shutdown, so endpoints stop routing here before the
    /// listener closes.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// A part the server cannot run without has stopped: never ready again.
    pub fn set_failed(&self, reason: String) {
        let _ = self.failed.set(reason);
    }

    /// `Ok` when ready, else every reason it is not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if let Some(reason) = self.failed.get() {
            reasons.push(reason.clone());
        }
        if self.shutting_down.load(Ordering::Acquire) {
            reasons.push("shutting down".to_string());
        }
        if !self.policies_loaded.load(Ordering::Acquire) {
            reasons.push("policies are not compiled yet".to_string());
        }
        if !self.grants.is_synced() {
            reasons.push("the grant cache has not finished its first sync".to_string());
        }
        // Until the first list, a namespace protected only by its label is not known
        // to be protected: serving then would let its changes through.
        if !self.namespaces.is_synced() {
            reasons.push("the namespace cache has not finished its first list".to_string());
        }
        // Until then, the cluster's Gatekeeper constraints would not be enforced.
        if !self.gatekeeper.is_applied() {
            reasons.push(
                "the cluster's Gatekeeper templates and constraints are not served yet".to_string(),
            );
        }
        if let Some(broken) = self.grants.stale_for() {
            reasons.push(format!(
                "the grant cache is stale: its source has been broken for {}s",
                broken.as_secs()
            ));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub pool: Arc<Pool>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub body_limit: usize,
    pub on_error: OnError,
}

/// The webhook's routes: admission endpoints and the operations endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/validate", any(validate))
        .route("/mutate", any(mutate))
        .merge(ops_routes())
        .fallback(not_found)
        .with_state(state)
}

/// Health and metrics alone, for the plain-HTTP `--metrics-addr` listener.
pub fn ops_app(state: AppState) -> Router {
    ops_routes().fallback(not_found).with_state(state)
}

fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: the webhook serves POST /validate and POST /mutate; operations GET /healthz, /readyz and /metrics\n",
    )
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.readiness() {
        Ok(()) => plain(StatusCode::OK, "ready\n"),
        Err(reasons) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join("; ")),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let stale = state.health.grants.stale_for().is_some();
    state.metrics.grant_cache_stale.set(i64::from(stale));
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[derive(serde::Deserialize)]
struct AdmissionQuery {
    /// The API server appends its webhook timeout to the URL, e.g. `?timeout=10s`.
    timeout: Option<String>,
}

/// At most this much of a refused body is read and dropped, within this long: enough for
/// any honest client to finish sending, not an open door to a slow or endless upload.
const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads and drops the rest of a refused body (`read` bytes of it are gone already).
async fn discard(mut body: Body, read: usize) {
    use http_body_util::BodyExt as _;
    let mut seen = read;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

async fn validate(state: State<AppState>, query: Query<AdmissionQuery>, req: Request) -> Response {
    admit(state, query, req, Webhook::Validate).await
}

async fn mutate(state: State<AppState>, query: Query<AdmissionQuery>, req: Request) -> Response {
    admit(state, query, req, Webhook::Mutate).await
}

async fn admit(
    State(state): State<AppState>,
    Query(query): Query<AdmissionQuery>,
    req: Request,
    webhook: Webhook,
) -> Response {
    let received = Instant::now();
    let now = jiff::Timestamp::now();
    let reject = |code: StatusCode, reason: &'static str, message: String| {
        state.metrics.rejected.with_label_values(&[reason]).inc();
        plain(code, message + "\n")
    };
    if req.method() != Method::POST {
        let mut response = reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            format!(
                "{} is not allowed: send the AdmissionReview with POST",
                req.method()
            ),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if let Err(message) = check_content_type(req.headers()) {
        return reject(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request", message);
    }
    let too_large = || {
        format!(
            "the body is larger than the {} byte limit (--max-body-bytes)",
            state.body_limit
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // A client still sending when the 413 goes out may see only the end of the stream
    // (an HTTP/2 reset, an HTTP/1.1 connection closed under its upload) and report that
    // instead of the answer. So the rest of a refused body is read first (discarded,
    // bounded): always once reading has begun, and over HTTP/2 for an announced length
    // too. An HTTP/1.1 client that announced too much gets the 413 before it sends
    // anything (no `100 Continue` is sent for an unread body).
    let http2 = req.version() == axum::http::Version::HTTP_2;
    let mut incoming = req.into_body();
    if declared.is_some_and(|n| n > state.body_limit) {
        if http2 {
            discard(incoming, 0).await;
        }
        return reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large());
    }
    // Limited over a borrow: the body stays ours, to drain if the limit is passed.
    let limited = http_body_util::Limited::new(&mut incoming, state.body_limit);
    let body = match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            discard(incoming, state.body_limit).await;
            return reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large());
        }
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read the body: {e}"),
            );
        }
    };

    let timeout = query
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_API_SERVER_TIMEOUT);
    let deadline = received + answer_within(timeout);
    let (reply, mut answer) = oneshot::channel();
    let claim = Arc::new(AtomicBool::new(false));
    let job = Job {
        body: body.clone(),
        webhook,
        now,
        received,
        deadline,
        timeout,
        claim: claim.clone(),
        reply,
    };
    if let Err(overloaded) = state.pool.submit(job) {
        let mut response = reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("{overloaded}; retry, or let the webhook's failurePolicy decide"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let outcome = match tokio::time::timeout_at(deadline.into(), &mut answer).await {
        Ok(outcome) => outcome,
        // The deadline came first, unless the worker took the answer a moment before:
        // then its decision is on its way and is the one sent (and recorded).
        Err(_) if claim.swap(true, Ordering::AcqRel) => answer.await,
        Err(_) => return deadline_answer(&state, &body, webhook, timeout),
    };
    match outcome {
        Ok(Outcome::Decided(bytes)) => json(bytes),
        Ok(Outcome::Invalid(e)) => reject(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("not a valid AdmissionReview: {e}"),
        ),
        Ok(Outcome::Crashed) => reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error while evaluating; the failurePolicy applies".into(),
        ),
        Ok(Outcome::Expired) => deadline_answer(&state, &body, webhook, timeout),
        Err(_) => reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the evaluation pool is shutting down".into(),
        ),
    }
}

/// The API server's own default when `?timeout=` is absent.
const DEFAULT_API_SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Answer a little before the API server gives up, so that the user gets jitguard's
/// reason rather than a generic webhook time-out.
fn answer_within(timeout: Duration) -> Duration {
    let margin = (timeout / 10).max(Duration::from_millis(100));
    timeout.saturating_sub(margin).max(timeout / 2)
}

fn deadline_answer(
    state: &AppState,
    body: &Bytes,
    webhook: Webhook,
    timeout: Duration,
) -> Response {
    state
        .metrics
        .rejected
        .with_label_values(&["deadline"])
        .inc();
    let Some(uid) = admission::peek_uid(body) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "could not decide before the API server's timeout\n",
        );
    };
    let message = crate::decision::deadline_message(timeout);
    tracing::warn!(uid = %uid, webhook = webhook.name(), "answered before the API server's deadline without a decision");
    let review = match state.on_error {
        OnError::Deny => admission::respond_denied(&uid, &message),
        OnError::Allow => admission::respond_allowed_with_warning(
            &uid,
            &format!("{message}; allowed (--on-error allow)"),
        ),
    };
    json(admission::encode(&review))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if value.is_empty() {
        Err("missing Content-Type: send the AdmissionReview as application/json".into())
    } else {
        Err(format!(
            "Content-Type {value:?} is not supported: send the AdmissionReview as application/json"
        ))
    }
}

fn plain(code: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (code, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Parses a Go duration as the API server formats it (`10s`, `1m30s`, `500ms`, `1.5s`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    (total.is_finite() && total > 0.0 && total < 3600.0).then(|| Duration::from_secs_f64(total))
}

/// Serves HTTPS on `listener` until `stop` fires, then drains: no new connections, every
/// in-flight request finishes, idle keep-alive connections are closed. Returns once the
/// last connection is gone or `drain` has passed.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!(drain_s = drain.as_secs(), "drain time-out: closing the remaining connections"),
    }
}

/// Serves plain HTTP (operations endpoints) until `stop` fires.
pub async fn serve_plain(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "operations listener failed");
    }
}

/// Binds, with an error that names the address and what to do.
pub async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for {what}: {e} (is another process using it? choose another with the flag)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_part_fails_readiness_for_good_with_its_reason() {
        let namespaces = Namespaces::default();
        namespaces.replace(&[]);
        let health = Health::new(GrantStore::empty_synced(), namespaces, ClusterFeed::none());
        health.set_policies_loaded();
        assert_eq!(health.readiness(), Ok(()));
        health.set_failed("the AccessRequest watch stopped (returned)".into());
        assert_eq!(
            health.readiness(),
            Err(vec![
                "the AccessRequest watch stopped (returned)".to_string()
            ])
        );
    }

    #[test]
    fn a_replica_is_not_ready_until_the_clusters_gatekeeper_objects_are_served() {
        let namespaces = Namespaces::default();
        namespaces.replace(&[]);
        let gatekeeper = ClusterFeed::watching();
        let health = Health::new(GrantStore::empty_synced(), namespaces, gatekeeper.clone());
        health.set_policies_loaded();
        assert_eq!(
            health.readiness(),
            Err(vec![
                "the cluster's Gatekeeper templates and constraints are not served yet".to_string()
            ])
        );
        gatekeeper.mark_applied();
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn go_durations_as_the_api_server_writes_them() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "10", "abc", "-1s", "1x", "99999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers_come_before_the_api_server_gives_up() {
        assert_eq!(
            answer_within(Duration::from_secs(10)),
            Duration::from_secs(9)
        );
        assert_eq!(
            answer_within(Duration::from_millis(400)),
            Duration::from_millis(300)
        );
        assert_eq!(
            answer_within(Duration::from_millis(100)),
            Duration::from_millis(50)
        );
    }
}
