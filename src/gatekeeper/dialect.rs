//! Gatekeeper's Rego read as OPA reads it, where regorus 0.14 reads the same text
//! differently. Two constructs of gatekeeper-library's templates are affected; each is
//! rewritten into text both engines read alike, keeping every line number so that errors
//! still point at the template's own lines.
//!
//! - **A line opening with `(`.** OPA ends a term at a newline, so
//!   `input.parameters.spread` followed by a line `(a - b) >= 1` is two expressions.
//!   regorus reads it as a call of `input.parameters.spread`. A `;` is put after the
//!   term, which is what OPA's newline means there.
//! - **Several bodies of a partial set rule** (`violation[x] { a } { b }`). OPA reads
//!   each body as another definition with the same head; regorus refuses it ("else cannot
//!   be used with set rules"). The head is repeated before each further body, which is
//!   OPA's own definition of the shorthand (and is applied to any rule, where regorus
//!   would accept the shorthand, for one reading of it).
//!
//! - **`sprintf` with fewer arguments than verbs.** Go's fmt, which OPA's `sprintf` is,
//!   prints `%!v(MISSING)` for a verb without its argument; regorus raises an error. Where
//!   the format is a string literal and the arguments an array literal, so that the
//!   shortfall is known from the text, each verb past the last argument is written as the
//!   literal text Go prints for it (`%%!v(MISSING)`).
//!
//! The scan knows strings, raw strings and comments, so no rewrite touches them.

/// The template's Rego, rewritten as described in the module documentation.
pub fn as_opa_reads_it(source: &str) -> String {
    let bytes = source.as_bytes();
    // (byte offset, text) to insert, in increasing offset order.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    // (start, end, text) replacing a range, in increasing order.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut depth: usize = 0;
    // Last significant byte (not whitespace, not in a comment) and its offset.
    let mut last: Option<(usize, u8)> = None;
    let mut newline_since_last = false;
    // Start of the statement at depth 0 under way, and its first body's `{`.
    let mut statement: Option<usize> = None;
    let mut first_body: Option<usize> = None;
    // Offset of the `}` that closed a depth-0 body, while nothing but blanks follow it.
    let mut body_closed: Option<usize> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => {
                i = skip_to_line_end(bytes, i);
                continue;
            }
            b'\n' => newline_since_last = true,
            b' ' | b'\t' | b'\r' => {}
            _ => {
                // At depth 0, anything but a further body after a rule, or anything after a
                // finished line, begins the next statement.
                let rule_ended = body_closed.is_some() && b != b'{';
                if depth == 0 && (statement.is_none() || rule_ended) {
                    statement = Some(i);
                    first_body = None;
                }
                match b {
                    b'"' | b'`' => {
                        let end = skip_string(bytes, i);
                        if b == b'"' && follows_sprintf(bytes, last) {
                            if let Some(format) = missing_arguments(source, i, end) {
                                edits.push((i + 1, end - 1, format));
                            }
                        }
                        body_closed = None;
                        last = Some((end.saturating_sub(1), b));
                        newline_since_last = false;
                        i = end;
                        continue;
                    }
                    b'(' if newline_since_last && ends_possible_call(bytes, last) => {
                        if let Some((at, _)) = last {
                            inserts.push((at + 1, ";".into()));
                        }
                        depth += 1;
                    }
                    b'{' if depth == 0 => {
                        match (body_closed, statement, first_body) {
                            (Some(close), Some(start), Some(body)) => {
                                let head = head_text(source.get(start..body).unwrap_or(""));
                                inserts.push((close + 1, format!(" {head}")));
                            }
                            _ => {
                                // A `{` after `=` opens a value (`p = {"a": 1}`), not a body.
                                let is_value = matches!(last, Some((_, b'=')));
                                if !is_value && first_body.is_none() {
                                    first_body = Some(i);
                                }
                            }
                        }
                        depth += 1;
                    }
                    b'(' | b'[' | b'{' => depth += 1,
                    b'}' if depth == 1 => {
                        depth = 0;
                        last = Some((i, b));
                        newline_since_last = false;
                        body_closed = first_body.map(|_| i);
                        i += 1;
                        continue;
                    }
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                body_closed = None;
                last = Some((i, b));
                newline_since_last = false;
            }
        }
        // A new line at depth 0 after a finished rule starts the next statement.
        if b == b'\n' && depth == 0 && body_closed.is_none() {
            statement = None;
        }
        i += 1;
    }
    edits.extend(inserts.into_iter().map(|(at, text)| (at, at, text)));
    edits.sort_by_key(|(start, _, _)| *start);
    let mut out = String::with_capacity(source.len() + 64);
    let mut from = 0;
    for (start, end, text) in edits {
        if start < from {
            continue;
        }
        out.push_str(source.get(from..start).unwrap_or(""));
        out.push_str(&text);
        from = end;
    }
    out.push_str(source.get(from..).unwrap_or(""));
    out
}

