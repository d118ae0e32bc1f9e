//! kubectl's `-o jsonpath=TEMPLATE` and `-o custom-columns=SPEC` output formats, as pure
//! functions over `serde_json::Value` (no I/O).
//!
//! The JSONPath dialect is kubectl's (client-go `util/jsonpath`): literal text outside `{}`;
//! inside `{}` a path (`.a.b`, `['a.b']`, `a\.b`, `[n]`, `[-1]`, `[*]`, `.*`, `[n:m:s]`,
//! `['a','b']` unions, `..name`, `[?(@.a=="x")]` filters with `==`, `!=`, `<`, `<=`, `>`,
//! `>=` and bare existence), a quoted string (`{"\n"}`, `{'\t'}`) or `{range PATH}`...`{end}`.
//! An action that finds several values prints them separated by single spaces; strings print
//! raw, everything else as compact JSON.
//!
//! Missing keys are errors at the top level of a template (naming the key), but yield nothing
//! inside a `range` body and inside filters, so one pod without an IP does not break a loop.
//! Like kubectl, a path that runs out of input (e.g. `.items[*].x` over an empty list) is not
//! an error, and a key is only "missing" when none of the values reached so far has it.
//!
//! The caller chooses the input: kubectl applies the template to the object itself for a
//! single named object and to `{"kind":"List","items":[...]}` otherwise.

use std::cmp::Ordering;

use serde_json::Value;

/// A template or custom-columns spec that cannot be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The template is not valid JSONPath.
    #[error("error parsing jsonpath {template:?}: {message}")]
    Parse { template: String, message: String },
    /// The template is valid but evaluating it failed (e.g. a key is missing).
    #[error("error executing jsonpath {template:?}: {message}")]
    Execute { template: String, message: String },
    /// A `-o custom-columns` spec is malformed; `part` is the offending `HEADER:PATH` piece.
    #[error("unexpected custom-columns spec {part:?}: {message}")]
    CustomColumns { part: String, message: String },
}

/// Evaluates a kubectl JSONPath template (`{.items[*].metadata.name}`,
/// `{range .items[*]}{.metadata.name}{"\n"}{end}`, ...) against `data`.
pub fn jsonpath(template: &str, data: &Value) -> Result<String, JsonPathError> {
    let nodes = parse_template(template).map_err(|message| JsonPathError::Parse {
        template: template.to_string(),
        message,
    })?;
    let mut out = String::new();
    execute(&nodes, data, false, &mut out).map_err(|message| JsonPathError::Execute {
        template: template.to_string(),
        message,
    })?;
    Ok(out)
}

/// Renders `objects` as kubectl's `-o custom-columns=NAME:.metadata.name,IP:.status.podIP`
/// table: a header row, then one row per object. Paths may be written `.a.b`, `a.b`, `{.a.b}`
/// or `{a.b}`; a missing (or null) value prints `<none>` and several values join with commas.
/// Columns are left-aligned, padded to the widest cell and separated by three spaces; every
/// line ends with `\n`. With no objects only the header row is returned.
pub fn custom_columns(spec: &str, objects: &[Value]) -> Result<String, JsonPathError> {
    let columns = parse_columns(spec)?;
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(objects.len());
    for object in objects {
        let mut row = Vec::with_capacity(columns.len());
        for column in &columns {
            let values = eval_path(&column.path, object, false).map_err(|message| {
                JsonPathError::Execute {
                    template: column.expr.clone(),
                    message,
                }
            })?;
            let cells: Vec<String> = values
                .into_iter()
                .filter(|v| !v.is_null())
                .map(|v| escape_cell(&go_value(v)))
                .collect();
            row.push(if cells.is_empty() {
                "<none>".to_string()
            } else {
                cells.join(",")
            });
        }
        rows.push(row);
    }
    let header = columns.iter().map(|c| c.header.clone()).collect();
    Ok(crate::table::Table { header, rows }.render())
}

// ---------------------------------------------------------------------------------------------
// AST

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Expr(Path),
    Range(Path, Vec<Node>),
}

