//! The access workflow as people live it through the real API server: ask, approve,
//! use, revoke, expire, break glass; the controller's RoleBindings, reaper and Events.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, scope, unique, Cluster};

const LIMIT: Duration = Duration::from_secs(60);

/// Asks for `scope` as `user`, under `name`, and checks it was created Pending.
fn request(c: &Cluster, user: &str, name: &str, scope: &[&str]) -> String {
    let run = c.ask(user, name, scope).success();
    assert!(
        run.stdout
            .contains(&format!("accessrequest {name} created (Pending)")),
        "{}",
        run.text()
    );
    name.to_string()
}

fn used_events(c: &Cluster, request: &str) -> Vec<Value> {
    c.events_of(request)
        .into_iter()
        .filter(|e| e["reason"] == "Used")
        .collect()
}

#[test]
fn a_request_approved_by_a_team_lead_and_security_is_live_used_revoked_and_reaped() {
    let c = Cluster::shared();
    // As the denial told her, with a role for the reads webhooks never see.
    let name = request(
        c,
        "alice",
        &unique("wf"),
        &[
            "--namespace",
            "prod",
            "--resource",
            "configmaps",
            "--operation",
            "CREATE",
            "--duration",
            "30m",
            "--role",
            "ClusterRole/view",
        ],
    );
    assert_eq!(c.phase(&name), "Pending");
    let stored = c.access_request(&name);
    assert_eq!(
        stored["spec"]["requester"], "alice",
        "the requester is stamped from the API server's userInfo: {stored}"
    );
    let pending = c.jit("bob", &["list", "--pending"]).success();
    assert!(pending.stdout.contains(&name), "{}", pending.text());

    // Nobody approves their own request; carol is no approver for prod.
    let own = c.jit("alice", &["approve", &name]);
    assert!(
        !own.ok
            && own
                .text()
                .contains("you cannot approve or deny your own request"),
        "{}",
        own.text()
    );
    let outsider = c.jit("carol", &["approve", &name]);
    assert!(
        !outsider.ok && outsider.text().contains("not an approver"),
        "{}",
        outsider.text()
    );

    // Protected namespaces need a team lead AND security.
    let first = c.jit("bob", &["approve", &name, "-m", "ok"]).success();
    assert!(
        first.stdout.contains("it is now Pending"),
        "{}",
        first.text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.phase(&name),
        "Pending",
        "one approval of two must not make it live"
    );
    c.jit("sam", &["approve", &name, "-m", "ok"]).success();
    eventually("the request goes live", LIMIT, || {
        c.phase(&name) == "Approved"
    });
    let binding = format!("jit-{name}");
    eventually("the grant's role is bound", LIMIT, || {
        c.kubectl("admin", &["-n", "prod", "get", "rolebinding", &binding])
            .ok
    });

    // A dry run under the grant is allowed and leaves no grant-use Event behind.
    let cm = unique("under-grant");
    let create = |dry: bool| {
        let extra: &[&str] = if dry { &["--dry-run=server"] } else { &[] };
        c.create_configmap("alice", "prod", &cm, extra)
    };
    eventually("jitguard sees the live grant", LIMIT, || create(true).ok);
    // The real change: allowed, labelled with the grant, and one Used Event.
    create(false).success();
    let object = c
        .kubectl(
            "admin",
            &["-n", "prod", "get", "configmap", &cm, "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(
        object["metadata"]["labels"]["jitguard.dev/grant"], name,
        "the object carries the grant's provenance: {object}"
    );
    eventually("the grant use is an Event", LIMIT, || {
        !used_events(c, &name).is_empty()
    });
    let used = used_events(c, &name);
    let count = |e: &Value| e["series"]["count"].as_i64().unwrap_or(1);
    assert_eq!(
        used.iter().map(count).sum::<i64>(),
        1,
        "only the real create is a use, the dry runs are not: {used:?}"
    );
    assert!(
        used[0]["note"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("alice: CREATE configmaps prod/{cm}")),
        "{used:?}"
    );

    // carol may not revoke it; alice may: denied again at once, the binding reaped.
    let refused = c.jit("carol", &["revoke", &name]);
    assert!(
        !refused.ok && refused.text().contains("only the requester"),
        "{}",
        refused.text()
    );
    c.jit("alice", &["revoke", &name]).success();
    assert_eq!(c.phase(&name), "Revoked");
    let again = unique("after-revoke");
    eventually(
        "the revocation is enforced",
        Duration::from_secs(10),
        || {
            let run = c.create_configmap("alice", "prod", &again, &[]);
            !run.ok && run.stderr.contains("jitguard")
        },
    );
    eventually("the RoleBinding is reaped", LIMIT, || {
        !c.kubectl("admin", &["-n", "prod", "get", "rolebinding", &binding])
            .ok
    });

    // Every step is an Event on the request, from the controller, and an audit record.
    let steps = [
        "Requested",
        "Approval",
        "Approved",
        "Provisioned",
        "Revoked",
        "Reaped",
    ];
    eventually("an Event for every step", LIMIT, || {
        let events = c.events_of(&name);
        steps
            .iter()
            .all(|step| events.iter().any(|e| e["reason"] == *step))
    });
    let events = c.events_of(&name);
    let approval = events.iter().find(|e| e["reason"] == "Approval").unwrap();
    assert_eq!(approval["regarding"]["kind"], "AccessRequest");
    assert_eq!(approval["reportingController"], "jitguard-controller");
    let audited: Vec<String> = c
        .audit()
        .iter()
        .filter(|r| r["request"] == name.as_str())
        .filter_map(|r| r["event"].as_str().map(String::from))
        .collect();
    for step in [
        "access.requested",
        "access.approved",
        "access.provisioned",
        "access.revoked",
        "access.reaped",
    ] {
        assert!(
            audited.iter().any(|e| e == step),
            "no audit record {step}: {audited:?}"
        );
    }

    // show and list as the requester, and JSON for scripts.
    let shown = c.jit("alice", &["show", &name]).success();
    assert!(
        shown.stdout.contains("approved by bob") && shown.stdout.contains("Revoked"),
        "{}",
        shown.text()
    );
    let mine = c.jit("alice", &["list", "-o", "json"]).success().json();
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|r| r["metadata"]["name"] == name.as_str()),
        "{mine}"
    );
}

