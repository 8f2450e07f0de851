//! Every long-running part of `serve` is watched: the cluster watches, the controller, the
//! grant-use publisher (async tasks) and the policy, grants-file and certificate reloads
//! (polling threads). None of them is meant to end before shutdown; if one does (it
//! returned, or panicked), the replica would go on answering with a cache nobody
//! updates. [`Supervisor::failure`] says which one ended and why, so that `serve` fails
//! readiness and exits non-zero instead.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

use crate::reload::Poller;

/// How often the polling threads are looked at (they cannot wake an async task).
const THREAD_CHECK: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    pollers: Vec<(&'static str, Poller)>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` until shutdown; its end before then is a failure.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Keeps `poller` running until shutdown; its thread ending before then is a failure.
    pub fn keep(&mut self, name: &'static str, poller: Poller) {
        self.pollers.push((name, poller));
    }

    /// Waits until a supervised part ends, and says which and why. Pending forever while
    /// everything runs (and when nothing is supervised).
    pub async fn failure(&mut self) -> String {
        let mut threads = tokio::time::interval(THREAD_CHECK);
        loop {
            tokio::select! {
                Some(ended) = self.tasks.join_next_with_id() => {
                    let (id, how) = match ended {
                        Ok((id, ())) => (id, "returned".to_string()),
                        Err(e) if e.is_panic() => (e.id(), format!("panicked: {}", panic_message(e.into_panic()))),
                        Err(e) => (e.id(), "was cancelled".to_string()),
                    };
                    let name = self.names.remove(&id).unwrap_or("a background task");
                    return format!("{name} stopped ({how})");
                }
                _ = threads.tick() => {
                    if let Some((name, _)) = self.pollers.iter().find(|(_, p)| p.is_finished()) {
                        return format!("{name} stopped (its thread ended, most likely in a panic: see the log above)");
                    }
                }
            }
        }
    }

    /// Stops every task and thread, and waits for them.
    pub async fn shutdown(&mut self) {
        self.tasks.shutdown().await;
        self.pollers.clear();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_is_named_with_how_it_ended() {
        let mut s = Supervisor::new();
        s.spawn("the forever task", std::future::pending());
        s.spawn("the AccessRequest watch", async {});
        let reason = tokio::time::timeout(Duration::from_secs(10), s.failure())
            .await
            .unwrap();
        assert_eq!(reason, "the AccessRequest watch stopped (returned)");
        s.spawn("the controller", async { panic!("lost the plot") });
        let reason = tokio::time::timeout(Duration::from_secs(10), s.failure())
            .await
            .unwrap();
        assert_eq!(reason, "the controller stopped (panicked: lost the plot)");
        s.shutdown().await;
    }

    #[tokio::test]
    async fn a_polling_thread_that_dies_is_noticed() {
        let mut s = Supervisor::new();
        let mut calls = 0;
        let poller = Poller::spawn("test-reload", Duration::from_millis(10), move || {
            calls += 1;
            assert!(calls < 3, "the reload broke");
        })
        .unwrap();
        s.keep("the policy reload", poller);
        let reason = tokio::time::timeout(Duration::from_secs(10), s.failure())
            .await
            .unwrap();
        assert!(reason.starts_with("the policy reload stopped"), "{reason}");
    }

    #[tokio::test]
    async fn while_everything_runs_there_is_no_failure() {
        let mut s = Supervisor::new();
        s.spawn("the forever task", std::future::pending());
        let poller = Poller::spawn("test-reload", Duration::from_millis(10), || {}).unwrap();
        s.keep("the policy reload", poller);
        assert!(
            tokio::time::timeout(Duration::from_millis(1200), s.failure())
                .await
                .is_err()
        );
        s.shutdown().await;
    }
}
