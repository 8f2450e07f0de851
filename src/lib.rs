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

pub mod access;
pub mod admission;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod decision;
pub mod gatekeeper;
pub mod grant;
pub mod manifest;
pub mod metrics;
pub mod namespace;
pub mod notify;
pub mod policy;
pub mod pool;
pub mod reload;
pub mod request;
pub mod review;
pub mod scan;
pub mod server;
pub mod service;
pub mod sources;
pub mod supervise;
pub mod text;

/// Process-wide setup shared by the binary, tests and benches: rustls needs exactly one
/// crypto provider, and kube, reqwest and our server must agree on it (ring).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests call this many times): that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What the binary sets `RUST_LIB_BACKTRACE` to at startup, given its current value.
///
/// regorus builds `anyhow` errors on paths that do not fail: for a reference with two
/// dynamic indexes, such as `input.jit.namespaces[ns].labels[key]`, it first tries to
/// read the reference as a static path and drops the error. With `RUST_BACKTRACE=1` set
/// (common in debugging shells and some base images) every such error walks the stack,
/// which cost 5–20% of the shipped pack's evaluation time in our measurements. Library
/// backtraces are turned off unless the operator set `RUST_LIB_BACKTRACE` explicitly;
/// panics still print theirs under `RUST_BACKTRACE`.
pub fn library_backtraces_off(
    current: Option<&std::ffi::OsStr>,
) -> Option<(&'static str, &'static str)> {
    current.is_none().then_some(("RUST_LIB_BACKTRACE", "0"))
}

#[cfg(test)]
mod tests {
    use super::library_backtraces_off;

    #[test]
    fn library_backtraces_are_off_unless_the_operator_chose() {
        assert_eq!(
            library_backtraces_off(None),
            Some(("RUST_LIB_BACKTRACE", "0"))
        );
        assert_eq!(library_backtraces_off(Some("1".as_ref())), None);
        assert_eq!(library_backtraces_off(Some("0".as_ref())), None);
    }
}
