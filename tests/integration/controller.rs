//! The workflow end to end, as people live it: `kubectl jit` (the real binary, with a
//! kubeconfig per user) against the API-server double, which runs every AccessRequest
//! write through jitguard's real webhooks over TLS; jitguard's controller (in the same
//! real binary, as its service account) approving by policy and break-glass, binding
//! roles, expiring, revoking and reaping; and the grant then used in an admission.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::apiserver::FakeApiServer;
use crate::common::{review, with_user, Options, Server};

const AR: (&str, &str) = ("apis/jitguard.dev/v1alpha1", "accessrequests");
const RBAC: &str = "apis/rbac.authorization.k8s.io/v1";
const EVENTS: (&str, &str) = ("apis/events.k8s.io/v1", "events");
const NETPOL: &str = "apis/networking.k8s.io/v1";

/// Users as the API server knows them: (token, username, groups).
const USERS: &[(&str, &str, &[&str])] = &[
    (
        "alice",
        "alice@example.com",
        &["developers", "system:authenticated"],
    ),
    (
        "bob",
        "bob@example.com",
        &["team-leads", "system:authenticated"],
    ),
    (
        "carol",
        "carol@example.com",
        &["security", "system:authenticated"],
    ),
    (
        "dave",
        "dave@example.com",
        &["sre-oncall", "system:authenticated"],
    ),
    (
        "mallory",
        "mallory@example.com",
        &["developers", "system:authenticated"],
    ),
    (
        "controller",
        "system:serviceaccount:jitguard:jitguard",
        &["system:serviceaccounts", "system:authenticated"],
    ),
];

struct Cluster {
    api: FakeApiServer,
    server: Server,
    configs: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With more `serve` flags.
    async fn start_with(flags: &[&str]) -> Self {
        Self::start_on(FakeApiServer::start().await, flags).await
    }

    /// On an API server already holding some objects.
    async fn start_on(api: FakeApiServer, flags: &[&str]) -> Self {
        let configs = tempfile::tempdir().unwrap();
        for (token, user, groups) in USERS {
            api.add_user(token, user, groups);
        }
        api.put(RBAC, "clusterroles", "", json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "view"},
            "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}],
        }));
        api.put(
            RBAC,
            "clusterroles",
            "",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "jitguard-debug"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}],
            }),
        );
        let server = Server::with(Options {
            policies: None,
            kubeconfig: Some(api.kubeconfig_for(configs.path(), Some("controller"))),
            args: ["--pod-name", "jitguard-0"]
                .iter()
                .chain(flags)
                .map(|s| s.to_string())
                .collect(),
            ..Options::default()
        });
        api.use_webhook(&server.url(""), &server.certs().join("ca.pem"));
        let cluster = Self {
            api,
            server,
            configs,
        };
        let mut ready = false;
        for _ in 0..400 {
            let r = reqwest::get(cluster.server.ops_url("/readyz")).await;
            if r.is_ok_and(|r| r.status() == 200) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(ready, "{}", cluster.server.logs().join("\n"));
        cluster
    }

    /// Another replica of jitguard against the same cluster.
    fn replica(&self, pod: &str) -> Server {
        Server::with(Options {
            policies: None,
            kubeconfig: Some(self.kubeconfig("controller")),
            args: vec!["--pod-name".into(), pod.into()],
            ..Options::default()
        })
    }

    fn kubeconfig(&self, token: &str) -> PathBuf {
        self.api.kubeconfig_for(self.configs.path(), Some(token))
    }

    /// `kubectl jit request --resource pods/exec --operation CONNECT ARGS` as `token`.
    async fn request_exec(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let mut all = vec![
            "request",
            "--resource",
            "pods/exec",
            "--operation",
            "CONNECT",
        ];
        all.extend_from_slice(args);
        self.jit(token, &all).await
    }

    /// `kubectl jit ARGS` as the user with `token`: (exit code, stdout, stderr).
    async fn jit(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let mut argv: Vec<String> = vec!["jit".into(), "--kubeconfig".into()];
        argv.push(self.kubeconfig(token).display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            crate::common::run(&argv)
        })
        .await
        .unwrap()
    }

    fn request(&self, name: &str) -> Value {
        self.api.get(AR.0, AR.1, "", name).unwrap_or(Value::Null)
    }

    fn phase(&self, name: &str) -> String {
        self.request(name)["status"]["phase"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn events(&self, reason: &str) -> Vec<Value> {
        self.api
            .all(EVENTS.0, EVENTS.1)
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Puts a NetworkPolicy as if created (under `grant`, the webhook's label) earlier.
    fn put_network_policy(&self, namespace: &str, name: &str, grant: Option<&str>) {
        let mut metadata = json!({"name": name, "namespace": namespace});
        if let Some(g) = grant {
            metadata["labels"] = json!({"jitguard.dev/grant": g});
        }
        self.api.put(
            NETPOL,
            "networkpolicies",
            namespace,
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": metadata, "spec": {"podSelector": {}},
            }),
        );
    }

    fn network_policy_exists(&self, namespace: &str, name: &str) -> bool {
        self.api
            .get(NETPOL, "networkpolicies", namespace, name)
            .is_some()
    }

    /// Whether the request has a condition matching `wanted` (e.g. `Live` and `True`).
    fn has_condition(&self, name: &str, wanted: impl Fn(&Value) -> bool) -> bool {
        self.request(name)["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(wanted))
    }

    /// Decides `review` until the grant cache has caught up (`allowed` as wanted), 5 s at
    /// most; returns the last answer.
    async fn decide_until(&self, review: &Value, allowed: bool) -> Value {
        self.server.decide_until(review, allowed).await
    }

    /// Waits for a condition on the stored objects (10 s at most).
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        for _ in 0..400 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "timed out waiting for {what}\nobjects: {}\nlogs:\n{}",
            self.api
                .all(AR.0, AR.1)
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            self.server.logs().join("\n")
        );
    }
}

