#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use super::*;
use crate::policy::Finding;
use std::sync::Arc;

fn pkg(name: &str, findings: &[(RuleKind, &str)]) -> PackageResult {
    PackageResult {
        package: Arc::from(name),
        enforcement: Enforcement::Deny,
        findings: findings
            .iter()
            .map(|(rule, msg)| Finding {
                rule: *rule,
                msg: (*msg).to_string(),
                details: None,
            })
            .collect(),
        patch: Vec::new(),
        error: None,
    }
}

fn not_covered() -> GrantCheck {
    GrantCheck::NotCovered {
        request: "kubectl jit request --namespace prod".into(),
    }
}

fn validate() -> Target<'static> {
    Target {
        webhook: Webhook::Validate,
        operation: Operation::Create,
        object: None,
        workflow_denials: &[],
        workflow_patch: &[],
    }
}

fn mutate(operation: Operation, object: &serde_json::Value) -> Target<'_> {
    Target {
        webhook: Webhook::Mutate,
        operation,
        object: Some(object),
        workflow_denials: &[],
        workflow_patch: &[],
    }
}

#[test]
fn workflow_refusals_deny_even_in_audit_mode() {
    let denials = vec!["you cannot approve or deny your own request".to_string()];
    let target = Target {
        workflow_denials: &denials,
        ..validate()
    };
    let d = decide(
        &Evaluation::default(),
        &not_covered(),
        target,
        Options {
            enforcement: Some(Enforcement::Audit),
            ..Options::default()
        },
    );
    assert!(!d.allowed);
    assert!(
        d.message.contains("[jitguard.workflow] you cannot approve"),
        "{}",
        d.message
    );
}

#[test]
fn the_access_policy_denies_even_in_audit_mode() {
    let access = pkg(
        ACCESS_PACKAGE,
        &[(RuleKind::Deny, "scope rule 0 is not requestable by you")],
    );
    let d = decide(
        &Evaluation {
            packages: vec![access],
        },
        &not_covered(),
        validate(),
        Options {
            enforcement: Some(Enforcement::Audit),
            ..Options::default()
        },
    );
    assert!(!d.allowed, "{d:?}");
    assert!(d.message.contains("not requestable"), "{}", d.message);
}

fn run(packages: Vec<PackageResult>, grant: &GrantCheck) -> Decision {
    decide(
        &Evaluation { packages },
        grant,
        validate(),
        Options::default(),
    )
}

#[test]
fn a_deny_anywhere_denies_and_lists_every_finding_with_its_package() {
    let d = run(
        vec![
            pkg("a", &[(RuleKind::Deny, "one")]),
            pkg("b", &[(RuleKind::Violation, "two"), (RuleKind::Warn, "w")]),
        ],
        &not_covered(),
    );
    assert!(!d.allowed);
    assert!(
        d.message.contains("[a] one") && d.message.contains("[b] two"),
        "{}",
        d.message
    );
    assert_eq!(d.warnings, vec!["w"]);
}

#[test]
fn thousands_of_findings_are_counted_not_listed() {
    let long = "x".repeat(5_000);
    let many: Vec<(RuleKind, &str)> = (0..3_000)
        .map(|i| {
            (
                if i % 2 == 0 {
                    RuleKind::Deny
                } else {
                    RuleKind::Warn
                },
                long.as_str(),
            )
        })
        .collect();
    let d = run(vec![pkg("a", &many)], &not_covered());
    assert!(!d.allowed);
    assert!(d.message.len() < 12_000, "{} bytes", d.message.len());
    assert!(
        d.message
            .ends_with("... and 1480 more findings (see the audit record)"),
        "{}",
        &d.message[d.message.len() - 80..]
    );
    assert_eq!(d.warnings.len(), LISTED_MAX + 1);
    assert_eq!(
        d.warnings[LISTED_MAX],
        "... and 1480 more warnings (see the audit record)"
    );
}

