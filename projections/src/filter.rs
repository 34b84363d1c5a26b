//! SCIM filters (RFC 7644 §3.4.2.2): parsed once into a tree, evaluated in memory against a
//! resource. The grammar: `attrPath op value`, `attrPath pr`, `and`, `or`, `not (...)`,
//! parentheses and value paths (`emails[type eq "work"]`); attribute names and operators are
//! case-insensitive. String comparison is case-insensitive except for case-exact attributes
//! (`id`, `externalId`, `meta.version`). A SQL translation of the same tree lives with the
//! PostgreSQL store.

use chrono::{DateTime, Utc};
use roster_events::fold_case;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// An attribute path: an optional schema URN, an attribute and an optional sub-attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// True if this path names `attr` (case-insensitively) with no schema and no sub-attribute.
    pub fn is(&self, attr: &str) -> bool {
        self.schema.is_none() && self.sub.is_none() && self.attr.eq_ignore_ascii_case(attr)
    }

    fn case_exact(&self) -> bool {
        match &self.sub {
            None => {
                self.attr.eq_ignore_ascii_case("id") || self.attr.eq_ignore_ascii_case("externalId")
            }
            Some(s) => self.attr.eq_ignore_ascii_case("meta") && s.eq_ignore_ascii_case("version"),
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{s}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: Op,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// The canonical text of a filter: fully parenthesized, values as JSON. Parsing it gives the
/// same tree back.
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

/// Why a filter was refused; the HTTP layer answers 400 invalidFilter with this text.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

/// The most nesting a filter may have; deeper ones are refused rather than risk the stack.
const MAX_DEPTH: usize = 64;
/// The longest filter accepted.
pub const MAX_FILTER_LEN: usize = 8192;

fn lex(input: &str) -> Result<Vec<Tok>, FilterError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    _ => Tok::RBracket,
                });
            }
            '"' => {
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let Some(end) = end else {
                    return err("unterminated string");
                };
                let s: String = serde_json::from_str(&input[i..=end])
                    .map_err(|_| FilterError("invalid string escape".into()))?;
                if s.contains('\0') {
                    return err("filter values may not contain U+0000");
                }
                out.push(Tok::Str(s));
            }
            _ => {
                let start = i;
                let mut end = input.len();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '[' | ']' | '"') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                out.push(Tok::Word(input[start..end].to_owned()));
            }
        }
    }
    Ok(out)
}

/// Parses an attribute path such as `userName`, `name.familyName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
pub fn parse_attr_path(s: &str) -> Result<AttrPath, FilterError> {
    let urn = s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (schema, rest) = if urn {
        match s.rfind(':') {
            Some(i) if i + 1 < s.len() => (Some(s[..i].to_owned()), &s[i + 1..]),
            _ => return err(format!("invalid attribute path {s:?}")),
        }
    } else {
        (None, s)
    };
    let mut parts = rest.split('.');
    let attr = parts.next().unwrap_or("");
    let sub = parts.next();
    let valid = |n: &str| {
        let mut cs = n.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '$')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) || parts.next().is_some() {
        return err(format!("invalid attribute path {s:?}"));
    }
    Ok(AttrPath {
        schema,
        attr: attr.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

fn parse_op(s: &str) -> Option<Op> {
    Some(match s.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "co" => Op::Co,
        "sw" => Op::Sw,
        "ew" => Op::Ew,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), FilterError> {
        if self.next() == Some(t) {
            Ok(())
        } else {
            err(format!("expected {what}"))
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("filter nests too deeply");
        }
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `op value` or `pr` after an attribute path.
    fn comparison(&mut self, path: AttrPath, w: &str) -> Result<Filter, FilterError> {
        let op = match self.next() {
            Some(Tok::Word(o)) if o.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(o)) => {
                parse_op(&o).ok_or_else(|| FilterError(format!("unknown operator {o:?}")))?
            }
            _ => return err(format!("expected an operator after {w:?}")),
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Word(v)) => match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n)
                    .map(Value::Number)
                    .map_err(|_| FilterError(format!("invalid value {n:?}")))?,
            },
            _ => return err(format!("expected a value after {w:?}")),
        };
        let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
        let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
        if (ordering && (value.is_boolean() || value.is_null()))
            || (substring && !value.is_string())
        {
            return err(format!("operator {op:?} cannot compare {value}"));
        }
        Ok(Filter::Compare { path, op, value })
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            self.expect(Tok::LParen, "'(' after not")?;
            let inner = self.or()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(inner)
            }
            Some(Tok::Word(w)) => {
                let path = parse_attr_path(&w)?;
                if self.peek() == Some(&Tok::LBracket) {
                    self.pos += 1;
                    let inner = self.or()?;
                    self.expect(Tok::RBracket, "']'")?;
                    // `emails[type eq "work"].value eq "a@x"`: the elements the brackets
                    // select whose sub-attribute compares (what PATCH paths write, and what
                    // other servers accept in filters too).
                    let filter = match self.peek() {
                        Some(Tok::Word(next)) if next.starts_with('.') => {
                            let next = next.clone();
                            self.pos += 1;
                            let sub = parse_attr_path(&next[1..])?;
                            if sub.schema.is_some() || sub.sub.is_some() {
                                return err(format!("invalid sub-attribute {next:?}"));
                            }
                            let cmp = self.comparison(sub, &next)?;
                            Filter::And(Box::new(inner), Box::new(cmp))
                        }
                        _ => inner,
                    };
                    return Ok(Filter::ValuePath {
                        path,
                        filter: Box::new(filter),
                    });
                }
                self.comparison(path, &w)
            }
            _ => err("expected an attribute, '(' or not"),
        }
    }
}

