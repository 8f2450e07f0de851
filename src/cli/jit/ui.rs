//! `kubectl jit ui`: a page for people, served on loopback by the plugin itself. It acts
//! with the user's own kubeconfig identity, so the API server and jitguard's webhook see
//! and check exactly who they are, as with `kubectl jit`: no new login, no new privilege.
//!
//! Only the person who started it gets in: the address it prints carries a random token,
//! exchanged on first visit for a cookie (HttpOnly, SameSite=Lax, named after the port);
//! every request must come with that cookie and a Host naming the loopback address (a
//! DNS-rebinding page gets nothing); every change is a POST with the token in the form and
//! this origin in `Origin` (no cross-site request can forge one). The pages carry no
//! inline script or style, under a Content-Security-Policy that allows none.

mod form;
mod page;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::{client, create, decide, explain, extend, new_request, revoke, whoami, Failure};
use super::{JitArgs, RequestArgs};
use crate::grant::resource::ApprovalDecision;
use crate::grant::AccessRequest;
use form::Draft;
use page::{EventRow, Viewer};

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Where to serve: a loopback address (127.0.0.1 or [::1]); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub addr: SocketAddr,
    /// Print the address without opening a browser.
    #[arg(long)]
    pub no_open: bool,
}

const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// No inline script or style, nothing from elsewhere, no framing, forms only to here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct App {
    client: Client,
    user: String,
    groups: Vec<String>,
    token: String,
    cookie: String,
    /// `127.0.0.1:PORT` and the like: the Host and Origin accepted.
    hosts: Vec<String>,
}

pub fn run(args: &JitArgs, ui: &UiArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    match runtime.block_on(serve(args, ui)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("kubectl jit ui: {message}");
            ExitCode::from(crate::cli::exit::FAILED)
        }
    }
}

async fn serve(args: &JitArgs, ui: &UiArgs) -> Result<(), Failure> {
    if !ui.addr.ip().is_loopback() {
        return Err(Failure(format!(
            "--addr {}: the page serves on a loopback address only (127.0.0.1 or [::1]); it acts as you",
            ui.addr
        )));
    }
    let client = client(args).await?;
    let (user, groups) = whoami(&client).await?;
    let listener = tokio::net::TcpListener::bind(ui.addr)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", ui.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", ui.addr)))?;
    let token = random_token()?;
    let port = addr.port();
    let hosts = match addr {
        SocketAddr::V4(_) => vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        SocketAddr::V6(_) => vec![format!("[::1]:{port}"), format!("localhost:{port}")],
    };
    let url = format!(
        "http://{}/?token={token}",
        hosts.first().map_or("", String::as_str)
    );
    let app = Arc::new(App {
        client,
        user: user.clone(),
        groups,
        token,
        cookie: format!("jitguard_ui_{port}"),
        hosts,
    });
    println!("kubectl jit ui: acting as {user}; open {url}\n(Ctrl-C stops it)");
    if !ui.no_open {
        open_browser(&url);
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure(format!("the page's server stopped: {e}")))
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/new", get(new_request_page))
        .route("/requests", post(ask))
        .route("/requests/{name}", get(show))
        .route("/requests/{name}/{action}", post(act))
        .route("/assets/app.js", get(|| asset(SCRIPT, "text/javascript")))
        .route("/assets/app.css", get(|| asset(STYLE, "text/css")))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                html(page::problem("Not found", "There is no such page.")),
            )
        })
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// 32 bytes from the operating system's generator, hex-encoded.
fn random_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Failure("cannot draw a random token".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        let started = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if started.is_ok() {
            return;
        }
    }
}

/// Same length and bytes, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn session_cookie(app: &App, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == app.cookie && same(value, &app.token))
}

/// Host, token, cookie and origin checks, and the security headers on every answer.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = check(&app, request, next).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not no-referrer: under it browsers send `Origin: null` with a form POST, which
        // the origin check must refuse. Same-origin leaks nothing to other sites.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn check(app: &App, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|h| h == host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Wrong address",
            "This page answers only at the loopback address kubectl jit ui printed.",
        );
    }
    let path = request.uri().path().to_string();
    if path.starts_with("/assets/") {
        return next.run(request).await;
    }
    // The printed address: its token becomes the session's cookie, and leaves the URL.
    if let Some(query) = request.uri().query() {
        let offered = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        if let Some(offered) = offered {
            if !same(&offered, &app.token) {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "Not your session",
                    "This token is not the one kubectl jit ui printed; open the address it printed.",
                );
            }
            let cookie = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax",
                app.cookie, app.token
            );
            let mut response = see_other(&path);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
    }
    if !session_cookie(app, request.headers()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Open the printed address",
            "Open the address kubectl jit ui printed (it carries this session's token) in this browser first.",
        );
    }
    if request.method() == Method::POST {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !app.hosts.iter().any(|h| origin == format!("http://{h}")) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused",
                "A change must come from this page itself (its Origin did not match).",
            );
        }
    }
    next.run(request).await
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn refuse(status: StatusCode, title: &str, text: &str) -> Response {
    (status, html(page::problem(title, text))).into_response()
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn viewer<'a>(app: &'a App) -> Viewer<'a> {
    Viewer {
        user: &app.user,
        groups: &app.groups,
        now: Timestamp::now(),
        csrf: &app.token,
    }
}