#[test]
fn require_grant_denies_with_the_request_command_unless_covered() {
    let p = || {
        vec![pkg(
            "ingress",
            &[(RuleKind::RequireGrant, "ingress changes need a grant")],
        )]
    };
    let d = run(p(), &not_covered());
    assert!(!d.allowed);
    assert!(
        d.message.contains("kubectl jit request --namespace prod"),
        "{}",
        d.message
    );
    let used = GrantUse {
        name: "g1".into(),
        expires_at: "2030-01-01T00:00:00Z".into(),
        break_glass: false,
    };
    let d = run(p(), &GrantCheck::Covered(used.clone()));
    assert!(d.allowed);
    assert_eq!(d.grant, Some(used));
    let d = run(
        p(),
        &GrantCheck::Stale {
            reason: "watch down 90s".into(),
        },
    );
    assert!(!d.allowed && d.message.contains("stale"), "{}", d.message);
}

#[test]
fn audit_mode_turns_denials_into_warnings() {
    let mut p = pkg(
        "new",
        &[
            (RuleKind::Deny, "would block"),
            (RuleKind::RequireGrant, "g"),
        ],
    );
    p.enforcement = Enforcement::Audit;
    let d = run(vec![p.clone()], &not_covered());
    assert!(d.allowed);
    assert_eq!(d.verdict, Verdict::Warn);
    assert_eq!(d.would_deny.len(), 2);
    assert!(d.warnings[0].starts_with("would deny (audit)"));
    // And the global switch does it for every package.
    p.enforcement = Enforcement::Deny;
    let d = decide(
        &Evaluation { packages: vec![p] },
        &not_covered(),
        validate(),
        Options {
            enforcement: Some(Enforcement::Audit),
            ..Options::default()
        },
    );
    assert!(d.allowed);
}

#[test]
fn errors_fail_closed_unless_told_to_fail_open() {
    let mut p = pkg("broken", &[]);
    p.error = Some("boom".into());
    let d = run(vec![p.clone()], &not_covered());
    assert!(!d.allowed && d.message.contains("[broken] policy error: boom"));
    let d = decide(
        &Evaluation { packages: vec![p] },
        &not_covered(),
        validate(),
        Options {
            on_error: OnError::Allow,
            ..Options::default()
        },
    );
    assert!(d.allowed && d.errors.len() == 1 && !d.warnings.is_empty());
}

#[test]
fn patches_only_on_mutate_and_only_if_they_apply() {
    let mut p = pkg("m", &[]);
    p.patch = vec![serde_json::from_value(
        serde_json::json!({"op": "add", "path": "/metadata/labels/x", "value": "y"}),
    )
    .unwrap()];
    let ev = Evaluation { packages: vec![p] };
    let obj = serde_json::json!({"metadata": {"labels": {}}});
    let v = decide(&ev, &not_covered(), validate(), Options::default());
    assert!(v.patch.is_empty());
    let m = decide(
        &ev,
        &not_covered(),
        mutate(Operation::Create, &obj),
        Options::default(),
    );
    assert_eq!(m.patch.len(), 1);
    let no_labels = serde_json::json!({"metadata": {}});
    let m = decide(
        &ev,
        &not_covered(),
        mutate(Operation::Create, &no_labels),
        Options::default(),
    );
    assert!(
        !m.allowed && m.message.contains("does not apply"),
        "{}",
        m.message
    );
}

#[test]
fn grant_provenance_is_added_on_mutate() {
    let ev = Evaluation {
        packages: vec![pkg("np", &[(RuleKind::RequireGrant, "g")])],
    };
    let used = GrantCheck::Covered(GrantUse {
        name: "alice-np".into(),
        expires_at: "2030-01-01T00:00:00Z".into(),
        break_glass: false,
    });
    let mut obj = serde_json::json!({"metadata": {"name": "x"}});
    let d = decide(
        &ev,
        &used,
        mutate(Operation::Create, &obj),
        Options::default(),
    );
    json_patch::patch(&mut obj, &d.patch).unwrap();
    assert_eq!(obj["metadata"]["labels"]["jitguard.dev/grant"], "alice-np");
    assert_eq!(
        obj["metadata"]["annotations"]["jitguard.dev/expires-at"],
        "2030-01-01T00:00:00Z"
    );
    // An object only changed under a grant is not labelled: the reaper would take it.
    let d = decide(
        &ev,
        &used,
        mutate(Operation::Update, &obj),
        Options::default(),
    );
    assert!(d.allowed && d.patch.is_empty(), "{d:?}");
}