/// Whether the significant text before a string is `sprintf(`.
fn follows_sprintf(bytes: &[u8], last: Option<(usize, u8)>) -> bool {
    let Some((at, b'(')) = last else {
        return false;
    };
    let name = b"sprintf";
    at >= name.len()
        && bytes.get(at - name.len()..at) == Some(name)
        && !(at > name.len()
            && bytes
                .get(at - name.len() - 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.'))
}

/// For `sprintf("format", [args...])` whose format string spans `start..end` (quotes
/// included): the format's text with each verb past the last argument written as what Go
/// prints for it, if there are such verbs and both are literals.
fn missing_arguments(source: &str, start: usize, end: usize) -> Option<String> {
    let bytes = source.as_bytes();
    let after = |mut j: usize| {
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        j
    };
    let comma = after(end);
    if bytes.get(comma) != Some(&b',') {
        return None;
    }
    let open = after(comma + 1);
    if bytes.get(open) != Some(&b'[') {
        return None;
    }
    let arguments = array_length(bytes, open)?;
    let format = source.get(start + 1..end.checked_sub(1)?)?;
    let verbs = go_verbs(format)?;
    if verbs.len() <= arguments {
        return None;
    }
    let mut out = String::new();
    let mut from = 0;
    for (at, until, verb) in verbs.into_iter().skip(arguments) {
        out.push_str(format.get(from..at)?);
        out.push_str(&format!("%%!{verb}(MISSING)"));
        from = until;
    }
    out.push_str(format.get(from..)?);
    Some(out)
}

/// The number of elements of the array literal opening at `open`; `None` if it is not
/// closed.
fn array_length(bytes: &[u8], open: usize) -> Option<usize> {
    let (mut depth, mut commas, mut any, mut trailing) = (0usize, 0usize, false, false);
    let mut j = open;
    while let Some(&c) = bytes.get(j) {
        match c {
            b'"' | b'`' => {
                j = skip_string(bytes, j);
                any = true;
                trailing = false;
                continue;
            }
            b'#' => {
                j = skip_to_line_end(bytes, j);
                continue;
            }
            b'[' | b'(' | b'{' => depth += 1,
            b']' | b')' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(if !any {
                        0
                    } else {
                        commas + 1 - usize::from(trailing)
                    });
                }
            }
            b',' if depth == 1 => {
                commas += 1;
                trailing = true;
                j += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                j += 1;
                continue;
            }
            _ => {}
        }
        if depth >= 1 && j != open {
            any = true;
            trailing = false;
        }
        j += 1;
    }
    None
}

/// Go fmt verbs of a format: `(start, end, verb letter)` each, `%%` excluded. `None` for
/// what this reading does not follow (`*` widths, explicit argument indexes).
fn go_verbs(format: &str) -> Option<Vec<(usize, usize, char)>> {
    let mut verbs = Vec::new();
    let mut chars = format.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek().is_some_and(|(_, n)| *n == '%') {
            chars.next();
            continue;
        }
        loop {
            match chars.next() {
                Some((_, '+' | '-' | '#' | ' ' | '0'..='9' | '.')) => {}
                Some((_, '*' | '[')) | None => return None,
                Some((i, verb)) => {
                    verbs.push((at, i + verb.len_utf8(), verb));
                    break;
                }
            }
        }
    }
    Some(verbs)
}

/// Whether the significant text before a `(` is a term regorus would call: a name or a
/// reference (`f`, `input.a.b`, `x["y"]`), not a keyword, number or operator.
fn ends_possible_call(bytes: &[u8], last: Option<(usize, u8)>) -> bool {
    let Some((at, b)) = last else {
        return false;
    };
    if b == b']' {
        return true;
    }
    if !(b.is_ascii_alphanumeric() || b == b'_') {
        return false;
    }
    let mut start = at;
    while start > 0
        && bytes
            .get(start - 1)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        start -= 1;
    }
    let word = std::str::from_utf8(bytes.get(start..=at).unwrap_or_default()).unwrap_or("");
    !word.starts_with(|c: char| c.is_ascii_digit()) && !KEYWORDS.contains(&word)
}

const KEYWORDS: &[&str] = &[
    "not", "some", "in", "with", "as", "else", "if", "contains", "every", "import", "package",
    "default", "true", "false", "null",
];