#[test]
fn a_short_grant_ends_at_its_expiry_with_its_role_binding_and_network_policy() {
    let c = Cluster::shared();
    let name = request(
        c,
        "alice",
        &unique("short"),
        &[
            "--namespace",
            "prod",
            "--api-group",
            "networking.k8s.io",
            "--resource",
            "networkpolicies",
            "--operation",
            "CREATE",
            "--duration",
            "40s",
            "--role",
            "ClusterRole/view",
        ],
    );
    c.jit("bob", &["approve", &name]).success();
    c.jit("sam", &["approve", &name]).success();
    eventually("the request goes live", LIMIT, || {
        c.phase(&name) == "Approved"
    });
    let binding = format!("jit-{name}");
    eventually("the grant's RoleBinding is made", LIMIT, || {
        c.kubectl("admin", &["-n", "prod", "get", "rolebinding", &binding])
            .ok
    });
    let rb = c
        .kubectl(
            "admin",
            &["-n", "prod", "get", "rolebinding", &binding, "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(rb["roleRef"]["name"], "view", "{rb}");
    assert_eq!(rb["subjects"][0]["name"], "alice", "{rb}");

    let netpol = unique("debugger");
    let policy = format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {netpol}, namespace: prod}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: debugger}}}}}}]}}]
"#
    );
    eventually("the grant covers the NetworkPolicy", LIMIT, || {
        c.apply("alice", &policy).ok
    });
    let stored = c
        .kubectl(
            "admin",
            &["-n", "prod", "get", "networkpolicy", &netpol, "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(stored["metadata"]["labels"]["jitguard.dev/grant"], name);

    // At expiresAt the grant stops working by itself; the controller then marks it
    // Expired and reaps what it left behind.
    let expires_at = c.access_request(&name)["status"]["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();
    let expires: jiff::Timestamp = expires_at.parse().unwrap();
    let second = policy.replace(&netpol, &format!("{netpol}-2"));
    let wait = expires.duration_since(jiff::Timestamp::now());
    if wait.is_positive() {
        std::thread::sleep(Duration::try_from(wait).unwrap());
    }
    let after = c.apply("alice", &second).denied_by_jitguard();
    assert!(after.text().contains("networkpolicies"), "{}", after.text());
    eventually("the grant is marked Expired", LIMIT, || {
        c.phase(&name) == "Expired"
    });
    eventually("the RoleBinding is removed", LIMIT, || {
        !c.kubectl("admin", &["-n", "prod", "get", "rolebinding", &binding])
            .ok
    });
    eventually("the NetworkPolicy is reaped", LIMIT, || {
        !c.kubectl("admin", &["-n", "prod", "get", "networkpolicy", &netpol])
            .ok
    });
}

#[test]
fn break_glass_is_live_at_once_for_the_on_call_and_refused_to_others() {
    let c = Cluster::shared();
    let name = unique("glass");
    c.ask(
        "carol",
        &name,
        &[
            "--break-glass",
            "--namespace",
            "prod",
            "--resource",
            "configmaps",
            "--operation",
            "CREATE",
            "--duration",
            "15m",
        ],
    )
    .success();
    eventually("break-glass is live without approvers", LIMIT, || {
        c.phase(&name) == "Approved"
    });
    let status = &c.access_request(&name)["status"];
    assert_eq!(status["reviewRequired"], true, "{status}");
    eventually("a Warning Event says so", LIMIT, || {
        c.events_of(&name)
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "BreakGlass")
    });
    let cm = unique("glass-cm");
    let mut used = None;
    eventually("carol's change is allowed", LIMIT, || {
        let run = c.create_configmap("carol", "prod", &cm, &[]);
        let allowed = run.ok;
        used = Some(run);
        allowed
    });
    // kubectl shows the admission warning that a break-glass grant was used.
    let used = used.unwrap();
    assert!(
        used.stderr.contains("Warning:") && used.stderr.contains("break-glass"),
        "{}",
        used.text()
    );

    // Break-glass is for carol alone, not for everyone on call with her.
    let group = c.ask(
        "carol",
        &unique("glass-group"),
        &[
            "--break-glass",
            "--group",
            "sre-oncall",
            "--namespace",
            "prod",
            "--resource",
            "configmaps",
            "--operation",
            "CREATE",
            "--duration",
            "15m",
        ],
    );
    assert!(
        !group.ok
            && group
                .text()
                .contains("break-glass is for the requester alone"),
        "{}",
        group.text()
    );

    // alice is not on call: her break-glass request is refused outright.
    let refused = c.ask(
        "alice",
        &unique("glass-alice"),
        &[
            "--break-glass",
            "--namespace",
            "prod",
            "--resource",
            "configmaps",
            "--operation",
            "CREATE",
            "--duration",
            "15m",
        ],
    );
    assert!(!refused.ok, "{}", refused.text());
    assert!(refused.text().contains("break-glass"), "{}", refused.text());
}

#[test]
fn policy_approves_short_debugging_outside_protected_namespaces_and_an_extension_follows_on() {
    let c = Cluster::shared();
    let name = request(
        c,
        "alice",
        &unique("debug"),
        &scope("dev", "pods/exec", "CONNECT", "20m"),
    );
    eventually("auto-approved by policy", LIMIT, || {
        c.phase(&name) == "Approved"
    });
    let first = c.access_request(&name);
    assert_eq!(
        first["status"]["approvals"][0]["approver"], "policy:short-debug-outside-protected",
        "{first}"
    );
    eventually("an AutoApproved Event", LIMIT, || {
        c.events_of(&name)
            .iter()
            .any(|e| e["reason"] == "AutoApproved")
    });

    let extension = c
        .jit(
            "alice",
            &[
                "extend",
                &name,
                "--duration",
                "30m",
                "--reason",
                "still debugging",
                "-o",
                "json",
            ],
        )
        .success()
        .json();
    let ext = extension["metadata"]["name"].as_str().unwrap().to_string();
    assert!(ext.starts_with(&format!("{name}-ext-")), "{ext}");
    assert_eq!(extension["spec"]["extends"], name.as_str());
    eventually("the extension is approved", LIMIT, || {
        c.phase(&ext) == "Approved"
    });
    assert_eq!(
        c.access_request(&ext)["status"]["approvedAt"],
        first["status"]["expiresAt"],
        "the extension starts when the first grant ends"
    );

    // Revoking the first grant ends the chain: the extension is revoked with it.
    c.jit("alice", &["revoke", &name]).success();
    eventually("the extension is revoked too", LIMIT, || {
        c.phase(&ext) == "Revoked"
    });
}

#[test]
fn a_namespace_labelled_protected_is_protected_in_changes_and_requests() {
    let c = Cluster::shared();
    let ns = unique("ledger");
    c.setup(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{jitguard.dev/protected: "true"}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: edit-alice, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{kind: User, name: alice}}]
"#
    ))
    .success();
    let cm = unique("cm");
    eventually("jitguard knows the label and denies", LIMIT, || {
        let run = c.create_configmap("alice", &ns, &cm, &[]);
        !run.ok && run.stderr.contains(&format!("in protected namespace {ns}"))
    });

    let exec = |name: &str, namespace: &str, ticket: bool| {
        let mut args = vec![
            "request",
            "--request-name",
            name,
            "--namespace",
            namespace,
            "--resource",
            "pods/exec",
            "--operation",
            "CONNECT",
            "--duration",
            "10m",
            "--reason",
            "debug",
        ];
        if ticket {
            args.extend(["--ticket", "INC-7"]);
        }
        c.jit("alice", &args)
    };
    let refused = exec(&unique("no-ticket"), &ns, false);
    assert!(!refused.ok);
    assert!(
        refused.text().contains("must name a ticket"),
        "{}",
        refused.text()
    );
    let waiting = unique("ledger-debug");
    exec(&waiting, &ns, true).success();
    // The same request for an unlabelled namespace is approved by policy; the labelled one
    // waits for people.
    let free = unique("dev-debug");
    exec(&free, "dev", false).success();
    eventually("dev's is auto-approved", LIMIT, || {
        c.phase(&free) == "Approved"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.phase(&waiting), "Pending");
    assert!(c.access_request(&waiting)["status"]["approvals"]
        .as_array()
        .is_none_or(|a| a.is_empty()));

    // Unlabelled (by its operator), the namespace stops needing grants.
    c.setup(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{jitguard.dev/protected: "false"}}}}
