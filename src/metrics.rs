//! Prometheus metrics. Every series jitguard exports is declared here.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::policy::RuleKind;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// `kind` label values come from requests; past this many distinct kinds new ones are
/// reported as `other`, so a hostile client cannot grow the series without bound.
const MAX_KINDS: usize = 128;

/// Why a request was answered without a decision (`jitguard_admission_rejected_total`).
const REJECTED_REASONS: [&str; 5] = [
    "bad_request",
    "too_large",
    "overloaded",
    "deadline",
    "internal",
];

/// The rules whose findings are counted (a patch is not a finding about the request).
const FINDING_RULES: [RuleKind; 4] = [
    RuleKind::Deny,
    RuleKind::Violation,
    RuleKind::RequireGrant,
    RuleKind::Warn,
];

/// The controller's counted steps (`jitguard_controller_actions_total`).
const CONTROLLER_ACTIONS: [&str; 3] = ["provision", "reap", "status"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub rejected: IntCounterVec,
    pub policy_errors: IntCounterVec,
    pub policy_findings: IntCounterVec,
    pub policy_reloads: IntCounterVec,
    pub policies_loaded: IntGauge,
    pub tls_reloads: IntCounterVec,
    pub queue_depth: IntGauge,
    pub grants_live: IntGauge,
    pub grant_uses: IntCounterVec,
    pub grant_cache_stale: IntGauge,
    pub grant_source_events: IntCounterVec,
    pub audit_errors: IntCounter,
    pub controller_leader: IntGauge,
    pub controller_actions: IntCounterVec,
    pub notifications: IntCounterVec,
    pub audit_findings: IntGaugeVec,
    kinds: Arc<RwLock<HashSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Fails only if a definition below is invalid, which the tests rule out.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "jitguard_admission_duration_seconds",
                "Time from a request's arrival to its answer, by webhook.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["webhook"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        let audit_errors = IntCounter::new(
            "jitguard_audit_write_errors_total",
            "Audit records that could not be written to --audit-file.",
        )?;
        registry.register(Box::new(audit_errors.clone()))?;
        let audit_findings = IntGaugeVec::new(
            Opts::new(
                "jitguard_audit_findings",
                "Findings (deny, violation, warn) of the last audit of the cluster's objects, by package and namespace (\"\" for cluster-scoped objects).",
            ),
            &["package", "namespace"],
        )?;
        registry.register(Box::new(audit_findings.clone()))?;
        Ok(Self {
            requests: counter(
                &registry,
                "jitguard_admission_requests_total",
                "AdmissionReviews decided, by webhook, operation, kind and decision (allow, warn, deny).",
                &["webhook", "operation", "kind", "decision"],
            )?,
            duration,
            rejected: counter(
                &registry,
                "jitguard_admission_rejected_total",
                "Requests answered without a decision: bad_request, too_large, overloaded, deadline.",
                &["reason"],
            )?,
            policy_errors: counter(
                &registry,
                "jitguard_policy_errors_total",
                "Evaluations in which a policy package could not decide (runtime error, time-out, broken contract).",
                &["package"],
            )?,
            policy_findings: counter(
                &registry,
                "jitguard_policy_findings_total",
                "Findings per package or Gatekeeper constraint, by rule (deny, violation, require_grant, warn), whether or not they were enforced.",
                &["package", "rule"],
            )?,
            policy_reloads: counter(
                &registry,
                "jitguard_policy_reloads_total",
                "Policy folder reloads, by result (success, error).",
                &["result"],
            )?,
            policies_loaded: gauge(
                &registry,
                "jitguard_policies_loaded",
                "Policy packages with contract rules in the serving snapshot.",
            )?,
            tls_reloads: counter(
                &registry,
                "jitguard_tls_reloads_total",
                "Serving certificate reloads, by result (success, error).",
                &["result"],
            )?,
            queue_depth: gauge(
                &registry,
                "jitguard_eval_queue_depth",
                "Requests waiting for an evaluation worker.",
            )?,
            grants_live: gauge(&registry, "jitguard_grants_live", "Grants live right now.")?,
            grant_uses: counter(
                &registry,
                "jitguard_grant_uses_total",
                "require_grant checks, by result (covered, not_covered, stale).",
                &["result"],
            )?,
            grant_cache_stale: gauge(
                &registry,
                "jitguard_grant_cache_stale",
                "1 while the grant source has been broken longer than the staleness bound.",
            )?,
            grant_source_events: counter(
                &registry,
                "jitguard_grant_source_updates_total",
                "Grant source updates, by result (ok, error).",
                &["result"],
            )?,
            audit_errors,
            controller_leader: gauge(
                &registry,
                "jitguard_controller_leader",
                "1 while this replica holds the controller's leader-election Lease.",
            )?,
            controller_actions: counter(
                &registry,
                "jitguard_controller_actions_total",
                "Controller steps on AccessRequests, by action (approve, lapse, expire, provision, reap, status) and result (ok, error).",
                &["action", "result"],
            )?,
            notifications: counter(
                &registry,
                "jitguard_notifications_total",
                "Notifications by sink, event and result (ok, retry: an attempt failed and is retried, failed: given up, dropped: the sink's queue was full).",
                &["sink", "event", "result"],
            )?,
            audit_findings,
            registry,
            kinds: Arc::new(RwLock::new(HashSet::new())),
        }
        .with_zero_series())
    }

    /// Every labelled series whose label values are known up front, at zero: dashboards
    /// and alerts (`increase(...) > 0`, ratios) need the series before the first event.
    fn with_zero_series(self) -> Self {
        for reason in REJECTED_REASONS {
            self.rejected.with_label_values(&[reason]);
        }
        for result in ["success", "error"] {
            self.policy_reloads.with_label_values(&[result]);
            self.tls_reloads.with_label_values(&[result]);
        }
        for result in ["ok", "error"] {
            self.grant_source_events.with_label_values(&[result]);
            for action in CONTROLLER_ACTIONS {
                self.controller_actions.with_label_values(&[action, result]);
            }
        }
        for result in ["covered", "not_covered", "stale"] {
            self.grant_uses.with_label_values(&[result]);
        }
        self
    }

    /// `jitguard_policy_errors_total` and `jitguard_policy_findings_total` at zero for each
    /// package and Gatekeeper constraint now served (at start-up and after each reload).
    pub fn known_packages<'a>(&self, packages: impl IntoIterator<Item = &'a str>) {
        for package in packages {
            self.policy_errors.with_label_values(&[package]);
            for rule in FINDING_RULES {
                self.policy_findings
                    .with_label_values(&[package, rule.name()]);
            }
        }
    }

    /// A `kind` label value that keeps the number of series bounded.
    pub fn kind_label<'a>(&self, kind: &'a str) -> &'a str {
        let plausible =
            !kind.is_empty() && kind.len() <= 63 && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !plausible {
            return "other";
        }
        if let Ok(kinds) = self.kinds.read() {
            if kinds.contains(kind) {
                return kind;
            }
        }
        match self.kinds.write() {
            Ok(mut kinds) if kinds.len() < MAX_KINDS => {
                kinds.insert(kind.to_string());
                kind
            }
            _ => "other",
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labelled_series_with_known_values_start_at_zero() {
        let m = Metrics::new().unwrap();
        m.known_packages(["jitguard.namespaces"]);
        let text = m.render();
        for series in [
            r#"jitguard_admission_rejected_total{reason="deadline"} 0"#,
            r#"jitguard_admission_rejected_total{reason="overloaded"} 0"#,
            r#"jitguard_policy_reloads_total{result="error"} 0"#,
            r#"jitguard_tls_reloads_total{result="error"} 0"#,
            r#"jitguard_grant_uses_total{result="stale"} 0"#,
            r#"jitguard_grant_source_updates_total{result="error"} 0"#,
            r#"jitguard_controller_actions_total{action="reap",result="error"} 0"#,
            r#"jitguard_policy_errors_total{package="jitguard.namespaces"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }

    #[test]
    fn every_series_is_registered_under_its_documented_name() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["validate", "CREATE", "Pod", "allow"])
            .inc();
        m.duration.with_label_values(&["validate"]).observe(0.001);
        m.rejected.with_label_values(&["overloaded"]).inc();
        m.policy_errors.with_label_values(&["p"]).inc();
        m.policy_reloads.with_label_values(&["success"]).inc();
        m.tls_reloads.with_label_values(&["success"]).inc();
        m.grant_uses.with_label_values(&["covered"]).inc();
        m.grant_source_events.with_label_values(&["ok"]).inc();
        let text = m.render();
        for name in [
            "jitguard_admission_requests_total",
            "jitguard_admission_duration_seconds_bucket",
            "jitguard_admission_rejected_total",
            "jitguard_policy_errors_total",
            "jitguard_policy_reloads_total",
            "jitguard_policies_loaded",
            "jitguard_tls_reloads_total",
            "jitguard_eval_queue_depth",
            "jitguard_grants_live",
            "jitguard_grant_uses_total",
            "jitguard_grant_cache_stale",
            "jitguard_grant_source_updates_total",
            "jitguard_audit_write_errors_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(!text.contains("invalid"), "{text}");
    }

    #[test]
    fn kind_labels_are_bounded() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.kind_label("Pod"), "Pod");
        assert_eq!(m.kind_label("Pod\"}"), "other");
        for i in 0..200 {
            let _ = m.kind_label(&format!("Kind{i}"));
        }
        assert_eq!(m.kind_label("Brandnew"), "other");
    }
}
