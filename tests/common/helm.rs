//! Helm for the chart's tests, built from its Go module on first use (tests/helm/build.sh;
//! `.ci/run` builds it before the tests).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary's path, built if needed under `root`'s target/.
pub fn helm(root: &Path) -> PathBuf {
    let out = Command::new("bash")
        .arg(root.join("tests/helm/build.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tests/helm/build.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm template jitguard charts/jitguard ARGS` in `root`: the rendered YAML.
pub fn template(helm: &Path, root: &Path, args: &[&str]) -> String {
    let out = Command::new(helm)
        .current_dir(root)
        .args(["template", "jitguard", "charts/jitguard"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The values for a provided certificate: the pair `jitguard certs --out TLS` wrote.
pub fn provided(tls: &Path) -> Vec<String> {
    vec![
        "--set".into(),
        "tls.mode=provided".into(),
        "--set-file".into(),
        format!("tls.cert={}", tls.join("tls.crt").display()),
        "--set-file".into(),
        format!("tls.key={}", tls.join("tls.key").display()),
        "--set-file".into(),
        format!("tls.ca={}", tls.join("ca.pem").display()),
    ]
}