/// Parses a filter expression.
///
/// Fails with a message fit for a client on any syntax error, an unknown operator, an
/// operator that cannot compare the given value, or a filter longer than [`MAX_FILTER_LEN`].
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return err("filter too long");
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return err("empty filter");
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return err("unexpected text after the filter");
    }
    Ok(f)
}

/// A resource a filter can be evaluated against.
pub trait Attributes {
    /// The value of a top-level attribute (`schema` is the URN of an extension, if given).
    fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>>;

    /// Whether string comparisons on `path` are case-exact. Resources with a schema answer
    /// from it; the default knows only the common attributes (`id`, `externalId`,
    /// `meta.version`).
    fn case_exact(&self, path: &AttrPath) -> bool {
        path.case_exact()
    }
}

/// Looks up `key` in a JSON object, case-insensitively as SCIM attribute names are.
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// One element of a multi-valued attribute, for the inner filter of a value path.
struct Element<'a>(&'a Map<String, Value>);

impl Attributes for Element<'_> {
    fn attribute(&self, _schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        get_ci(self.0, attr).map(Cow::Borrowed)
    }
}

pub(crate) fn values_at<'a>(top: &'a Value, sub: Option<&str>, out: &mut Vec<&'a Value>) {
    match top {
        Value::Array(items) => {
            for item in items {
                values_at(item, sub, out);
            }
        }
        Value::Object(m) => {
            // A complex attribute compared as a whole means its `value` sub-attribute.
            if let Some(v) = get_ci(m, sub.unwrap_or("value")) {
                match v {
                    Value::Array(items) => out.extend(items.iter()),
                    v => out.push(v),
                }
            }
        }
        v if sub.is_none() => out.push(v),
        _ => {}
    }
}

/// True when `s` reads as an RFC 3339 time (as is or folded): an ordering or equality with it
/// compares times (`2026-01-01T00:00:00Z` equals `2026-01-01T00:00:00+00:00`), which neither a
/// text column nor an index of strings can answer.
pub fn looks_like_time(s: &str) -> bool {
    DateTime::parse_from_rfc3339(s).is_ok() || DateTime::parse_from_rfc3339(&fold_case(s)).is_ok()
}

