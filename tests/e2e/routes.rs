//! Every way a person with the built-in `edit` role would try to change prod without a
//! grant goes through the real API server's routing (subresources, CONNECT, dry-run) to
//! jitguard, and is denied there.

use crate::cluster::{unique, Cluster};

const EVICTION: &str = r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0", "namespace": "prod"}}"#;

#[test]
fn a_change_in_prod_is_denied_with_the_command_that_asks_for_access() {
    let c = Cluster::shared();
    let name = unique("denied");
    let run = c
        .create_configmap("alice", "prod", &name, &[])
        .denied_by_jitguard();
    let text = run.text();
    assert!(
        text.contains(&format!(
            "creation of ConfigMap prod/{name} in protected namespace prod needs a just-in-time grant"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "kubectl jit request --namespace prod --resource configmaps --operation CREATE --name {name}"
        )),
        "{text}"
    );
    // Nothing was stored.
    assert!(
        !c.kubectl("admin", &["-n", "prod", "get", "configmap", &name])
            .ok
    );
}

#[test]
fn in_dev_the_same_change_is_allowed() {
    let c = Cluster::shared();
    let name = unique("allowed");
    c.create_configmap("alice", "dev", &name, &[]).success();
    c.kubectl("alice", &["-n", "dev", "delete", "configmap", &name])
        .success();
}

#[test]
fn server_side_dry_run_is_decided_the_same_way() {
    let c = Cluster::shared();
    let name = unique("dry");
    c.create_configmap("alice", "prod", &name, &["--dry-run=server"])
        .denied_by_jitguard();
    c.create_configmap("alice", "dev", &name, &["--dry-run=server"])
        .success();
    // A dry run stores nothing, in dev either.
    assert!(
        !c.kubectl("admin", &["-n", "dev", "get", "configmap", &name])
            .ok
    );
    let dry = c
        .audit()
        .into_iter()
        .filter(|r| r["request"]["name"] == name.as_str())
        .collect::<Vec<_>>();
    assert!(
        !dry.is_empty() && dry.iter().all(|r| r["request"]["dry_run"] == true),
        "the decisions are recorded as dry runs: {dry:?}"
    );
}

