//! Label selectors (Kubernetes' full grammar) and field selectors. Parsed once, matched
//! without allocating.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::meta::LabelSelector;
use crate::names::{is_label_value, is_qualified_name};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {input:?} at position {position}: {message}")]
pub struct SelectorError {
    pub input: String,
    /// Byte offset of the problem in `input`.
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals(v) => value == Some(v),
            // As in Kubernetes, objects without the key match `!=` and `notin`.
            Operator::NotEquals(v) => value != Some(v),
            Operator::In(vs) => value.is_some_and(|v| vs.contains(v)),
            Operator::NotIn(vs) => value.is_none_or(|v| !vs.contains(v)),
        }
    }
}

/// A conjunction of label requirements. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Not => "'!'".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::End => "end of input".into(),
        }
    }
}

fn tokenize(input: &str) -> Vec<(usize, Token)> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let token = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => Token::NotEquals,
            b'!' => Token::Not,
            b'=' if bytes.get(i + 1) == Some(&b'=') => Token::DoubleEquals,
            b'=' => Token::Equals,
            b'(' => Token::Open,
            b')' => Token::Close,
            b',' => Token::Comma,
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r!=(),".contains(&bytes[i]) {
                    i += 1;
                }
                tokens.push((start, Token::Word(input[start..i].to_string())));
                continue;
            }
        };
        let width = match token {
            Token::NotEquals | Token::DoubleEquals => 2,
            _ => 1,
        };
        tokens.push((i, token));
        i += width;
    }
    tokens.push((input.len(), Token::End));
    tokens
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<(usize, Token)>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &(usize, Token) {
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn take(&mut self) -> (usize, Token) {
        let t = self.peek().clone();
        self.next += 1;
        t
    }

    fn error(&self, position: usize, message: impl Into<String>) -> SelectorError {
        SelectorError {
            input: self.input.to_string(),
            position,
            message: message.into(),
        }
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.take() {
            (pos, Token::Word(key)) => {
                is_qualified_name(&key)
                    .map_err(|m| self.error(pos, format!("invalid label key {key:?}: {m}")))?;
                Ok(key)
            }
            (pos, other) => Err(self.error(
                pos,
                format!("expected a label key, found {}", other.describe()),
            )),
        }
    }

    /// A value after `=`/`!=`; an empty value is allowed (`key=`).
    fn value(&mut self) -> Result<String, SelectorError> {
        match self.peek().clone() {
            (pos, Token::Word(value)) => {
                self.next += 1;
                is_label_value(&value)
                    .map_err(|m| self.error(pos, format!("invalid label value {value:?}: {m}")))?;
                Ok(value)
            }
            (_, Token::Comma | Token::End) => Ok(String::new()),
            (pos, other) => Err(self.error(
                pos,
                format!("expected a label value, found {}", other.describe()),
            )),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.take() {
            (_, Token::Open) => {}
            (pos, other) => {
                return Err(self.error(pos, format!("expected '(', found {}", other.describe())));
            }
        }
        let mut values = Vec::new();
        loop {
            match self.take() {
                (pos, Token::Word(value)) => {
                    is_label_value(&value).map_err(|m| {
                        self.error(pos, format!("invalid label value {value:?}: {m}"))
                    })?;
                    values.push(value);
                }
                (pos, Token::Close) if values.is_empty() => {
                    return Err(self.error(
                        pos,
                        "for 'in' and 'notin', the set of values can't be empty",
                    ));
                }
                (pos, other) => {
                    return Err(self.error(
                        pos,
                        format!("expected a label value, found {}", other.describe()),
                    ));
                }
            }
            match self.take() {
                (_, Token::Comma) => continue,
                (_, Token::Close) => return Ok(values),
                (pos, other) => {
                    return Err(self.error(
                        pos,
                        format!("expected ',' or ')', found {}", other.describe()),
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek().1 == Token::Not {
            self.next += 1;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
            });
        }
        let key = self.key()?;
        let operator = match self.peek().clone() {
            (_, Token::Comma | Token::End) => Operator::Exists,
            (_, Token::Equals | Token::DoubleEquals) => {
                self.next += 1;
                Operator::Equals(self.value()?)
            }
            (_, Token::NotEquals) => {
                self.next += 1;
                Operator::NotEquals(self.value()?)
            }
            (_, Token::Word(w)) if w == "in" => {
                self.next += 1;
                Operator::In(self.value_set()?)
            }
            (_, Token::Word(w)) if w == "notin" => {
                self.next += 1;
                Operator::NotIn(self.value_set()?)
            }
            (pos, other) => {
                return Err(self.error(
                    pos,
                    format!(
                        "expected one of '=', '==', '!=', 'in', 'notin' or ',', found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Requirement { key, operator })
    }
}

impl Selector {
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let mut parser = Parser {
            input,
            tokens: tokenize(input),
            next: 0,
        };
        let mut requirements = Vec::new();
        if parser.peek().1 == Token::End {
            return Ok(Selector::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.take() {
                (_, Token::End) => break,
                (_, Token::Comma) => continue,
                (pos, other) => {
                    return Err(parser.error(
                        pos,
                        format!("expected ',' or end of input, found {}", other.describe()),
                    ));
                }
            }
        }
        Ok(Selector { requirements })
    }

    pub fn everything() -> Selector {
        Selector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The selector a Deployment's `matchLabels`/`matchExpressions` describe.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let error = |message: String| SelectorError {
            input: format!("{selector:?}"),
            position: 0,
            message,
        };
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals(v.clone()),
            })
            .collect();
        for expression in &selector.match_expressions {
            let values = expression.values.clone();
            let operator = match expression.operator.as_str() {
                "In" if !values.is_empty() => Operator::In(values),
                "NotIn" if !values.is_empty() => Operator::NotIn(values),
                "Exists" if values.is_empty() => Operator::Exists,
                "DoesNotExist" if values.is_empty() => Operator::DoesNotExist,
                "In" | "NotIn" => {
                    return Err(error(format!(
                        "{}: values must be non-empty for In and NotIn",
                        expression.key
                    )));
                }
                "Exists" | "DoesNotExist" => {
                    return Err(error(format!(
                        "{}: values must be empty for Exists and DoesNotExist",
                        expression.key
                    )));
                }
                other => {
                    return Err(error(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(Requirement {
                key: expression.key.clone(),
                operator,
            });
        }
        Ok(Selector { requirements })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let key = &r.key;
            match &r.operator {
                Operator::Exists => write!(f, "{key}")?,
                Operator::DoesNotExist => write!(f, "!{key}")?,
                Operator::Equals(v) => write!(f, "{key}={v}")?,
                Operator::NotEquals(v) => write!(f, "{key}!={v}")?,
                Operator::In(vs) => write!(f, "{key} in ({})", vs.join(","))?,
                Operator::NotIn(vs) => write!(f, "{key} notin ({})", vs.join(","))?,
            }
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    /// `=`/`==` when true, `!=` when false.
    pub equal: bool,
}

/// `field=value`, `field==value`, `field!=value`, joined by commas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        let mut offset = 0;
        if input.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in input.split(',') {
            let error = |position: usize, message: &str| SelectorError {
                input: input.to_string(),
                position,
                message: message.to_string(),
            };
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(error(
                    offset,
                    "expected field=value, field==value or field!=value",
                ));
            };
            if field.trim().is_empty() {
                return Err(error(
                    offset,
                    "a field name is required before the operator",
                ));
            }
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: value.trim().to_string(),
                equal,
            });
            offset += part.len() + 1;
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `get` returns a field's value; a missing field counts as "".
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = get(&r.field).unwrap_or_default();
            (value == r.value) == r.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn valid_selectors_match_like_kubernetes() {
        let prod = labels(&[("env", "prod"), ("tier", "web")]);
        let dev = labels(&[("env", "dev")]);
        let bare = labels(&[]);
        // (selector, matches prod, matches dev, matches bare)
        let table = [
            ("", true, true, true),
            ("env=prod", true, false, false),
            ("env==prod", true, false, false),
            ("env!=prod", false, true, true),
            ("env in (prod, staging)", true, false, false),
            ("env notin (prod)", false, true, true),
            ("env", true, true, false),
            ("!env", false, false, true),
            ("env=prod,tier=web", true, false, false),
            ("env, !tier", false, true, false),
            ("  env = prod ,  tier in (web)  ", true, false, false),
            ("example.com/app=", false, false, false),
            ("tier notin (web),env", false, true, false),
        ];
        for (text, p, d, b) in table {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                (s.matches(&prod), s.matches(&dev), s.matches(&bare)),
                (p, d, b),
                "{text:?}"
            );
            // The canonical form parses back to the same selector.
            assert_eq!(
                Selector::parse(&s.to_string()).unwrap(),
                s,
                "{text:?} → {s}"
            );
        }
    }

    #[test]
    fn invalid_selectors_report_the_position() {
        let table = [
            ("env in (a,", 10),
            ("env in ()", 8),
            ("env in a", 7),
            ("=prod", 0),
            ("env=prod,", 9),
            ("env prod", 4),
            ("env=pr od", 7),
            ("-env=x", 0),
            ("env=-bad", 4),
            ("!", 1),
            ("a/b/c=x", 0),
            ("env=(x)", 4),
        ];
        for (text, position) in table {
            let err = Selector::parse(text).expect_err(text);
            assert_eq!(err.position, position, "{text:?}: {err}");
            assert!(err.to_string().contains("position"), "{err}");
        }
    }

    #[test]
    fn a_label_selector_object_becomes_a_selector() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: vec!["prod".into()],
            }],
        };
        let s = Selector::from_label_selector(&selector).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        let bad = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Has".into(),
                values: vec![],
            }],
            ..Default::default()
        };
        assert!(Selector::from_label_selector(&bad).is_err());
    }

    #[test]
    fn field_selectors_match_equality_and_inequality_on_known_fields() {
        let fields = |f: &str| match f {
            "spec.nodeName" => Some("node-1".to_string()),
            "metadata.name" => Some("web".to_string()),
            _ => None,
        };
        assert!(
            FieldSelector::parse("spec.nodeName=node-1")
                .unwrap()
                .matches(fields)
        );
        assert!(
            FieldSelector::parse("spec.nodeName==node-1,metadata.name!=db")
                .unwrap()
                .matches(fields)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName!=node-1")
                .unwrap()
                .matches(fields)
        );
        assert!(
            FieldSelector::parse("status.phase=")
                .unwrap()
                .matches(fields)
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a=b,nonsense").unwrap_err().position,
            4
        );
        assert_eq!(FieldSelector::parse("=x").unwrap_err().position, 0);
    }

    #[test]
    fn more_invalid_selectors() {
        let long_key = format!("{}=x", "k".repeat(64));
        let long_value = format!("k={}", "v".repeat(64));
        let table = [
            ("x=a=b", 3, "expected ',' or end of input"),
            ("!env=x", 4, "expected ',' or end of input"),
            ("env in (a b)", 10, "expected ',' or ')'"),
            ("env notin ()", 11, "can't be empty"),
            ("a,,b", 2, "expected a label key"),
            (",a", 0, "expected a label key"),
            ("env in (a,-b)", 10, "invalid label value \"-b\""),
            ("Example.com/app=x", 0, "invalid label key"),
            ("env==", 5, ""),
            (long_key.as_str(), 0, "no more than 63 characters"),
            (long_value.as_str(), 2, "no more than 63 characters"),
        ];
        for (text, position, message) in table {
            match Selector::parse(text) {
                Ok(s) if message.is_empty() => {
                    // `env==` is a valid selector for an empty value; it must match "".
                    assert!(s.matches(&labels(&[("env", "")])), "{text:?}");
                }
                Ok(s) => panic!("{text:?} parsed as {s}"),
                Err(err) => {
                    assert_eq!(err.position, position, "{text:?}: {err}");
                    assert!(err.message.contains(message), "{text:?}: {err}");
                    assert_eq!(err.input, text);
                }
            }
        }
    }

    #[test]
    fn label_selector_display_round_trips() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Exists".into(),
                    values: vec![],
                },
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: vec!["dev".into(), "test".into()],
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ],
        };
        let s = Selector::from_label_selector(&selector).unwrap();
        assert_eq!(s.to_string(), "app=web,tier,env notin (dev,test),!legacy");
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), s);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("legacy", "")])));
        assert!(
            Selector::from_label_selector(&LabelSelector::default())
                .unwrap()
                .is_empty()
        );
        assert!(Selector::everything().matches(&labels(&[("any", "thing")])));
        let exists_with_values = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Exists".into(),
                values: vec!["x".into()],
            }],
            ..Default::default()
        };
        assert!(Selector::from_label_selector(&exists_with_values).is_err());
    }
}
