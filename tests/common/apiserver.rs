//! An in-process double of the Kubernetes API server for AccessRequests: it serves list
//! and watch as the real one does (JSON list with a resourceVersion, newline-delimited
//! watch events, bookmarks, `410 Gone`), and lets a test script faults: failing
//! requests, a dropped watch, an expired resourceVersion.
//!
//! No Kubernetes API server can run on these machines; kube's real `Client` talks to this
//! over real HTTP instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

const PATH: &str = "/apis/jitguard.dev/v1alpha1/accessrequests";

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Value>,
    resource_version: u64,
    failing: bool,
    gone_on_next_watch: bool,
    lists: usize,
    watches: usize,
}

#[derive(Clone)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Option<String>>,
}

#[derive(serde::Deserialize)]
struct Params {
    watch: Option<String>,
}

impl FakeApiServer {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            events,
        };
        let app = Router::new()
            .route(PATH, get(handle))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server, for the jitguard binary.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                self.url()
            ),
        )
        .unwrap();
        path
    }

    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Creates or replaces an object and tells the watchers.
    pub fn apply(&self, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        object["metadata"]["resourceVersion"] = json!(rv);
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let kind = if inner.objects.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        inner.objects.insert(name, object.clone());
        let _ = self
            .events
            .send(Some(json!({"type": kind, "object": object}).to_string()));
    }

    /// Changes an object without telling anyone: only a re-list sees it (as after a
    /// missed watch event).
    pub fn apply_silently(&self, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        inner.objects.insert(name, object);
    }

    pub fn delete(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        if let Some(mut object) = inner.objects.remove(name) {
            object["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
            let _ = self.events.send(Some(
                json!({"type": "DELETED", "object": object}).to_string(),
            ));
        }
    }

    /// A BOOKMARK event carrying the current resourceVersion.
    pub fn bookmark(&self) {
        let rv = self.inner.lock().unwrap().resource_version.to_string();
        let _ = self.events.send(Some(
            json!({"type": "BOOKMARK", "object": {"apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest", "metadata": {"resourceVersion": rv}}}).to_string(),
        ));
    }

    /// Ends every open watch (as a load balancer or an API server restart would).
    pub fn drop_watches(&self) {
        let _ = self.events.send(None);
    }

    /// Every request fails with 500 until told otherwise.
    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
    }

    /// The next watch answers `410 Gone` (resourceVersion too old), forcing a re-list.
    pub fn gone_on_next_watch(&self) {
        self.inner.lock().unwrap().gone_on_next_watch = true;
    }

    pub fn lists(&self) -> usize {
        self.inner.lock().unwrap().lists
    }

    pub fn watches(&self) -> usize {
        self.inner.lock().unwrap().watches
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message, "metadata": {}})
}

async fn handle(State(server): State<FakeApiServer>, Query(params): Query<Params>) -> Response {
    let watching = params.watch.as_deref() == Some("true") || params.watch.as_deref() == Some("1");
    let mut inner = server.inner.lock().unwrap();
    if inner.failing {
        let body = status(500, "InternalError", "etcd is unavailable").to_string();
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    if !watching {
        inner.lists += 1;
        let list = json!({
            "apiVersion": "jitguard.dev/v1alpha1",
            "kind": "AccessRequestList",
            "metadata": {"resourceVersion": inner.resource_version.to_string()},
            "items": inner.objects.values().cloned().collect::<Vec<_>>(),
        });
        return (StatusCode::OK, list.to_string()).into_response();
    }
    inner.watches += 1;
    if std::mem::take(&mut inner.gone_on_next_watch) {
        let event =
            json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")});
        return (StatusCode::OK, format!("{event}\n")).into_response();
    }
    let events = server.events.subscribe();
    drop(inner);
    // Newline-delimited events until the test drops the watches.
    let stream = futures::stream::unfold(events, |mut events| async move {
        match events.recv().await {
            Ok(Some(line)) => Some((Ok::<_, std::io::Error>(format!("{line}\n")), events)),
            Ok(None) | Err(_) => None,
        }
    });
    Response::new(Body::from_stream(stream))
}