async fn all(app: &App) -> Result<Vec<AccessRequest>, Response> {
    let api: Api<AccessRequest> = Api::all(app.client.clone());
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|e| failed(explain(e, "list", None)))
}

fn failed(Failure(message): Failure) -> Response {
    let status = if message.contains("no access request named") {
        StatusCode::NOT_FOUND
    } else if message.starts_with("refused") || message.starts_with("you may not") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    refuse(status, "Not done", &message)
}

/// The flash line after an action: only known values, never text from the URL.
fn flash(query: Option<&str>) -> Option<&'static str> {
    let done = form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned())?;
    Some(match done.as_str() {
        "created" => "Asked: your approvers have been told (if notifications are set up).",
        "approved" => "Your approval is recorded.",
        "denied" => "Your denial is recorded.",
        "revoked" => "Revoked.",
        "extended" => {
            "Asked for more time: the extension starts when this grant ends, once approved."
        }
        _ => return None,
    })
}

async fn home(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    match all(&app).await {
        Ok(items) => html(page::overview(
            &viewer(&app),
            &items,
            flash(query.as_deref()),
        )),
        Err(response) => response,
    }
}

async fn show(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let items = match all(&app).await {
        Ok(items) => items,
        Err(response) => return response,
    };
    let Some(ar) = items.iter().find(|ar| ar.name_any() == name) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "No such request",
            &format!("There is no access request named {name:?}."),
        );
    };
    let events = events(&app.client, &name).await;
    html(page::detail(
        &viewer(&app),
        ar,
        &items,
        &events,
        flash(query.as_deref()),
    ))
}

/// The Events about a request (cluster-scoped objects' Events live in `default`).
async fn events(client: &Client, name: &str) -> Result<Vec<EventRow>, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = api
        .list(&ListParams::default().fields(&format!("regarding.name={name}")))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => "Your RBAC does not let you read Events in namespace default (the jitguard-user-events Role grants it); the audit log has every step.".to_string(),
            other => format!("The Events cannot be read: {other}"),
        })?;
    let mut rows: Vec<(Option<Timestamp>, EventRow)> = list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("AccessRequest"))
        .map(|e| {
            let time = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let row = EventRow {
                time: time.map(|t| t.to_string()).unwrap_or_default(),
                kind: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                note: e.note.unwrap_or_default(),
                count: e.series.map_or(1, |s| s.count),
            };
            (time, row)
        })
        .collect();
    rows.sort_by_key(|(t, _)| *t);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

async fn new_request_page(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let items = match all(&app).await {
        Ok(items) => items,
        Err(response) => return response,
    };
    let draft = draft(query.as_deref().unwrap_or_default().as_bytes());
    html(form::new_form(&viewer(&app), &items, &draft, None))
}

/// A form's fields (checkboxes repeat a name).
fn draft(body: &[u8]) -> Draft {
    let mut d = Draft::default();
    for (k, v) in form_urlencoded::parse(body) {
        let v = v.into_owned();
        match &*k {
            "namespace" => d.namespace = v,
            "apiGroup" => d.api_group = v,
            "resource" => d.resource = v,
            "operation" => d.operation.push(v),
            "names" => d.names = v,
            "duration" => d.duration = v,
            "reason" => d.reason = v,
            "ticket" => d.ticket = v,
            "role" => d.role = v,
            "group" => d.group = v,
            "breakGlass" => d.break_glass = v,
            _ => {}
        }
    }
    d
}

/// The form's CSRF field must carry the session's token.
fn field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn csrf_ok(app: &App, body: &[u8]) -> bool {
    field(body, "csrf").is_some_and(|t| same(&t, &app.token))
}

const CSRF_REFUSED: &str =
    "The form did not carry this session's token; reload the page and try again.";

async fn ask(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if !csrf_ok(&app, &body) {
        return refuse(StatusCode::FORBIDDEN, "Refused", CSRF_REFUSED);
    }
    let d = draft(&body);
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let rule = form::rule(&d);
    let args = RequestArgs {
        namespace: rule.namespaces,
        api_group: rule.api_groups,
        resource: rule.resources,
        operation: d.operation.clone(),
        names: rule.names,
        duration: d.duration.trim().to_string(),
        reason: d.reason.clone(),
        ticket: optional(&d.ticket),
        role: optional(&d.role),
        group: optional(&d.group),
        break_glass: d.break_glass == "on",
        request_name: None,
    };
    let outcome = match new_request(&args) {
        Ok(ar) => {
            let api: Api<AccessRequest> = Api::all(app.client.clone());
            create(&api, &ar).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(created) => see_other(&format!("/requests/{}?done=created", created.name_any())),
        Err(Failure(message)) => {
            let items = all(&app).await.unwrap_or_default();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                html(form::new_form(&viewer(&app), &items, &d, Some(&message))),
            )
                .into_response()
        }
    }
}