/// A path: steps applied in turn, starting from the current object.
type Path = Vec<Step>;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.a`, `['a']`, `[0]`, `[1:3]`, `['a','b']`: one or more selectors (a union).
    Select(Vec<Selector>),
    /// `[*]` / `.*`: every element of an array, every value of an object.
    Wildcard,
    /// `..`: the value and all its descendants that are non-empty containers (the next step
    /// then picks from each of them).
    Recursive,
    /// `[?(...)]`: the elements of an array for which the filter holds.
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    Key(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>, i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Operand,
    /// `None` for a bare existence test `[?(@.a)]`.
    comparison: Option<(Op, Operand)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Path),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

/// An action's content (what is between `{` and `}`).
enum Action {
    Text(String),
    Expr(Path),
    Range(Path),
    End,
}

impl Parser {
    fn new(s: &str) -> Self {
        Parser {
            chars: s.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{c}'")))
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.peek() {
            Some(c) => format!(
                "unexpected {c:?} at position {}, expected {wanted}",
                self.pos
            ),
            None => format!("unexpected end of input, expected {wanted}"),
        }
    }

    /// Is the keyword `word` next, followed by whitespace or `}` (or the end)?
    fn at_keyword(&self, word: &str) -> bool {
        let n = word.chars().count();
        self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(word.chars())
            && self
                .peek_at(n)
                .is_none_or(|c| c.is_whitespace() || c == '}')
    }

    /// Parses `{...}` content up to (and including) the closing `}`; `{` is already consumed.
    fn action(&mut self) -> Result<Action, String> {
        self.skip_ws();
        let action = match self.peek() {
            None => return Err("unclosed action: missing '}'".into()),
            Some('}') => Action::Expr(Vec::new()),
            Some('"' | '\'') => Action::Text(self.quoted()?),
            _ if self.at_keyword("range") => {
                self.pos += "range".len();
                self.skip_ws();
                if !self.at_path_start() {
                    return Err(self.unexpected("a path after 'range'"));
                }
                Action::Range(self.path()?)
            }
            _ if self.at_keyword("end") => {
                self.pos += "end".len();
                Action::End
            }
            _ if self.at_path_start() => Action::Expr(self.path()?),
            _ => return Err(self.unexpected("a path, a quoted string, 'range' or 'end'")),
        };
        self.skip_ws();
        if self.at_end() {
            return Err("unclosed action: missing '}'".into());
        }
        self.expect('}')?;
        Ok(action)
    }

    fn at_path_start(&self) -> bool {
        matches!(self.peek(), Some('.' | '[' | '@' | '$'))
    }

    /// A path: an optional `@`/`$` (the current object), then `.name`, `..name`, `[...]` steps.
    fn path(&mut self) -> Result<Path, String> {
        let mut steps = Vec::new();
        if !self.eat('@') {
            self.eat('$');
        }
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.pos += 2;
                    steps.push(Step::Recursive);
                    match self.peek() {
                        Some('[') => {
                            self.pos += 1;
                            steps.push(self.bracket()?);
                        }
                        Some('*') => {
                            self.pos += 1;
                            steps.push(Step::Wildcard);
                        }
                        _ => {
                            let name = self.ident()?;
                            steps.push(Step::Select(vec![Selector::Key(name)]));
                        }
                    }
                }
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        // `.[0]` is `[0]` (custom-columns turns `[0]` into `{.[0]}`).
                        Some('[') => {}
                        Some('*') => {
                            self.pos += 1;
                            steps.push(Step::Wildcard);
                        }
                        // A lone `.` is the current object.
                        Some(c) if is_terminator(c) => {}
                        None => {}
                        Some(_) => {
                            let name = self.ident()?;
                            steps.push(Step::Select(vec![Selector::Key(name)]));
                        }
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    steps.push(self.bracket()?);
                }
                _ => return Ok(steps),
            }
        }
    }

    /// A field name; `\` escapes the next character (`kubernetes\.io/hostname`).
    fn ident(&mut self) -> Result<String, String> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                match self.peek_at(1) {
                    Some(next) => {
                        name.push(next);
                        self.pos += 2;
                    }
                    None => return Err("trailing '\\' in field name".into()),
                }
            } else if is_terminator(c) {
                break;
            } else {
                name.push(c);
                self.pos += 1;
            }
        }
        if name.is_empty() {
            return Err(self.unexpected("a field name"));
        }
        Ok(name)
    }

    /// The inside of `[...]`; `[` is already consumed, `]` is consumed here.
    fn bracket(&mut self) -> Result<Step, String> {
        self.skip_ws();
        if self.eat('?') {
            self.skip_ws();
            self.expect('(')?;
            let filter = self.filter()?;
            self.skip_ws();
            self.expect(')')?;
            self.skip_ws();
            self.expect(']')?;
            return Ok(Step::Filter(Box::new(filter)));
        }
        if self.eat('*') {
            self.skip_ws();
            self.expect(']')?;
            return Ok(Step::Wildcard);
        }
        let mut selectors = Vec::new();
        loop {
            self.skip_ws();
            selectors.push(self.selector()?);
            self.skip_ws();
            if self.eat(']') {
                return Ok(Step::Select(selectors));
            }
            if !self.eat(',') {
                return Err(self.unexpected("',' or ']'"));
            }
        }
    }

    /// `'key'`, `"key"`, `n`, or a slice `n:m`, `n:m:s` (each bound optional).
    fn selector(&mut self) -> Result<Selector, String> {
        if matches!(self.peek(), Some('"' | '\'')) {
            return Ok(Selector::Key(self.quoted()?));
        }
        let start = self.opt_int()?;
        self.skip_ws();
        if !self.eat(':') {
            return match start {
                Some(i) => Ok(Selector::Index(i)),
                None => Err(self.unexpected("an index, a slice, '*', a quoted key or '?('")),
            };
        }
        self.skip_ws();
        let end = self.opt_int()?;
        self.skip_ws();
        let step = if self.eat(':') {
            self.skip_ws();
            self.opt_int()?.unwrap_or(1)
        } else {
            1
        };
        if step <= 0 {
            return Err(format!("slice step must be positive, got {step}"));
        }
        Ok(Selector::Slice(start, end, step))
    }

    fn opt_int(&mut self) -> Result<Option<i64>, String> {
        let begin = self.pos;
        self.eat('-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == begin {
            return Ok(None);
        }
        let text: String = self.chars[begin..self.pos].iter().collect();
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid array index {text:?}"))
    }

    /// A filter body: `@.a`, `@.a == "x"`, `@.n > 3`, ...
    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.eat_str("==") {
            Op::Eq
        } else if self.eat_str("!=") {
            Op::Ne
        } else if self.eat_str("<=") {
            Op::Le
        } else if self.eat_str(">=") {
            Op::Ge
        } else if self.eat('<') {
            Op::Lt
        } else if self.eat('>') {
            Op::Gt
        } else if self.peek() == Some(')') {
            return Ok(Filter {
                left,
                comparison: None,
            });
        } else {
            return Err(self.unexpected("a comparison operator or ')'"));
        };
        self.skip_ws();
        let right = self.operand()?;
        Ok(Filter {
            left,
            comparison: Some((op, right)),
        })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek() {
            Some('"' | '\'') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let begin = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[begin..self.pos].iter().collect();
                match serde_json::from_str::<serde_json::Number>(&text) {
                    Ok(n) => Ok(Operand::Literal(Value::Number(n))),
                    Err(_) => Err(format!("invalid number {text:?} in filter")),
                }
            }
            _ if self.at_path_start() => Ok(Operand::Path(self.path()?)),
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.eat_str(word) {
                        return Ok(Operand::Literal(value));
                    }
                }
                Err(self.unexpected("'@', a quoted string, a number, true, false or null"))
            }
        }
    }

    /// A `"..."` or `'...'` string with Go-style escapes (`\n`, `\t`, `\"`, `\\`, `\u00e9`, ...);
    /// an unknown escape stands for the escaped character itself.
    fn quoted(&mut self) -> Result<String, String> {
        let Some(quote) = self.peek() else {
            return Err(self.unexpected("a quoted string"));
        };
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!("unterminated quoted string: missing {quote}"));
            };
            self.pos += 1;
            if c == quote {
                return Ok(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(format!("unterminated quoted string: missing {quote}"));
            };
            self.pos += 1;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                'a' => s.push('\u{7}'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'v' => s.push('\u{b}'),
                '0' => s.push('\0'),
                'x' => s.push(self.hex_escape(2)?),
                'u' => s.push(self.hex_escape(4)?),
                'U' => s.push(self.hex_escape(8)?),
                other => s.push(other),
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, String> {
        let end = self.pos + digits;
        if end > self.chars.len() {
            return Err("truncated escape sequence in quoted string".into());
        }
        let text: String = self.chars[self.pos..end].iter().collect();
        let code = u32::from_str_radix(&text, 16)
            .map_err(|_| format!("invalid escape sequence {text:?} in quoted string"))?;
        let c = char::from_u32(code)
            .ok_or_else(|| format!("invalid code point {text:?} in quoted string"))?;
        self.pos = end;
        Ok(c)
    }
}

/// Characters that end a bare field name.
fn is_terminator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '.' | '['
                | ']'
                | '('
                | ')'
                | '{'
                | '}'
                | ','
                | '"'
                | '\''
                | '='
                | '!'
                | '<'
                | '>'
                | '@'
                | '$'
                | '?'
                | '*'
        )
}

