//! One real control plane per `Cluster`: `tests/e2e/cluster.sh up` with a state folder of
//! its own (etcd, kube-apiserver and kube-controller-manager built from their Go modules,
//! jitguard registered as the shipped manifests say), and the people's `kubectl` and
//! `jitguard jit` as child processes.
//!
//! Tests that only add objects share one cluster (`Cluster::shared`); a test that stops
//! jitguard or changes its flags starts its own (`Cluster::up`). Every cluster has a
//! watchdog that stops it once this test process is gone, however it ends.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The result of one command: exit status and both outputs, with a readable `Debug`.
pub struct Run {
    pub ok: bool,
    /// The exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Run {
            ok: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both outputs, for assertions on what the person saw.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.text()))
    }

    /// Asserts success and returns itself.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.ok, "command failed:\n{}", self.text());
        self
    }

    /// Asserts that jitguard (not RBAC, not the API server) refused the request.
    #[track_caller]
    pub fn denied_by_jitguard(self) -> Self {
        assert!(
            !self.ok,
            "expected a denial, the command succeeded:\n{}",
            self.text()
        );
        assert!(
            self.stderr.contains("admission webhook") && self.stderr.contains("jitguard"),
            "expected jitguard's denial, got:\n{}",
            self.text()
        );
        self
    }
}

#[derive(Default)]
pub struct Options {
    /// `jitguard serve` flags added to the playground's.
    pub serve_args: Vec<String>,
    /// A policy folder to serve instead of `policies/`.
    pub policies: Option<PathBuf>,
}