async fn act(
    State(app): State<Arc<App>>,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !csrf_ok(&app, &body) {
        return refuse(StatusCode::FORBIDDEN, "Refused", CSRF_REFUSED);
    }
    let comment = field(&body, "comment").filter(|c| !c.trim().is_empty());
    let outcome = match action.as_str() {
        "approve" => decide(&app.client, &name, ApprovalDecision::Approve, comment)
            .await
            .map(|_| format!("/requests/{name}?done=approved")),
        "deny" => decide(&app.client, &name, ApprovalDecision::Deny, comment)
            .await
            .map(|_| format!("/requests/{name}?done=denied")),
        "revoke" => revoke(&app.client, &name)
            .await
            .map(|_| format!("/requests/{name}?done=revoked")),
        "extend" => {
            let api: Api<AccessRequest> = Api::all(app.client.clone());
            let duration = field(&body, "duration").unwrap_or_default();
            let reason = field(&body, "reason").unwrap_or_default();
            if reason.trim().is_empty() {
                Err(Failure("say why you need more time (reason)".into()))
            } else {
                extend(&api, &name, duration.trim(), &reason)
                    .await
                    .map(|created| format!("/requests/{}?done=extended", created.name_any()))
            }
        }
        _ => {
            return refuse(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such action.",
            )
        }
    };
    match outcome {
        Ok(location) => see_other(&location),
        Err(failure) => failed(failure),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn tokens_are_compared_whole_and_drawn_fresh() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "abcd") && !same("", "a"));
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    /// The page's router in front of a cluster that is never reached: the guard answers
    /// before any handler would call it.
    fn app() -> Router {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let app = Arc::new(App {
            client: Client::try_from(config).unwrap(),
            user: "alice".into(),
            groups: Vec::new(),
            token: "t0ken".into(),
            cookie: "jitguard_ui_8765".into(),
            hosts: vec!["127.0.0.1:8765".into(), "localhost:8765".into()],
        });
        router(app)
    }

    async fn status(request: axum::http::Request<axum::body::Body>) -> (StatusCode, HeaderMap) {
        use tower::ServiceExt as _;
        let response = app().oneshot(request).await.unwrap();
        (response.status(), response.headers().clone())
    }

    fn get(uri: &str) -> axum::http::request::Builder {
        axum::http::Request::get(uri).header(header::HOST, "127.0.0.1:8765")
    }

    #[tokio::test]
    async fn only_the_printed_address_opens_a_session_and_only_this_page_may_post() {
        use axum::body::Body;
        // The token becomes an HttpOnly cookie and leaves the URL.
        let (code, headers) = status(get("/?token=t0ken").body(Body::empty()).unwrap()).await;
        assert_eq!(code, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/");
        assert_eq!(
            headers[header::SET_COOKIE],
            "jitguard_ui_8765=t0ken; Path=/; HttpOnly; SameSite=Lax"
        );
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        for refused in [
            get("/?token=guess").body(Body::empty()).unwrap(),
            get("/").body(Body::empty()).unwrap(),
            get("/")
                .header(header::COOKIE, "jitguard_ui_8765=guess")
                .body(Body::empty())
                .unwrap(),
            get("/")
                .header(header::COOKIE, "jitguard_ui_9999=t0ken")
                .body(Body::empty())
                .unwrap(),
        ] {
            assert_eq!(status(refused).await.0, StatusCode::UNAUTHORIZED);
        }
        // Another Host (a DNS-rebinding page) gets nothing, not even with the cookie.
        let rebound = axum::http::Request::get("/")
            .header(header::HOST, "evil.example:8765")
            .header(header::COOKIE, "jitguard_ui_8765=t0ken")
            .body(Body::empty())
            .unwrap();
        assert_eq!(status(rebound).await.0, StatusCode::FORBIDDEN);
        // A POST from another origin, or without one, or without the form's token.
        let post = |origin: Option<&str>, body: &'static str| {
            let mut b = axum::http::Request::post("/requests/r1/revoke")
                .header(header::HOST, "127.0.0.1:8765")
                .header(header::COOKIE, "other=1; jitguard_ui_8765=t0ken")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(o) = origin {
                b = b.header(header::ORIGIN, o);
            }
            b.body(Body::from(body)).unwrap()
        };
        assert_eq!(
            status(post(Some("http://evil.example"), "csrf=t0ken"))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(post(None, "csrf=t0ken")).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(post(Some("http://127.0.0.1:8765"), "csrf=guess"))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        // Assets need no session (they hold nothing) and are what the CSP allows.
        let (code, headers) = status(get("/assets/app.js").body(Body::empty()).unwrap()).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/javascript");
    }

    #[test]
    fn a_form_keeps_every_checked_operation_and_only_known_flashes_show() {
        let d = draft(b"namespace=prod&operation=CREATE&operation=DELETE&reason=a+b%26c&csrf=x");
        assert_eq!(d.operation, ["CREATE", "DELETE"]);
        assert_eq!(d.reason, "a b&c");
        assert_eq!(
            flash(Some("done=approved")),
            Some("Your approval is recorded.")
        );
        assert_eq!(flash(Some("done=<script>")), None);
        assert_eq!(flash(None), None);
    }
}
