//! `-o yaml` as kubectl prints it. kubectl turns objects into YAML with go-yaml v2, whose
//! layout users (and their scripts) know: strings that would read back as something else
//! (`"80"`, `"true"`, `"2026-11-23T12:00:00Z"`, `""`) in double quotes, strings that cannot
//! be plain (`'*'`, `'a: b'`) in single quotes, multi-line strings as `|` blocks, long
//! strings folded at 80 columns, and sequences in a mapping not indented.

use serde_json::{Map, Value};

/// go-yaml's preferred line width: plain and quoted strings fold at a space past it.
const WIDTH: usize = 80;

/// The YAML document for `value`, ending with a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0, false),
        scalar => {
            inline(&mut out, scalar, 2);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A mapping at `indent`; `inline`: its first key goes on the current line (after `- `).
fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        scalar_string(out, key, indent + 2, false);
        out.push(':');
        child(out, value, indent, true);
    }
}

/// A sequence at `indent`; `inline`: its first item goes on the current line.
fn sequence(out: &mut String, items: &[Value], indent: usize, inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        out.push('-');
        child(out, item, indent, false);
    }
}

/// What follows `key:` (`in_map`) or `-`, for a node whose parent is at `indent`.
fn child(out: &mut String, value: &Value, indent: usize, in_map: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if in_map {
                out.push('\n');
                mapping(out, map, indent + 2, false);
            } else {
                out.push(' ');
                mapping(out, map, indent + 2, true);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if in_map {
                // go-yaml v2 does not indent a sequence under its key.
                out.push('\n');
                sequence(out, items, indent, false);
            } else {
                out.push(' ');
                sequence(out, items, indent + 2, true);
            }
        }
        scalar => {
            out.push(' ');
            inline(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

/// A scalar (or an empty collection) on the current line; `indent` is where folded and
/// block lines go.
fn inline(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => scalar_string(out, s, indent, true),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Numbers as Go prints what JSON decoding gave it: integers as they are, a float with
/// no fraction as an integer.
fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e21 => {
            format!("{f:.0}")
        }
        _ => n.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// go-yaml v2's choice for a string: a `|` block for several lines, double quotes for what
/// would read back as another type (or holds characters only escapes can carry), plain
/// when the text cannot be misread as YAML syntax, else single quotes.
fn style(s: &str) -> Style {
    let special = s
        .chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}');
    if special {
        return Style::Double;
    }
    if s.contains('\n') {
        let trailing_space = s.split('\n').any(|line| line.ends_with(' '));
        return if trailing_space {
            Style::Double
        } else {
            Style::Literal
        };
    }
    if s.is_empty() || !resolves_to_string(s) {
        return Style::Double;
    }
    if plain_allowed(s) {
        Style::Plain
    } else {
        Style::Single
    }
}

/// Whether a plain scalar `s` reads back as a string (not null, a bool, a number or a
/// timestamp) under go-yaml v2's resolver.
fn resolves_to_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if !"+-.0123456789".contains(first) {
        return true;
    }
    !(is_int(s) || is_float(s) || is_timestamp(s) || is_base60(s))
}

fn is_int(s: &str) -> bool {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    let digits = plain.trim_start_matches(['+', '-']);
    if plain.len() - digits.len() > 1 {
        return false;
    }
    let (body, radix) = match digits.get(..2) {
        Some("0x" | "0X") => (&digits[2..], 16),
        Some("0o" | "0O") => (&digits[2..], 8),
        Some("0b" | "0B") => (&digits[2..], 2),
        _ => (digits, 10),
    };
    !body.is_empty() && body.chars().all(|c| c.is_digit(radix))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// go-yaml's timestamp forms: `2006-1-2`, and that with `T`, `t` or a space and a time.
fn is_timestamp(s: &str) -> bool {
    let date_end = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let parts: Vec<&str> = s[..date_end].split('-').collect();
    let number = |t: &str, min: usize, max: usize| {
        (min..=max).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit())
    };
    let date = parts.len() == 3
        && number(parts[0], 4, 4)
        && number(parts[1], 1, 2)
        && number(parts[2], 1, 2);
    if !date || date_end == s.len() {
        return date;
    }
    let time = &s[date_end + 1..];
    let clock_end = time
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(time.len());
    let clock: Vec<&str> = time[..clock_end]
        .split('.')
        .next()
        .unwrap_or("")
        .split(':')
        .collect();
    let zone = &time[clock_end..];
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && zone.starts_with(['+', '-'])
            && zone[1..3].chars().all(|c| c.is_ascii_digit())
            && &zone[3..4] == ":"
            && zone[4..].chars().all(|c| c.is_ascii_digit()));
    clock.len() == 3 && clock.iter().all(|p| number(p, 1, 2)) && zone_ok
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1 sexagesimal numbers).
fn is_base60(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = whole.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    let sixty = |p: &&str| {
        (1..=2).contains(&p.len())
            && p.chars().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || p.as_bytes()[0] <= b'5')
    };
    head_ok
        && !rest.is_empty()
        && rest.iter().all(sixty)
        && fraction.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Whether go-yaml's emitter may write `s` plain in block context.
fn plain_allowed(s: &str) -> bool {
    let bytes = s.as_bytes();
    let first = bytes[0];
    let next_is_blank = bytes.get(1).is_none_or(|b| *b == b' ');
    if b"#,[]{}&*!|>'\"%@`".contains(&first) || (b"-?:".contains(&first) && next_is_blank) {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #"))
}

/// The current column of `out`'s last line, in characters.
fn column(out: &str) -> usize {
    let line = out.rsplit_once('\n').map_or(out, |(_, line)| line);
    line.chars().count()
}

/// Writes `s` in its [`style`]; `fold`: a value (keys never fold), whose folded and block
/// lines go at `indent`.
fn scalar_string(out: &mut String, s: &str, indent: usize, fold: bool) {
    match style(s) {
        Style::Literal => literal(out, s, indent),
        Style::Plain => folded(out, s, indent, fold, None),
        Style::Single => {
            out.push('\'');
            folded(out, &s.replace('\'', "''"), indent, fold, None);
            out.push('\'');
        }
        Style::Double => {
            out.push('"');
            folded(out, &escape(s), indent, fold, Some('\\'));
            out.push('"');
        }
    }
}

/// Writes `s`, breaking the line at a single space once past [`WIDTH`] (when `fold`), as
/// go-yaml does; in double quotes a space after the break is kept by an escape.
fn folded(out: &mut String, s: &str, indent: usize, fold: bool, escape: Option<char>) {
    let chars: Vec<char> = s.chars().collect();
    let mut col = column(out);
    let mut after_space = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            let inner = i > 0 && i + 1 < chars.len();
            let breakable = match escape {
                Some(_) => inner,
                None => inner && !next_space,
            };
            if fold && !after_space && col > WIDTH && breakable {
                out.push('\n');
                pad(out, indent);
                col = indent;
                if let (Some(e), true) = (escape, next_space) {
                    out.push(e);
                    col += 1;
                }
            } else {
                out.push(c);
                col += 1;
            }
            after_space = true;
        } else {
            out.push(c);
            col += 1;
            after_space = false;
        }
    }
}

