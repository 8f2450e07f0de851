//! End-to-end tests: the real binary over TLS, a real HTTPS client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod bad_input;
mod chart;
mod ci_formats;
mod cli;
mod envelope;
mod fuzz;
mod gatekeeper;
mod grants;
mod hostile;
mod layout;
mod lifecycle;
mod manifests;
mod opa;
mod readme;
mod relevance;
mod reload;
mod watch;
mod workflow;