"#
    ))
    .success();
    eventually("jitguard sees the label go", LIMIT, || {
        c.create_configmap("alice", &ns, &cm, &[]).ok
    });
}

#[test]
fn a_role_that_could_escalate_is_never_bound() {
    let c = Cluster::shared();
    // Bindable by the access policy's data, but it grants verb *: refused when binding.
    c.setup(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: jitguard-debug}
rules: [{apiGroups: [""], resources: [pods], verbs: ["*"]}]
"#,
    )
    .success();
    let name = request(
        c,
        "alice",
        &unique("wild"),
        &[
            "--namespace",
            "dev",
            "--resource",
            "pods",
            "--operation",
            "UPDATE",
            "--duration",
            "30m",
            "--role",
            "ClusterRole/jitguard-debug",
        ],
    );
    c.jit("bob", &["approve", &name]).success();
    eventually("binding is refused", LIMIT, || {
        c.access_request(&name)["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x["reason"] == "ProvisionFailed"))
    });
    let status = c.access_request(&name)["status"].clone();
    assert!(status.to_string().contains("verb *"), "{status}");
    assert!(
        !c.kubectl(
            "admin",
            &["-n", "dev", "get", "rolebinding", &format!("jit-{name}")]
        )
        .ok
    );
    eventually("a Warning Event says so", LIMIT, || {
        c.events_of(&name)
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "ProvisionFailed")
    });

    // cluster-admin is not even requestable as a role.
    let admin = c.jit(
        "alice",
        &[
            "request",
            "--namespace",
            "dev",
            "--resource",
            "pods",
            "--operation",
            "UPDATE",
            "--duration",
            "30m",
            "--reason",
            "x",
            "--role",
            "ClusterRole/cluster-admin",
        ],
    );
    assert!(!admin.ok, "{}", admin.text());
    assert!(admin.text().contains("cluster-admin"), "{}", admin.text());
}

#[test]
fn with_the_controller_off_nothing_is_approved_by_policy() {
    let c = Cluster::up(crate::cluster::Options {
        serve_args: vec!["--controller".into(), "false".into()],
        policies: None,
    });
    let name = request(
        &c,
        "alice",
        &unique("idle"),
        &scope("dev", "pods/exec", "CONNECT", "20m"),
    );
    // With the controller on, the same request is approved within a second or two.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.phase(&name), "Pending");
    assert!(
        !c.kubectl(
            "admin",
            &["-n", "jitguard", "get", "lease", "jitguard-controller"]
        )
        .ok,
        "no replica took the controller's Lease"
    );
}