fn ok(out: &(i32, String, String)) {
    assert_eq!(out.0, 0, "stdout: {}\nstderr: {}", out.1, out.2);
}

#[tokio::test]
async fn a_request_approved_by_two_people_is_live_used_revoked_and_reaped() {
    let c = Cluster::start().await;
    // Alice asks, the way a denial told her to, with a role for the reads webhooks never see.
    let out = c
        .request_exec(
            "alice",
            &[
                "--namespace",
                "prod",
                "--duration",
                "30m",
                "--reason",
                "debug INC-7",
                "--ticket",
                "INC-7",
                "--role",
                "ClusterRole/view",
                "--request-name",
                "alice-prod",
            ],
        )
        .await;
    ok(&out);
    assert!(out.1.contains("alice-prod created (Pending)"), "{}", out.1);
    let stored = c.request("alice-prod");
    assert_eq!(
        stored["spec"]["requester"], "alice@example.com",
        "stamped by the webhook"
    );

    // Before approval the exec is denied.
    let exec = with_user(
        review("pod-exec-prod"),
        "alice@example.com",
        &["developers", "system:authenticated"],
    );
    assert_eq!(c.server.decide("/validate", &exec).await["allowed"], false);

    // Bob sees it waiting; alice cannot approve her own; mallory is no approver.
    let pending = c.jit("bob", &["list", "--pending"]).await;
    ok(&pending);
    assert!(
        pending.1.contains("alice-prod") && pending.1.contains("Pending"),
        "{}",
        pending.1
    );
    let own = c.jit("alice", &["approve", "alice-prod"]).await;
    assert_eq!(own.0, 1);
    assert!(
        own.2
            .contains("you cannot approve or deny your own request"),
        "{}",
        own.2
    );
    let outsider = c.jit("mallory", &["approve", "alice-prod"]).await;
    assert_eq!(outsider.0, 1);
    assert!(outsider.2.contains("not an approver"), "{}", outsider.2);

    // prod is protected: a team lead AND security.
    let first = c
        .jit("bob", &["approve", "alice-prod", "-m", "ok for INC-7"])
        .await;
    ok(&first);
    assert!(first.1.contains("it is now Pending"), "{}", first.1);
    let second = c.jit("carol", &["approve", "alice-prod"]).await;
    ok(&second);
    assert!(second.1.contains("it is now Approved"), "{}", second.1);
    let stored = c.request("alice-prod");
    assert_eq!(
        stored["status"]["approvals"][0]["approver"],
        "bob@example.com"
    );
    assert_eq!(
        stored["status"]["approvals"][1]["approver"],
        "carol@example.com"
    );

    // The controller binds the role while the grant is live.
    c.until("the RoleBinding", |c| {
        c.api
            .get(RBAC, "rolebindings", "prod", "jit-alice-prod")
            .is_some()
    })
    .await;
    let binding = c
        .api
        .get(RBAC, "rolebindings", "prod", "jit-alice-prod")
        .unwrap();
    assert_eq!(
        binding["subjects"][0],
        json!({"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"})
    );
    assert_eq!(binding["roleRef"]["name"], "view");
    assert_eq!(
        binding["metadata"]["labels"]["jitguard.dev/grant"],
        "alice-prod"
    );
    assert_eq!(
        binding["metadata"]["ownerReferences"][0]["name"],
        "alice-prod"
    );
    c.until("Live condition", |c| {
        c.has_condition("alice-prod", |x| {
            x["type"] == "Live" && x["status"] == "True"
        })
    })
    .await;

    // The grant is used: the same exec is allowed now, naming the grant.
    let allowed = c.decide_until(&exec, true).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(
        allowed["auditAnnotations"]["jitguard.dev/grant"],
        "alice-prod"
    );

    // A NetworkPolicy made under the grant carries its label (the mutating webhook adds
    // it); the reaper takes it away with the RoleBinding.
    c.put_network_policy("prod", "debug-allow", Some("alice-prod"));
    c.put_network_policy("prod", "permanent", None);

    // Mallory may not revoke; alice may.
    let refused = c.jit("mallory", &["revoke", "alice-prod"]).await;
    assert_eq!(refused.0, 1);
    assert!(refused.2.contains("only the requester"), "{}", refused.2);
    ok(&c.jit("alice", &["revoke", "alice-prod"]).await);
    assert_eq!(c.phase("alice-prod"), "Revoked");
    c.until("reaped", |c| {
        c.api
            .get(RBAC, "rolebindings", "prod", "jit-alice-prod")
            .is_none()
            && !c.network_policy_exists("prod", "debug-allow")
    })
    .await;
    assert!(
        c.network_policy_exists("prod", "permanent"),
        "only what carries the grant's label is removed"
    );
    c.until("Reaped condition", |c| {
        c.has_condition("alice-prod", |x| x["type"] == "Reaped")
    })
    .await;
    // Revocation takes effect at once.
    let denied = c.decide_until(&exec, false).await;
    assert_eq!(denied["allowed"], false);

    // Every step is an Event on the request and an audit record.
    c.until("events", |c| {
        [
            "Requested",
            "Approval",
            "Approved",
            "Provisioned",
            "Revoked",
            "Reaped",
        ]
        .iter()
        .all(|r| !c.events(r).is_empty())
    })
    .await;
    let approval = &c.events("Approval")[0];
    assert_eq!(approval["regarding"]["name"], "alice-prod");
    assert_eq!(approval["regarding"]["kind"], "AccessRequest");
    assert_eq!(approval["reportingController"], "jitguard-controller");
    let used = &c.events("Used")[0];
    assert_eq!(used["regarding"]["name"], "alice-prod");
    assert!(
        used["note"]
            .as_str()
            .unwrap()
            .contains("alice@example.com: CONNECT pods/exec prod/web"),
        "{used}"
    );
    let logs = c.server.logs().join("\n");
    for step in [
        "access.requested",
        "access.approved",
        "access.provisioned",
        "access.revoked",
        "access.reaped",
    ] {
        assert!(logs.contains(step), "no audit record {step}");
    }

    // show / list as the requester, and JSON for scripts.
    let shown = c.jit("alice", &["show", "alice-prod"]).await;
    ok(&shown);
    assert!(
        shown.1.contains("approved by bob@example.com") && shown.1.contains("Revoked:"),
        "{}",
        shown.1
    );
    let mine = c.jit("alice", &["list", "-o", "json"]).await;
    ok(&mine);
    let mine: Value = serde_json::from_str(&mine.1).unwrap();
    assert_eq!(mine[0]["metadata"]["name"], "alice-prod");
}

