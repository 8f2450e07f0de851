//! Notifications through the real control plane, on a cluster of its own (a replica is
//! stopped): the registered replica serves the webhook without a controller, two more run
//! the controller with four sinks on local receivers (Slack-compatible, CloudEvents with a
//! token, one answering 500, one that never answers), routing comes from the access
//! policy's data, and the controller's leader stops in the middle.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::cluster::{
    copy_dir, eventually, lease_holder, root, scope, unique, Cluster, Options, Replica,
};
use crate::receiver::{Behaviour, Received, Receiver};

const LIMIT: Duration = Duration::from_secs(90);
const SLACK_SECRET: &str = "XoXb-e2e-s3cret-path";
const TOKEN: &str = "e2e-t0ken-never-logged";

/// The event a Slack message announces, from its first line.
fn slack_event(message: &Received) -> &'static str {
    let text = message.body["text"].as_str().unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    [
        ("BREAK-GLASS", "break-glass"),
        ("asks for", "requested"),
        ("was approved", "approved"),
        ("was denied", "denied"),
        ("grant ends at", "expiring"),
        ("has ended", "expired"),
        ("lapsed", "expired"),
        ("was revoked", "revoked"),
    ]
    .into_iter()
    .find(|(marker, _)| first.contains(marker))
    .map_or("unknown", |(_, event)| event)
}

/// The events each request was notified of on a sink, in order, as `request: [events]`.
fn events(receiver: &Receiver, requests: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for r in receiver.received() {
        let (request, event) = if r.body["specversion"] == "1.0" {
            (
                r.body["subject"].as_str().unwrap_or_default().to_string(),
                r.body["data"]["event"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        } else {
            let all = r.body.to_string();
            let request = requests
                .iter()
                .find(|name| all.contains(&format!("*Request*\\n{name}\"")))
                .map_or("unknown", |n| n)
                .to_string();
            (request, slack_event(&r).to_string())
        };
        out.entry(request).or_insert_with(Vec::new).push(event);
    }
    out
}

fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(r, es)| (r.to_string(), es.iter().map(|e| e.to_string()).collect()))
        .collect()
}

