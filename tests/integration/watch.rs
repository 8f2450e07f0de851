//! The cluster grant source: kube's real watcher and Client against an in-process double
//! of the API server, with the faults a real one produces.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use jitguard::audit::Audit;
use jitguard::grant::{GrantFeed, GrantStore};
use jitguard::metrics::Metrics;
use serde_json::Value;

use crate::common::apiserver::FakeApiServer;
use crate::common::{grant, review, scope, Options, Server};

fn exec_grant(name: &str, user: &str) -> Value {
    let approved = Timestamp::now() - SignedDuration::from_mins(1);
    grant(
        name,
        user,
        scope(&["CONNECT"], &[""], &["pods/exec"], &["prod"], &[]),
        approved,
        "1h",
    )
}

fn names(store: &GrantStore) -> Vec<String> {
    let mut names: Vec<String> = store
        .index()
        .live_for("alice@example.com", &[], Timestamp::now())
        .iter()
        .map(|g| g.name.to_string())
        .collect();
    names.sort();
    names
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not reached within 5s: {what}");
}

fn start_source(
    api: &FakeApiServer,
    stale_after: Duration,
) -> (GrantStore, tokio::task::JoinHandle<()>) {
    let feed = GrantFeed::new(stale_after);
    let store = feed.store();
    let task = tokio::spawn(jitguard::sources::run_cluster(
        api.client(),
        feed,
        Audit::disabled(),
        Metrics::new().unwrap(),
    ));
    (store, task)
}

#[tokio::test]
async fn the_cache_syncs_from_the_first_list_then_follows_the_watch() {
    let api = FakeApiServer::start().await;
    api.apply(exec_grant("first", "alice@example.com"));
    let (store, task) = start_source(&api, Duration::from_secs(60));
    eventually("first sync", || store.is_synced()).await;
    assert_eq!(names(&store), vec!["first"]);
    // Added, changed (revoked) and deleted through the watch.
    api.apply(exec_grant("second", "alice@example.com"));
    eventually("second added", || names(&store) == ["first", "second"]).await;
    let mut revoked = exec_grant("first", "alice@example.com");
    revoked["status"]["phase"] = Value::from("Revoked");
    api.apply(revoked);
    eventually("first revoked", || names(&store) == ["second"]).await;
    api.delete("second");
    eventually("second deleted", || names(&store).is_empty()).await;
    assert_eq!(api.lists(), 1, "no re-list was needed");
    task.abort();
}

#[tokio::test]
async fn a_bookmark_and_a_dropped_watch_lose_nothing() {
    let api = FakeApiServer::start().await;
    let (store, task) = start_source(&api, Duration::from_secs(60));
    eventually("first sync", || store.is_synced()).await;
    eventually("watching", || api.watches() == 1).await;
    api.apply(exec_grant("a", "alice@example.com"));
    api.bookmark();
    eventually("a added", || names(&store) == ["a"]).await;
    api.drop_watches();
    eventually("watch resumed", || api.watches() == 2).await;
    api.apply(exec_grant("b", "alice@example.com"));
    eventually("b added after the watch was resumed", || {
        names(&store) == ["a", "b"]
    })
    .await;
    assert_eq!(api.lists(), 1, "a dropped watch is resumed, not re-listed");
    assert!(store.stale_for().is_none());
    task.abort();
}

#[tokio::test]
async fn a_410_gone_forces_a_re_list_that_catches_up_on_missed_changes() {
    let api = FakeApiServer::start().await;
    let (store, task) = start_source(&api, Duration::from_secs(60));
    eventually("first sync", || store.is_synced()).await;
    eventually("watching", || api.watches() == 1).await;
    // A change the watch never delivers, then the resourceVersion expires.
    api.apply_silently(exec_grant("missed", "alice@example.com"));
    api.gone_on_next_watch();
    api.drop_watches();
    eventually("re-listed", || api.lists() >= 2).await;
    eventually("missed change seen", || names(&store) == ["missed"]).await;
    task.abort();
}

#[tokio::test]
async fn a_broken_source_turns_stale_after_the_bound_and_recovers() {
    let api = FakeApiServer::start().await;
    api.apply(exec_grant("g", "alice@example.com"));
    let (store, task) = start_source(&api, Duration::from_millis(300));
    eventually("first sync", || store.is_synced()).await;
    api.set_failing(true);
    api.drop_watches();
    // Serving the last known grants until the bound, stale after it.
    eventually("stale", || store.stale_for().is_some()).await;
    assert_eq!(
        names(&store),
        vec!["g"],
        "the last known grants stay in the cache"
    );
    api.set_failing(false);
    eventually("recovered", || store.stale_for().is_none()).await;
    task.abort();
}

/// End to end: the real binary, watching the double through a kubeconfig.
#[tokio::test]
async fn the_server_is_ready_only_after_the_first_sync_and_fails_closed_when_stale() {
    let api = FakeApiServer::start().await;
    api.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with(Options {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        args: vec!["--grants-stale-after".into(), "1s".into()],
        ..Options::default()
    });
    let readyz = || async { reqwest::get(server.ops_url("/readyz")).await.unwrap() };
    let r = readyz().await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("first sync"));

    api.apply(exec_grant("alice-exec", "alice@example.com"));
    api.set_failing(false);
    let mut ready = false;
    for _ in 0..300 {
        if readyz().await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "{}", server.logs().join("\n"));
    assert_eq!(
        server.decide("/validate", &review("pod-exec-prod")).await["allowed"],
        true
    );

    // The API server goes away: after the bound, require_grant fails closed.
    api.set_failing(true);
    api.drop_watches();
    let mut stale = false;
    for _ in 0..300 {
        let r = readyz().await;
        if r.status() == 503 && r.text().await.unwrap().contains("stale") {
            stale = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stale);
    let r = server.decide("/validate", &review("pod-exec-prod")).await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("the grant cache is stale"),
        "{r}"
    );
    // Requests that need no grant are still decided.
    assert_eq!(
        server.decide("/validate", &review("pod-create-dev")).await["allowed"],
        true
    );
    assert!(server
        .metrics()
        .await
        .contains("jitguard_grant_cache_stale 1"));
}