fn compare(actual: &Value, op: Op, expected: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            let (a, b): (Cow<str>, Cow<str>) = if exact {
                (Cow::Borrowed(a), Cow::Borrowed(b))
            } else {
                (Cow::Owned(fold_case(a)), Cow::Owned(fold_case(b)))
            };
            match op {
                Op::Co => return a.contains(b.as_ref()),
                Op::Sw => return a.starts_with(b.as_ref()),
                Op::Ew => return a.ends_with(b.as_ref()),
                _ => {}
            }
            let dates = (
                DateTime::parse_from_rfc3339(&a)
                    .ok()
                    .map(|d| d.with_timezone(&Utc)),
                DateTime::parse_from_rfc3339(&b)
                    .ok()
                    .map(|d| d.with_timezone(&Utc)),
            );
            match dates {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => Some(a.cmp(&b)),
            }
        }
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        // Booleans sent as strings by some clients ("True") compare with real booleans.
        (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => b
            .parse::<bool>()
            .ok()
            .or_else(|| match fold_case(b).as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })
            .map(|b| a.cmp(&b)),
        _ => None,
    };
    match (op, ord) {
        (Op::Eq, Some(o)) => o.is_eq(),
        (Op::Gt, Some(o)) => o.is_gt(),
        (Op::Ge, Some(o)) => o.is_ge(),
        (Op::Lt, Some(o)) => o.is_lt(),
        (Op::Le, Some(o)) => o.is_le(),
        _ => false,
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl Filter {
    /// Evaluates the filter against `resource`.
    pub fn matches(&self, resource: &dyn Attributes) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::Present(path) => {
                let Some(top) = resource.attribute(path.schema.as_deref(), &path.attr) else {
                    return false;
                };
                match &path.sub {
                    None => present(&top),
                    Some(_) => {
                        let mut vals = Vec::new();
                        values_at(&top, path.sub.as_deref(), &mut vals);
                        vals.into_iter().any(present)
                    }
                }
            }
            Filter::Compare { path, op, value } => {
                let top = resource.attribute(path.schema.as_deref(), &path.attr);
                let mut vals = Vec::new();
                if let Some(top) = &top {
                    values_at(top, path.sub.as_deref(), &mut vals);
                }
                let exact = resource.case_exact(path);
                match op {
                    Op::Ne => !vals.iter().any(|v| compare(v, Op::Eq, value, exact)),
                    Op::Eq if value.is_null() => !vals.iter().any(|v| present(v)),
                    op => vals.iter().any(|v| compare(v, *op, value, exact)),
                }
            }
            Filter::ValuePath { path, filter } => {
                let Some(top) = resource.attribute(path.schema.as_deref(), &path.attr) else {
                    return false;
                };
                let items: Vec<&Value> = match top.as_ref() {
                    Value::Array(items) => items.iter().collect(),
                    v => vec![v],
                };
                items.into_iter().any(|item| match item {
                    Value::Object(m) => filter.matches(&Element(m)),
                    _ => false,
                })
            }
        }
    }

    /// If the filter is exactly `attr eq "string"`, the string.
    pub fn eq_string(&self, attr: &str) -> Option<&str> {
        match self {
            Filter::Compare {
                path,
                op: Op::Eq,
                value: Value::String(s),
            } if path.is(attr) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    struct Doc(Value);
    impl Attributes for Doc {
        fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
            let m = self.0.as_object()?;
            let m = match schema {
                Some(s) => get_ci(m, s)?.as_object()?,
                None => m,
            };
            get_ci(m, attr).map(Cow::Borrowed)
        }
    }

    fn doc() -> Doc {
        Doc(json!({
            "id": "AbC",
            "userName": "Alice@Example.com",
            "active": true,
            "name": {"familyName": "Liddell", "givenName": "Alice"},
            "emails": [
                {"type": "work", "value": "alice@corp.example"},
                {"type": "home", "value": "alice@home.example"}
            ],
            "meta": {"lastModified": "2026-01-02T03:04:05Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"}
        }))
    }

    fn m(f: &str) -> bool {
        parse(f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .matches(&doc())
    }

    #[test]
    fn comparisons_follow_case_rules() {
        assert!(m(r#"userName eq "alice@example.com""#));
        assert!(m(r#"USERNAME Eq "ALICE@EXAMPLE.COM""#));
        assert!(m(r#"id eq "AbC""#));
        assert!(!m(r#"id eq "abc""#), "id is case-exact");
        assert!(m(r#"userName sw "ali" and userName ew ".COM""#));
        assert!(m(r#"name.familyName co "dde""#));
        assert!(m(r#"emails.value co "home""#));
        assert!(m(r#"emails co "corp""#));
        assert!(m(r#"emails[type eq "work" and value co "corp"]"#));
        assert!(!m(r#"emails[type eq "work" and value co "home"]"#));
        assert!(m(r#"emails[type eq "work"].value eq "alice@corp.example""#));
        assert!(!m(
            r#"emails[type eq "home"].value eq "alice@corp.example""#
        ));
        assert!(m(
            r#"emails[type eq "home"].value co "home" and userName pr"#
        ));
        assert!(m(r#"emails[type pr].type pr"#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42""#
        ));
        assert!(m(r#"meta.lastModified gt "2025-12-31T23:59:59Z""#));
        assert!(m("active eq true"));
        assert!(m("title pr or active eq true"));
        assert!(m("not (title pr)"));
        assert!(m(r#"userName ne "bob""#));
        assert!(!m(r#"title eq "x""#));
        assert!(m(
            r#"(userName eq "x" or userName sw "a") and not (active eq false)"#
        ));
    }

    #[test]
    fn bad_filters_are_errors() {
        for f in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "a""#,
            r#"userName eq "a" and"#,
            r#"(userName eq "a""#,
            r#"userName eq "a")"#,
            r#"emails[type eq "work""#,
            r#"emails[type eq "work"].value"#,
            r#"emails[type eq "work"].a.b eq "x""#,
            r#"userName eq "unterminated"#,
            "active gt true",
            "userName co 3",
            r#"a.b.c eq "x""#,
            r#"1abc eq "x""#,
            "not userName pr",
            r#"userName eq "a\u0000b""#,
        ] {
            assert!(parse(f).is_err(), "{f:?} should be refused");
        }
        let deep = format!("{}userName pr{}", "(".repeat(200), ")".repeat(200));
        assert!(parse(&deep).is_err());
    }

    fn arb_path() -> impl Strategy<Value = AttrPath> {
        let schema = prop_oneof![
            3 => Just(None),
            1 => Just(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned())),
        ];
        // Attribute names that are also keywords (`not`, `and`, `or`, `pr`) are ambiguous in
        // the RFC grammar; no schema uses them.
        let name = || {
            "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("not a keyword", |n: &String| {
                !["not", "and", "or", "pr"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(n))
            })
        };
        (schema, name(), prop::option::of(name())).prop_map(|(schema, attr, sub)| AttrPath {
            schema,
            attr,
            sub,
        })
    }

    fn arb_leaf() -> impl Strategy<Value = Filter> {
        let string = "\\PC{0,12}".prop_map(Value::String);
        let scalar = prop_oneof![
            string.clone(),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        prop_oneof![
            arb_path().prop_map(Filter::Present),
            (arb_path(), prop_oneof![Just(Op::Eq), Just(Op::Ne)], scalar)
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            (
                arb_path(),
                prop_oneof![
                    Just(Op::Co),
                    Just(Op::Sw),
                    Just(Op::Ew),
                    Just(Op::Gt),
                    Just(Op::Le)
                ],
                string
            )
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            (
                arb_path(),
                prop_oneof![Just(Op::Ge), Just(Op::Lt)],
                any::<i64>().prop_map(Value::from)
            )
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
        ]
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        arb_leaf().prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.clone().prop_map(|a| Filter::Not(Box::new(a))),
                (arb_path().prop_map(|p| AttrPath { sub: None, ..p }), inner).prop_map(
                    |(path, f)| Filter::ValuePath {
                        path,
                        filter: Box::new(f)
                    }
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_filter(f in arb_filter()) {
            let text = f.to_string();
            prop_assert_eq!(parse(&text).map_err(|e| format!("{text}: {e}")), Ok(f));
        }

        #[test]
        fn the_parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn the_parser_never_panics_on_filter_like_text(
            s in r#"[a-zA-Z.:\[\]()" ]{0,20}( (eq|ne|co|sw|pr|and|or|not) [a-z"0-9() ]{0,10}){0,4}"#
        ) {
            if let Ok(f) = parse(&s) {
                let _ = f.matches(&doc());
            }
        }
    }
}
