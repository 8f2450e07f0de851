//! Text helpers for what people and the API server read: limits counted in characters
//! or bytes, and multi-line errors made into one line.

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

#[cfg(test)]
mod tests {
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
}
