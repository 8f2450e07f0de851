//! The README's cluster sessions, run as written through the playground, with their output
//! compared (`tests/common/session.rs`). What cannot be the same from run to run is
//! normalised on both sides, and only that: generated request names (learned from the
//! `created` line and substituted), timestamps, Event ages and column padding. The
//! change window's finding depends on the hour (the README says so beside each session
//! that shows it): its lines may be absent.

use std::path::Path;

use crate::cluster::{root, Cluster, Options};
use crate::session::{run_block, Block, Compare, Shell, Step};

/// `$PWD/target/e2e/...` as the README's session exports it, pointing at this test's
/// cluster: the kubeconfig, the control plane's binaries and `run/bin/kubectl-jit`.
fn workspace(cluster: &Cluster, dir: &Path) {
    let e2e = dir.join("target/e2e");
    std::fs::create_dir_all(&e2e).unwrap();
    let link = |from: &Path, name: &str| std::os::unix::fs::symlink(from, e2e.join(name)).unwrap();
    link(&cluster.kubeconfig(), "kubeconfig");
    link(Path::new(cluster.env("BIN")), "bin");
    link(&cluster.dir.join("run"), "run");
}

/// A session that names no context runs as alice, as the README says beside it.
fn as_alice(cluster: &Cluster, dir: &Path) -> Shell {
    let kubeconfig = dir.join("alice.kubeconfig");
    std::fs::copy(cluster.kubeconfig(), &kubeconfig).unwrap();
    let shell = Shell::new(
        dir,
        dir,
        &[
            Path::new(cluster.env("BIN")).to_path_buf(),
            cluster.dir.join("run/bin"),
        ],
    );
    let (code, out) = shell.run(&format!(
        "export KUBECONFIG={kubeconfig:?} && kubectl config use-context alice >/dev/null"
    ));
    assert_eq!(code, 0, "{out}");
    shell
}

/// Request names are generated: the README's, from a `created` line, stands for this
/// run's from then on.
fn learn_names(shell: &mut Shell, step: &Step, output: &str) {
    let name = |text: &str| {
        text.split_whitespace()
            .skip_while(|w| *w != "accessrequest")
            .nth(1)
            .filter(|n| n.starts_with("jit-"))
            .map(str::to_string)
    };
    // Seen through the names learned so far: an extension's name starts with its base's.
    let shown = step
        .expected
        .iter()
        .map(|l| shell.substitute(l))
        .find(|l| l.contains(" created"))
        .and_then(|l| name(&l));
    let real = output
        .lines()
        .find(|l| l.contains(" created"))
        .and_then(name);
    if let (Some(shown), Some(real)) = (shown, real) {
        shell.substitutions.push((shown, real));
    }
}

/// Timestamps, Event ages and table padding differ from run to run.
fn normalize(line: &str) -> String {
    let words: Vec<String> = line
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            let bytes = w.as_bytes();
            let timestamp = bytes.len() >= 20
                && bytes.get(4) == Some(&b'-')
                && bytes.get(10) == Some(&b'T')
                && w.contains('Z');
            let age = i == 0
                && w.len() > 1
                && w.ends_with(['s', 'm'])
                && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit());
            if timestamp {
                let end = w.find('Z').map_or(w.len(), |z| z + 1);
                format!("<time>{}", &w[end..])
            } else if age {
                "<age>".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    let indent = line.len() - line.trim_start().len();
    format!("{}{}", " ".repeat(indent.min(1)), words.join(" "))
}

fn compare() -> Compare<'static> {
    Compare {
        normalize: &normalize,
        optional: &|line| line.contains("[jitguard.changewindow]"),
    }
}

fn block_starting(prefix: &str) -> Block {
    crate::session::block_starting(
        &std::fs::read_to_string(root().join("README.md")).unwrap(),
        prefix,
    )
}

/// The playground session under "A real cluster on one machine", then the intro's
/// denial (as alice), in one cluster. Each session starts from a fresh cluster, as the
/// README's reader would: `kubectl jit list` shows every request of its user.
#[test]
fn the_playground_session_and_the_intro_print_what_the_readme_shows() {
    let cluster = Cluster::up(Options::default());
    let dir = tempfile::tempdir().unwrap();
    workspace(&cluster, dir.path());
    let mut shell = Shell::new(dir.path(), dir.path(), &[]);
    run_block(
        &mut shell,
        &block_starting("export KUBECONFIG="),
        &compare(),
        learn_names,
    );
    let mut shell = as_alice(&cluster, dir.path());
    run_block(
        &mut shell,
        &block_starting("kubectl -n prod exec web-0"),
        &compare(),
        learn_names,
    );
}

/// "Check that it works", step 4 of the installation, as alice on a fresh install.
#[test]
fn the_install_check_prints_what_the_readme_shows() {
    let cluster = Cluster::up(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut shell = as_alice(&cluster, dir.path());
    run_block(
        &mut shell,
        &block_starting("kubectl -n prod create configmap jitguard-check"),
        &compare(),
        learn_names,
    );
}

/// The access workflow's commands, as alice, bob and sam.
#[test]
fn the_access_workflow_session_prints_what_the_readme_shows() {
    let cluster = Cluster::up(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut shell = as_alice(&cluster, dir.path());
    run_block(
        &mut shell,
        &block_starting(
            "kubectl jit --context alice request --namespace prod --resource pods/exec",
        ),
        &compare(),
        learn_names,
    );
}