fn parse_template(template: &str) -> Result<Vec<Node>, String> {
    let mut p = Parser::new(template);
    // Stack of open blocks: the root, then one per unclosed `{range}`.
    let mut stack: Vec<(Option<Path>, Vec<Node>)> = vec![(None, Vec::new())];
    let mut text = String::new();
    while let Some(c) = p.peek() {
        if c != '{' {
            text.push(c);
            p.pos += 1;
            continue;
        }
        let open_at = p.pos;
        p.pos += 1;
        let nodes = &mut stack.last_mut().expect("stack holds the root").1;
        if !text.is_empty() {
            nodes.push(Node::Text(std::mem::take(&mut text)));
        }
        let action = p
            .action()
            .map_err(|e| format!("{e} (in the action starting at position {open_at})"))?;
        match action {
            Action::Text(t) => nodes.push(Node::Text(t)),
            Action::Expr(path) => nodes.push(Node::Expr(path)),
            Action::Range(path) => stack.push((Some(path), Vec::new())),
            Action::End => {
                if stack.len() == 1 {
                    return Err(format!(
                        "{{end}} at position {open_at} without a matching {{range}}"
                    ));
                }
                let (path, body) = stack.pop().expect("checked above");
                let path = path.expect("only the root has no range path");
                stack
                    .last_mut()
                    .expect("stack holds the root")
                    .1
                    .push(Node::Range(path, body));
            }
        }
    }
    if stack.len() > 1 {
        return Err("{range} without a matching {end}".into());
    }
    let (_, mut nodes) = stack.pop().expect("stack holds the root");
    if !text.is_empty() {
        nodes.push(Node::Text(text));
    }
    Ok(nodes)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn execute(
    nodes: &[Node],
    current: &Value,
    in_range: bool,
    out: &mut String,
) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Expr(path) => {
                let values = eval_path(path, current, !in_range)?;
                let rendered: Vec<String> = values.into_iter().map(render_value).collect();
                out.push_str(&rendered.join(" "));
            }
            Node::Range(path, body) => {
                for value in eval_path(path, current, !in_range)? {
                    execute(body, value, true, out)?;
                }
            }
        }
    }
    Ok(())
}

/// A value as kubectl's custom-columns prints it, Go's `fmt.Sprint` of the decoded JSON:
/// maps as `map[k:v k2:v2]` (sorted keys), lists as `[a b]`, null as `<nil>`.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| *k);
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
        other => other.to_string(),
    }
}