#[tokio::test]
async fn policy_approves_short_debugging_and_the_grant_expires_and_is_reaped_on_time() {
    // ConfigMaps are reaped too, when asked for.
    let c = Cluster::start_with(&["--reap", "core/v1/ConfigMap/configmaps"]).await;
    // Two replicas run the controller; only the Lease holder acts.
    let second = c.replica("jitguard-1");
    ok(&c
        .request_exec(
            "alice",
            &[
                "--namespace",
                "shop",
                "--duration",
                "3s",
                "--reason",
                "look at a crash",
                "--request-name",
                "alice-shop",
            ],
        )
        .await);
    c.until("auto-approved", |c| c.phase("alice-shop") == "Approved")
        .await;
    let stored = c.request("alice-shop");
    assert_eq!(
        stored["status"]["approvals"][0]["approver"],
        "policy:short-debug-outside-protected"
    );
    c.put_network_policy("shop", "temp", Some("alice-shop"));
    c.api.put("api/v1", "configmaps", "shop", json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "debug-notes", "namespace": "shop", "labels": {"jitguard.dev/grant": "alice-shop"}},
    }));
    // Three seconds after approval it has ended by itself, with what it left behind.
    c.until("expired", |c| c.phase("alice-shop") == "Expired")
        .await;
    c.until("reaped", |c| {
        !c.network_policy_exists("shop", "temp")
            && c.api
                .get("api/v1", "configmaps", "shop", "debug-notes")
                .is_none()
    })
    .await;
    c.until("events", |c| {
        ["AutoApproved", "Expired", "Reaped"]
            .iter()
            .all(|r| !c.events(r).is_empty())
    })
    .await;
    let logs = c.server.logs().join("\n");
    assert!(logs.contains("access.auto_approved") && logs.contains("access.expired"));
    // One leader: every step happened once, from one replica.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for reason in ["AutoApproved", "Expired", "Reaped"] {
        assert_eq!(c.events(reason).len(), 1, "{reason}");
    }
    let instances: std::collections::BTreeSet<String> = c
        .api
        .all(EVENTS.0, EVENTS.1)
        .iter()
        .map(|e| e["reportingInstance"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        instances,
        ["jitguard-0".to_string()].into(),
        "the first replica took the Lease"
    );
    assert!(c
        .server
        .metrics()
        .await
        .contains("jitguard_controller_leader 1"));
    assert!(second
        .metrics()
        .await
        .contains("jitguard_controller_leader 0"));
}

