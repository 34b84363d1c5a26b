//! The shell every console page shares (head, navigation, who is signed in, sign-out) and
//! the small pieces pages are built from: the CSRF field, times, values, pagers. maud escapes
//! everything spliced into a page, so a value is always shown as text.

use super::Signed;
use crate::http::error::ScimError;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// The page of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Sources,
    Users,
    Groups,
    Providers,
    Mappings,
    Audit,
    Rebuild,
}

const NAV: [(Nav, &str, &str); 8] = [
    (Nav::Overview, "/console/", "Overview"),
    (Nav::Sources, "/console/sources", "Sources"),
    (Nav::Users, "/console/users", "Users"),
    (Nav::Groups, "/console/groups", "Groups"),
    (Nav::Providers, "/console/providers", "Providers"),
    (Nav::Mappings, "/console/mappings", "Mappings"),
    (Nav::Audit, "/console/audit", "Audit"),
    (Nav::Rebuild, "/console/rebuild", "Rebuild"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Roster" }
            link rel="stylesheet" href=(super::assets::CSS);
            script src=(super::assets::JS) defer {}
        }
    }
}

/// A page of the console for a signed-in admin.
pub fn page(signed: &Signed, nav: Nav, title: &str, content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.bar {
                    a.brand href="/console/" { "Roster" }
                    nav aria-label="Main" {
                        ul {
                            @for (n, href, label) in NAV {
                                li {
                                    @if n == nav {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.who method="post" action="/console/sign-out" {
                        (csrf(signed))
                        span { "Signed in as " code { (signed.session.who) } }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page outside the signed-in shell (sign-in, errors).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "Roster" }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The page answered for an error.
pub fn failure(e: &ScimError) -> Html<String> {
    let title = e.status.canonical_reason().unwrap_or("Error");
    Html(
        bare(
            title,
            html! {
                p.error role="alert" { (e.detail) }
                p { a href="/console/" { "Back to the console" } }
            },
        )
        .into_string(),
    )
}

/// The hidden field that carries the session's CSRF token in every form.
pub fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}

/// A time as people read it, in UTC.
pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An RFC 3339 time (as the audit trail renders it) as people read it.
pub fn time_text(t: &str) -> String {
    DateTime::parse_from_rfc3339(t).map_or_else(|_| t.to_owned(), |t| time(&t.to_utc()))
}

/// A JSON value as text: strings as they are, anything else as compact JSON, absent as "—".
pub fn value(v: Option<&Value>) -> Markup {
    match v {
        None | Some(Value::Null) => html! { span.none { "—" } },
        Some(Value::String(s)) => html! { (s) },
        Some(other) => html! { code { (other.to_string()) } },
    }
}

/// Every leaf of a SCIM document with its path (`name.givenName`, `emails[0].value`), in
/// document order.
pub fn leaves(doc: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(path: String, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(p, v, out);
                }
            }
            Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                for (i, v) in items.iter().enumerate() {
                    walk(format!("{path}[{i}]"), v, out);
                }
            }
            _ => out.push((path, v)),
        }
    }
    let mut out = Vec::new();
    walk(String::new(), doc, &mut out);
    out
}

/// A link to the next page when there is one.
pub fn next_link(href: Option<String>) -> Markup {
    html! {
        @if let Some(href) = href {
            nav.pager aria-label="Pages" { a rel="next" href=(href) { "Next page →" } }
        }
    }
}

/// A query string from its pairs, skipping empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish()
}

/// A small status badge (`ok`, `warn`, `bad`).
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class=(format!("badge {kind}")) { (text) } }
}

/// A button that copies `text` (progressive enhancement: the text is selectable without it).
pub fn copyable(id: &str, text: &str) -> Markup {
    html! {
        span.copyable {
            code #(id) { (text) }
            button.copy type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_documents_leaves_are_named_by_their_paths() {
        let doc = json!({"userName": "a", "name": {"givenName": "A"},
                         "emails": [{"value": "a@x", "primary": true}], "roles": ["x", "y"]});
        let paths: Vec<String> = leaves(&doc).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "emails[0].primary",
                "emails[0].value",
                "name.givenName",
                "roles",
                "userName"
            ]
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
    }
}
