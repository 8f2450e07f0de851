//! What each kind of sink receives for a [`Notice`]: a Slack-compatible incoming-webhook
//! message, or a CloudEvent in structured mode (the generic JSON webhook). Pure.

use serde_json::{json, Value};

use super::{Kind, Notice};

/// The CloudEvents `type` prefix; the event name follows (`...accessrequest.requested`).
pub const EVENT_TYPE_PREFIX: &str = "dev.jitguard.accessrequest.";
/// The CloudEvents `source` of every notice.
pub const SOURCE: &str = "jitguard.dev/controller";
/// The media type of a structured-mode CloudEvent.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// A CloudEvents 1.0 event in structured mode: the attributes, and the notice as `data`.
/// Its `id` is the same for the same event whichever replica sends it, as the spec asks
/// of a retry (`source` + `id` identify an event).
pub fn cloudevent(notice: &Notice) -> Value {
    json!({
        "specversion": "1.0",
        "id": notice.id,
        "source": SOURCE,
        "type": format!("{EVENT_TYPE_PREFIX}{}", notice.event.as_str()),
        "subject": notice.request,
        "time": notice.time.to_string(),
        "datacontenttype": "application/json",
        "data": notice,
    })
}

/// A Slack incoming-webhook message: `text` (notifications and clients without blocks)
/// and `blocks`. What people wrote (reason, comment) is escaped, so that a reason cannot
/// mention `@channel` or forge a link; break-glass alone mentions `@here`, on purpose.
pub fn slack(notice: &Notice) -> Value {
    let loud = notice.event == Kind::BreakGlass;
    let headline = format!(
        "{}{}",
        if loud { ":rotating_light: " } else { "" },
        escape(&notice.summary)
    );
    let mut text = format!("{}{headline}", if loud { "<!here> " } else { "" });
    let mut fields = vec![
        field("Request", &notice.request),
        field("Requester", &notice.requester),
        field("Duration", &notice.duration),
        field("Phase", &notice.phase),
    ];
    if let Some(ticket) = &notice.ticket {
        fields.push(field("Ticket", ticket));
    }
    if let Some(group) = &notice.group {
        fields.push(field("For group", group));
    }
    if let Some(needs) = &notice.needs {
        if notice.event == Kind::Requested {
            fields.push(field("Approval needs", needs));
        }
    }
    if let Some(by) = &notice.by {
        fields.push(field("By", by));
    }
    if let Some(until) = &notice.expires_at {
        fields.push(field("Ends", &until.to_string()));
    }
    // Slack shows at most 10 fields in a section.
    fields.truncate(10);
    let mut details = format!("*Reason:* {}", escape(&notice.reason));
    if let Some(comment) = &notice.comment {
        details.push_str(&format!("\n*Comment:* {}", escape(comment)));
    }
    details.push_str("\n*Scope:*");
    for rule in &notice.scope {
        details.push_str(&format!("\n• {}", escape(rule)));
    }
    let commands = notice.commands.join("\n");
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": headline}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": details}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", escape(&commands))}}),
    ];
    if let Some(page) = &notice.page {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open the request"},
            "url": page,
        }]}));
        text.push_str(&format!(" <{}|open>", escape(page)));
    }
    if let Some(first) = notice.commands.first() {
        text.push_str(&format!("\n`{}`", escape(first)));
    }
    json!({"text": text, "blocks": blocks})
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(value))})
}

/// Slack's three control characters in message text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use jiff::Timestamp;

    fn notice(event: Kind, reason: &str) -> Notice {
        let time: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        Notice {
            id: format!("u-1/{}", event.as_str()),
            event,
            summary: format!("alice asks for 30m of access: {reason}"),
            request: "fix-db".into(),
            requester: "alice".into(),
            group: None,
            reason: reason.into(),
            ticket: Some("INC-1".into()),
            scope: vec!["UPDATE deployments (apps) in prod".into()],
            duration: "30m".into(),
            break_glass: event == Kind::BreakGlass,
            phase: "Pending".into(),
            needs: Some("1 of lead (leads)".into()),
            by: None,
            comment: None,
            expires_at: None,
            commands: vec!["kubectl jit approve fix-db".into()],
            page: Some("http://127.0.0.1:8765/requests/fix-db".into()),
            time,
        }
    }

    #[test]
    fn a_cloudevent_carries_the_notice_with_a_stable_id() {
        let event = cloudevent(&notice(Kind::Requested, "disk full"));
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], "u-1/requested");
        assert_eq!(event["type"], "dev.jitguard.accessrequest.requested");
        assert_eq!(event["subject"], "fix-db");
        assert_eq!(event["time"], "2026-12-01T10:00:00Z");
        assert_eq!(event["data"]["event"], "requested");
        assert_eq!(event["data"]["needs"], "1 of lead (leads)");
        assert_eq!(event["data"]["commands"][0], "kubectl jit approve fix-db");
    }

    #[test]
    fn slack_text_escapes_what_people_wrote_and_only_break_glass_is_loud() {
        let message = slack(&notice(Kind::Requested, "<!channel> see <http://x|here>"));
        let all = message.to_string();
        assert!(!all.contains("<!channel>"), "{all}");
        assert!(all.contains("&lt;!channel&gt;"), "{all}");
        assert!(!message["text"].as_str().unwrap().contains("<!here>"));
        assert!(message["text"]
            .as_str()
            .unwrap()
            .contains("`kubectl jit approve fix-db`"));
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.last().unwrap()["elements"][0]["url"],
            "http://127.0.0.1:8765/requests/fix-db"
        );
        assert!(
            all.contains("*Approval needs*\\n1 of lead (leads)"),
            "{all}"
        );

        let glass = slack(&notice(Kind::BreakGlass, "db down"));
        assert!(glass["text"].as_str().unwrap().starts_with("<!here> "));
    }
}