/// A rule head on one line, without comments, for repeating it before a further body.
fn head_text(head: &str) -> String {
    let bytes = head.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => i = skip_to_line_end(bytes, i),
            b'"' | b'`' => {
                let end = skip_string(bytes, i);
                out.push_str(head.get(i..end).unwrap_or(""));
                i = end;
            }
            b'\n' | b'\r' | b'\t' => {
                out.push(' ');
                i += 1;
            }
            _ => {
                let next = (i + 1..=bytes.len())
                    .find(|&j| head.is_char_boundary(j))
                    .unwrap_or(bytes.len());
                out.push_str(head.get(i..next).unwrap_or(""));
                i = next;
            }
        }
    }
    out.trim().to_string()
}

fn skip_to_line_end(bytes: &[u8], from: usize) -> usize {
    (from..bytes.len())
        .find(|&j| bytes.get(j) == Some(&b'\n'))
        .unwrap_or(bytes.len())
}

/// The offset just past the string starting at `from` (`"..."` with escapes, or a raw
/// `` `...` ``); the end of the text if it is not closed.
fn skip_string(bytes: &[u8], from: usize) -> usize {
    let quote = bytes.get(from).copied().unwrap_or(b'"');
    let mut j = from + 1;
    while let Some(&c) = bytes.get(j) {
        if c == b'\\' && quote == b'"' {
            j += 2;
            continue;
        }
        if c == quote {
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::as_opa_reads_it;

    #[test]
    fn a_line_opening_with_a_parenthesis_is_a_new_expression() {
        let src = "package p\nr {\n  input.a\n  (input.b - 1) > 0\n}\n";
        assert_eq!(
            as_opa_reads_it(src),
            "package p\nr {\n  input.a;\n  (input.b - 1) > 0\n}\n"
        );
    }

    #[test]
    fn calls_operators_numbers_keywords_strings_and_comments_are_left_alone() {
        for src in [
            "package p\nr { f(1) }\n",
            "package p\nr { x := 1 +\n  (2) }\n",
            "package p\nr { x := [1,\n  (2)] }\n",
            "package p\nr { not\n  (x) }\n",
            "package p\nr { x := 5\n  (2) }\n",
            "package p\nr { x := \"a\n(b\" }\n",
            "package p\nr { x # f\n  == 1 }\n",
            "package p\nr { true } # } {\n",
        ] {
            assert_eq!(as_opa_reads_it(src), src, "{src}");
        }
    }

    #[test]
    fn further_bodies_of_a_rule_repeat_its_head_on_the_same_line() {
        let src = "package p\nviolation[{\"msg\": m}] {\n  m := \"a\"\n} {\n  m := \"b\"\n}\n";
        assert_eq!(
            as_opa_reads_it(src),
            "package p\nviolation[{\"msg\": m}] {\n  m := \"a\"\n} violation[{\"msg\": m}] {\n  m := \"b\"\n}\n"
        );
        let multiline =
            "package p\n# about\nv[{\"msg\": m, # why\n  \"d\": 1}] { m := 1 } { m := 2 }\n";
        assert_eq!(
            as_opa_reads_it(multiline),
            "package p\n# about\nv[{\"msg\": m, # why\n  \"d\": 1}] { m := 1 } v[{\"msg\": m,    \"d\": 1}] { m := 2 }\n"
        );
    }

    #[test]
    fn a_verb_without_its_argument_is_printed_as_go_prints_it() {
        let src = "package p\nm := sprintf(\"%v <%v> %d%% of %5.1f\", [a, [1, 2]])\n";
        assert_eq!(
            as_opa_reads_it(src),
            "package p\nm := sprintf(\"%v <%v> %%!d(MISSING)%% of %%!f(MISSING)\", [a, [1, 2]])\n"
        );
        for enough in [
            "package p\nm := sprintf(\"%v %v\", [a, \"x,y\"])\n",
            "package p\nm := sprintf(\"%v\", args)\n",
            "package p\nm := sprintf(\"%v %v\", [f(a, b), c,])\n",
            "package p\nm := my_sprintf(\"%v %v\", [a])\n",
        ] {
            assert_eq!(as_opa_reads_it(enough), enough, "{enough}");
        }
        assert_eq!(
            as_opa_reads_it("package p\nm := sprintf(\"%v\", [])\n"),
            "package p\nm := sprintf(\"%%!v(MISSING)\", [])\n"
        );
    }

    #[test]
    fn a_value_in_braces_is_not_a_body_and_else_is_not_a_further_body() {
        for src in [
            "package p\nx = {\"a\": 1} { true }\n",
            "package p\nf(x) = 1 { x } else = 2 { true }\n",
            "package p\nx = {\"a\": 1}\ny { true }\n",
        ] {
            assert_eq!(as_opa_reads_it(src), src, "{src}");
        }
    }
}
