//! An in-process double of the Kubernetes API server: enough of its REST API for kube's
//! real `Client`, watcher, events recorder and jitguard's controller and plugin to run
//! against it over real HTTP. It stores objects of any resource, lists and watches them
//! (newline-delimited events, bookmarks, `410 Gone`), creates, replaces, patches (merge
//! and JSON Patch), deletes, keeps the status subresource apart, answers
//! SelfSubjectReviews from bearer tokens, and runs AccessRequest writes through jitguard's
//! real admission webhooks (mutate, patch, validate) as the API server does.
//!
//! No Kubernetes API server can run on these machines; this is what the tests talk to.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// `(api prefix, resource)`, e.g. `("apis/jitguard.dev/v1alpha1", "accessrequests")`.
type Kind = (String, String);

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    kind: Kind,
    namespace: String,
    kind_of_event: &'static str,
    object: Value,
}

/// Resources whose `status` is a subresource: writes to the main resource leave it alone.
const WITH_STATUS: &[&str] = &["accessrequests"];

struct Webhook {
    base: String,
    client: reqwest::Client,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<(Kind, String, String), Value>,
    resource_version: u64,
    history: Vec<Event>,
    failing: bool,
    gone_on_next_watch: bool,
    lists: HashMap<String, usize>,
    watches: HashMap<String, usize>,
    tokens: HashMap<String, (String, Vec<String>)>,
    uid: u64,
    /// Users RBAC refuses everything but SelfSubjectReviews.
    forbidden: Vec<String>,
    /// The AccessRequest CRD is not installed.
    no_crd: bool,
}

#[derive(Clone)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Option<Event>>,
    webhook: Arc<Mutex<Option<Arc<Webhook>>>>,
}

const ACCESS_REQUESTS: (&str, &str) = ("apis/jitguard.dev/v1alpha1", "accessrequests");

impl FakeApiServer {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(4096);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            events,
            webhook: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends AccessRequest writes through jitguard's webhooks at `base` (https://...),
    /// trusting `ca`.
    pub fn use_webhook(&self, base: &str, ca: &std::path::Path) {
        *self.webhook.lock().unwrap() = Some(Arc::new(Webhook {
            base: base.to_string(),
            client: crate::common::client_trusting(ca, None),
        }));
    }

    /// Registers a bearer token for a user.
    pub fn add_user(&self, token: &str, user: &str, groups: &[&str]) {
        self.inner.lock().unwrap().tokens.insert(
            token.to_string(),
            (
                user.to_string(),
                groups.iter().map(|g| g.to_string()).collect(),
            ),
        );
    }