#[test]
fn every_route_an_editor_would_take_in_prod_reaches_jitguard_and_is_denied() {
    let c = Cluster::shared();
    // Rights a namespace owner may be given beyond edit (which has neither): writing the
    // Namespace object and its status, and adding debug containers. Even with them the
    // routes stay closed.
    c.setup(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: namespace-owner, namespace: prod}
rules:
  - {apiGroups: [""], resources: [namespaces, namespaces/status], verbs: [get, update, patch]}
  - {apiGroups: [""], resources: [pods/ephemeralcontainers], verbs: [update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: namespace-owner-alice, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: namespace-owner}
subjects: [{kind: User, name: alice}]
"#,
    )
    .success();

    let label = r#"{"metadata": {"labels": {"owner": "alice"}}}"#;
    let routes: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        (
            "kubectl scale (deployments/scale)",
            vec!["-n", "prod", "scale", "deployment", "web", "--replicas=0"],
            None,
        ),
        (
            "kubectl set image (deployments)",
            vec![
                "-n",
                "prod",
                "set",
                "image",
                "deployment/web",
                "web=busybox",
            ],
            None,
        ),
        (
            "kubectl create token (serviceaccounts/token)",
            vec!["-n", "prod", "create", "token", "deployer"],
            None,
        ),
        (
            "eviction (pods/eviction)",
            vec![
                "create",
                "--raw",
                "/api/v1/namespaces/prod/pods/web-0/eviction",
                "-f",
                "-",
            ],
            Some(EVICTION),
        ),
        (
            "kubectl delete pod",
            vec!["-n", "prod", "delete", "pod", "web-0", "--wait=false"],
            None,
        ),
        (
            "kubectl exec (pods/exec)",
            vec!["-n", "prod", "exec", "web-0", "--", "true"],
            None,
        ),
        // kubectl attach and port-forward wait for a Running pod first, which needs a node;
        // the API server routes the same request without kubectl's check.
        (
            "attach (pods/attach)",
            vec![
                "get",
                "--raw",
                "/api/v1/namespaces/prod/pods/web-0/attach?stdout=true&container=web",
            ],
            None,
        ),
        (
            "port-forward (pods/portforward)",
            vec![
                "get",
                "--raw",
                "/api/v1/namespaces/prod/pods/web-0/portforward?ports=80",
            ],
            None,
        ),
        (
            "kubectl debug (pods/ephemeralcontainers)",
            vec![
                "-n",
                "prod",
                "debug",
                "web-0",
                "--image=busybox",
                "--profile=general",
                "--attach=false",
            ],
            None,
        ),
        (
            "pods/proxy",
            vec![
                "get",
                "--raw",
                "/api/v1/namespaces/prod/pods/web-0:80/proxy/",
            ],
            None,
        ),
        (
            "services/proxy",
            vec![
                "get",
                "--raw",
                "/api/v1/namespaces/prod/services/web:80/proxy/",
            ],
            None,
        ),
        (
            "a label on the Namespace (namespaces)",
            vec!["patch", "namespace", "prod", "--type=merge", "-p", label],
            None,
        ),
        (
            "a label on the Namespace through namespaces/status",
            vec![
                "patch",
                "namespace",
                "prod",
                "--subresource=status",
                "--type=merge",
                "-p",
                label,
            ],
            None,
        ),
    ];
    let mut through = Vec::new();
    for (what, args, input) in &routes {
        let run = c.kubectl_with_input("alice", args, *input);
        let by_jitguard =
            !run.ok && run.stderr.contains("admission webhook") && run.stderr.contains("jitguard");
        if !by_jitguard {
            through.push(format!("{what}: {}", run.text().trim()));
        }
    }
    assert!(
        through.is_empty(),
        "routes not denied by jitguard:\n{}",
        through.join("\n")
    );

    // And nothing changed.
    let deploy = c
        .kubectl(
            "admin",
            &["-n", "prod", "get", "deployment", "web", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(deploy["spec"]["replicas"], 2);
    let ns = c
        .kubectl("admin", &["get", "namespace", "prod", "-o", "json"])
        .success()
        .json();
    assert!(ns["metadata"]["labels"]["owner"].is_null(), "{ns}");
    let pod = c
        .kubectl(
            "admin",
            &["-n", "prod", "get", "pod", "web-0", "-o", "json"],
        )
        .success()
        .json();
    assert!(pod["spec"]["ephemeralContainers"].is_null(), "{pod}");
}

/// A protected namespace's own service account (here prod's deployer, with admin there, as
/// CI deployers often have) writes what workloads write on their own without a grant, and
/// nothing that changes who or what runs: anyone who can run a pod as it would have it.
#[test]
fn a_namespaces_own_service_account_writes_configmaps_but_changes_nothing_that_runs() {
    let c = Cluster::shared();
    c.setup(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: admin-deployer, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: ServiceAccount, name: deployer, namespace: prod}]
"#,
    )
    .success();
    let as_deployer = |args: &[&str]| {
        let mut all = vec!["--as", "system:serviceaccount:prod:deployer"];
        all.extend_from_slice(args);
        c.kubectl("admin", &all)
    };
    let cm = unique("sa-cm");
    as_deployer(&[
        "-n",
        "prod",
        "create",
        "configmap",
        &cm,
        "--from-literal=a=b",
    ])
    .success();
    as_deployer(&["-n", "prod", "scale", "deployment", "web", "--replicas=0"]).denied_by_jitguard();
    as_deployer(&[
        "-n",
        "prod",
        "create",
        "rolebinding",
        &unique("me-admin"),
        "--clusterrole",
        "admin",
        "--serviceaccount",
        "prod:deployer",
    ])
    .denied_by_jitguard();
}

/// Only the API server can call jitguard: it presents a client certificate (its
/// AdmissionConfiguration), and jitguard (`--client-ca`) refuses a caller without one at
/// the TLS handshake, before reading a byte of a forged review.
#[test]
fn a_review_from_anyone_but_the_api_server_is_refused_at_the_handshake() {
    use std::process::Command;
    let c = Cluster::shared();
    let pki = c.dir.join("run/pki/jitguard");
    let post = |with_cert: bool| {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(pki.join("ca.pem"))
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(include_str!("../fixtures/admission/pod-exec-prod.json"));
        if with_cert {
            curl.arg("--cert")
                .arg(pki.join("kube-apiserver.crt"))
                .arg("--key")
                .arg(pki.join("kube-apiserver.key"));
        }
        curl.arg(format!("{}/validate", c.env("JITGUARD_WEBHOOK")));
        curl.output().unwrap()
    };
    let forged = post(false);
    assert!(
        !forged.status.success(),
        "a caller without a certificate got an answer"
    );
    assert_ne!(String::from_utf8_lossy(&forged.stdout), "200");
    let api_server = post(true);
    assert_eq!(String::from_utf8_lossy(&api_server.stdout), "200");
}