/// A namespace protected by its label only: the webhook asks for a ticket and the
/// controller does not auto-approve, exactly as for a namespace listed in the data.
#[tokio::test]
async fn a_namespace_labelled_protected_is_protected_in_requests_too() {
    let api = FakeApiServer::start().await;
    api.put(
        "api/v1",
        "namespaces",
        "",
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ledger", "labels": {"jitguard.dev/protected": "true"}},
        }),
    );
    let c = Cluster::start_on(api, &[]).await;
    let exec = |ns: &'static str, name: &'static str, ticket: bool| {
        let mut args = vec![
            "--namespace",
            ns,
            "--duration",
            "10m",
            "--reason",
            "debug",
            "--request-name",
            name,
        ];
        if ticket {
            args.extend(["--ticket", "INC-7"]);
        }
        args
    };
    let refused = c
        .request_exec("alice", &exec("ledger", "no-ticket", false))
        .await;
    assert_eq!(refused.0, 1, "{refused:?}");
    assert!(refused.2.contains("must name a ticket"), "{refused:?}");
    ok(&c
        .request_exec("alice", &exec("ledger", "ledger-debug", true))
        .await);
    // The same request in an unlabelled namespace is auto-approved; the labelled one waits
    // for people.
    ok(&c
        .request_exec("alice", &exec("shop", "shop-debug", false))
        .await);
    c.until("shop auto-approved", |c| {
        c.phase("shop-debug") == "Approved"
    })
    .await;
    let waiting = c.request("ledger-debug");
    assert!(
        matches!(c.phase("ledger-debug").as_str(), "" | "Pending"),
        "{waiting}"
    );
    assert!(
        waiting["status"]["approvals"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{waiting}"
    );
}

