//! SCIM filters and sorts as parameterised SQL over the PostgreSQL store's tables.
//!
//! A filter becomes a `WHERE` condition that selects a *superset* of its matches, and says
//! whether that superset is exact. Comparisons the indexed columns can answer with exactly the
//! in-memory semantics (the same case folding, the same byte order, the same case-exactness
//! from the schema) are translated; anything else (extension attributes, `pr`, dates compared
//! as strings, booleans, complex value paths) becomes `TRUE` and the store evaluates the whole
//! filter in memory on the rows the condition selected, with the same code as the memory store.
//! So both stores give the same answers, and the common lookups (id, userName, externalId,
//! displayName, emails.value, members.value, meta.lastModified) are index scans.
//!
//! Values never enter the SQL text: every value is a typed parameter. Column names come from
//! the fixed lists below, never from the request.

use crate::filter::{self, AttrPath, Filter, Op};
use crate::query::SortBy;
use crate::schema::{self, DeclaredSchema, Schema};
use chrono::{DateTime, Utc};
use roster_events::fold_case;
use serde_json::Value;
use uuid::Uuid;

/// A typed SQL parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Text(String),
    Uuid(Uuid),
    Int(i64),
}

/// Users or groups: which table and which columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    fn schema(self) -> &'static Schema {
        match self {
            Kind::User => &schema::USER_SCHEMA,
            Kind::Group => &schema::GROUP_SCHEMA,
        }
    }
}

/// A piece of SQL: text with parameter slots, rendered once the whole query is known.
#[derive(Clone, Debug, Default)]
pub struct Fragment {
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Param(Param, &'static str),
}

impl Fragment {
    fn text(s: &str) -> Fragment {
        Fragment {
            parts: vec![Part::Text(s.to_owned())],
        }
    }

    fn push(mut self, s: &str) -> Fragment {
        self.parts.push(Part::Text(s.to_owned()));
        self
    }

    fn param(mut self, p: Param) -> Fragment {
        let cast = match p {
            Param::Text(_) => "text",
            Param::Uuid(_) => "uuid",
            Param::Int(_) => "int8",
        };
        self.parts.push(Part::Param(p, cast));
        self
    }

    fn wrap(self, before: &str, after: &str) -> Fragment {
        let mut parts = vec![Part::Text(before.to_owned())];
        parts.extend(self.parts);
        parts.push(Part::Text(after.to_owned()));
        Fragment { parts }
    }

    fn join(a: Fragment, op: &str, b: Fragment) -> Fragment {
        let mut parts = vec![Part::Text("(".into())];
        parts.extend(a.parts);
        parts.push(Part::Text(format!(" {op} ")));
        parts.extend(b.parts);
        parts.push(Part::Text(")".into()));
        Fragment { parts }
    }

    /// Appends the fragment to `sql`, numbering its parameters after those in `params`.
    pub fn render(self, sql: &mut String, params: &mut Vec<Param>) {
        for part in self.parts {
            match part {
                Part::Text(t) => sql.push_str(&t),
                Part::Param(p, cast) => {
                    params.push(p);
                    sql.push_str(&format!("${}::{cast}", params.len()));
                }
            }
        }
    }
}

/// A filter's SQL condition: `exact` when the condition selects exactly the matches.
#[derive(Clone, Debug)]
pub struct Condition {
    pub sql: Fragment,
    pub exact: bool,
    /// False when the condition is plain `TRUE` (it narrows nothing).
    pub narrows: bool,
}

impl Condition {
    fn all() -> Condition {
        Condition {
            sql: Fragment::text("TRUE"),
            exact: false,
            narrows: false,
        }
    }

    fn exact(sql: Fragment) -> Condition {
        Condition {
            sql,
            exact: true,
            narrows: true,
        }
    }
}

/// What a translatable attribute is in SQL.
enum Column {
    /// `u.id`: compared as its canonical text.
    Id,
    /// A text column holding the folded value (`*_ci`), or the value itself when `folded` is
    /// false.
    Text { col: &'static str, folded: bool },
    /// A millisecond time column, shown in `meta` as an RFC 3339 text.
    Millis(&'static str),
    /// Some `emails.value` of the user (folded) is compared.
    Email,
    /// Some `members.value` of the group is compared.
    Member,
}

/// The translator: the resource kind, the table alias and the schemas the source declared.
pub struct Translator<'a> {
    pub kind: Kind,
    pub alias: &'static str,
    pub declared: &'a [DeclaredSchema],
}

/// The LIKE pattern for `op` with `s`'s wildcards escaped (backslash is LIKE's escape).
fn like_pattern(op: Op, s: &str) -> String {
    let mut escaped = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        Op::Sw => format!("{escaped}%"),
        Op::Ew => format!("%{escaped}"),
        _ => format!("%{escaped}%"),
    }
}

fn comparison(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co | Op::Sw | Op::Ew => "LIKE",
    }
}

