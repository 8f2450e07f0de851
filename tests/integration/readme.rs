//! The README's commands, run as written with their output compared (`common::session`).
//! Sessions that need a cluster run in `tests/e2e/readme.rs`, through the playground;
//! this file runs the ones that need none, in a working directory laid out as the README
//! says (the repository's `policies/`, and `deploy/` with a Pod for dev and one for prod).

use std::path::{Path, PathBuf};

use crate::common::session::{console_blocks, run_block, Block, Compare, Shell};
use crate::common::{root, BIN};

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: NS\nspec:\n  containers:\n  - name: web\n    image: registry.example.com/web:1.4.2\n";

/// A working directory as the README assumes one, and a `PATH` with `jitguard` and `opa`.
struct Workspace {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Workspace {
    /// `policies`: the repository's (linked), or a copy the test may add to.
    fn new(copy_policies: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join(".bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("jitguard")).unwrap();
        // The README shows OPA's own CLI; the machines have OPA's evaluator as
        // `opa-eval`, whose arguments differ. The shim translates the two forms the
        // README uses and nothing else (anything else fails loudly).
        let shim = format!(
            r#"#!/usr/bin/env bash
set -euo pipefail
opa_eval={opa_eval:?}
case "$1" in
  eval)
    shift
    [ "$1" = --strict-builtin-errors ] && shift
    [ "$1" = -b ] || {{ echo "opa shim: expected -b BUNDLE" >&2; exit 64; }}
    bundle=$2; [ "$3" = -i ] || {{ echo "opa shim: expected -i INPUT" >&2; exit 64; }}
    input=$4; query=${{5#data.}}
    exec "$opa_eval" eval -p "$bundle" -i "$input" "$query" ;;
  test) shift; exec "$opa_eval" test "$@" ;;
  *) echo "opa shim: $1 is not translated" >&2; exit 64 ;;
esac
"#,
            opa_eval = crate::opa::opa_eval()
        );
        std::fs::write(bin.join("opa"), shim).unwrap();
        std::process::Command::new("chmod")
            .args(["+x", bin.join("opa").to_str().unwrap()])
            .status()
            .unwrap();
        if copy_policies {
            crate::common::copy_dir(&root().join("policies"), &dir.path().join("policies"));
        } else {
            std::os::unix::fs::symlink(root().join("policies"), dir.path().join("policies"))
                .unwrap();
        }
        let deploy = dir.path().join("deploy");
        std::fs::create_dir_all(&deploy).unwrap();
        for ns in ["dev", "prod"] {
            std::fs::write(deploy.join(format!("{ns}.yaml")), POD.replace("NS", ns)).unwrap();
        }
        Self { dir, bin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn shell(&self) -> Shell {
        Shell::new(self.path(), self.path(), std::slice::from_ref(&self.bin))
    }
}

/// The README's sessions that need no cluster: their first command runs `jitguard` or
/// sets the variables the next ones use.
fn offline(block: &Block) -> bool {
    block.steps.first().is_some_and(|s| {
        s.command.starts_with("jitguard ")
            || s.command.starts_with("S=")
            || s.command.starts_with("cat deploy/")
    })
}

fn block_starting(prefix: &str) -> Block {
    crate::common::session::block_starting(&readme(), prefix)
}

#[test]
fn the_shipped_pack_session_prints_what_the_readme_shows() {
    let workspace = Workspace::new(false);
    let mut shell = workspace.shell();
    let block = block_starting("S=policies/suites");
    assert!(block.steps.len() >= 16, "{block:?}");
    run_block(&mut shell, &block, &Compare::default(), |_, _, _| {});
}

#[test]
fn the_ci_sessions_print_what_the_readme_shows_and_opa_agrees() {
    let workspace = Workspace::new(false);
    let mut shell = workspace.shell();
    run_block(
        &mut shell,
        &block_starting("jitguard dry-run --policies policies -f deploy/"),
        &Compare::default(),
        |_, _, _| {},
    );
    let mut opa_said = String::new();
    run_block(
        &mut shell,
        &block_starting("jitguard dry-run -f deploy/prod.yaml"),
        &Compare::default(),
        |_, step, output| {
            if step.command.starts_with("opa ") {
                opa_said = output.to_string();
            }
        },
    );
    // OPA, on the input dry-run saved, finds what jitguard found.
    assert!(
        opa_said.contains(
            "creation of Pod prod/web in protected namespace prod needs a just-in-time grant"
        ),
        "{opa_said}"
    );
}

/// "A new policy, from file to CI": the Rego and the suite case as the README shows
/// them, at the paths it names, then the commands it names.
#[test]
fn a_new_policy_goes_from_file_to_ci_as_the_readme_walks_through() {
    let text = readme();
    let section = text
        .split("### A new policy, from file to CI")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .unwrap();
    let fenced = |lang: &str| -> String {
        let start = section.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let body = &section[start..];
        let body = &body[..body.find("```").unwrap()];
        body.lines()
            .map(|l| l.strip_prefix("   ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let workspace = Workspace::new(true);
    let policy = workspace.path().join("policies/acme/labels/labels.rego");
    std::fs::create_dir_all(policy.parent().unwrap()).unwrap();
    std::fs::write(&policy, fenced("rego")).unwrap();
    std::fs::write(
        workspace.path().join("policies/suites/labels.yaml"),
        fenced("yaml"),
    )
    .unwrap();
    let shell = workspace.shell();
    for (command, code, says) in [
        ("jitguard test policies", 0, "0 failed"),
        ("opa test policies", 0, "0 failed"),
        (
            "jitguard verify policies/suites",
            0,
            "a Deployment without a team label is flagged",
        ),
        ("jitguard dry-run -f deploy/", 1, "Pod prod/web"),
    ] {
        assert!(
            section.contains(&format!("`{command}`")),
            "README names {command}"
        );
        let (status, output) = shell.run(command);
        assert_eq!(status, code, "{command}:\n{output}");
        assert!(output.contains(says), "{command}:\n{output}");
    }
    // The package rolls out in audit mode: its finding is a would-deny, not the denial.
    let (_, output) = shell.run("jitguard dry-run -f deploy/ --at 2026-11-24T10:00:00Z");
    assert!(
        output.contains("[acme.labels] would deny (audit): Pod dev/web has no team label"),
        "{output}"
    );
}

#[test]
fn the_ci_format_session_prints_what_the_readme_shows() {
    let workspace = Workspace::new(false);
    let mut shell = workspace.shell();
    run_block(
        &mut shell,
        &block_starting("cat deploy/prod.yaml | jitguard dry-run -f - -o github"),
        &Compare::default(),
        |_, _, _| {},
    );
}

/// The pre-commit hook as pre-commit runs it: its `entry`, then the changed files.
#[test]
fn the_pre_commit_hook_decides_the_changed_files() {
    let hooks: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join(".pre-commit-hooks.yaml")).unwrap(),
    )
    .unwrap();
    let hook = &hooks[0];
    assert_eq!(hook["id"], "jitguard-dry-run");
    for key in ["name", "entry", "language", "files"] {
        assert!(hook[key].is_string(), "{key} missing: {hook}");
    }
    let files = regex::Regex::new(hook["files"].as_str().unwrap()).unwrap();
    assert!(files.is_match("deploy/prod.yaml") && !files.is_match("README.md"));
    let workspace = Workspace::new(false);
    let entry: Vec<&str> = hook["entry"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(entry[0], "jitguard");
    let run = |file: &str| {
        std::process::Command::new(BIN)
            .current_dir(workspace.path())
            .args(&entry[1..])
            .args([file, "--at", "2026-11-24T10:00:00Z"])
            .output()
            .unwrap()
    };
    assert!(run("deploy/dev.yaml").status.success());
    let denied = run("deploy/prod.yaml");
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stdout).starts_with("DENY  Pod prod/web"));
}

/// Every README session is run somewhere: here (no cluster) or through the playground
/// in `tests/e2e/readme.rs`, which claims the others by their first command.
#[test]
fn every_readme_session_is_run_by_a_test() {
    let blocks = console_blocks(&readme());
    let (here, cluster): (Vec<&Block>, Vec<&Block>) = blocks.iter().partition(|b| offline(b));
    assert_eq!(here.len(), 4, "{here:?}");
    for block in &cluster {
        let first = &block.steps[0].command;
        assert!(
            first.starts_with("export KUBECONFIG=") || first.starts_with("kubectl "),
            "README.md:{}: a session neither run here nor by tests/e2e/readme.rs: {first}",
            block.line
        );
    }
    assert_eq!(cluster.len(), 4, "{cluster:?}");
}
