//! Test harness: runs the real `jitguard` binary as a subprocess (TLS, flags, signals,
//! logs, all real) and talks to it with a real HTTPS client that trusts the generated CA.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod apiserver;
pub mod helm;
pub mod session;

pub const BIN: &str = env!("CARGO_BIN_EXE_jitguard");

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// An AdmissionReview fixture, parsed.
pub fn review(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("admission/{name}.json")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Sets `request.object.metadata.labels[key] = value` (the core test policies key on
/// labels).
pub fn with_label(mut review: Value, key: &str, value: &str) -> Value {
    review["request"]["object"]["metadata"]["labels"][key] = Value::from(value);
    review
}

/// The same request in namespace `ns` (its object too).
pub fn in_namespace(mut review: Value, ns: &str) -> Value {
    review["request"]["namespace"] = Value::from(ns);
    review["request"]["object"]["metadata"]["namespace"] = Value::from(ns);
    review
}

pub fn with_user(mut review: Value, user: &str, groups: &[&str]) -> Value {
    review["request"]["userInfo"] = serde_json::json!({"username": user, "groups": groups});
    review
}

/// A copy of manifests/ and policies/ with a `jitguard certs` pair in the plain overlay's
/// tls/ (git-ignored there), so that every overlay renders without touching the tree.
pub fn manifests_with_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("manifests"), &dir.path().join("manifests"));
    copy_dir(&root().join("policies"), &dir.path().join("policies"));
    let tls = dir.path().join("manifests/overlays/plain/tls");
    let (code, out, err) = run(&["certs", "--out", tls.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    dir
}

/// Copies a folder recursively (test policies are copied so tests can edit them).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub struct Options {
    /// Folder under tests/fixtures/policies, or the shipped pack with `None`.
    pub policies: Option<&'static str>,
    /// Grants file contents (YAML); none means an empty grants file.
    pub grants: Option<String>,
    /// Watch AccessRequests through this kubeconfig instead of reading a grants file.
    pub kubeconfig: Option<PathBuf>,
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policies: Some("core"),
            grants: None,
            kubeconfig: None,
            args: Vec::new(),
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub ops: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start() -> Self {
        Self::with(Options::default())
    }

    pub fn with(options: Options) -> Self {
        // Any test may build a reqwest client next (even for plain HTTP); it needs the
        // process's rustls provider whichever test runs first.
        jitguard::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        match options.policies {
            Some(name) => copy_dir(&fixture(&format!("policies/{name}")), &policies),
            None => copy_dir(&root().join("policies"), &policies),
        }
        let certs = dir.path().join("certs");
        jitguard::certs::issue(&certs, &["localhost".into(), "127.0.0.1".into()], false).unwrap();
        let grants = dir.path().join("grants.yaml");
        std::fs::write(&grants, options.grants.unwrap_or_default()).unwrap();
        let mut cmd = Command::new(BIN);
        if !options.args.iter().any(|a| a == "--shutdown-delay") {
            cmd.env("JITGUARD_SHUTDOWN_DELAY", "200ms");
        }
        cmd.current_dir(root())
            .args(["serve", "--log-format", "json"])
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .arg("--policies")
            .arg(&policies)
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .args(["--reload-interval", "100ms"])
            .args(&options.args)
            .env_remove("JITGUARD_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &options.kubeconfig {
            Some(kubeconfig) => {
                cmd.env("KUBECONFIG", kubeconfig);
            }
            None => {
                cmd.arg("--grants").arg(&grants);
            }
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut server = Self {
            child: Some(child),
            dir,
            addr: "0.0.0.0:0".parse().unwrap(),
            ops: "0.0.0.0:0".parse().unwrap(),
            logs,
        };
        let started = Instant::now();
        loop {
            let addr = server.log_field("serving admission webhooks over TLS", "addr");
            let ops = server.log_field(
                "serving /healthz, /readyz and /metrics over plain HTTP",
                "addr",
            );
            if let (Some(addr), Some(ops)) = (addr, ops) {
                server.addr = addr.parse().unwrap();
                server.ops = ops.parse().unwrap();
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "jitguard exited with {status}:\n{}",
                    server.logs().join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "jitguard did not start:\n{}",
                server.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Log lines (JSON) whose message starts with `message`.
    pub fn log_events(&self, message: &str) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    }

    fn log_field(&self, message: &str, field: &str) -> Option<String> {
        self.log_events(message)
            .first()
            .and_then(|v| v[field].as_str().map(str::to_string))
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.logs().iter().any(|l| l.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops.port())
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn grants_file(&self) -> PathBuf {
        self.dir.path().join("grants.yaml")
    }

    /// An HTTPS client that trusts this server's CA (HTTP/2 or 1.1 by ALPN).
    pub fn client(&self) -> reqwest::Client {
        client_trusting(&self.certs().join("ca.pem"), None)
    }

    /// POSTs an AdmissionReview; returns the status and the parsed body (or the text).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post(&self.client(), &self.url(path), body).await
    }

    /// The AdmissionResponse of a decided review (asserts HTTP 200).
    pub async fn decide(&self, path: &str, body: &Value) -> Value {
        let (status, response) = self.post(path, body).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(response["kind"], "AdmissionReview");
        assert_eq!(response["response"]["uid"], body["request"]["uid"]);
        response["response"].clone()
    }

    /// Decides `body` on /validate until the answer is `allowed` (a cache catching up),
    /// 5 s at most; returns the last answer for the caller to assert on.
    pub async fn decide_until(&self, body: &Value, allowed: bool) -> Value {
        let mut answer = Value::Null;
        for _ in 0..200 {
            answer = self.decide("/validate", body).await;
            if answer["allowed"] == allowed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        answer
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.ops_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn client_trusting(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    client_builder(ca, identity).build().unwrap()
}

pub fn client_builder(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::ClientBuilder {
    jitguard::install_crypto_provider();
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(30))
}

pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Decodes the base64 JSON Patch of an AdmissionResponse and applies it to `object`.
pub fn apply_patch(response: &Value, object: &Value) -> Value {
    use base64::Engine as _;
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

/// An approved AccessRequest as YAML (for grants files) with one scope rule.
pub fn grant(
    name: &str,
    requester: &str,
    scope: Value,
    approved_at: jiff::Timestamp,
    duration: &str,
) -> Value {
    serde_json::json!({
        "apiVersion": "jitguard.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "uid": format!("uid-{name}")},
        "spec": {
            "requester": requester,
            "scope": [scope],
            "reason": "testing",
            "duration": duration,
        },
        "status": {"phase": "Approved", "approvedAt": approved_at.to_string()},
    })
}

/// A scope rule: operations, apiGroups, resources, namespaces, names.
pub fn scope(
    operations: &[&str],
    groups: &[&str],
    resources: &[&str],
    namespaces: &[&str],
    names: &[&str],
) -> Value {
    serde_json::json!({
        "operations": operations,
        "apiGroups": groups,
        "resources": resources,
        "namespaces": namespaces,
        "names": names,
    })
}

/// Several AccessRequests as one multi-document YAML file.
pub fn grants_yaml(grants: &[Value]) -> String {
    grants
        .iter()
        .map(|g| yaml_serde::to_string(g).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs the binary to completion.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The AdmissionReviews of every case of the shipped suites (policies/suites), each with
/// the `input.jit` jitguard itself gives it (the case's time, the requester's live grants,
/// the namespace's labels): the input is taken from jitguard's own review, not rebuilt.
pub fn suite_reviews() -> Vec<Value> {
    let suites = root().join("policies/suites");
    let policies = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
        jitguard::policy::PolicySet::load(
            &root().join("policies"),
            jitguard::policy::EvalOptions::default(),
        )
        .unwrap(),
    ));
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&suites)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut reviews = Vec::new();
    for file in files {
        let suite: Value = yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let defaults = &suite["defaults"];
        for case in suite["cases"].as_array().unwrap() {
            let field = |name: &str| {
                if case[name].is_null() {
                    defaults[name].clone()
                } else {
                    case[name].clone()
                }
            };
            let user = field("user").as_str().unwrap_or("verify-user").to_string();
            let groups: Vec<String> = serde_json::from_value(field("groups"))
                .unwrap_or_else(|_| vec!["system:authenticated".into()]);
            let operation = field("operation").as_str().unwrap_or("CREATE").to_string();
            let at: jiff::Timestamp = field("at").as_str().unwrap().parse().unwrap();
            let requester = jitguard::manifest::Requester {
                user,
                groups,
                operation: jitguard::request::Operation::parse(&operation).unwrap(),
            };
            let grants = field("grants").as_str().map(|g| suites.join(g));
            let reviewer =
                jitguard::review::Reviewer::offline(policies.clone(), grants.as_deref()).unwrap();
            let mut worker = jitguard::review::Worker::new(reviewer);
            let path = suites.join(case["file"].as_str().unwrap());
            for item in jitguard::manifest::load(&[path], &requester).unwrap() {
                let reviewed = worker
                    .review(
                        &item.body,
                        jitguard::decision::Webhook::Validate,
                        at,
                        std::time::Instant::now(),
                    )
                    .unwrap();
                reviews.push(serde_json::to_value(&reviewed.input.review).unwrap());
            }
        }
    }
    assert!(
        reviews.iter().any(|r| r["jit"]["namespaces"]
            .as_object()
            .is_some_and(|m| !m.is_empty())),
        "a case with namespace labels is compared"
    );
    reviews
}

/// The audit file's records once it holds at least `count` (polled for up to 5 s: the
/// writer thread appends them off the request path).
pub async fn audit_records(path: &Path, count: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..250 {
        found = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if found.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}
