//! Noticing changed files: policies, the grants file, the TLS pair.
//!
//! jitguard polls content rather than subscribing to inotify. Kubernetes updates
//! ConfigMap and Secret volumes by swapping a `..data` symlink, cert-manager and editors
//! write by rename, and NFS sends no events at all: hashing a few small files once a
//! second sees all of them the same way, with nothing to miss.

use std::hash::Hasher;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

/// Hash of some bytes (not cryptographic: it only tells "changed").
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// A background thread that calls `check` every `interval` until dropped.
pub struct Poller {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn spawn(
        name: &str,
        interval: Duration,
        mut check: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name(format!("jitguard-{name}"))
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => check(),
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Poller {
    /// The thread has ended while the poller is held: `check` panicked.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