#[tokio::test]
async fn with_the_controller_off_nothing_is_approved_by_policy() {
    let c = Cluster::start_with(&["--controller", "false"]).await;
    ok(&c
        .request_exec(
            "alice",
            &[
                "--namespace",
                "shop",
                "--duration",
                "30m",
                "--reason",
                "debug",
                "--request-name",
                "idle",
            ],
        )
        .await);
    // The same request is auto-approved within a second when the controller runs.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(c.phase("idle"), "");
    assert!(c
        .api
        .all("apis/coordination.k8s.io/v1", "leases")
        .is_empty());
}

#[tokio::test]
async fn break_glass_is_live_at_once_for_the_on_call_group_only() {
    let c = Cluster::start().await;
    let outsider = c
        .request_exec(
            "alice",
            &[
                "--break-glass",
                "--namespace",
                "prod",
                "--duration",
                "30m",
                "--reason",
                "outage",
                "--ticket",
                "INC-9",
            ],
        )
        .await;
    assert_eq!(outsider.0, 1);
    assert!(
        outsider.2.contains("break-glass is reserved"),
        "{}",
        outsider.2
    );

    ok(&c
        .request_exec(
            "dave",
            &[
                "--break-glass",
                "--namespace",
                "prod",
                "--duration",
                "30m",
                "--reason",
                "outage",
                "--ticket",
                "INC-9",
                "--request-name",
                "dave-glass",
            ],
        )
        .await);
    c.until("live", |c| c.phase("dave-glass") == "Approved")
        .await;
    let stored = c.request("dave-glass");
    assert_eq!(stored["status"]["reviewRequired"], true);
    assert!(
        stored["status"]["approvals"].is_null(),
        "nobody approved it"
    );
    c.until("warning event", |c| {
        c.events("BreakGlass")
            .iter()
            .any(|e| e["type"] == "Warning")
    })
    .await;
    // Using it carries a warning.
    let exec = with_user(
        review("pod-exec-prod"),
        "dave@example.com",
        &["sre-oncall", "system:authenticated"],
    );
    let used = c.decide_until(&exec, true).await;
    assert_eq!(used["allowed"], true, "{used}");
    assert!(
        used["warnings"].to_string().contains("break-glass"),
        "{used}"
    );
}

#[tokio::test]
async fn a_pending_request_lapses_and_a_refused_role_is_never_bound() {
    let c = Cluster::start().await;
    // Created two days ago and never decided (put directly: the API server's clock).
    let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48)).to_string();
    c.api.apply(json!({
        "apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": {"name": "stale", "creationTimestamp": old, "generation": 1},
        "spec": {"requester": "alice@example.com", "requesterGroups": ["developers"], "reason": "x", "duration": "30m",
                 "scope": [{"operations": ["UPDATE"], "apiGroups": ["apps"], "resources": ["deployments"], "namespaces": ["prod"]}]},
        "status": {"phase": "Pending"},
    }));
    c.until("lapsed", |c| c.phase("stale") == "Expired").await;
    assert_eq!(
        c.request("stale")["status"]["conditions"][0]["type"],
        "Lapsed"
    );

    // jitguard-debug is bindable by the data but holds verb *: refused when binding.
    ok(&c
        .jit(
            "alice",
            &[
                "request",
                "--namespace",
                "shop",
                "--resource",
                "pods",
                "--operation",
                "UPDATE",
                "--duration",
                "30m",
                "--reason",
                "fix",
                "--role",
                "ClusterRole/jitguard-debug",
                "--request-name",
                "wild",
            ],
        )
        .await);
    ok(&c.jit("bob", &["approve", "wild"]).await);
    c.until("ProvisionFailed", |c| {
        c.has_condition("wild", |x| x["reason"] == "ProvisionFailed")
    })
    .await;
    let status = c.request("wild")["status"].clone();
    assert!(status.to_string().contains("verb *"), "{status}");
    assert!(c.api.all(RBAC, "rolebindings").is_empty());
    c.until("a warning Event", |c| {
        c.events("ProvisionFailed")
            .iter()
            .any(|e| e["type"] == "Warning")
    })
    .await;
}

