//! Reports for CI, as other tools' users expect them: JUnit XML (test reports in GitHub,
//! GitLab, Jenkins), GitHub workflow commands (annotations on the diff), SARIF 2.1.0
//! (code scanning), and TAP. Pure: `dry-run` and `verify` turn their results into
//! [`Case`]s and pick a format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

/// How much a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One finding about a case: which package and rule said what.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub package: String,
    pub rule: String,
    pub message: String,
    pub level: Level,
}

/// One object decided (dry-run) or one suite case (verify).
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The file it comes from (`stdin` for standard input), and the line where known.
    pub file: String,
    pub line: Option<usize>,
    /// The object (`Deployment prod/web`) or the case's name.
    pub name: String,
    /// Whether it counts as failed (a denial; with --fail-on-warn, a warning too).
    pub failed: bool,
    pub findings: Vec<Finding>,
}

impl Case {
    /// `file:line`, as the text output names it.
    pub fn place(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        }
    }
}

/// Splits `file:line` (and `file:line (item N)`) into the file and the line.
pub fn split_source(source: &str) -> (String, Option<usize>) {
    let base = source.split(" (item ").next().unwrap_or(source);
    match base.rsplit_once(':') {
        Some((file, line)) if line.parse::<usize>().is_ok() => {
            (file.to_string(), line.parse().ok())
        }
        _ => (base.to_string(), None),
    }
}

/// JUnit XML: one testsuite per file, one testcase per case; a failed case carries its
/// findings in its `<failure>`, warnings of a passed one go to `<system-out>`.
pub fn junit(tool: &str, cases: &[Case]) -> String {
    let mut by_file: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    for case in cases {
        by_file.entry(&case.file).or_default().push(case);
    }
    let failures = cases.iter().filter(|c| c.failed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{failures}" errors="0">"#,
        xml(tool),
        cases.len()
    );
    for (file, cases) in by_file {
        let failed = cases.iter().filter(|c| c.failed).count();
        let _ = writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{failed}" errors="0" skipped="0">"#,
            xml(file),
            cases.len()
        );
        for case in cases {
            let _ = write!(
                out,
                r#"    <testcase name="{}" classname="{}""#,
                xml(&case.name),
                xml(&case.place())
            );
            let lines: Vec<String> = case
                .findings
                .iter()
                .map(|f| format!("[{}] {}: {}", f.package, f.rule, f.message))
                .collect();
            if case.failed {
                let first = case
                    .findings
                    .iter()
                    .find(|f| f.level == Level::Error)
                    .or(case.findings.first());
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml(first.map_or("denied", |f| f.message.as_str())),
                    xml(first.map_or("deny", |f| f.rule.as_str())),
                    xml(&lines.join("\n"))
                );
            } else if !lines.is_empty() {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&lines.join("\n"))
                );
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(text: &str) -> String {
    crate::text::escape_markup(text)
}

