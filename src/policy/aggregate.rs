//! The generated module that evaluates every package in one go.
//!
//! `findings` holds one object per package with its contract rules, so that one
//! evaluation answers for every package. The objects are written inline because every
//! rule regorus evaluates costs some 20 000 instructions of bookkeeping. `p{i}` repeats
//! each one as a rule for the package-by-package fallback (`evaluate_each`), which
//! attributes an error to the package that raised it. `m{mask}` are `findings` for the
//! requests that concern only some packages (see `relevance`): the others are replaced by
//! what they would have answered, nothing (and their `enforcement`, which is still
//! evaluated: it is part of the answer and may fail).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::relevance::Mask;
use super::{PackageInfo, ACCESS_RULES, AGGREGATE_PACKAGE, FINDING_RULES};

/// The module's text, and the name of the rule to evaluate for each mask in `masks`
/// (the mask of every package is `findings`, and is not listed).
pub(super) fn module(
    packages: &[PackageInfo],
    access: Option<&PackageInfo>,
    masks: &BTreeSet<Mask>,
) -> (String, BTreeMap<Mask, String>) {
    let mut rego = format!("package {AGGREGATE_PACKAGE}\n\n");
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for (i, pkg) in packages.iter().enumerate() {
        let mut fields = Vec::new();
        for kind in FINDING_RULES {
            if pkg.declares(kind.name()) {
                fields.push(format!("\"{0}\": {1}.{0}", kind.name(), pkg.reference));
            }
        }
        if pkg.declares("enforcement") {
            fields.push(format!("\"enforcement\": e{i}"));
            skipped.push(format!("{{\"enforcement\": e{i}}}"));
            let _ = writeln!(rego, "default e{i} := \"deny\"");
            let _ = writeln!(rego, "e{i} := {}.enforcement", pkg.reference);
        } else {
            skipped.push("{}".to_string());
        }
        let object = format!("{{{}}}", fields.join(", "));
        let _ = writeln!(rego, "p{i} := {object}\n");
        objects.push(object);
    }
    let _ = writeln!(rego, "findings := [\n\t{},\n]\n", objects.join(",\n\t"));
    let all: Mask = u32::try_from(objects.len())
        .ok()
        .and_then(|n| 1u64.checked_shl(n))
        .map_or(Mask::MAX, |bit| bit - 1);
    let mut names = BTreeMap::new();
    for &mask in masks.iter().filter(|&&m| m != all) {
        let items: Vec<&str> = objects
            .iter()
            .zip(&skipped)
            .enumerate()
            .map(|(i, (object, skipped))| {
                if mask & (1 << i) != 0 {
                    object.as_str()
                } else {
                    skipped.as_str()
                }
            })
            .collect();
        let _ = writeln!(rego, "m{mask:x} := [\n\t{},\n]\n", items.join(",\n\t"));
        names.insert(mask, format!("data.{AGGREGATE_PACKAGE}.m{mask:x}"));
    }
    if let Some(access) = access {
        // Workflow parameters, each `null` where the policy leaves it undefined.
        let mut fields = Vec::new();
        for rule in ACCESS_RULES.iter().filter(|r| access.declares(r)) {
            let _ = writeln!(rego, "default a_{rule} := null");
            let _ = writeln!(rego, "a_{rule} := {}.{rule}", access.reference);
            fields.push(format!("\"{rule}\": a_{rule}"));
        }
        let _ = writeln!(rego, "\naccess := {{{}}}", fields.join(", "));
    }
    (rego, names)
}

/// `data.a.b`, with brackets only for components that are not identifiers. Dot notation
/// matters: regorus resolves `data.a.b.deny` to the rule directly, while a bracketed
/// `data["a"]` evaluates every rule under `data.a` first.
pub(crate) fn reference(components: &[String]) -> String {
    let mut out = String::from("data");
    for c in components {
        let identifier = c
            .chars()
            .next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if identifier {
            let _ = write!(out, ".{c}");
        } else {
            // serde_json's string escaping is valid Rego string syntax.
            let quoted = serde_json::to_string(c).unwrap_or_else(|_| format!("{c:?}"));
            let _ = write!(out, "[{quoted}]");
        }
    }
    out
}