#[tokio::test]
async fn extend_asks_for_a_new_window_that_starts_when_the_old_one_ends() {
    let c = Cluster::start().await;
    ok(&c
        .request_exec(
            "alice",
            &[
                "--namespace",
                "shop",
                "--duration",
                "20m",
                "--reason",
                "debug",
                "--request-name",
                "first",
            ],
        )
        .await);
    c.until("approved", |c| c.phase("first") == "Approved")
        .await;
    let out = c
        .jit(
            "alice",
            &[
                "extend",
                "first",
                "--duration",
                "30m",
                "--reason",
                "still debugging",
                "-o",
                "json",
            ],
        )
        .await;
    ok(&out);
    let created: Value = serde_json::from_str(&out.1).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("first-ext-"));
    assert_eq!(created["spec"]["extends"], "first");
    c.until("extension approved", |c| c.phase(&name) == "Approved")
        .await;
    let first = c.request("first");
    let ext = c.request(&name);
    assert_eq!(
        ext["status"]["approvedAt"], first["status"]["expiresAt"],
        "the extension starts when the first grant ends"
    );
}

#[tokio::test]
async fn the_plugin_says_what_is_wrong_and_what_to_do() {
    let c = Cluster::start().await;
    let unknown = c.jit("alice", &["show", "nope"]).await;
    assert_eq!(unknown.0, 1);
    assert!(
        unknown.2.contains("no access request named \"nope\""),
        "{}",
        unknown.2
    );
    let unknown = c.jit("bob", &["approve", "nope"]).await;
    assert!(
        unknown.2.contains("no access request named \"nope\""),
        "{}",
        unknown.2
    );

    c.api.forbid("mallory@example.com");
    let forbidden = c.jit("mallory", &["list", "--all"]).await;
    assert_eq!(forbidden.0, 1);
    assert!(
        forbidden.2.contains("you may not list access requests"),
        "{}",
        forbidden.2
    );

    let bad = c
        .jit(
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
        )
        .await;
    assert_eq!(bad.0, 1);
    assert!(bad.2.contains("--duration"), "{}", bad.2);

    c.api.without_crd();
    let missing = c.jit("alice", &["list"]).await;
    assert_eq!(missing.0, 1);
    assert!(
        missing.2.contains("not installed in this cluster"),
        "{}",
        missing.2
    );

    // Installed as kubectl-jit, kubectl runs it by that name.
    let link = c.configs.path().join("kubectl-jit");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_jitguard"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("request") && help.contains("approve") && help.contains("revoke"),
        "{help}"
    );
}

/// Two replicas: one Lease, one leader at a time; the other takes over when the leader
/// stops renewing.
#[tokio::test]
async fn one_replica_leads_and_another_takes_over_when_it_stops() {
    use jitguard::controller::lease::LeaderElector;
    use k8s_openapi::api::coordination::v1::Lease;
    let api = FakeApiServer::start().await;
    let leases = || kube::Api::<Lease>::namespaced(api.client(), "jitguard");
    let a = LeaderElector::new(leases(), "jitguard-controller", "a", Duration::from_secs(1));
    let b = LeaderElector::new(leases(), "jitguard-controller", "b", Duration::from_secs(1));
    assert!(a.try_lead().await.unwrap());
    assert!(!b.try_lead().await.unwrap());
    assert!(a.try_lead().await.unwrap(), "the holder renews");
    assert!(!b.try_lead().await.unwrap());
    // a stops renewing; after the lease duration b takes it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(b.try_lead().await.unwrap());
    assert!(
        !a.try_lead().await.unwrap(),
        "a must not think it still leads"
    );
    let lease = api
        .get(
            "apis/coordination.k8s.io/v1",
            "leases",
            "jitguard",
            "jitguard-controller",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}
