//! Text helpers: limits counted in characters or bytes (what the API server accepts),
//! multi-line errors made into one line, and multi-document YAML split with its errors
//! placed in the whole file.

/// The longest prefix of `text` of at most `max` bytes that ends on a character
/// boundary (for limits the API server counts in bytes: Event notes, name prefixes).
pub fn prefix_within(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Cuts to at most `limit` characters (not bytes), marking the cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// regorus errors span several lines (a source excerpt with a caret); logs, metrics and
/// AdmissionResponse messages want one.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "|")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for HTML or XML content and attribute values: the five markup characters as
/// entities, and control characters XML 1.0 cannot carry even escaped as U+FFFD.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A YAML error as (line within the document, 0-based; message). The message loses
/// the parser's own "at line N column M", which counts within the document: callers add
/// the line within the whole file, and two different line numbers on one error mislead.
pub fn yaml_error(e: &yaml_serde::Error) -> (usize, String) {
    let line = e
        .location()
        .map(|l| l.line().saturating_sub(1))
        .unwrap_or(0);
    let text = e.to_string();
    let message = match e.location() {
        Some(l) => text.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        ),
        None => text,
    };
    (line, message)
}

/// Reads a one-document YAML file (a test suite) into `T`; the error names the file
/// and line, or why it cannot be read.
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    yaml_serde::from_str(&text).map_err(|e| {
        let (line, message) = yaml_error(&e);
        format!("{}:{}: {message}", path.display(), line + 1)
    })
}

/// Splits a multi-document YAML text at `---` lines: (1-based first line, text). Empty
/// documents are dropped.
pub fn yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let is_separator = line.starts_with("---")
            && line
                .get(3..)
                .is_some_and(|rest| rest.trim().is_empty() || rest.starts_with(' '));
        if is_separator {
            docs.push((start_line, text.get(start_byte..offset).unwrap_or("")));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, text.get(start_byte..).unwrap_or("")));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// regorus reports `--> file:line:col`, the source line with a caret, then
/// `error: message`: this puts the location and message first, on one line
/// (`policies/x.rego:3:5: message`), and keeps the excerpt below.
pub fn format_rego_error(raw: &str) -> String {
    let mut location = None;
    let mut message = None;
    let mut excerpt = Vec::new();
    for line in raw.lines() {
        if let Some(loc) = line.trim_start().strip_prefix("--> ") {
            location = Some(loc.trim().to_string());
        } else if let Some(msg) = line.strip_prefix("error: ") {
            message = Some(msg.trim().to_string());
        } else if location.is_some() && message.is_none() && line.contains('|') {
            excerpt.push(line.to_string());
        }
    }
    match (location, message) {
        (Some(location), Some(message)) => {
            let mut out = format!("{location}: {message}");
            for line in excerpt.iter().filter(|l| l.trim() != "|") {
                out.push('\n');
                out.push_str(line);
            }
            out
        }
        _ => raw.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        let long = "é".repeat(300);
        let t = truncate(&long, 120);
        assert_eq!(t.chars().count(), 120);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 120), "short");
    }

    #[test]
    fn prefix_within_never_splits_a_character() {
        assert_eq!(prefix_within("aé", 2), "a");
        assert_eq!(prefix_within("aé", 3), "aé");
        assert_eq!(prefix_within("", 5), "");
    }

    #[test]
    fn one_line_drops_blank_lines_and_carets_gutters() {
        assert_eq!(one_line("error:\n  |\n  x := 1\n\n"), "error: x := 1");
    }

    #[test]
    fn the_message_carries_no_line_of_its_own() {
        let e = yaml_serde::from_str::<serde_json::Value>("a: 1\nb: [\n").unwrap_err();
        let (line, message) = yaml_error(&e);
        assert!(line >= 1, "{line}");
        assert!(!message.contains("at line"), "{message}");
        assert!(!message.is_empty());
    }
}