/// GitHub workflow commands: `::error file=F,line=L,title=T::message` per finding (a
/// warning as `::warning`), so that the findings show on the pull request's diff; a failed
/// case without findings gets one error of its own.
pub fn github(tool: &str, cases: &[Case]) -> String {
    let mut out = String::new();
    for case in cases {
        let mut location = format!("file={}", property(&case.file));
        if let Some(line) = case.line {
            let _ = write!(location, ",line={line}");
        }
        for f in &case.findings {
            let command = match f.level {
                Level::Error if case.failed => "error",
                _ => "warning",
            };
            let title = format!("{tool}: {} [{}] {}", case.name, f.package, f.rule);
            let _ = writeln!(
                out,
                "::{command} {location},title={}::{}",
                property(&title),
                data(&f.message)
            );
        }
        if case.failed && case.findings.is_empty() {
            let _ = writeln!(
                out,
                "::error {location},title={}::{}",
                property(&format!("{tool}: {}", case.name)),
                data("denied")
            );
        }
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// SARIF 2.1.0: one run, one rule per package and rule, one result per finding with its
/// location; a failed case without findings is one result of rule `jitguard/denied`.
pub fn sarif(tool: &str, cases: &[Case]) -> String {
    let mut rules: Vec<(String, String, String)> = Vec::new();
    let mut results = Vec::new();
    let mut rule_index = |package: &str, rule: &str| -> usize {
        let id = format!("{package}/{rule}");
        match rules.iter().position(|(i, _, _)| *i == id) {
            Some(i) => i,
            None => {
                rules.push((id, package.to_string(), rule.to_string()));
                rules.len() - 1
            }
        }
    };
    for case in cases {
        let mut location =
            json!({"physicalLocation": {"artifactLocation": {"uri": uri(&case.file)}}});
        if let (Some(line), Some(physical)) = (case.line, location.get_mut("physicalLocation")) {
            if let Some(map) = physical.as_object_mut() {
                map.insert("region".into(), json!({"startLine": line.max(1)}));
            }
        }
        let mut findings: Vec<Finding> = case.findings.clone();
        if case.failed && findings.is_empty() {
            findings.push(Finding {
                package: "jitguard".into(),
                rule: "denied".into(),
                message: "denied".into(),
                level: Level::Error,
            });
        }
        for f in findings {
            let index = rule_index(&f.package, &f.rule);
            let level = match f.level {
                Level::Error if case.failed => "error",
                _ => "warning",
            };
            results.push(json!({
                "ruleId": format!("{}/{}", f.package, f.rule),
                "ruleIndex": index,
                "level": level,
                "message": {"text": format!("{}: {}", case.name, f.message)},
                "locations": [location.clone()],
                "properties": {"package": f.package, "rule": f.rule, "object": case.name},
            }));
        }
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|(id, package, rule)| {
            json!({
                "id": id,
                "name": format!("{package}.{rule}"),
                "shortDescription": {"text": format!("rule {rule} of package {package}")},
                "properties": {"package": package, "rule": rule},
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "jitguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/jitguard/jitguard",
                "rules": rules,
            }},
            "automationDetails": {"id": format!("jitguard/{tool}/")},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}

/// A relative path as a URI reference (what code scanning resolves against the checkout).
fn uri(path: &str) -> String {
    path.trim_start_matches("./")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// TAP version 14: `ok`/`not ok` per case, findings as YAML diagnostics.
pub fn tap(cases: &[Case]) -> String {
    let mut out = format!("TAP version 14\n1..{}\n", cases.len());
    for (i, case) in cases.iter().enumerate() {
        let status = if case.failed { "not ok" } else { "ok" };
        // `#` starts a directive in TAP: keep it out of the description.
        let description = format!("{} ({})", case.name, case.place()).replace('#', "\\#");
        let _ = writeln!(out, "{status} {} - {description}", i + 1);
        if !case.findings.is_empty() {
            out.push_str("  ---\n  findings:\n");
            for f in &case.findings {
                let level = match f.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                };
                let _ = writeln!(
                    out,
                    "    - {{package: {}, rule: {}, level: {level}, message: {}}}",
                    serde_json::to_string(&f.package).unwrap_or_default(),
                    serde_json::to_string(&f.rule).unwrap_or_default(),
                    serde_json::to_string(&f.message).unwrap_or_default()
                );
            }
            out.push_str("  ...\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn cases() -> Vec<Case> {
        vec![
            Case {
                file: "deploy/web.yaml".into(),
                line: Some(12),
                name: "Deployment prod/web".into(),
                failed: true,
                findings: vec![
                    Finding {
                        package: "jitguard.workloads".into(),
                        rule: "deny".into(),
                        message: "privileged <container> \"app\", 100% sure\nsecond line".into(),
                        level: Level::Error,
                    },
                    Finding {
                        package: "jitguard.workloads".into(),
                        rule: "warn".into(),
                        message: "no limits".into(),
                        level: Level::Warning,
                    },
                ],
            },
            Case {
                file: "stdin".into(),
                line: Some(1),
                name: "ConfigMap dev/a".into(),
                failed: false,
                findings: vec![],
            },
        ]
    }

    #[test]
    fn sources_split_into_file_and_line() {
        assert_eq!(split_source("a/b.yaml:12"), ("a/b.yaml".into(), Some(12)));
        assert_eq!(split_source("stdin:3 (item 2)"), ("stdin".into(), Some(3)));
        assert_eq!(split_source("C:/x.yaml"), ("C:/x.yaml".into(), None));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let x = junit("jitguard dry-run", &cases());
        assert!(
            x.contains(r#"<testsuites name="jitguard dry-run" tests="2" failures="1" errors="0">"#),
            "{x}"
        );
        assert!(
            x.contains("privileged &lt;container&gt; &quot;app&quot;"),
            "{x}"
        );
        assert!(
            x.contains(r#"<testcase name="ConfigMap dev/a" classname="stdin:1"/>"#),
            "{x}"
        );
    }

    #[test]
    fn github_commands_escape_their_data_and_properties() {
        let g = github("dry-run", &cases());
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(lines.len(), 2, "{g}");
        assert_eq!(
            lines[0],
            "::error file=deploy/web.yaml,line=12,title=dry-run%3A Deployment prod/web [jitguard.workloads] deny::privileged <container> \"app\", 100%25 sure%0Asecond line"
        );
        assert!(lines[1].starts_with("::warning file=deploy/web.yaml,line=12,"));
    }

    #[test]
    fn sarif_has_a_rule_per_package_rule_and_a_result_per_finding() {
        let s: Value = serde_json::from_str(&sarif("dry-run", &cases())).unwrap();
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 2);
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["ruleId"], "jitguard.workloads/deny");
        assert_eq!(results[0]["level"], "error");
        assert_eq!(results[1]["level"], "warning");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            12
        );
    }

    #[test]
    fn tap_counts_and_marks_failures() {
        let t = tap(&cases());
        assert!(
            t.starts_with(
                "TAP version 14\n1..2\nnot ok 1 - Deployment prod/web (deploy/web.yaml:12)\n"
            ),
            "{t}"
        );
        assert!(t.contains("ok 2 - ConfigMap dev/a (stdin:1)"));
        assert!(t.contains("rule: \"deny\", level: error"));
    }
}
