//! When each AccessRequest is reconciled next: at once after a change, then at its next
//! deadline. The controller sleeps until the earliest.

use std::collections::HashMap;
use std::time::Instant;

use kube::runtime::reflector::Store;
use kube::ResourceExt;

use crate::grant::{AccessRequest, Phase};

/// When each request is reconciled next. At most one time per request (the earliest
/// asked for); the heap holds stale entries until they surface, which `due` tells apart.
#[derive(Default)]
pub struct Schedule {
    due: HashMap<String, Instant>,
    queue: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, String)>>,
}

impl Schedule {
    pub fn at(&mut self, name: &str, when: Instant) {
        if self.due.get(name).is_some_and(|t| *t <= when) {
            return;
        }
        self.due.insert(name.to_string(), when);
        self.queue.push(std::cmp::Reverse((when, name.to_string())));
    }

    pub fn now(&mut self, name: &str) {
        self.at(name, Instant::now());
    }

    pub fn forget(&mut self, name: &str) {
        self.due.remove(name);
    }

    pub fn all_now(&mut self, store: &Store<AccessRequest>) {
        for ar in store.state() {
            self.now(&ar.name_any());
        }
    }

    pub fn pending_now(&mut self, store: &Store<AccessRequest>) {
        for ar in store.state() {
            if ar.status.as_ref().is_none_or(|s| s.phase == Phase::Pending) {
                self.now(&ar.name_any());
            }
        }
    }

    /// The earliest time something is due.
    pub fn next(&mut self) -> Option<Instant> {
        while let Some(std::cmp::Reverse((when, name))) = self.queue.peek() {
            if self.due.get(name) == Some(when) {
                return Some(*when);
            }
            self.queue.pop();
        }
        None
    }

    /// Every request due by `now`, taken off the schedule.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(when) = self.next() {
            if when > now {
                break;
            }
            if let Some(std::cmp::Reverse((_, name))) = self.queue.pop() {
                self.due.remove(&name);
                names.push(name);
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_schedule_keeps_the_earliest_time_per_request_and_hands_out_what_is_due() {
        let start = Instant::now();
        let later = |secs| start + Duration::from_secs(secs);
        let mut schedule = Schedule::default();
        schedule.at("a", later(30));
        schedule.at("b", later(10));
        // A change makes "a" due sooner; a later time for "b" does not delay it.
        schedule.at("a", later(5));
        schedule.at("b", later(60));
        assert_eq!(schedule.next(), Some(later(5)));
        assert!(schedule.take_due(later(4)).is_empty());
        assert_eq!(schedule.take_due(later(10)), vec!["a", "b"]);
        assert_eq!(
            schedule.next(),
            None,
            "each request once, its stale times dropped"
        );
        schedule.at("c", later(1));
        schedule.forget("c");
        assert_eq!(schedule.next(), None);
        assert!(schedule.take_due(later(100)).is_empty());
    }
}
