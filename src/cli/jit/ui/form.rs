//! The request form, with its scope builder: one scope rule from the fields, previewed as
//! `kubectl jit show` prints it (app.js keeps the preview up to date as the form changes).

use std::fmt::Write as _;

use super::page::{csrf, esc, layout, Viewer};
use crate::grant::AccessRequest;

/// What the request form starts with (from the query string, so that a link can open it
/// filled in).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Draft {
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "apiGroup")]
    pub api_group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub operation: Vec<String>,
    #[serde(default)]
    pub names: String,
    #[serde(default)]
    pub duration: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub ticket: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub group: String,
    #[serde(default, rename = "breakGlass")]
    pub break_glass: String,
}

/// The request form with its scope builder (a live preview of the rule it asks for).
pub fn new_form(
    viewer: &Viewer<'_>,
    all: &[AccessRequest],
    draft: &Draft,
    error: Option<&str>,
) -> String {
    let mut body = String::new();
    if let Some(text) = error {
        let _ = write!(body, r#"<p class="error" role="alert">{}</p>"#, esc(text));
    }
    let checked = |op: &str| {
        if draft.operation.iter().any(|o| o == op) {
            " checked"
        } else {
            ""
        }
    };
    let duration = if draft.duration.is_empty() {
        crate::grant::SUGGESTED_DURATION
    } else {
        &draft.duration
    };
    let _ = write!(
        body,
        r#"<form id="request" method="post" action="/requests">{csrf}
<fieldset><legend>Scope</legend>
<label>Namespaces <input name="namespace" value="{namespace}" placeholder="prod, staging (empty: cluster-scoped)"></label>
<label>API group <input name="apiGroup" value="{group}" list="groups" placeholder="empty: core"></label>
<label>Resources <input name="resource" value="{resource}" list="resources" required placeholder="configmaps, pods/exec"></label>
<div class="ops">Operations
<label><input type="checkbox" name="operation" value="CREATE"{c}> CREATE</label>
<label><input type="checkbox" name="operation" value="UPDATE"{u}> UPDATE</label>
<label><input type="checkbox" name="operation" value="DELETE"{d}> DELETE</label>
<label><input type="checkbox" name="operation" value="CONNECT"{x}> CONNECT</label></div>
<label>Object names <input name="names" value="{names}" placeholder="empty: all"></label>
<p class="preview">Asks for: <output id="scope-preview">{preview}</output></p>
</fieldset>
<fieldset><legend>Why and how long</legend>
<label>Duration <input name="duration" value="{duration}" list="durations" required></label>
<label>Reason <textarea name="reason" required>{reason}</textarea></label>
<label>Ticket <input name="ticket" value="{ticket}" placeholder="INC-123 (protected namespaces need one)"></label>
<label>Role to bind while live <input name="role" value="{role}" list="roles" placeholder="ClusterRole/view"></label>
<label>For a group of yours <input name="group" value="{for_group}" placeholder="empty: for you alone"></label>
<label class="glass"><input type="checkbox" name="breakGlass" value="on"{glass}> Break-glass: live at once without approval (on-call only, loudly audited)</label>
</fieldset>
<button class="submit" type="submit">Ask for access</button>
</form>
<datalist id="groups"><option value="apps"><option value="batch"><option value="networking.k8s.io"><option value="rbac.authorization.k8s.io"></datalist>
<datalist id="resources"><option value="configmaps"><option value="secrets"><option value="deployments"><option value="pods/exec"><option value="pods/portforward"><option value="ingresses"><option value="networkpolicies"></datalist>
<datalist id="durations"><option value="15m"><option value="30m"><option value="1h"><option value="2h"><option value="4h"></datalist>
<datalist id="roles"><option value="ClusterRole/view"><option value="ClusterRole/edit"></datalist>"#,
        csrf = csrf(viewer),
        namespace = esc(&draft.namespace),
        group = esc(&draft.api_group),
        resource = esc(&draft.resource),
        c = checked("CREATE"),
        u = checked("UPDATE"),
        d = checked("DELETE"),
        x = checked("CONNECT"),
        names = esc(&draft.names),
        preview = esc(&preview(draft)),
        duration = esc(duration),
        reason = esc(&draft.reason),
        ticket = esc(&draft.ticket),
        role = esc(&draft.role),
        for_group = esc(&draft.group),
        glass = if draft.break_glass == "on" {
            " checked"
        } else {
            ""
        },
    );
    layout("New request", viewer, all, &body)
}

/// The scope rule a draft asks for, as `kubectl jit show` prints it.
pub fn preview(draft: &Draft) -> String {
    rule(draft).summary()
}

/// Comma- or space-separated values.
pub fn list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub fn rule(draft: &Draft) -> crate::grant::resource::ScopeRule {
    let operations = if draft.operation.is_empty() {
        vec!["*".to_string()]
    } else {
        draft.operation.clone()
    };
    crate::grant::resource::ScopeRule {
        operations,
        api_groups: vec![draft.api_group.trim().to_string()],
        resources: list(&draft.resource),
        namespaces: list(&draft.namespace),
        names: list(&draft.names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer<'a>(user: &'a str, groups: &'a [String]) -> Viewer<'a> {
        Viewer {
            user,
            groups,
            now: "2026-12-01T10:10:00Z".parse().unwrap_or_default(),
            csrf: "tok",
        }
    }

    #[test]
    fn the_form_builds_one_scope_rule_and_keeps_what_was_typed() {
        let draft = Draft {
            namespace: "prod, staging".into(),
            resource: "configmaps".into(),
            operation: vec!["CREATE".into(), "UPDATE".into()],
            reason: "a \"quoted\" reason".into(),
            ..Draft::default()
        };
        assert_eq!(
            preview(&draft),
            "CREATE,UPDATE configmaps (core) in prod,staging"
        );
        let none: Vec<String> = Vec::new();
        let page = new_form(&viewer("alice", &none), &[], &draft, Some("refused: <why>"));
        assert!(page.contains(r#"value="CREATE" checked"#));
        assert!(!page.contains(r#"value="DELETE" checked"#));
        assert!(page.contains("a &quot;quoted&quot; reason"));
        assert!(page.contains("refused: &lt;why&gt;"));
        assert!(!page.contains("<script>"), "no inline script");
    }
}
