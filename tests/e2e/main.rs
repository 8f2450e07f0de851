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

mod attempt;
mod audit;
mod browser;
mod cluster;
#[path = "../common/helm.rs"]
mod helm;
#[path = "../common/session.rs"]
mod session;

mod gatekeeper;
mod notifications;
mod outage;
mod overlays;
mod readme;
mod receiver;
mod routes;
mod ui;
mod workflow;

/// Without Go the control plane cannot be built: the tests fail, saying what to install
/// (never a silent skip).
#[test]
fn without_go_the_build_says_what_to_install() {
    use std::process::Command;
    // A PATH with the tools build.sh uses and no go.
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    for tool in [
        "bash",
        "awk",
        "cat",
        "sha256sum",
        "cut",
        "mkdir",
        "flock",
        "sed",
        "dirname",
        "rm",
    ] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        let _ = std::os::unix::fs::symlink(path, dir.join(tool));
    }
    let out = Command::new(dir.join("bash"))
        .arg(cluster::root().join("tests/e2e/controlplane/build.sh"))
        .env("PATH", dir)
        .env("JITGUARD_E2E_BIN", dir.join("bin"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("'go' is not on PATH") && stderr.contains("install Go 1.24+"),
        "{stderr}"
    );
}