/// Strings print raw, everything else as compact JSON (`null`, `3`, `true`, `{"a":1}`).
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies `path` to `root`. With `strict`, a key or index that none of the values reached so
/// far has is an error; otherwise it just yields nothing.
fn eval_path<'v>(path: &[Step], root: &'v Value, strict: bool) -> Result<Vec<&'v Value>, String> {
    let mut current = vec![root];
    for step in path {
        if current.is_empty() {
            break;
        }
        current = eval_step(step, &current, strict)?;
    }
    Ok(current)
}

fn eval_step<'v>(step: &Step, input: &[&'v Value], strict: bool) -> Result<Vec<&'v Value>, String> {
    let mut out = Vec::new();
    match step {
        Step::Select(selectors) => {
            for value in input {
                for selector in selectors {
                    select(selector, value, &mut out);
                }
            }
            if strict
                && out.is_empty()
                && let Some(message) = missing_message(selectors, input)
            {
                return Err(message);
            }
        }
        Step::Wildcard => {
            for value in input {
                children(value, &mut out);
            }
        }
        Step::Recursive => {
            for value in input {
                descend(value, &mut out);
            }
        }
        Step::Filter(filter) => {
            for value in input {
                if let Value::Array(items) = value {
                    for item in items {
                        if filter_matches(filter, item)? {
                            out.push(item);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn select<'v>(selector: &Selector, value: &'v Value, out: &mut Vec<&'v Value>) {
    match (selector, value) {
        (Selector::Key(key), Value::Object(map)) => out.extend(map.get(key)),
        (Selector::Index(i), Value::Array(items)) => {
            if let Some(idx) = resolve_index(*i, items.len()) {
                out.push(&items[idx]);
            }
        }
        (Selector::Slice(start, end, step), Value::Array(items)) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let clamp = |bound: Option<i64>, default: i64| -> i64 {
                match bound {
                    None => default,
                    Some(b) if b < 0 => (b + len).max(0),
                    Some(b) => b.min(len),
                }
            };
            let (from, to) = (clamp(*start, 0), clamp(*end, len));
            let mut i = from;
            while i < to {
                // 0 <= i < len, so the conversion cannot fail.
                if let Ok(idx) = usize::try_from(i) {
                    out.push(&items[idx]);
                }
                i += step;
            }
        }
        _ => {}
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let idx = if i < 0 { i + len } else { i };
    if (0..len).contains(&idx) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

/// The error for a key or index step that found nothing (slices never "miss").
fn missing_message(selectors: &[Selector], input: &[&Value]) -> Option<String> {
    selectors.iter().find_map(|selector| match selector {
        Selector::Key(key) => Some(format!("{key} is not found")),
        Selector::Index(i) => Some(match input.iter().find_map(|v| v.as_array()) {
            Some(items) => format!(
                "array index out of bounds: index {i}, length {}",
                items.len()
            ),
            None => format!("[{i}] is not found: not an array"),
        }),
        Selector::Slice(..) => None,
    })
}

/// Array elements, or object values in key order.
fn children<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => out.extend(items.iter()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.extend(entries.into_iter().map(|(_, v)| v));
        }
        _ => {}
    }
}

/// kubectl's recursive descent: the value itself and, depth first, every descendant that is a
/// non-empty array or object (object keys in sorted order).
fn descend<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    let mut kids = Vec::new();
    children(value, &mut kids);
    if kids.is_empty() {
        return;
    }
    out.push(value);
    for kid in kids {
        descend(kid, out);
    }
}

fn filter_matches(filter: &Filter, item: &Value) -> Result<bool, String> {
    let lefts = operand_values(&filter.left, item)?;
    let Some((op, right)) = &filter.comparison else {
        return Ok(!lefts.is_empty());
    };
    let rights = operand_values(right, item)?;
    let (left, right) = match (lefts.as_slice(), rights.as_slice()) {
        ([], _) | (_, []) => return Ok(false),
        ([l], [r]) => (*l, *r),
        _ => return Err("can only compare one element at a time".into()),
    };
    Ok(compare(*op, left, right))
}

fn operand_values<'v>(operand: &'v Operand, item: &'v Value) -> Result<Vec<&'v Value>, String> {
    match operand {
        Operand::Path(path) => eval_path(path, item, false),
        Operand::Literal(value) => Ok(vec![value]),
    }
}

/// `==`/`!=` hold across types (numbers compare by value); `<`, `>`, ... only compare two
/// numbers or two strings and are false otherwise.
fn compare(op: Op, left: &Value, right: &Value) -> bool {
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => number_cmp(a, b),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        Op::Eq => ordering.map_or(left == right, Ordering::is_eq),
        Op::Ne => ordering.map_or(left != right, Ordering::is_ne),
        Op::Lt => ordering.is_some_and(Ordering::is_lt),
        Op::Le => ordering.is_some_and(Ordering::is_le),
        Op::Gt => ordering.is_some_and(Ordering::is_gt),
        Op::Ge => ordering.is_some_and(Ordering::is_ge),
    }
}

fn number_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

// ---------------------------------------------------------------------------------------------
// Custom columns

struct Column {
    header: String,
    /// The path as written, for error messages.
    expr: String,
    path: Path,
}

fn parse_columns(spec: &str) -> Result<Vec<Column>, JsonPathError> {
    let bad = |part: &str, message: String| JsonPathError::CustomColumns {
        part: part.to_string(),
        message,
    };
    if spec.trim().is_empty() {
        return Err(bad(
            spec,
            "custom-columns format specified but no custom columns given".into(),
        ));
    }
    let mut columns = Vec::new();
    for part in split_columns(spec) {
        let Some((header, expr)) = part.split_once(':') else {
            return Err(bad(part, "expected <header>:<json-path-expr>".into()));
        };
        if header.trim().is_empty() {
            return Err(bad(
                part,
                "empty column header, expected <header>:<json-path-expr>".into(),
            ));
        }
        let path = parse_column_path(expr)
            .map_err(|message| bad(part, format!("invalid JSONPath {expr:?}: {message}")))?;
        columns.push(Column {
            header: header.to_string(),
            expr: expr.to_string(),
            path,
        });
    }
    Ok(columns)
}

/// Splits a spec on the commas that separate columns, i.e. not those inside `[...]`, `(...)`
/// or quotes (`['a','b']`, filters).
fn split_columns(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0usize, None::<char>, false, 0);
    for (i, c) in spec.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

/// kubectl's "relaxed" column path: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean `{.a.b}`.
fn parse_column_path(expr: &str) -> Result<Path, String> {
    let mut inner = expr.trim();
    if let Some(stripped) = inner.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        inner = stripped.trim();
    }
    if inner.is_empty() {
        return Err("empty path".into());
    }
    let text = if matches!(inner.chars().next(), Some('.' | '[' | '@' | '$')) {
        inner.to_string()
    } else {
        format!(".{inner}")
    };
    let mut p = Parser::new(&text);
    let path = p.path()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.unexpected("the end of the path"));
    }
    Ok(path)
}

