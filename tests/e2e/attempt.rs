//! `kubectl jit do`: access asked for from the denied command itself, through the real
//! API server, as alice lives it: her command is denied for want of a grant, the request
//! for exactly that action is created, approved by a team lead and security while she
//! waits, and her command then runs. A denial no grant can lift asks for nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{unique, Cluster, Run};

const LIMIT: Duration = Duration::from_secs(90);

/// `kubectl jit do` as alice, started: the caller decides when it must have ended.
fn jit_do(c: &Cluster, extra: &[&str], command: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_jitguard"))
        .arg("jit")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["--context", "alice", "do"])
        .args(extra)
        .arg("--")
        .arg(c.bin("kubectl"))
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["--context", "alice"])
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl jit do starts")
}

/// Alice's AccessRequests, as admin reads them.
fn requests_of_alice(c: &Cluster) -> Vec<Value> {
    let list = c
        .kubectl("admin", &["get", "accessrequests", "-o", "json"])
        .success()
        .json();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ar| ar["spec"]["requester"] == "alice")
        .cloned()
        .collect()
}

/// A cluster of the test's own: the request counts below must see no other test's.
fn cluster() -> Cluster {
    Cluster::up(crate::cluster::Options {
        serve_args: Vec::new(),
        policies: None,
    })
}

/// The AccessRequest `kubectl jit do` created for the ConfigMap `name`, once it exists;
/// `child` is that `kubectl jit do`, whose output tells why if none appears.
fn request_for(c: &Cluster, name: &str, child: &mut Option<std::process::Child>) -> Value {
    let started = Instant::now();
    loop {
        let found = requests_of_alice(c)
            .into_iter()
            .find(|ar| ar["spec"]["scope"][0]["names"][0] == name);
        if let Some(ar) = found {
            return ar;
        }
        if started.elapsed() > LIMIT {
            let stderr = child
                .take()
                .map(|ch| finished(ch, Duration::ZERO).stderr)
                .unwrap_or_default();
            panic!("no request for {name} appeared:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `kubectl` arguments creating the ConfigMap `name` in prod: a change that needs a grant.
fn configmap_in_prod(name: &str) -> [&str; 6] {
    [
        "-n",
        "prod",
        "create",
        "configmap",
        name,
        "--from-literal=a=b",
    ]
}

/// prod needs a team lead and security: bob and sam.
fn approve_as_lead_and_security(c: &Cluster, ar: &str) {
    c.jit("bob", &["approve", ar]).success();
    c.jit("sam", &["approve", ar]).success();
}

fn finished(mut child: std::process::Child, limit: Duration) -> Run {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "kubectl jit do did not finish within {}s:\n{}",
                limit.as_secs(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Run::from(child.wait_with_output().expect("output"))
}

#[test]
fn a_denied_command_asks_for_exactly_its_access_and_runs_once_approved() {
    let c = cluster();
    let name = unique("do");
    let before = requests_of_alice(&c).len();
    let child = jit_do(
        &c,
        &[
            "--reason",
            "hotfix INC-7",
            "--ticket",
            "INC-7",
            "--wait",
            "--timeout",
            "5m",
            "--duration",
            "45m",
        ],
        &configmap_in_prod(&name),
    );

    // The request for exactly that action appears, pending.
    let mut child = Some(child);
    let request = request_for(&c, &name, &mut child);
    let scope = &request["spec"]["scope"][0];
    assert_eq!(scope["namespaces"][0], "prod", "{request}");
    assert_eq!(scope["resources"][0], "configmaps", "{request}");
    assert_eq!(scope["operations"][0], "CREATE", "{request}");
    assert_eq!(request["spec"]["reason"], "hotfix INC-7");
    assert_eq!(request["spec"]["ticket"], "INC-7");
    assert_eq!(
        request["spec"]["duration"], "45m",
        "--duration over the denial's 30m"
    );
    assert_eq!(
        requests_of_alice(&c).len(),
        before + 1,
        "one request, no more"
    );
    let ar = request["metadata"]["name"].as_str().unwrap().to_string();

    // A team lead and security approve; alice's command then runs.
    approve_as_lead_and_security(&c, &ar);
    let run = finished(child.expect("kubectl jit do"), LIMIT);
    let stderr = &run.stderr;
    assert!(run.ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "asked for access: accessrequest {ar} (Pending); approval needs 1 of"
        )) && stderr.contains(&format!("an approver runs: kubectl jit approve {ar}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("access is live; running the command again"),
        "{stderr}"
    );
    assert!(
        run.stdout.contains(&format!("configmap/{name} created")),
        "{}",
        run.stdout
    );
    c.kubectl("admin", &["-n", "prod", "get", "configmap", &name])
        .success();
}

#[test]
fn ctrl_c_leaves_the_request_pending_and_says_how_to_go_on_waiting() {
    let c = cluster();
    let name = unique("do-int");
    let command = configmap_in_prod(&name);
    let flags = ["--reason", "hotfix INC-8", "--ticket", "INC-8", "--wait"];
    let mut child = Some(jit_do(&c, &flags, &command));
    let ar = request_for(&c, &name, &mut child)["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let child = child.expect("kubectl jit do");
    // Interrupted while waiting (as Ctrl-C does): the request stays, and the way back
    // is printed.
    std::thread::sleep(Duration::from_secs(1));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = finished(child, LIMIT);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "stays pending. To go on waiting: kubectl jit do --wait --request {ar}"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(c.phase(&ar), "Pending");
    // Going on waiting with --request: nothing new is asked for; --timeout bounds the
    // wait; once approved, it runs.
    let before = requests_of_alice(&c).len();
    let mut resumed = flags.to_vec();
    resumed.extend(["--request", &ar]);
    let mut bounded = resumed.clone();
    bounded.extend(["--timeout", "2s"]);
    let run = finished(jit_do(&c, &bounded, &command), LIMIT);
    assert!(
        !run.ok
            && run
                .stderr
                .contains("still not approved after 2s (--timeout)"),
        "{}",
        run.stderr
    );
    let child = jit_do(&c, &resumed, &command);
    std::thread::sleep(Duration::from_secs(2));
    approve_as_lead_and_security(&c, &ar);
    let run = finished(child, LIMIT);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(requests_of_alice(&c).len(), before);
    c.kubectl("admin", &["-n", "prod", "get", "configmap", &name])
        .success();
}

#[test]
fn a_denial_no_grant_can_lift_asks_for_nothing() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hostnet\n  namespace: prod\nspec:\n  hostNetwork: true\n  containers:\n  - name: x\n    image: nginx\n",
    )
    .unwrap();
    let before = requests_of_alice(&c).len();
    let run = finished(
        jit_do(
            &c,
            &["--reason", "try", "--wait"],
            &["apply", "-f", pod.to_str().unwrap()],
        ),
        LIMIT,
    );
    assert!(!run.ok, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("jitguard denied this by a rule no grant can lift; nothing was requested"),
        "{}",
        run.stderr
    );
    assert_eq!(requests_of_alice(&c).len(), before);
}