/// Double-quoted escapes: quotes, backslashes and control characters.
fn escape(s: &str) -> String {
    let mut escaped = String::new();
    for c in s.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            '\0' => escaped.push_str("\\0"),
            c if c.is_control() || c == '\u{feff}' => {
                let code = c as u32;
                if code <= 0xff {
                    escaped.push_str(&format!("\\x{code:02X}"));
                } else {
                    escaped.push_str(&format!("\\u{code:04X}"));
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// A `|` block: `|-` without a final newline, `|+` with several, an indentation indicator
/// when the text starts with a space.
fn literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with(' ') {
        out.push('2');
    }
    let body = s.trim_end_matches('\n');
    match s.len() - body.len() {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    let mut lines: Vec<&str> = body.split('\n').collect();
    // Keep-chomping: the extra newlines are empty lines of the block.
    lines.extend(std::iter::repeat_n(
        "",
        (s.len() - body.len()).saturating_sub(1),
    ));
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_are_quoted_as_kubectl_quotes_them() {
        let object = json!({
            "metadata": {
                "name": "web",
                "creationTimestamp": "2026-11-23T11:57:00Z",
                "labels": {"port": "80", "on": "true", "empty": "", "star": "*",
                           "colon": "a: b", "version": "1.10", "time": "10:30", "plain": "a-b_c.d",
                           "quote": "it's"},
                "annotations": {"multi": "line one\nline two\n", "nonl": "a\nb", "tab": "a\tb"}
            },
            "spec": {"replicas": 3, "paused": false, "ports": [{"containerPort": 80}],
                     "empty": [], "none": {}, "args": ["-f", "- x", "null"]}
        });
        assert_eq!(
            to_string(&object),
            "\
metadata:
  annotations:
    multi: |
      line one
      line two
    nonl: |-
      a
      b
    tab: \"a\\tb\"
  creationTimestamp: \"2026-11-23T11:57:00Z\"
  labels:
    colon: 'a: b'
    empty: \"\"
    \"on\": \"true\"
    plain: a-b_c.d
    port: \"80\"
    quote: it's
    star: '*'
    time: \"10:30\"
    version: \"1.10\"
  name: web
spec:
  args:
  - -f
  - '- x'
  - \"null\"
  empty: []
  none: {}
  paused: false
  ports:
  - containerPort: 80
  replicas: 3
"
        );
    }

    #[test]
    fn long_strings_fold_at_eighty_columns() {
        let message = "0/2 nodes are available to run the pod because one node had an untolerated taint and another one was unschedulable";
        assert_eq!(
            to_string(&json!({"status": {"message": message}})),
            "status:\n  message: 0/2 nodes are available to run the pod because one node had an untolerated\n    taint and another one was unschedulable\n"
        );
        // Single quotes (the text holds ": ") fold the same way; keys never fold.
        let quoted = format!("why: {message}");
        assert_eq!(
            to_string(&json!({"m": quoted})),
            "m: 'why: 0/2 nodes are available to run the pod because one node had an untolerated\n  taint and another one was unschedulable'\n"
        );
    }

    #[test]
    fn scalars_resolve_as_go_yaml_resolves_them() {
        for other in [
            "1",
            "-1",
            "0x1F",
            "1_000",
            "1.5",
            ".5",
            "1e3",
            "2026-01-02",
            "1:20",
            "yes",
            "~",
        ] {
            assert!(!resolves_to_string(other), "{other}");
        }
        for string in [
            "web",
            "1.2.3",
            "v1",
            "-",
            "10.244.0.0/24",
            "2026-01-02x",
            "1:60",
        ] {
            assert!(resolves_to_string(string), "{string}");
        }
    }
}