/// Keeps a cell on one line: control characters print escaped (`\n`, `\t`, `\u{1b}`).
fn escape_cell(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_string();
    }
    cell.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        json!({
            "kind": "List",
            "apiVersion": "v1",
            "items": [
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": "web-7d4b9c-x2x7q",
                        "namespace": "default",
                        "labels": {"app": "web", "app.kubernetes.io/name": "web"}
                    },
                    "spec": {
                        "nodeName": "node-a",
                        "containers": [
                            {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                            {"name": "sidecar", "image": "busybox:1.36"}
                        ]
                    },
                    "status": {
                        "phase": "Running",
                        "podIP": "10.244.1.5",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": "True"}
                        ],
                        "containerStatuses": [
                            {"name": "nginx", "ready": true, "restartCount": 0},
                            {"name": "sidecar", "ready": true, "restartCount": 3}
                        ]
                    }
                },
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
                    "spec": {
                        "nodeName": "node-b",
                        "containers": [{"name": "postgres", "image": "postgres:16"}]
                    },
                    "status": {
                        "phase": "Running",
                        "podIP": "10.244.2.7",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": "False"}
                        ],
                        "containerStatuses": [{"name": "postgres", "ready": false, "restartCount": 12}]
                    }
                },
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"name": "batch-5kq9z", "namespace": "jobs", "labels": {"app": "batch"}},
                    "spec": {"containers": [{"name": "job", "image": "alpine:3.20"}]},
                    "status": {
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "False"}]
                    }
                }
            ]
        })
    }

    fn node() -> Value {
        json!({
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {
                "name": "node-a",
                "labels": {
                    "kubernetes.io/hostname": "node-a",
                    "node-role.kubernetes.io/control-plane": ""
                },
                "annotations": null
            },
            "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": false},
            "status": {
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "node-a"}
                ],
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady"}
                ]
            }
        })
    }

    fn jp(template: &str, data: &Value) -> String {
        match jsonpath(template, data) {
            Ok(s) => s,
            Err(e) => panic!("{template}: {e}"),
        }
    }

    fn jp_err(template: &str, data: &Value) -> String {
        match jsonpath(template, data) {
            Ok(s) => panic!("{template}: expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn jsonpath_wildcard_prints_space_separated() {
        assert_eq!(
            jp("{.items[*].metadata.name}", &pods()),
            "web-7d4b9c-x2x7q db-0 batch-5kq9z"
        );
        // A key only some items have: the ones that have it.
        assert_eq!(
            jp("{.items[*].status.podIP}", &pods()),
            "10.244.1.5 10.244.2.7"
        );
        // `$` and `@` are the current object.
        assert_eq!(jp("{$.items[*].spec.nodeName}", &pods()), "node-a node-b");
    }

    #[test]
    fn jsonpath_literal_text_and_single_object() {
        let pod = &pods()["items"][0];
        assert_eq!(
            jp(
                "pod {.metadata.name} is {.status.phase} on {.spec.nodeName}\n",
                pod
            ),
            "pod web-7d4b9c-x2x7q is Running on node-a\n"
        );
        assert_eq!(jp("{.kind}", &pods()), "List");
        assert_eq!(jp("{ .metadata.namespace }", pod), "default");
        assert_eq!(jp("no actions at all", pod), "no actions at all");
        assert_eq!(jp("", pod), "");
    }

    #[test]
    fn jsonpath_range_with_string_literals() {
        assert_eq!(
            jp(
                r#"{range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}"#,
                &pods()
            ),
            "web-7d4b9c-x2x7q\t10.244.1.5\ndb-0\t10.244.2.7\nbatch-5kq9z\t\n"
        );
        // Single quotes and plain text inside the range body.
        assert_eq!(
            jp(
                r"{range .items[*]}[{.metadata.namespace}/{.metadata.name}]{'\n'}{end}",
                &pods()
            ),
            "[default/web-7d4b9c-x2x7q]\n[default/db-0]\n[jobs/batch-5kq9z]\n"
        );
        // Braces and quotes as literals.
        assert_eq!(
            jp(r#"{"{"}{.kind}{"}"} {"say \"hi\""} {"\u00e9"}"#, &pods()),
            r#"{List} say "hi" é"#
        );
    }

    #[test]
    fn jsonpath_nested_range() {
        assert_eq!(
            jp(
                r#"{range .items[*]}{.metadata.name}:{range .spec.containers[*]} {.name}={.image}{end}{"\n"}{end}"#,
                &pods()
            ),
            "web-7d4b9c-x2x7q: nginx=nginx:1.27 sidecar=busybox:1.36\n\
             db-0: postgres=postgres:16\n\
             batch-5kq9z: job=alpine:3.20\n"
        );
        // A range over nothing prints nothing.
        assert_eq!(
            jp(
                "{range .items[*]}{range .spec.volumes[*]}{.name}{end}{end}",
                &pods()
            ),
            ""
        );
    }

    #[test]
    fn jsonpath_filters() {
        let data = pods();
        assert_eq!(
            jp(
                r#"{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
                &data
            ),
            "web-7d4b9c-x2x7q=True\ndb-0=False\nbatch-5kq9z=\n"
        );
        assert_eq!(
            jp(
                r#"{.items[?(@.status.phase!="Running")].metadata.name}"#,
                &data
            ),
            "batch-5kq9z"
        );
        assert_eq!(
            jp(
                r#"{.items[?( @.metadata.namespace == 'default' )].metadata.name}"#,
                &data
            ),
            "web-7d4b9c-x2x7q db-0"
        );
        // Existence.
        assert_eq!(
            jp("{.items[?(@.spec.nodeName)].metadata.name}", &data),
            "web-7d4b9c-x2x7q db-0"
        );
        // Numbers: ==, !=, >, <=.
        assert_eq!(
            jp(
                "{.items[0].status.containerStatuses[?(@.restartCount==3)].name}",
                &data
            ),
            "sidecar"
        );
        assert_eq!(
            jp(
                "{.items[0].status.containerStatuses[?(@.restartCount!=3)].name}",
                &data
            ),
            "nginx"
        );
        assert_eq!(
            jp(
                "{.items[*].status.containerStatuses[?(@.restartCount>2)].name}",
                &data
            ),
            "sidecar postgres"
        );
        assert_eq!(
            jp(
                "{.items[*].status.containerStatuses[?(@.restartCount<=3)].name}",
                &data
            ),
            "nginx sidecar"
        );
        assert_eq!(
            jp(
                "{.items[*].status.containerStatuses[?(@.ready==false)].name}",
                &data
            ),
            "postgres"
        );
        // A filter that matches nothing prints nothing, even at the top level.
        assert_eq!(
            jp(
                r#"{.items[*].status.conditions[?(@.type=="DiskPressure")].status}"#,
                &data
            ),
            ""
        );
        // Node: the InternalIP address.
        assert_eq!(
            jp(
                r#"{.status.addresses[?(@.type=="InternalIP")].address}"#,
                &node()
            ),
            "192.168.1.10"
        );
    }

    #[test]
    fn jsonpath_keys_with_dots() {
        let node = node();
        assert_eq!(
            jp("{.metadata.labels['kubernetes.io/hostname']}", &node),
            "node-a"
        );
        assert_eq!(
            jp(r#"{.metadata.labels["kubernetes.io/hostname"]}"#, &node),
            "node-a"
        );
        assert_eq!(
            jp(r"{.metadata.labels.kubernetes\.io/hostname}", &node),
            "node-a"
        );
        assert_eq!(jp("{['kind']}", &node), "Node");
        // An empty label value prints as an empty string.
        assert_eq!(
            jp(
                "[{.metadata.labels['node-role.kubernetes.io/control-plane']}]",
                &node
            ),
            "[]"
        );
        // Unions.
        assert_eq!(
            jp("{.items[0].metadata['name','namespace']}", &pods()),
            "web-7d4b9c-x2x7q default"
        );
    }

    #[test]
    fn jsonpath_indexes_and_slices() {
        let data = pods();
        assert_eq!(jp("{.items[0].metadata.name}", &data), "web-7d4b9c-x2x7q");
        assert_eq!(jp("{.items[-1].metadata.name}", &data), "batch-5kq9z");
        assert_eq!(jp("{.items[-2].metadata.name}", &data), "db-0");
        assert_eq!(
            jp("{.items[0:2].metadata.name}", &data),
            "web-7d4b9c-x2x7q db-0"
        );
        assert_eq!(jp("{.items[1:].metadata.name}", &data), "db-0 batch-5kq9z");
        assert_eq!(jp("{.items[:1].metadata.name}", &data), "web-7d4b9c-x2x7q");
        assert_eq!(jp("{.items[-1:].metadata.name}", &data), "batch-5kq9z");
        assert_eq!(
            jp("{.items[::2].metadata.name}", &data),
            "web-7d4b9c-x2x7q batch-5kq9z"
        );
        assert_eq!(
            jp("{.items[0,2].metadata.name}", &data),
            "web-7d4b9c-x2x7q batch-5kq9z"
        );
        // Out-of-range slices are clamped.
        assert_eq!(jp("{.items[2:10].metadata.name}", &data), "batch-5kq9z");
        assert_eq!(jp("{.items[5:10].metadata.name}", &data), "");
        assert_eq!(
            jp("{.items[0].spec.containers[1].image}", &data),
            "busybox:1.36"
        );
    }

    #[test]
    fn jsonpath_recursive_descent() {
        assert_eq!(
            jp("{..image}", &pods()),
            "nginx:1.27 busybox:1.36 postgres:16 alpine:3.20"
        );
        // Depth first, object keys in sorted order (metadata < spec < status).
        assert_eq!(
            jp("{.items[0]..name}", &pods()),
            "web-7d4b9c-x2x7q nginx sidecar nginx sidecar"
        );
        assert_eq!(jp("{..containerPort}", &pods()), "80");
        assert_eq!(jp("{.items[1]..[0].type}", &pods()), "PodScheduled");
    }

    #[test]
    fn jsonpath_non_string_values_print_as_compact_json() {
        let data = pods();
        assert_eq!(
            jp("{.items[0].spec.containers[0].ports}", &data),
            r#"[{"containerPort":80}]"#
        );
        assert_eq!(
            jp(
                "{.items[*].status.containerStatuses[*].restartCount}",
                &data
            ),
            "0 3 12"
        );
        assert_eq!(
            jp("{.items[0].status.containerStatuses[0].ready}", &data),
            "true"
        );
        assert_eq!(jp("{.items[1].metadata.labels}", &data), r#"{"app":"db"}"#);
        assert_eq!(jp("{.metadata.annotations}", &node()), "null");
        assert_eq!(jp("{.spec.unschedulable}", &node()), "false");
        assert_eq!(
            jp("{@}", &json!({"a": [1, "x", null]})),
            r#"{"a":[1,"x",null]}"#
        );
        assert_eq!(jp("{}", &json!(["x"])), r#"["x"]"#);
        // Wildcard over an object: the values in key order.
        assert_eq!(jp("{.status.capacity.*}", &node()), "4 8Gi 110");
        assert_eq!(jp("{.status.capacity[*]}", &node()), "4 8Gi 110");
    }

    #[test]
    fn jsonpath_empty_list_is_not_an_error() {
        let empty = json!({"kind": "List", "apiVersion": "v1", "items": []});
        assert_eq!(jp("{.items[*].metadata.name}", &empty), "");
        assert_eq!(
            jp(r#"{range .items[*]}{.metadata.name}{"\n"}{end}"#, &empty),
            ""
        );
    }

    #[test]
    fn jsonpath_missing_keys_are_errors_outside_range() {
        let data = pods();
        assert_eq!(
            jp_err("{.x}", &data),
            r#"error executing jsonpath "{.x}": x is not found"#
        );
        assert_eq!(
            jp_err("{.items[*].status.hostIP}", &data),
            r#"error executing jsonpath "{.items[*].status.hostIP}": hostIP is not found"#
        );
        assert_eq!(
            jp_err("name: {.items[0].metadata.nmae}", &data),
            r#"error executing jsonpath "name: {.items[0].metadata.nmae}": nmae is not found"#
        );
        assert_eq!(
            jp_err("{.items[7].metadata.name}", &data),
            r#"error executing jsonpath "{.items[7].metadata.name}": array index out of bounds: index 7, length 3"#
        );
        assert_eq!(
            jp_err("{.items[0].metadata.name.first}", &data),
            r#"error executing jsonpath "{.items[0].metadata.name.first}": first is not found"#
        );
        assert_eq!(
            jp_err("{..nope}", &data),
            r#"error executing jsonpath "{..nope}": nope is not found"#
        );
        // The range expression itself is at the top level...
        assert_eq!(
            jp_err("{range .itmes[*]}{.metadata.name}{end}", &data),
            r#"error executing jsonpath "{range .itmes[*]}{.metadata.name}{end}": itmes is not found"#
        );
        // ...but its body is not.
        assert_eq!(
            jp("{range .items[*]}{.spec.nodeName},{.nope}{end}", &data),
            "node-a,node-b,,"
        );
        // Filters comparing several values at once.
        assert_eq!(
            jp_err(r#"{.items[?(@.spec.containers[*].name=="job")]}"#, &data),
            r#"error executing jsonpath "{.items[?(@.spec.containers[*].name==\"job\")]}": can only compare one element at a time"#
        );
    }

    #[test]
    fn jsonpath_parse_errors() {
        let data = pods();
        let cases = [
            (
                "{.metadata.name",
                r#"error parsing jsonpath "{.metadata.name": unclosed action: missing '}' (in the action starting at position 0)"#,
            ),
            (
                "x{end}",
                r#"error parsing jsonpath "x{end}": {end} at position 1 without a matching {range}"#,
            ),
            (
                "{range .items[*]}{.metadata.name}",
                r#"error parsing jsonpath "{range .items[*]}{.metadata.name}": {range} without a matching {end}"#,
            ),
            (
                "{.items[}",
                r#"error parsing jsonpath "{.items[}": unexpected '}' at position 8, expected an index, a slice, '*', a quoted key or '?(' (in the action starting at position 0)"#,
            ),
            (
                "{metadata.name}",
                r#"error parsing jsonpath "{metadata.name}": unexpected 'm' at position 1, expected a path, a quoted string, 'range' or 'end' (in the action starting at position 0)"#,
            ),
            (
                r#"{.items[?(@.a=="x"]}"#,
                r#"error parsing jsonpath "{.items[?(@.a==\"x\"]}": unexpected ']' at position 18, expected ')' (in the action starting at position 0)"#,
            ),
            (
                r#"{"\n}"#,
                r#"error parsing jsonpath "{\"\\n}": unterminated quoted string: missing " (in the action starting at position 0)"#,
            ),
            (
                "{.items[::0]}",
                r#"error parsing jsonpath "{.items[::0]}": slice step must be positive, got 0 (in the action starting at position 0)"#,
            ),
        ];
        for (template, want) in cases {
            assert_eq!(jp_err(template, &data), want, "{template}");
        }
        assert!(matches!(
            jsonpath("{.a b}", &data),
            Err(JsonPathError::Parse { .. })
        ));
    }

    #[test]
    fn custom_columns_table() {
        let items = pods()["items"].as_array().unwrap().clone();
        assert_eq!(
            custom_columns(
                "NAME:.metadata.name,IP:.status.podIP,NODE:spec.nodeName,PHASE:{.status.phase}",
                &items
            )
            .unwrap(),
            "NAME               IP           NODE     PHASE\n\
             web-7d4b9c-x2x7q   10.244.1.5   node-a   Running\n\
             db-0               10.244.2.7   node-b   Running\n\
             batch-5kq9z        <none>       <none>   Pending\n"
        );
    }

    #[test]
    fn custom_columns_multiple_values_filters_and_numbers() {
        let items = pods()["items"].as_array().unwrap().clone();
        assert_eq!(
            custom_columns(
                r#"POD:{metadata.name},IMAGES:.spec.containers[*].image,READY:.status.conditions[?(@.type=="Ready")].status,RESTARTS:.status.containerStatuses[*].restartCount"#,
                &items
            )
            .unwrap(),
            "POD                IMAGES                    READY    RESTARTS\n\
             web-7d4b9c-x2x7q   nginx:1.27,busybox:1.36   True     0,3\n\
             db-0               postgres:16               False    12\n\
             batch-5kq9z        alpine:3.20               <none>   <none>\n"
        );
    }

    #[test]
    fn custom_columns_nodes_and_dotted_keys() {
        let nodes = vec![node()];
        assert_eq!(
            custom_columns(
                r#"NAME:.metadata.name,HOST:.metadata.labels['kubernetes.io/hostname'],INTERNAL-IP:.status.addresses[?(@.type=="InternalIP")].address,CPU:.status.capacity.cpu,ANNOTATIONS:.metadata.annotations,LABELS:.metadata.labels"#,
                &nodes
            )
            .unwrap(),
            "NAME     HOST     INTERNAL-IP    CPU   ANNOTATIONS   LABELS\n\
             node-a   node-a   192.168.1.10   4     <none>        map[kubernetes.io/hostname:node-a node-role.kubernetes.io/control-plane:]\n"
        );
    }

    #[test]
    fn custom_columns_header_only_and_escaping() {
        assert_eq!(
            custom_columns("NAME:.metadata.name,NS:.metadata.namespace", &[]).unwrap(),
            "NAME   NS\n"
        );
        let odd = vec![json!({"metadata": {"name": "a\tb\nc"}})];
        assert_eq!(
            custom_columns("NAME:.metadata.name", &odd).unwrap(),
            "NAME\na\\tb\\nc\n"
        );
    }

    #[test]
    fn custom_columns_bad_specs() {
        let items = pods()["items"].as_array().unwrap().clone();
        let err = |spec: &str| custom_columns(spec, &items).unwrap_err().to_string();
        assert_eq!(
            err("NAME:.metadata.name,IP"),
            r#"unexpected custom-columns spec "IP": expected <header>:<json-path-expr>"#
        );
        assert_eq!(
            err(":.metadata.name"),
            r#"unexpected custom-columns spec ":.metadata.name": empty column header, expected <header>:<json-path-expr>"#
        );
        assert_eq!(
            err("NAME:.metadata.name,IP:"),
            r#"unexpected custom-columns spec "IP:": invalid JSONPath "": empty path"#
        );
        assert_eq!(
            err("NAME:.metadata.name,BAD:.spec.containers["),
            r#"unexpected custom-columns spec "BAD:.spec.containers[": invalid JSONPath ".spec.containers[": unexpected end of input, expected an index, a slice, '*', a quoted key or '?('"#
        );
        assert_eq!(
            err(""),
            r#"unexpected custom-columns spec "": custom-columns format specified but no custom columns given"#
        );
        assert_eq!(
            err("NAME:.metadata.name extra"),
            r#"unexpected custom-columns spec "NAME:.metadata.name extra": invalid JSONPath ".metadata.name extra": unexpected 'e' at position 15, expected the end of the path"#
        );
    }
}
