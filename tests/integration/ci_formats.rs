//! `dry-run` and `verify` in CI: manifests from standard input, and the report formats
//! CI systems read, each checked with a reader of its own (Python's XML parser for JUnit,
//! PyPI's `jsonschema` with the SARIF 2.1.0 schema, the workflow-command syntax).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::{root, BIN};

/// A privileged Pod in prod (denied), a ConfigMap in dev (allowed), a privileged Pod in
/// dev (allowed, with a warning): three documents on standard input (lines 1, 8, 13).
const MANIFESTS: &str = "apiVersion: v1
kind: Pod
metadata: {name: root-shell, namespace: prod}
spec:
  containers:
  - {name: sh, image: busybox, securityContext: {privileged: true}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: dev}
data: {a: b}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: dev}
spec:
  containers:
  - {name: sh, image: busybox, securityContext: {privileged: true}}
";

/// `jitguard ARGS` with `input` on standard input: (exit code, stdout, stderr).
fn piped(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dry_run(extra: &[&str]) -> (i32, String, String) {
    // Inside the change window, so that the findings do not depend on when CI runs.
    let mut args = vec![
        "dry-run",
        "-f",
        "-",
        "--user",
        "alice@example.com",
        "--at",
        "2026-11-24T10:00:00Z",
    ];
    args.extend_from_slice(extra);
    piped(&args, MANIFESTS)
}

/// Python with PyPI's `jsonschema`, in a virtualenv under target/tools made on first use
/// (`.ci/run` makes it before the tests).
fn python_with_jsonschema() -> PathBuf {
    let venv = root().join("target/tools/jsonschema");
    let python = venv.join("bin/python");
    if !python.exists()
        || !Command::new(&python)
            .args(["-c", "import jsonschema"])
            .status()
            .unwrap()
            .success()
    {
        assert!(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success());
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "jsonschema==4.23.0"])
            .status()
            .unwrap();
        assert!(installed.success(), "pip install jsonschema");
    }
    python
}

#[test]
fn manifests_come_from_standard_input_with_their_lines() {
    let (code, out, err) = dry_run(&[]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        lines,
        [
            "DENY  Pod prod/root-shell  (stdin:1)",
            "ALLOW ConfigMap dev/settings  (stdin:8)",
            "WARN  Pod dev/debug  (stdin:13)",
        ],
        "{out}"
    );
    // Read once: a second `-` is a usage error, not an empty second read.
    let (code, _, err) = piped(&["dry-run", "-f", "-", "-f", "-"], MANIFESTS);
    assert_eq!(code, 2);
    assert!(
        err.contains("-f - (standard input) can be given once"),
        "{err}"
    );
    let (code, _, err) = piped(&["dry-run", "-f", "-"], "kind: [\n");
    assert_eq!(code, 2);
    assert!(err.contains("stdin:"), "{err}");
}

#[test]
fn fail_on_warn_fails_on_warnings_too() {
    let (_, out, _) = dry_run(&[]);
    assert!(
        out.contains("warning:") || out.contains("[jitguard.workloads] warn"),
        "{out}"
    );
    let only_warned = MANIFESTS.split("---\n").nth(2).unwrap();
    let args = ["dry-run", "-f", "-"];
    assert_eq!(piped(&args, only_warned).0, 0);
    let (code, out, _) = piped(&[&args[..], &["--fail-on-warn"]].concat(), only_warned);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn junit_parses_with_the_right_counts_and_failures() {
    let (code, xml, _) = dry_run(&["-o", "junit"]);
    assert_eq!(code, 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, &xml).unwrap();
    let summary = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             cases = root.findall('.//testcase')\n\
             failed = [c for c in cases if c.find('failure') is not None]\n\
             print(root.get('tests'), root.get('failures'), len(cases), len(failed))\n\
             print(failed[0].get('name'), '|', ' | '.join(failed[0].find('failure').text.splitlines()))",
        )
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&summary.stderr)
    );
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("3 1 3 1"), "{xml}");
    let failure = lines.next().unwrap();
    assert!(failure.starts_with("Pod prod/root-shell | "), "{failure}");
    assert!(
        failure.contains(
            " | [jitguard.workloads] deny: Pod prod/root-shell: container sh is privileged"
        ),
        "{failure}"
    );
    // verify's cases too: every shipped suite case, none failed.
    let (code, xml, err) = piped(&["verify", "policies/suites", "-o", "junit"], "");
    assert_eq!(code, 0, "{err}");
    assert!(xml.contains(r#"failures="0" errors="0">"#), "{xml}");
    assert!(xml.matches("<testcase ").count() > 20, "{xml}");
}

#[test]
fn github_lines_are_workflow_commands() {
    let (_, out, _) = dry_run(&["-o", "github"]);
    let command =
        regex::Regex::new(r"^::(error|warning) file=[^,:]+,line=\d+,title=[^:]*::[^\r\n]*$")
            .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(command.is_match(line), "not a workflow command: {line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error file=stdin,line=1,")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning file=stdin,line=13,")),
        "{out}"
    );
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let python = python_with_jsonschema();
    let schema = root().join("tests/fixtures/sarif/sarif-schema-2.1.0.json");
    let dir = tempfile::tempdir().unwrap();
    let mut documents = Vec::new();
    let (_, dry, _) = dry_run(&["-o", "sarif"]);
    documents.push(("dry-run", dry));
    let (_, verify, _) = piped(&["verify", "policies/suites", "-o", "sarif"], "");
    documents.push(("verify", verify));
    for (name, document) in &documents {
        let file = dir.path().join(format!("{name}.sarif"));
        std::fs::write(&file, document).unwrap();
        let checked = Command::new(&python)
            .arg("-c")
            .arg(
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[2])))",
            )
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{name}: {}\n{document}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    let log: serde_json::Value = serde_json::from_str(&documents[0].1).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let denied = results
        .iter()
        .find(|r| r["ruleId"] == "jitguard.workloads/deny")
        .unwrap();
    assert_eq!(denied["level"], "error");
    assert_eq!(denied["properties"]["package"], "jitguard.workloads");
    assert_eq!(
        denied["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "stdin"
    );
    assert!(results.iter().any(|r| r["level"] == "warning"));
}

#[test]
fn tap_counts_every_object() {
    let (code, out, _) = dry_run(&["-o", "tap"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "TAP version 14",
            "1..3",
            "not ok 1 - Pod prod/root-shell (stdin:1)"
        ],
        "{out}"
    );
    assert!(
        out.contains("\nok 2 - ConfigMap dev/settings (stdin:8)\n"),
        "{out}"
    );
}