    /// A kubeconfig for the user with `token` (or anonymous).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        self.kubeconfig_for(dir, None)
    }

    pub fn kubeconfig_for(&self, dir: &std::path::Path, token: Option<&str>) -> std::path::PathBuf {
        let path = dir.join(format!("kubeconfig-{}", token.unwrap_or("anonymous")));
        let user = match token {
            Some(t) => format!("  user:\n    token: {t}\n"),
            None => "  user: {}\n".to_string(),
        };
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: me\ncurrent-context: fake\nusers:\n- name: me\n{user}",
                self.url()
            ),
        )
        .unwrap();
        path
    }

    /// kube's Client, as the user with `token` (or anonymous).
    pub fn client(&self) -> kube::Client {
        self.client_as(None)
    }

    pub fn client_as(&self, token: Option<&str>) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().unwrap());
        if let Some(t) = token {
            config.auth_info.token = Some(t.to_string().into());
        }
        kube::Client::try_from(config).unwrap()
    }

    // === AccessRequest helpers (the grant source's tests) ===

    /// Creates or replaces an AccessRequest directly (no admission) and tells watchers.
    pub fn apply(&self, object: Value) {
        self.store(kind(ACCESS_REQUESTS), "", object, true);
    }

    /// Changes an object without telling anyone: only a re-list sees it.
    pub fn apply_silently(&self, object: Value) {
        self.store(kind(ACCESS_REQUESTS), "", object, false);
    }

    pub fn delete(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        let key = (kind(ACCESS_REQUESTS), String::new(), name.to_string());
        if let Some(object) = inner.objects.remove(&key) {
            let event = record(&mut inner, kind(ACCESS_REQUESTS), "", "DELETED", object);
            let _ = self.events.send(Some(event));
        }
    }

    /// Any stored object, by API prefix, resource, namespace and name.
    pub fn get(&self, prefix: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .get(&(
                kind((prefix, resource)),
                namespace.to_string(),
                name.to_string(),
            ))
            .cloned()
    }

    /// Every stored object of a resource.
    pub fn all(&self, prefix: &str, resource: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        let k = kind((prefix, resource));
        inner
            .objects
            .iter()
            .filter(|((kk, _, _), _)| *kk == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores any object directly (test setup), telling watchers.
    pub fn put(&self, prefix: &str, resource: &str, namespace: &str, object: Value) {
        self.store(kind((prefix, resource)), namespace, object, true);
    }

    fn store(&self, k: Kind, namespace: &str, mut object: Value, tell: bool) {
        let mut inner = self.inner.lock().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let key = (k.clone(), namespace.to_string(), name);
        let existed = inner.objects.contains_key(&key);
        if object["metadata"]["uid"].is_null() {
            inner.uid += 1;
            object["metadata"]["uid"] = json!(format!("uid-{}", inner.uid));
        }
        let event = record(
            &mut inner,
            k,
            namespace,
            if existed { "MODIFIED" } else { "ADDED" },
            object.clone(),
        );
        object["metadata"]["resourceVersion"] = event.object["metadata"]["resourceVersion"].clone();
        inner.objects.insert(key, object);
        if tell {
            let _ = self.events.send(Some(event));
        }
    }

    pub fn bookmark(&self) {
        let rv = self.inner.lock().unwrap().resource_version;
        let _ = self.events.send(Some(Event {
            rv,
            kind: kind(ACCESS_REQUESTS),
            namespace: String::new(),
            kind_of_event: "BOOKMARK",
            object: json!({"apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest", "metadata": {"resourceVersion": rv.to_string()}}),
        }));
    }

    /// Ends every open watch.
    pub fn drop_watches(&self) {
        let _ = self.events.send(None);
    }

    /// RBAC refuses this user everything (but asking who they are).
    pub fn forbid(&self, user: &str) {
        self.inner.lock().unwrap().forbidden.push(user.to_string());
    }

    /// As if the AccessRequest CRD were not installed.
    pub fn without_crd(&self) {
        self.inner.lock().unwrap().no_crd = true;
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
    }

    pub fn gone_on_next_watch(&self) {
        self.inner.lock().unwrap().gone_on_next_watch = true;
    }

    pub fn lists(&self) -> usize {
        *self
            .inner
            .lock()
            .unwrap()
            .lists
            .get("accessrequests")
            .unwrap_or(&0)
    }

    pub fn watches(&self) -> usize {
        *self
            .inner
            .lock()
            .unwrap()
            .watches
            .get("accessrequests")
            .unwrap_or(&0)
    }
}

fn kind((prefix, resource): (&str, &str)) -> Kind {
    (prefix.to_string(), resource.to_string())
}

/// Bumps the resourceVersion, stamps it on the object, keeps the event for watchers that
/// resume from an older resourceVersion.
fn record(
    inner: &mut Inner,
    k: Kind,
    namespace: &str,
    kind_of_event: &'static str,
    mut object: Value,
) -> Event {
    inner.resource_version += 1;
    object["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
    let event = Event {
        rv: inner.resource_version,
        kind: k,
        namespace: namespace.to_string(),
        kind_of_event,
        object,
    };
    inner.history.push(event.clone());
    event
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message, "metadata": {}})
}

