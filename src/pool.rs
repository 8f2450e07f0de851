//! The evaluation pool: Rego never runs on the async runtime's threads. A fixed set of
//! worker threads, each with its own engine, takes jobs from a bounded queue; when the
//! queue is full the server answers 503 at once, so the API server applies the webhook's
//! failurePolicy instead of waiting out its timeout.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use jiff::Timestamp;
use tokio::sync::oneshot;

use crate::admission::ReviewError;
use crate::decision::Webhook;
use crate::review::{Reviewer, Worker};

pub struct Job {
    pub body: Bytes,
    pub webhook: Webhook,
    /// The request's time, as policies see it.
    pub now: Timestamp,
    pub received: Instant,
    /// Past this instant nobody is waiting for the answer: skip the work.
    pub deadline: Instant,
    /// The API server's webhook timeout, for the deadline answer's reason.
    pub timeout: Duration,
    /// Who answers: set once, by the worker before it sends its decision, or by the
    /// server when the deadline comes first. The audit record and metrics follow the
    /// answer actually sent.
    pub claim: Arc<AtomicBool>,
    pub reply: oneshot::Sender<Outcome>,
}

impl Job {
    /// Takes the right to answer; false if the server answered already.
    fn claim(&self) -> bool {
        !self.claim.swap(true, Ordering::AcqRel)
    }
}

#[derive(Debug)]
pub enum Outcome {
    /// The encoded AdmissionReview answer.
    Decided(Vec<u8>),
    /// Not an AdmissionReview we can decide on: HTTP 400.
    Invalid(ReviewError),
    /// The job waited in the queue past its deadline.
    Expired,
    /// A bug: a panic inside evaluation. Answered with HTTP 500.
    Crashed,
}

#[derive(Debug, thiserror::Error)]
#[error("all {workers} evaluation workers are busy and {queue} requests are already queued")]
pub struct Overloaded {
    pub workers: usize,
    pub queue: usize,
}

pub struct Pool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    workers: usize,
    queue: usize,
    reviewer: Reviewer,
}

impl Pool {
    pub fn start(reviewer: Reviewer, workers: usize, queue: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (tx, rx) = bounded::<Job>(queue.max(1));
        let threads = (0..workers)
            .map(|i| {
                let rx = rx.clone();
                let reviewer = reviewer.clone();
                std::thread::Builder::new()
                    .name(format!("jitguard-eval-{i}"))
                    .spawn(move || work(&rx, reviewer))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            tx: Some(tx),
            threads,
            workers,
            queue,
            reviewer,
        })
    }

    /// Queues a job, or refuses at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Overloaded> {
        let overloaded = || Overloaded {
            workers: self.workers,
            queue: self.queue,
        };
        let tx = self.tx.as_ref().ok_or_else(overloaded)?;
        match tx.try_send(job) {
            Ok(()) => {
                self.reviewer.metrics.queue_depth.inc();
                Ok(())
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(overloaded()),
        }
    }
}

impl Drop for Pool {
    /// Workers finish what is queued, then stop.
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(rx: &Receiver<Job>, reviewer: Reviewer) {
    let metrics = reviewer.metrics.clone();
    let mut worker = Worker::new(reviewer.clone());
    while let Ok(job) = rx.recv() {
        metrics.queue_depth.dec();
        // The server sent its deadline answer while this waited: record that one.
        if job.claim.load(Ordering::Acquire) {
            record_unevaluated_deadline(&worker, &job);
            continue;
        }
        // The client went away: nothing was sent, nothing to decide.
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() >= job.deadline {
            let answering = job.claim();
            record_unevaluated_deadline(&worker, &job);
            if answering {
                let _ = job.reply.send(Outcome::Expired);
            }
            continue;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            worker.decide(&job.body, job.webhook, job.now)
        }));
        match result {
            Ok(Ok(reviewed)) => {
                let latency = job.received.elapsed();
                if job.claim() {
                    worker.commit(&reviewed, latency);
                    let _ = job.reply.send(Outcome::Decided(reviewed.body));
                } else {
                    // The deadline answer went out while this was deciding.
                    worker.commit_deadline(
                        &reviewed.input,
                        job.webhook,
                        &reviewed.evaluation,
                        job.timeout,
                        latency,
                    );
                }
            }
            Ok(Err(e)) => {
                if job.claim() {
                    let _ = job.reply.send(Outcome::Invalid(e));
                }
            }
            Err(_) => {
                tracing::error!("evaluation panicked; the worker's engine is rebuilt");
                worker = Worker::new(reviewer.clone());
                if job.claim() {
                    let _ = job.reply.send(Outcome::Crashed);
                }
            }
        }
    }
}

/// The deadline answer was sent for a review that was never evaluated.
fn record_unevaluated_deadline(worker: &Worker, job: &Job) {
    if let Ok(input) = crate::admission::parse(&job.body) {
        worker.commit_deadline(
            &input,
            job.webhook,
            &crate::policy::Evaluation::default(),
            job.timeout,
            job.received.elapsed(),
        );
    }
}
