//! An in-process double of the Kubernetes API server, kept only for what a real one
//! cannot be made to do on demand: a watch that breaks mid-stream, a bookmark, `410 Gone`
//! on the next watch, a change that only a re-list sees, and an API server that fails
//! every request and then recovers, each at the moment a test picks. Everything else
//! jitguard does with an API server is tested against a real kube-apiserver
//! (`tests/e2e`).
//!
//! It stores objects of any resource, lists and watches them (newline-delimited events,
//! bookmarks, `410 Gone`), creates, replaces, patches (merge and JSON Patch) and deletes,
//! enough for kube's real `Client`, watcher and events recorder, and for `jitguard serve`
//! pointed at it with a kubeconfig. It has no authentication, authorization or admission.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
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

#[derive(Default)]
struct Inner {
    objects: BTreeMap<(Kind, String, String), Value>,
    resource_version: u64,
    history: Vec<Event>,
    failing: bool,
    gone_on_next_watch: bool,
    lists: HashMap<String, usize>,
    watches: HashMap<String, usize>,
    uid: u64,
}

#[derive(Clone)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Option<Event>>,
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
        };
        let app = Router::new().fallback(handle).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that points at the double (no credentials: it asks for none).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let user = "  user: {}\n";
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

    /// kube's Client for the double.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url().parse().unwrap())).unwrap()
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

async fn handle(State(server): State<FakeApiServer>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    if server.inner.lock().unwrap().failing {
        return failure(500, "InternalError", "etcd is unavailable");
    }
    let Some(target) = parse_path(parts.uri.path()) else {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
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
        (Method::POST, None) => create(&server, &target, &body),
        (Method::GET, Some(name)) => match server.get_target(&target, name) {
            Some(o) => reply(200, o),
            None => not_found(&target, name),
        },
        (Method::PUT, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(new) => write(&server, &target, name, |_| Ok(new), true),
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

fn create(server: &FakeApiServer, target: &Target, body: &Bytes) -> Response {
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
    }
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    if server.get_target(target, &name).is_some() {
        return failure(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", target.kind.1),
        );
    }
    let mut inner = server.inner.lock().unwrap();
    let event = record(&mut inner, target.kind.clone(), &namespace, "ADDED", object);
    inner
        .objects
        .insert((target.kind.clone(), namespace, name), event.object.clone());
    let _ = server.events.send(Some(event.clone()));
    reply(201, event.object)
}

/// Replace (`check_version`: PUT's optimistic concurrency) or patch an object.
fn write(
    server: &FakeApiServer,
    target: &Target,
    name: &str,
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
    next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
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