fn reply(code: u16, body: Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap(), body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn failure(code: u16, reason: &str, message: &str) -> Response {
    reply(code, status(code, reason, message))
}

/// A parsed request path: `/api/v1/...` or `/apis/GROUP/VERSION/...`.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *segments.first()? {
        "api" => (segments.get(..2)?.join("/"), segments.get(2..)?),
        "apis" => (segments.get(..3)?.join("/"), segments.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] => {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    Some(Target {
        kind: (prefix, rest.first()?.to_string()),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query().map(url_decode_pairs).unwrap_or_default()
}

fn url_decode_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=b,c!=d,e` selectors.
fn matches_selector(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k].as_str() == Some(v.trim_start_matches('='))
        } else {
            !labels[term].is_null()
        }
    })
}

fn caller(server: &FakeApiServer, headers: &HeaderMap) -> (String, Vec<String>) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    server
        .inner
        .lock()
        .unwrap()
        .tokens
        .get(token)
        .cloned()
        .unwrap_or_else(|| {
            (
                "system:anonymous".into(),
                vec!["system:unauthenticated".into()],
            )
        })
}

async fn handle(State(server): State<FakeApiServer>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    if server.inner.lock().unwrap().failing {
        return failure(500, "InternalError", "etcd is unavailable");
    }
    let user = caller(&server, &parts.headers);
    if parts.uri.path() == "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
        return reply(
            201,
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
                "status": {"userInfo": {"username": user.0, "groups": user.1}},
            }),
        );
    }
    let Some(target) = parse_path(parts.uri.path()) else {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let (no_crd, forbidden) = {
        let inner = server.inner.lock().unwrap();
        (inner.no_crd, inner.forbidden.contains(&user.0))
    };
    if target.kind.1 == "accessrequests" && (target.kind.0 != ACCESS_REQUESTS.0 || no_crd) {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    if forbidden {
        let verb = match parts.method {
            Method::GET if target.name.is_none() => "list",
            Method::GET => "get",
            Method::POST => "create",
            Method::DELETE => "delete",
            _ => "update",
        };
        let group = target
            .kind
            .0
            .split('/')
            .nth(1)
            .filter(|_| target.kind.0.starts_with("apis"))
            .unwrap_or("");
        return failure(403, "Forbidden", &format!(
            "{}.{group} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{group}\" at the cluster scope",
            target.kind.1, user.0, target.kind.1
        ));
    }
    let params = query(&parts.uri);
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match (parts.method.clone(), &target.name) {
        (Method::GET, None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(&server, &target, &params)
        }
        (Method::GET, None) => list(&server, &target, &params),
        (Method::POST, None) => create(&server, &target, &body, &user).await,
        (Method::GET, Some(name)) => match server.get_target(&target, name) {
            Some(o) => reply(200, o),
            None => not_found(&target, name),
        },
        (Method::PUT, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(new) => write(&server, &target, name, &user, |_| Ok(new), true).await,
            Err(e) => failure(400, "BadRequest", &e.to_string()),
        },
        (Method::PATCH, Some(name)) => {
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return failure(400, "BadRequest", "patch is not JSON");
            };
            let json_patch = content_type.starts_with("application/json-patch+json");
            write(
                &server,
                &target,
                name,
                &user,
                move |current| {
                    let mut next = current.clone();
                    if json_patch {
                        let p: json_patch::Patch =
                            serde_json::from_value(patch).map_err(|e| e.to_string())?;
                        json_patch::patch(&mut next, &p).map_err(|e| e.to_string())?;
                    } else {
                        json_patch::merge(&mut next, &patch);
                    }
                    Ok(next)
                },
                false,
            )
            .await
        }
        (Method::DELETE, Some(name)) => {
            let mut inner = server.inner.lock().unwrap();
            let key = (
                target.kind.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            match inner.objects.remove(&key) {
                Some(object) => {
                    let event = record(
                        &mut inner,
                        target.kind.clone(),
                        &key.1,
                        "DELETED",
                        object.clone(),
                    );
                    let _ = server.events.send(Some(event));
                    reply(200, object)
                }
                None => not_found(&target, name),
            }
        }
        _ => failure(405, "MethodNotAllowed", "method not allowed"),
    }
}

fn not_found(target: &Target, name: &str) -> Response {
    let group = target
        .kind
        .0
        .split('/')
        .nth(1)
        .filter(|_| target.kind.0.starts_with("apis"))
        .unwrap_or("");
    let what = if group.is_empty() {
        target.kind.1.clone()
    } else {
        format!("{}.{group}", target.kind.1)
    };
    reply(
        404,
        json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
            "message": format!("{what} \"{name}\" not found"),
            "details": {"name": name, "group": group, "kind": target.kind.1},
            "metadata": {},
        }),
    )
}

impl FakeApiServer {
    fn get_target(&self, target: &Target, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .get(&(
                target.kind.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.to_string(),
            ))
            .cloned()
    }
}

fn list(server: &FakeApiServer, target: &Target, params: &HashMap<String, String>) -> Response {
    let mut inner = server.inner.lock().unwrap();
    *inner.lists.entry(target.kind.1.clone()).or_default() += 1;
    let selector = params.get("labelSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((k, ns, _), _)| {
            *k == target.kind && target.namespace.as_ref().is_none_or(|t| t == ns)
        })
        .map(|(_, v)| v.clone())
        .filter(|v| matches_selector(v, &selector))
        .collect();
    reply(
        200,
        json!({
            "apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": inner.resource_version.to_string()},
            "items": items,
        }),
    )
}

fn watch(server: &FakeApiServer, target: &Target, params: &HashMap<String, String>) -> Response {
    let mut inner = server.inner.lock().unwrap();
    *inner.watches.entry(target.kind.1.clone()).or_default() += 1;
    if std::mem::take(&mut inner.gone_on_next_watch) {
        let event =
            json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")});
        return reply(200, event);
    }
    let since: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(inner.resource_version);
    let selector = params.get("labelSelector").cloned().unwrap_or_default();
    let wanted = {
        let kind = target.kind.clone();
        let namespace = target.namespace.clone();
        move |e: &Event| {
            e.kind == kind
                && namespace.as_ref().is_none_or(|n| *n == e.namespace)
                && (e.kind_of_event == "BOOKMARK" || matches_selector(&e.object, &selector))
        }
    };
    let backlog: Vec<Event> = inner
        .history
        .iter()
        .filter(|e| e.rv > since && wanted(e))
        .cloned()
        .collect();
    let live = server.events.subscribe();
    drop(inner);
    let line = |e: &Event| format!("{}\n", json!({"type": e.kind_of_event, "object": e.object}));
    let first: Vec<Result<String, std::io::Error>> = backlog.iter().map(|e| Ok(line(e))).collect();
    let last_sent = backlog.last().map(|e| e.rv).unwrap_or(since);
    let rest = futures::stream::unfold((live, last_sent), move |(mut live, last)| {
        let wanted = wanted.clone();
        async move {
            loop {
                match live.recv().await {
                    Ok(Some(e)) if (e.rv > last || e.kind_of_event == "BOOKMARK") && wanted(&e) => {
                        let rv = e.rv.max(last);
                        return Some((
                            Ok(format!(
                                "{}\n",
                                json!({"type": e.kind_of_event, "object": e.object})
                            )),
                            (live, rv),
                        ));
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return None,
                }
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::iter(first), rest);
    Response::new(Body::from_stream(stream))
}

/// Runs a write of an AccessRequest through jitguard's webhooks, as the API server does:
/// /mutate, apply its patch, /validate. Returns the object to store or the denial.
async fn admit(
    server: &FakeApiServer,
    target: &Target,
    operation: &str,
    user: &(String, Vec<String>),
    object: &Value,
    old: Option<&Value>,
) -> Result<Value, Response> {
    let webhook = server.webhook.lock().unwrap().clone();
    let Some(webhook) = webhook.filter(|_| target.kind.1 == "accessrequests") else {
        return Ok(object.clone());
    };
    let gvk = json!({"group": "jitguard.dev", "version": "v1alpha1", "kind": "AccessRequest"});
    let gvr = json!({"group": "jitguard.dev", "version": "v1alpha1", "resource": "accessrequests"});
    let mut current = object.clone();
    for endpoint in ["mutate", "validate"] {
        let mut request = json!({
            "uid": format!("{}-{endpoint}-{}", operation.to_lowercase(), object["metadata"]["resourceVersion"].as_str().unwrap_or("0")),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": current["metadata"]["name"], "operation": operation,
            "userInfo": {"username": user.0, "groups": user.1},
            "object": current, "oldObject": old.cloned().unwrap_or(Value::Null), "dryRun": false,
        });
        if let Some(sub) = &target.sub {
            request["subResource"] = json!(sub);
        }
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let answer = webhook
            .client
            .post(format!("{}/{endpoint}?timeout=10s", webhook.base))
            .json(&review)
            .send()
            .await;
        let answer: Value = match answer {
            Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
            Ok(r) => {
                return Err(failure(
                    500,
                    "InternalError",
                    &format!("failed calling webhook: HTTP {}", r.status()),
                ))
            }
            Err(e) => {
                return Err(failure(
                    500,
                    "InternalError",
                    &format!("failed calling webhook: {e}"),
                ))
            }
        };
        let response = &answer["response"];
        if response["allowed"] != true {
            let message = response["status"]["message"].as_str().unwrap_or("denied");
            return Err(failure(
                403,
                "Forbidden",
                &format!(
                    "admission webhook \"{endpoint}.jitguard.dev\" denied the request: {message}"
                ),
            ));
        }
        if let Some(p) = response["patch"].as_str() {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            json_patch::patch(&mut current, &patch).unwrap();
        }
    }
    Ok(current)
}

async fn create(
    server: &FakeApiServer,
    target: &Target,
    body: &Bytes,
    user: &(String, Vec<String>),
) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return failure(400, "BadRequest", "body is not JSON");
    };
    let namespace = target.namespace.clone().unwrap_or_default();
    {
        let mut inner = server.inner.lock().unwrap();
        if object["metadata"]["name"].is_null() {
            let Some(prefix) = object["metadata"]["generateName"].as_str() else {
                return failure(
                    422,
                    "Invalid",
                    "metadata.name or metadata.generateName is required",
                );
            };
            inner.uid += 1;
            object["metadata"]["name"] =
                json!(format!("{prefix}{:05x}", inner.uid * 7919 % 1_048_576));
        }
        inner.uid += 1;
        object["metadata"]["uid"] = json!(format!("uid-{}", inner.uid));
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["creationTimestamp"] = json!(jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap()
            .to_string());
        if !namespace.is_empty() {
            object["metadata"]["namespace"] = json!(namespace);
        }
        if WITH_STATUS.contains(&target.kind.1.as_str()) {
            object.as_object_mut().unwrap().remove("status");
        }
    }
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    if server.get_target(target, &name).is_some() {
        return failure(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", target.kind.1),
        );
    }
    let object = match admit(server, target, "CREATE", user, &object, None).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut inner = server.inner.lock().unwrap();
    let event = record(&mut inner, target.kind.clone(), &namespace, "ADDED", object);
    inner
        .objects
        .insert((target.kind.clone(), namespace, name), event.object.clone());
    let _ = server.events.send(Some(event.clone()));
    reply(201, event.object)
}

/// Replace (`check_version`: PUT's optimistic concurrency) or patch an object or its
/// status, through admission.
async fn write(
    server: &FakeApiServer,
    target: &Target,
    name: &str,
    user: &(String, Vec<String>),
    change: impl FnOnce(&Value) -> Result<Value, String>,
    check_version: bool,
) -> Response {
    let namespace = target.namespace.clone().unwrap_or_default();
    let Some(current) = server.get_target(target, name) else {
        return not_found(target, name);
    };
    let mut next = match change(&current) {
        Ok(n) => n,
        Err(e) => return failure(422, "Invalid", &e),
    };
    if check_version
        && !next["metadata"]["resourceVersion"].is_null()
        && next["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
    {
        return failure(409, "Conflict", &format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", target.kind.1));
    }
    // Identity fields are the server's.
    for field in ["uid", "creationTimestamp", "name"] {
        next["metadata"][field] = current["metadata"][field].clone();
    }
    let has_status = WITH_STATUS.contains(&target.kind.1.as_str());
    if target.sub.as_deref() == Some("status") {
        // The status subresource changes status only.
        let status = next["status"].clone();
        next = current.clone();
        next["status"] = status;
    } else if has_status {
        next["status"] = current["status"].clone();
        if next["spec"] != current["spec"] {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
    }
    next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    let next = match admit(server, target, "UPDATE", user, &next, Some(&current)).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut inner = server.inner.lock().unwrap();
    let event = record(
        &mut inner,
        target.kind.clone(),
        &namespace,
        "MODIFIED",
        next,
    );
    inner.objects.insert(
        (target.kind.clone(), namespace, name.to_string()),
        event.object.clone(),
    );
    let _ = server.events.send(Some(event.clone()));
    reply(200, event.object)
}