pub struct Cluster {
    pub dir: PathBuf,
    env: HashMap<String, String>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// The cluster every non-disruptive test uses, started by the first one to ask.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            Cluster::up(Options {
                serve_args: Vec::new(),
                policies: None,
            })
        })
    }

    /// A cluster of its own, stopped when dropped.
    pub fn up(options: Options) -> Cluster {
        static PRUNE: std::sync::Once = std::sync::Once::new();
        PRUNE.call_once(prune_earlier_runs);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = root()
            .join("target/e2e/tests")
            .join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("bash");
        command
            .arg(root().join("tests/e2e/cluster.sh"))
            .arg("up")
            .env("JITGUARD_E2E_DIR", &dir)
            .env("JITGUARD_BIN", env!("CARGO_BIN_EXE_jitguard"))
            .env("JITGUARD_E2E_OWNER_PID", std::process::id().to_string())
            .env("JITGUARD_E2E_SERVE_ARGS", options.serve_args.join(" "))
            .stdin(Stdio::null());
        if let Some(policies) = &options.policies {
            command.env("JITGUARD_E2E_POLICIES", policies);
        }
        let run = Run::from(command.output().expect("bash runs"));
        assert!(
            run.ok,
            "the e2e control plane did not start (tests/e2e/cluster.sh up):\n{}",
            run.text()
        );
        let env = std::fs::read_to_string(dir.join("run/env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cluster { dir, env }
    }

    pub fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from run/env"))
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        Path::new(self.env("BIN")).join(name)
    }

    /// `kubectl` as `user` (a context of the kubeconfig: admin, alice, bob, sam, carol).
    pub fn kubectl(&self, user: &str, args: &[&str]) -> Run {
        self.kubectl_with_input(user, args, None)
    }

    pub fn kubectl_with_input(&self, user: &str, args: &[&str], input: Option<&str>) -> Run {
        let mut command = Command::new(self.bin("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--context", user, "--request-timeout", "30s"])
            .args(args);
        run_with_input(command, input)
    }

    /// `kubectl create configmap NAME --from-literal=a=b` in `namespace` as `user`, with
    /// `extra` flags (`--dry-run=server`): the smallest change there is.
    pub fn create_configmap(&self, user: &str, namespace: &str, name: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "-n",
            namespace,
            "create",
            "configmap",
            name,
            "--from-literal=a=b",
        ];
        args.extend_from_slice(extra);
        self.kubectl(user, &args)
    }

    /// `kubectl jit request` as `user` for the scope in `scope` (flags), named `name`,
    /// with a reason and a ticket.
    pub fn ask(&self, user: &str, name: &str, scope: &[&str]) -> Run {
        let mut args = vec![
            "request",
            "--request-name",
            name,
            "--reason",
            "e2e: fix INC-7",
            "--ticket",
            "INC-7",
        ];
        args.extend_from_slice(scope);
        self.jit(user, &args)
    }

    /// Waits until each CRD (by name) is Established, as admin.
    pub fn wait_for_crds(&self, crds: &[&str]) {
        for crd in crds {
            self.kubectl(
                "admin",
                &[
                    "wait",
                    "--for",
                    "condition=Established",
                    &format!("crd/{crd}"),
                    "--timeout",
                    "60s",
                ],
            )
            .success();
        }
    }

    /// `kubectl apply -f -` of a YAML text, as `user`.
    pub fn apply(&self, user: &str, yaml: &str) -> Run {
        self.kubectl_with_input(user, &["apply", "-f", "-"], Some(yaml))
    }

    /// Objects a test needs in place before it starts, applied by the cluster's operator
    /// as an identity jitguard exempts (a kube-system service account, impersonated by
    /// admin): in prod, even admin needs a grant.
    pub fn setup(&self, yaml: &str) -> Run {
        self.kubectl_with_input(
            "admin",
            &[
                "--as",
                "system:serviceaccount:kube-system:e2e-setup",
                "--as-group",
                "system:masters",
                "apply",
                "-f",
                "-",
            ],
            Some(yaml),
        )
    }

    /// `jitguard jit ...` (the `kubectl jit` plugin) as `user`.
    pub fn jit(&self, user: &str, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jitguard"));
        command
            .arg("jit")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--context", user])
            .args(args);
        run_with_input(command, None)
    }

    /// An AccessRequest as the admin reads it.
    pub fn access_request(&self, name: &str) -> Value {
        self.kubectl("admin", &["get", "accessrequest", name, "-o", "json"])
            .success()
            .json()
    }

    /// The request's phase; Pending until the status says otherwise, as `kubectl jit` reads it.
    pub fn phase(&self, name: &str) -> String {
        self.access_request(name)["status"]["phase"]
            .as_str()
            .unwrap_or("Pending")
            .to_string()
    }

    /// The Events recorded about an AccessRequest (they live in `default`).
    pub fn events_of(&self, request: &str) -> Vec<Value> {
        let list = self
            .kubectl(
                "admin",
                &[
                    "get",
                    "events.events.k8s.io",
                    "-n",
                    "default",
                    "-o",
                    "json",
                    "--field-selector",
                    &format!("regarding.name={request}"),
                ],
            )
            .success()
            .json();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// jitguard's audit records so far (its `--audit-file`).
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.env("JITGUARD_AUDIT"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The pid of a process `cluster.sh up` started (etcd, kube-apiserver, jitguard, ...).
    pub fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.dir.join("run/pids"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, pid)| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("no process {name} in run/pids"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/e2e/cluster.sh"))
            .arg("down")
            .env("JITGUARD_E2E_DIR", &self.dir)
            .stdin(Stdio::null())
            .output();
    }
}

/// Removes what earlier test processes left under target/e2e/tests (each folder is named
/// after its process id; their clusters stopped with them).
fn prune_earlier_runs() {
    let Ok(entries) = std::fs::read_dir(root().join("target/e2e/tests")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.trim_start_matches("policies-");
        let pid = pid.split('-').next().unwrap_or_default();
        if !pid.parse().is_ok_and(alive) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn run_with_input(mut command: Command, input: Option<&str>) -> Run {
    use std::io::Write;
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("command starts");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    Run::from(child.wait_with_output().unwrap())
}

/// `kubectl jit request` flags for one scope rule: a resource in a namespace, one
/// operation, for a duration.
pub fn scope<'a>(
    namespace: &'a str,
    resource: &'a str,
    operation: &'a str,
    duration: &'a str,
) -> [&'a str; 8] {
    [
        "--namespace",
        namespace,
        "--resource",
        resource,
        "--operation",
        operation,
        "--duration",
        duration,
    ]
}

/// Copies a folder tree.
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

/// Whether a process still runs.
pub fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Polls `check` until it holds, up to `limit` (generous: the machine is shared).
#[track_caller]
pub fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {} s",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A second `jitguard serve`, as a second pod of the Deployment would be: the same
/// identity, certificate and policies, its own ports and pod name.
pub struct Replica {
    child: Child,
    pub webhook: String,
    pub metrics: String,
}

impl Replica {
    pub fn start(c: &Cluster, policies: &Path, pod: &str, extra: &[&str]) -> Replica {
        let run = c.dir.join("run");
        let (hook, ops) = (free_port(), free_port());
        let log = std::fs::File::create(run.join(format!("logs/{pod}.log"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jitguard"))
            .env("KUBECONFIG", c.env("JITGUARD_KUBECONFIG"))
            .args(["serve", "--addr", &format!("127.0.0.1:{hook}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{ops}")])
            .arg("--policies")
            .arg(policies)
            .arg("--tls-cert")
            .arg(run.join("pki/jitguard/tls.crt"))
            .arg("--tls-key")
            .arg(run.join("pki/jitguard/tls.key"))
            .arg("--client-ca")
            .arg(run.join("pki/jitguard/ca.pem"))
            .args(["--namespace", "jitguard", "--pod-name", pod])
            .args(["--shutdown-delay", "1s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let ready = format!("http://127.0.0.1:{ops}/readyz");
        eventually(
            "the second replica is ready",
            Duration::from_secs(60),
            || {
                if let Some(exit) = child.try_wait().unwrap() {
                    panic!("{pod} exited ({exit}); see {}", run.join("logs").display());
                }
                Command::new("curl")
                    .args(["-fsS", &ready])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
        Replica {
            child,
            webhook: format!("https://127.0.0.1:{hook}"),
            metrics: format!("http://127.0.0.1:{ops}/metrics"),
        }
    }
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who holds the controller's Lease.
pub fn lease_holder(c: &Cluster) -> String {
    c.kubectl(
        "admin",
        &[
            "-n",
            "jitguard",
            "get",
            "lease",
            "jitguard-controller",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
    .stdout
}