impl Translator<'_> {
    /// The condition for `filter` (see the module comment).
    pub fn condition(&self, filter: &Filter) -> Condition {
        match filter {
            Filter::And(a, b) => {
                let (a, b) = (self.condition(a), self.condition(b));
                match (a.narrows, b.narrows) {
                    (false, false) => Condition::all(),
                    (true, false) => Condition { exact: false, ..a },
                    (false, true) => Condition { exact: false, ..b },
                    (true, true) => Condition {
                        exact: a.exact && b.exact,
                        sql: Fragment::join(a.sql, "AND", b.sql),
                        narrows: true,
                    },
                }
            }
            Filter::Or(a, b) => {
                let (a, b) = (self.condition(a), self.condition(b));
                if !a.narrows || !b.narrows {
                    return Condition::all();
                }
                Condition {
                    exact: a.exact && b.exact,
                    sql: Fragment::join(a.sql, "OR", b.sql),
                    narrows: true,
                }
            }
            Filter::Not(a) => {
                let a = self.condition(a);
                if !a.exact {
                    return Condition::all();
                }
                Condition::exact(a.sql.wrap("(NOT ", ")"))
            }
            Filter::Compare { path, op, value } => {
                let exact_case = self.case_exact(path);
                self.compare(path, *op, value, exact_case)
                    .map_or_else(Condition::all, Condition::exact)
            }
            Filter::ValuePath { path, filter } => match filter.as_ref() {
                // `emails[value op "x"]`: the element's `value`, compared with the default
                // (case-insensitive) rule the in-memory evaluation gives an element.
                Filter::Compare {
                    path: inner,
                    op,
                    value,
                } if path.sub.is_none() && inner.is("value") => {
                    let whole = AttrPath {
                        sub: Some("value".into()),
                        ..path.clone()
                    };
                    self.compare(&whole, *op, value, false)
                        .map_or_else(Condition::all, Condition::exact)
                }
                _ => Condition::all(),
            },
            Filter::Present(_) => Condition::all(),
        }
    }

    fn case_exact(&self, path: &AttrPath) -> bool {
        schema::case_exact(
            path.schema.as_deref(),
            self.kind.schema(),
            &path.attr,
            path.sub.as_deref(),
        )
    }

    /// The column a core attribute path maps to, if any.
    fn column(&self, path: &AttrPath) -> Option<Column> {
        if let Some(s) = &path.schema {
            let core = self.kind.schema().id;
            // A declared schema could give the core URN other rules: leave it to memory.
            if !s.eq_ignore_ascii_case(core)
                || self.declared.iter().any(|d| d.id.eq_ignore_ascii_case(s))
            {
                return None;
            }
        }
        let attr = path.attr.as_str();
        let sub = path.sub.as_deref();
        let is = |a: &str| attr.eq_ignore_ascii_case(a);
        let sub_is = |s: &str| sub.is_some_and(|x| x.eq_ignore_ascii_case(s));
        Some(match (self.kind, sub) {
            (_, None) if is("id") => Column::Id,
            (_, None) if is("externalId") => Column::Text {
                col: "external_id",
                folded: false,
            },
            (Kind::User, None) if is("userName") => Column::Text {
                col: "user_name_ci",
                folded: true,
            },
            (_, None) if is("displayName") => Column::Text {
                col: "display_name_ci",
                folded: true,
            },
            (Kind::User, _) if is("emails") && (sub.is_none() || sub_is("value")) => Column::Email,
            (Kind::Group, _) if is("members") && (sub.is_none() || sub_is("value")) => {
                Column::Member
            }
            (_, Some(_)) if is("meta") && sub_is("created") => Column::Millis("created_ms"),
            (_, Some(_)) if is("meta") && sub_is("lastModified") => Column::Millis("modified_ms"),
            _ => return None,
        })
    }

    /// The exact condition for `path op value`, or None if it must be evaluated in memory.
    fn compare(
        &self,
        path: &AttrPath,
        op: Op,
        value: &Value,
        exact_case: bool,
    ) -> Option<Fragment> {
        let Value::String(raw) = value else {
            return None;
        };
        let a = self.alias;
        let wanted = if exact_case {
            raw.clone()
        } else {
            fold_case(raw)
        };
        let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
        match self.column(path)? {
            Column::Id => {
                if !substring && matches!(op, Op::Eq | Op::Ne) {
                    // The id is shown in canonical form: any other spelling matches nothing.
                    let canonical = Uuid::parse_str(&wanted)
                        .ok()
                        .filter(|u| u.to_string() == wanted);
                    let eq = match canonical {
                        Some(u) => Fragment::text(&format!("{a}.id = ")).param(Param::Uuid(u)),
                        None => Fragment::text("FALSE"),
                    };
                    return Some(if op == Op::Ne {
                        eq.wrap("(NOT ", ")")
                    } else {
                        eq
                    });
                }
                let col = format!("{a}.id::text");
                Some(self.text_compare(&col, op, &wanted, false))
            }
            Column::Text { col, folded } => {
                // The column holds the folded form; comparing it needs the same rule.
                if folded == exact_case {
                    return None;
                }
                if !substring && filter::looks_like_time(raw) {
                    return None;
                }
                let col = format!("{a}.{col}");
                Some(self.text_compare(&col, op, &wanted, true))
            }
            Column::Email => {
                if exact_case || (!substring && filter::looks_like_time(raw)) {
                    return None;
                }
                let inner = self
                    .text_compare(
                        "e.value_ci",
                        if op == Op::Ne { Op::Eq } else { op },
                        &wanted,
                        false,
                    )
                    .wrap(
                        &format!(
                            "EXISTS (SELECT 1 FROM user_emails e WHERE e.gen = {a}.gen \
                             AND e.directory = {a}.directory AND e.user_id = {a}.id AND "
                        ),
                        ")",
                    );
                Some(if op == Op::Ne {
                    inner.wrap("(NOT ", ")")
                } else {
                    inner
                })
            }
            Column::Member => {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return None;
                }
                let member = Uuid::parse_str(&wanted)
                    .ok()
                    .filter(|u| u.to_string() == wanted);
                let exists = match member {
                    Some(u) => Fragment::text(&format!(
                        "EXISTS (SELECT 1 FROM group_members m WHERE m.gen = {a}.gen \
                         AND m.directory = {a}.directory AND m.group_id = {a}.id AND m.member_id = "
                    ))
                    .param(Param::Uuid(u))
                    .push(")"),
                    None => Fragment::text("FALSE"),
                };
                Some(if op == Op::Ne {
                    exists.wrap("(NOT ", ")")
                } else {
                    exists
                })
            }
            Column::Millis(col) => {
                // `meta` shows the time to the millisecond; the comparison is between times
                // when the value reads as one (as is, or folded, as memory compares it).
                if substring || exact_case {
                    return None;
                }
                let at = DateTime::parse_from_rfc3339(&wanted).ok()?;
                let nanos = at.with_timezone(&Utc).timestamp_nanos_opt()?;
                let sql = format!("({a}.{col} * 1000000) {} ", comparison(op));
                let cmp = Fragment::text(&sql).param(Param::Int(nanos));
                Some(cmp)
            }
        }
    }

    /// `col op value` on text, byte order (Rust's `str` order is UTF-8 byte order, which is
    /// collation "C"); `nullable` columns count NULL as no value (so `ne` matches).
    fn text_compare(&self, col: &str, op: Op, value: &str, nullable: bool) -> Fragment {
        match op {
            Op::Co | Op::Sw | Op::Ew => Fragment::text(&format!("{col} COLLATE \"C\" LIKE "))
                .param(Param::Text(like_pattern(op, value))),
            Op::Ne if nullable => Fragment::text(&format!("{col} IS DISTINCT FROM "))
                .param(Param::Text(value.to_owned())),
            op => Fragment::text(&format!("{col} COLLATE \"C\" {} ", comparison(op)))
                .param(Param::Text(value.to_owned())),
        }
    }

    /// The ORDER BY for a sort the columns can give exactly as memory sorts, or None. Ties go
    /// by id and descending reverses the whole order, as in memory; resources without the
    /// attribute come last ascending.
    pub fn order_by(&self, sort: &SortBy) -> Option<String> {
        let a = self.alias;
        let path = &sort.path;
        let key = match self.column(path)? {
            Column::Id => None,
            Column::Text { col, folded } if folded != self.case_exact(path) => Some(col),
            Column::Millis(col) if !self.case_exact(path) => Some(col),
            _ => return None,
        };
        let dir = if sort.descending { "DESC" } else { "ASC" };
        Some(match key {
            None => format!("{a}.id {dir}"),
            Some(col) => {
                let nulls = if sort.descending {
                    "NULLS FIRST"
                } else {
                    "NULLS LAST"
                };
                let collate = if col.ends_with("_ms") {
                    ""
                } else {
                    " COLLATE \"C\""
                };
                format!("{a}.{col}{collate} {dir} {nulls}, {a}.id {dir}")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;

    fn translate(kind: Kind, f: &str) -> (String, Vec<Param>, bool) {
        let t = Translator {
            kind,
            alias: "u",
            declared: &[],
        };
        let c = t.condition(&parse(f).unwrap());
        let (mut sql, mut params) = (String::new(), Vec::new());
        c.sql.render(&mut sql, &mut params);
        (sql, params, c.exact)
    }

    #[test]
    fn indexed_lookups_become_exact_parameterised_sql() {
        let (sql, params, exact) = translate(Kind::User, r#"userName eq "Alice@Example.COM""#);
        assert_eq!(sql, r#"u.user_name_ci COLLATE "C" = $1::text"#);
        assert_eq!(params, vec![Param::Text("alice@example.com".into())]);
        assert!(exact);

        let (sql, params, exact) = translate(Kind::User, r#"externalId eq "AbC""#);
        assert_eq!(sql, r#"u.external_id COLLATE "C" = $1::text"#);
        assert_eq!(params, vec![Param::Text("AbC".into())]);
        assert!(exact);

        let (sql, _, exact) = translate(Kind::User, r#"emails[value eq "A@x.org"]"#);
        assert!(
            sql.starts_with("EXISTS (SELECT 1 FROM user_emails e"),
            "{sql}"
        );
        assert!(exact);

        let id = Uuid::now_v7();
        let (sql, params, exact) = translate(
            Kind::Group,
            &format!(r#"displayName eq "Ops" and members[value eq "{id}"]"#),
        );
        assert!(
            sql.contains("u.display_name_ci COLLATE \"C\" = $1::text"),
            "{sql}"
        );
        assert!(sql.contains("m.member_id = $2::uuid"), "{sql}");
        assert_eq!(params[1], Param::Uuid(id));
        assert!(exact);
    }

    #[test]
    fn hostile_values_stay_parameters() {
        let evil = r#"x' OR '1'='1'; DROP TABLE users; --"#;
        for op in ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"] {
            let filter = format!("userName {op} {}", serde_json::to_string(evil).unwrap());
            let (sql, params, exact) = translate(Kind::User, &filter);
            assert!(!sql.contains("DROP"), "{sql}");
            assert!(exact, "{filter}");
            assert_eq!(params.len(), 1);
        }
        let (_, params, _) = translate(Kind::User, r#"userName co "100%_\\""#);
        assert_eq!(params, vec![Param::Text(r"%100\%\_\\%".into())]);
    }

    #[test]
    fn what_sql_cannot_answer_exactly_is_left_to_memory() {
        for f in [
            "title pr",
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#,
            r#"userName eq "2026-01-01T00:00:00Z""#,
            "active eq true",
            r#"emails[type eq "work"]"#,
            r#"not (title eq "x")"#,
            r#"userName eq "a" or title eq "b""#,
            r#"meta.lastModified gt "yesterday""#,
        ] {
            let (_, _, exact) = translate(Kind::User, f);
            assert!(!exact, "{f}");
        }
        // A residual conjunct still narrows by the indexed one.
        let (sql, _, exact) = translate(Kind::User, r#"userName eq "a" and title eq "b""#);
        assert!(!exact);
        assert!(sql.contains("user_name_ci"), "{sql}");
    }

    #[test]
    fn folded_times_still_read_as_times() {
        // Memory compares folded texts, and `meta` times folded read `...t...z`: the SQL
        // translation of time comparisons rests on chrono reading them as times.
        assert!(DateTime::parse_from_rfc3339("2026-01-02t03:04:05.123z").is_ok());
    }

    #[test]
    fn ids_match_only_in_canonical_form() {
        let id = Uuid::now_v7();
        let (sql, _, exact) = translate(Kind::User, &format!(r#"id eq "{}""#, id));
        assert_eq!(sql, "u.id = $1::uuid");
        assert!(exact);
        let upper = id.to_string().to_uppercase();
        let (sql, params, exact) = translate(Kind::User, &format!(r#"id eq "{upper}""#));
        assert_eq!((sql.as_str(), params.len(), exact), ("FALSE", 0, true));
    }
}
