//! jitguard: just-in-time access and Rego guardrails, in-line with the Kubernetes API server.
//!
//! A request flows in one direction:
//!
//! ```text
//!  HTTPS (server) ──► admission ──► review ──┬─► policy   (Rego on an immutable, swappable snapshot)
//!   /validate          parse once,           ├─► grant    (live grants of the requester, by subject)
//!   /mutate            check shape           └─► decision (pure: findings + grants → allow/deny/warn/patch)
//!                                                   │
//!                      AdmissionReview ◄── response ◄┴─► audit, metrics
//! ```
//!
//! The CLI (`serve`, `dry-run`, `test`, `check`, `certs`) is a thin layer over the same
//! library code: `dry-run` calls [`review::Reviewer`] exactly as the server's workers do,
//! so the two can never disagree.

pub mod admission;
pub mod approval;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod decision;
pub mod grant;
pub mod manifest;
pub mod metrics;
pub mod namespace;
pub mod policy;
pub mod pool;
pub mod reload;
pub mod review;
pub mod server;

/// Process-wide setup shared by the binary, tests and benches: rustls needs exactly one
/// crypto provider, and kube, reqwest and our server must agree on it (ring).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests call this many times): that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
