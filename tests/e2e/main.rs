//! End-to-end tests through a real Kubernetes control plane: etcd, kube-apiserver and
//! kube-controller-manager built from their Go modules (tests/e2e/controlplane), jitguard
//! registered with the shipped manifests, and real `kubectl` and `kubectl jit` run as
//! different people. Needs Go (1.24 or newer); without it every test here fails and says
//! what to install.
//!
//! The people (tokens in the kubeconfig `cluster.sh` writes): `admin` (system:masters),
//! `alice` (developers), `bob` (team-leads), `sam` (security), `carol` (sre-oncall). Each
//! holds the built-in `edit` role in dev, staging and prod, so that what stops them in prod
//! is jitguard, not RBAC.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod cluster;

mod outage;
mod overlays;
mod routes;
mod workflow;
