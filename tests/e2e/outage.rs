//! What happens around jitguard's own availability, on a cluster of its own (these steps
//! stop jitguard and delete its registration): a second replica and the controller Lease,
//! jitguard down with `failurePolicy: Fail`, the README's emergency procedure, and a
//! pending request lapsing (a short `pending_ttl` in a copy of the policies).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{
    alive, copy_dir, eventually, lease_holder, root, scope, unique, Cluster, Options, Replica,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Asks one replica directly (not through the API server, but with its client
/// certificate) whether alice may create a ConfigMap in prod: true if allowed.
fn allows(c: &Cluster, webhook: &str, configmap: &str) -> bool {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-1",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": configmap,
            "namespace": "prod",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["developers", "system:authenticated"]},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": configmap, "namespace": "prod"}},
            "dryRun": true
        }
    });
    let pki = c.dir.join("run/pki/jitguard");
    let out = Command::new("curl")
        .args(["-fsS", "--cacert"])
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join("kube-apiserver.crt"))
        .arg("--key")
        .arg(pki.join("kube-apiserver.key"))
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ])
        .arg(format!("{webhook}/validate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(review.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    answer["response"]["allowed"] == true
}

#[test]
fn replicas_share_the_work_and_when_jitguard_is_down_prod_fails_closed() {
    // A copy of the shipped policies with a pending TTL short enough to watch.
    let policies = root()
        .join("target/e2e/tests")
        .join(format!("policies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&policies);
    copy_dir(&root().join("policies"), &policies);
    let access = policies.join("jitguard/access/data.yaml");
    let data = std::fs::read_to_string(&access).unwrap();
    assert!(data.contains("pending_ttl: 24h"));
    std::fs::write(
        &access,
        data.replace("pending_ttl: 24h", "pending_ttl: 20s"),
    )
    .unwrap();

    // ConfigMaps are reaped too: the flag, and the RBAC the README says it needs.
    let c = Cluster::up(Options {
        serve_args: vec!["--reap".into(), "core/v1/ConfigMap/configmaps".into()],
        policies: Some(policies.clone()),
    });
    c.setup(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: jitguard-reap-configmaps}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [list, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: jitguard-reap-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: jitguard-reap-configmaps}
subjects: [{kind: ServiceAccount, name: jitguard, namespace: jitguard}]
"#,
    )
    .success();
    let primary = c.env("JITGUARD_WEBHOOK").to_string();

    // A pending request lapses after the TTL.
    let lapsing = unique("lapse");
    c.ask(
        "alice",
        &lapsing,
        &scope("prod", "configmaps", "CREATE", "10m"),
    )
    .success();

    // One Lease holder among two replicas.
    eventually("the first replica holds the Lease", LIMIT, || {
        lease_holder(&c) == "jitguard-0"
    });
    let second = Replica::start(&c, &policies, "jitguard-1", &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lease_holder(&c), "jitguard-0", "only one replica leads");

    // A live grant, then its revocation: both replicas enforce it.
    let grant = unique("both");
    c.ask(
        "alice",
        &grant,
        &scope("prod", "configmaps", "CREATE", "30m"),
    )
    .success();
    c.jit("bob", &["approve", &grant]).success();
    c.jit("sam", &["approve", &grant]).success();
    eventually("both replicas see the grant", LIMIT, || {
        allows(&c, &primary, "two") && allows(&c, &second.webhook, "two")
    });
    // Created under the grant through the API server: labelled, and reaped once it ends.
    let notes = unique("notes");
    c.create_configmap("alice", "prod", &notes, &[]).success();
    c.jit("bob", &["revoke", &grant]).success();
    let revoked = Instant::now();
    eventually("both replicas enforce the revocation", LIMIT, || {
        !allows(&c, &primary, "two") && !allows(&c, &second.webhook, "two")
    });
    let enforced_after = revoked.elapsed();
    eprintln!("revocation enforced by both replicas after {enforced_after:?}");
    assert!(
        enforced_after < Duration::from_secs(10),
        "revocation took {enforced_after:?}"
    );

    eventually("what the grant left behind is reaped", LIMIT, || {
        !c.kubectl("admin", &["-n", "prod", "get", "configmap", &notes])
            .ok
    });

    // One leader: every step was taken once, by the first replica.
    let reporters: std::collections::BTreeSet<String> = c
        .events_of(&grant)
        .iter()
        .filter_map(|e| e["reportingInstance"].as_str().map(String::from))
        .collect();
    assert_eq!(reporters, ["jitguard-0".to_string()].into());
    let metrics = |url: &str| {
        let out = Command::new("curl").args(["-fsS", url]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(metrics(&format!("{}/metrics", c.env("JITGUARD_METRICS")))
        .contains("jitguard_controller_leader 1"));
    assert!(metrics(&second.metrics).contains("jitguard_controller_leader 0"));

    eventually("the pending request lapses", LIMIT, || {
        let ar = c.access_request(&lapsing);
        ar["status"]["phase"] == "Expired"
            && ar["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Lapsed"))
    });

    // The leader stops: it exits, gives the Lease up on its way out, and the other takes
    // over well within the lease duration (15 s) it would otherwise wait out.
    let leader = c.pid("jitguard");
    Command::new("kill")
        .args(["-TERM", &leader.to_string()])
        .status()
        .unwrap();
    let stopped = Instant::now();
    eventually(
        "the second replica takes the Lease over",
        Duration::from_secs(15),
        || lease_holder(&c) == "jitguard-1",
    );
    eprintln!("Lease taken over after {:?}", stopped.elapsed());
    eventually("the stopped replica exits", LIMIT, || !alive(leader));

    // The API server's webhooks still point at the stopped replica: with failurePolicy
    // Fail, prod refuses changes with the API server's own error, kube-system works.
    let refused = c.create_configmap("alice", "prod", "while-down", &[]);
    assert!(!refused.ok, "{}", refused.text());
    assert!(
        refused.stderr.contains("failed calling webhook"),
        "{}",
        refused.text()
    );
    let refused_dev = c.create_configmap("alice", "dev", "while-down", &[]);
    assert!(!refused_dev.ok, "every guarded namespace fails closed");
    c.create_configmap("admin", "kube-system", "while-down", &[])
        .success();

    // The README's emergency procedure, exactly as written there.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let procedure: Vec<&str> = readme
        .split("**Emergency procedure.**")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("kubectl "))
        .collect();
    assert_eq!(procedure.len(), 2, "{procedure:?}");
    for line in procedure {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        c.kubectl("admin", &args).success();
    }
    c.create_configmap("alice", "prod", "after-emergency", &[])
        .success();

    // Then "re-apply the overlay": both shipped overlays are accepted by this API server.
    crate::overlays::are_accepted_by_the_api_server(&c);
    drop(second);

    // What `kubectl jit` says when something is wrong, and what to do about it.
    let unknown = c.jit("alice", &["show", "nope"]);
    assert!(!unknown.ok);
    assert!(
        unknown.stderr.contains("no access request named \"nope\""),
        "{}",
        unknown.text()
    );
    let bad = c.jit(
        "alice",
        &[
            "request",
            "--resource",
            "pods",
            "--reason",
            "x",
            "--duration",
            "1d",
        ],
    );
    assert!(
        !bad.ok && bad.stderr.contains("--duration"),
        "{}",
        bad.text()
    );
    c.kubectl("admin", &["delete", "clusterrolebinding", "jitguard-user"])
        .success();
    let forbidden = c.jit("alice", &["list", "--all"]);
    assert!(
        !forbidden.ok
            && forbidden
                .stderr
                .contains("you may not list access requests"),
        "{}",
        forbidden.text()
    );
    c.kubectl(
        "admin",
        &[
            "delete",
            "crd",
            "accessrequests.jitguard.dev",
            "--wait=true",
        ],
    )
    .success();
    eventually("the plugin says the CRD is missing", LIMIT, || {
        c.jit("admin", &["list"])
            .stderr
            .contains("not installed in this cluster")
    });

    // Installed as kubectl-jit on the PATH, kubectl runs it as a plugin.
    let path = format!(
        "{}:{}",
        c.dir.join("run/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let help = Command::new(Path::new(c.env("BIN")).join("kubectl"))
        .args(["jit", "--help"])
        .env("PATH", path)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("request") && help.contains("approve") && help.contains("revoke"),
        "{help}"
    );

    // The playground's own promises: `up` while up refuses, `status` says what runs,
    // `down` stops exactly what `up` started.
    let script = |verb: &str| {
        Command::new("bash")
            .arg(root().join("tests/e2e/cluster.sh"))
            .arg(verb)
            .env("JITGUARD_E2E_DIR", &c.dir)
            .env("JITGUARD_BIN", env!("CARGO_BIN_EXE_jitguard"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let again = script("up");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));
    let status = String::from_utf8_lossy(&script("status").stdout).into_owned();
    for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(name) && l.ends_with("running")),
            "{status}"
        );
    }
    let pids: Vec<u32> = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "watchdog",
    ]
    .iter()
    .map(|name| c.pid(name))
    .collect();
    assert!(script("down").status.success());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
    assert_eq!(script("status").status.code(), Some(3), "status after down");
}