fn metrics(url: &str) -> String {
    let out = Command::new("curl").args(["-fsS", url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_event_is_notified_once_to_its_sinks_across_a_failover_and_failing_sinks_hold_nothing_up() {
    let slack = Receiver::start(Behaviour::Accept);
    let events_sink = Receiver::start(Behaviour::Accept);
    let broken = Receiver::start(Behaviour::Fail);
    let stuck = Receiver::start(Behaviour::Hang);

    // The shipped policies, with routes naming this test's sinks: prod and break-glass go
    // to all four, the rest only to the Slack one and the failing ones.
    let policies = root()
        .join("target/e2e/tests")
        .join(format!("policies-{}-notify", std::process::id()));
    let _ = std::fs::remove_dir_all(&policies);
    copy_dir(&root().join("policies"), &policies);
    let data_file = policies.join("jitguard/access/data.yaml");
    let data = std::fs::read_to_string(&data_file).unwrap();
    let shipped = data
        .split("  notifications:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n  # ").next())
        .unwrap();
    let routes = "    default: [approvers, broken, stuck]\n    break_glass: [approvers, security, broken, stuck]\n    routes:\n      - {namespaces: [prod], sinks: [approvers, security, broken, stuck]}\n";
    std::fs::write(
        &data_file,
        data.replace(shipped, routes.trim_end_matches('\n')),
    )
    .unwrap();

    let file = policies.join("notifications.yaml");
    std::fs::write(
        &file,
        format!(
            "pageUrl: http://127.0.0.1:8765\nexpiringBefore: 20s\ntimeout: 2s\nattempts: 3\nsinks:\n\
             - {{name: approvers, type: slack, url: '{}/services/T0/B0/{SLACK_SECRET}'}}\n\
             - {{name: security, type: cloudevents, url: '{}/ingest', token: {TOKEN}}}\n\
             - {{name: broken, type: cloudevents, url: '{}/broken/{SLACK_SECRET}', token: {TOKEN}}}\n\
             - {{name: stuck, type: slack, url: '{}/stuck/{SLACK_SECRET}'}}\n",
            slack.url, events_sink.url, broken.url, stuck.url
        ),
    )
    .unwrap();
    let file_arg = file.to_string_lossy().into_owned();
    let c = Cluster::up(Options {
        serve_args: vec!["--controller".into(), "false".into()],
        policies: Some(policies.clone()),
    });
    let args = ["--notifications", file_arg.as_str()];
    let mut controllers = vec![
        Replica::start(&c, &policies, "jitguard-1", &args),
        Replica::start(&c, &policies, "jitguard-2", &args),
    ];
    eventually("a controller replica holds the Lease", LIMIT, || {
        lease_holder(&c).starts_with("jitguard-")
    });

    // A request in prod: its approvers hear of it on Slack and as a CloudEvent.
    let prod = unique("notify-prod");
    c.ask(
        "alice",
        &prod,
        &scope("prod", "configmaps", "CREATE", "40s"),
    )
    .success();
    eventually("the prod request is announced on both sinks", LIMIT, || {
        events(&slack, &[&prod]).contains_key(&prod) && !events_sink.about(&prod).is_empty()
    });
    let announced = events_sink.about(&prod);
    let event = &announced[0];
    assert_eq!(event.path, "/ingest");
    assert_eq!(
        event.headers["content-type"],
        "application/cloudevents+json; charset=utf-8"
    );
    assert_eq!(event.headers["authorization"], format!("Bearer {TOKEN}"));
    let uid = c.access_request(&prod)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let body = &event.body;
    assert_eq!(body["id"], format!("{uid}/requested"), "{body}");
    assert_eq!(body["type"], "dev.jitguard.accessrequest.requested");
    assert_eq!(body["source"], "jitguard.dev/controller");
    assert_eq!(body["data"]["requester"], "alice");
    assert_eq!(body["data"]["reason"], "e2e: fix INC-7");
    assert_eq!(body["data"]["ticket"], "INC-7");
    assert_eq!(body["data"]["scope"][0], "CREATE configmaps (core) in prod");
    assert_eq!(
        body["data"]["needs"],
        "1 of team lead (team-leads, sre-leads) and 1 of security (security)"
    );
    assert_eq!(
        body["data"]["commands"][0],
        format!("kubectl jit approve {prod}")
    );
    assert_eq!(
        body["data"]["page"],
        format!("http://127.0.0.1:8765/requests/{prod}")
    );
    let message = slack
        .received()
        .into_iter()
        .find(|m| slack_event(m) == "requested")
        .unwrap();
    assert_eq!(message.headers["content-type"], "application/json");
    assert!(message.path.ends_with(SLACK_SECRET));
    let text = message.body["text"].as_str().unwrap();
    assert!(
        text.contains("alice asks for 40s of access: e2e: fix INC-7")
            && text.contains(&format!("`kubectl jit approve {prod}`")),
        "{text}"
    );
    assert!(message.body["blocks"]
        .as_array()
        .is_some_and(|b| b.len() >= 4));

    // A request outside prod goes by the default route: not to the security sink.
    let dev = unique("notify-dev");
    c.ask("alice", &dev, &scope("dev", "configmaps", "CREATE", "10m"))
        .success();
    c.jit("bob", &["deny", &dev, "--comment", "use the runbook"])
        .success();

    // Approved while one sink answers 500 and another never answers: the approval, the
    // grant's notice and the other sinks do not wait for them.
    c.jit("bob", &["approve", &prod]).success();
    c.jit("sam", &["approve", &prod]).success();
    eventually("the approval is announced", LIMIT, || {
        events(&slack, &[&prod])
            .get(&prod)
            .is_some_and(|e| e.contains(&"approved".to_string()))
    });
    assert_eq!(c.phase(&prod), "Approved");
    assert!(
        !stuck.received().is_empty(),
        "the stuck sink was tried, and has still not answered"
    );
    eventually(
        "the failing sink is retried with the same event id",
        LIMIT,
        || {
            let ids: Vec<String> = broken
                .received()
                .iter()
                .map(|r| r.body["id"].as_str().unwrap_or_default().to_string())
                .collect();
            ids.iter()
                .any(|id| ids.iter().filter(|i| *i == id).count() >= 2)
        },
    );

    // The leader stops; the other replica takes over and sends what is still to come
    // (the prod grant's expiring and expired), and nothing twice.
    let first = lease_holder(&c);
    let (leader, other) = if first == "jitguard-1" {
        (0, "jitguard-2")
    } else {
        (1, "jitguard-1")
    };
    Command::new("kill")
        .args(["-TERM", &controllers[leader].pid().to_string()])
        .status()
        .unwrap();
    eventually("the other replica leads", LIMIT, || {
        lease_holder(&c) == other
    });
    let second = controllers.remove(1 - leader);

    // Break-glass, loud, to its own sinks too; then revoked.
    let glass = unique("notify-glass");
    let break_glass = [
        &scope("prod", "configmaps", "CREATE", "10m")[..],
        &["--break-glass"],
    ]
    .concat();
    c.ask("carol", &glass, &break_glass).success();
    eventually("break-glass is announced", LIMIT, || {
        !events_sink.about(&glass).is_empty()
    });
    let loud = slack
        .received()
        .into_iter()
        .find(|m| slack_event(m) == "break-glass")
        .unwrap();
    assert!(
        loud.body["text"].as_str().unwrap().starts_with("<!here> "),
        "{}",
        loud.body
    );
    c.jit("carol", &["revoke", &glass]).success();

    eventually("the prod grant's end is announced", LIMIT, || {
        events(&slack, &[&prod])
            .get(&prod)
            .is_some_and(|e| e.contains(&"expired".to_string()))
            && events_sink
                .about(&prod)
                .iter()
                .any(|r| r.body["data"]["event"] == "expired")
            && events_sink
                .about(&glass)
                .iter()
                .any(|r| r.body["data"]["event"] == "revoked")
    });
    // Anything late would have arrived by now.
    std::thread::sleep(Duration::from_secs(3));
    let requests = [prod.as_str(), dev.as_str(), glass.as_str()];
    assert_eq!(
        events(&slack, &requests),
        expect(&[
            (&prod, &["requested", "approved", "expiring", "expired"]),
            (&dev, &["requested", "denied"]),
            (&glass, &["break-glass", "revoked"]),
        ]),
        "each event once, in order, on the Slack sink"
    );
    assert_eq!(
        events(&events_sink, &requests),
        expect(&[
            (&prod, &["requested", "approved", "expiring", "expired"]),
            (&glass, &["break-glass", "revoked"]),
        ]),
        "each event once on the CloudEvents sink, and nothing of the dev request"
    );
    let denied = events_sink.about(&dev);
    assert!(denied.is_empty(), "{denied:?}");
    let by_slack = slack
        .received()
        .into_iter()
        .find(|m| slack_event(m) == "denied")
        .unwrap();
    assert!(
        by_slack.body.to_string().contains("use the runbook"),
        "{}",
        by_slack.body
    );

    // Counted per sink, event and result, on the replica that sent them.
    let counted = metrics(&second.metrics);
    assert!(
        counted.contains(
            "jitguard_notifications_total{event=\"expired\",result=\"ok\",sink=\"approvers\"} 1"
        ),
        "{counted}"
    );
    assert!(
        counted.contains(
            "jitguard_notifications_total{event=\"break-glass\",result=\"ok\",sink=\"security\"} 1"
        ),
        "{counted}"
    );

    // The failing sinks were logged, and no log holds a URL's secret or a token.
    let logs: String = std::fs::read_dir(c.dir.join("run/logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(logs.contains("notification not delivered"), "{logs}");
    assert!(!logs.contains(SLACK_SECRET), "a sink's URL was logged");
    assert!(!logs.contains(TOKEN), "a sink's token was logged");
    drop(second);
    drop(controllers);
}
