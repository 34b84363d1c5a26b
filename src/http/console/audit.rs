//! The audit pages: the search (time range, the SCIM filter over event fields, keyword,
//! order, following the log) and its NDJSON export; and the timeline every page that shows
//! events renders them with (what happened, who did it, and each attribute's old and new
//! value). Every read of the trail is recorded before it is answered, as the admin API's are.

use super::layout::{self, page, Nav};
use super::{Answer, Failure, Signed};
use crate::audit::query::{Search, SearchParams};
use crate::audit::render::Rendered;
use crate::http::error::ScimError;
use crate::http::AppState;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde_json::Value;

/// How many events a page of the console shows.
const PAGE: &str = "50";

/// Events as a timeline, newest or oldest first as they come.
pub fn timeline(events: &[Rendered]) -> Markup {
    let shown: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    html! {
        @if shown.is_empty() {
            p.muted { "No events." }
        } @else {
            ol.timeline {
                @for e in &shown { (event(e)) }
            }
        }
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn event(e: &Value) -> Markup {
    let failed = text(e, "/outcome") == "failure";
    let changes = e
        .get("changes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    html! {
        li {
            div {
                strong { (text(e, "/displayName")) }
                " "
                @if failed { (layout::badge("bad", "refused")) }
                span.when { " · " (layout::time_text(text(e, "/time"))) }
            }
            div { (text(e, "/message")) }
            div.muted {
                "by " (text(e, "/actor/kind"))
                @if let Some(id) = e.pointer("/actor/id").and_then(Value::as_str) { " " code { (id) } }
                @if let Some(ip) = e.pointer("/client/ip").and_then(Value::as_str) { " from " (ip) }
                @if let Some(c) = e.get("correlationId").and_then(Value::as_str) { " · request " code { (c) } }
                " · position " (e.get("position").and_then(Value::as_u64).unwrap_or(0))
                " · " (text(e, "/target/etag"))
            }
            @if !changes.is_empty() {
                table.changes {
                    thead { tr { th scope="col" { "Attribute" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody {
                        @for c in changes {
                            tr {
                                td { code { (text(c, "/path")) } }
                                td.old { (layout::value(c.get("old"))) }
                                td.new { (layout::value(c.get("new"))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The query of the audit page.
#[derive(serde::Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// `oldest` for oldest first; newest first otherwise.
    #[serde(default)]
    order: String,
    after: Option<String>,
    /// `on` to reload the page every few seconds.
    #[serde(default)]
    follow: String,
}

impl AuditQuery {
    fn params(&self) -> SearchParams {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        SearchParams {
            since: given(&self.since),
            until: given(&self.until),
            filter: given(&self.filter),
            q: given(&self.q),
            sort_order: Some(
                if self.order == "oldest" {
                    "ascending"
                } else {
                    "descending"
                }
                .into(),
            ),
            limit: Some(PAGE.into()),
            after: self.after.clone(),
        }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("filter", self.filter.as_str()),
            ("q", &self.q),
            ("since", &self.since),
            ("until", &self.until),
            ("order", &self.order),
            ("follow", &self.follow),
        ]
    }
}

/// `GET /console/audit`: the audit search.
pub async fn search(
    State(app): State<AppState>,
    signed: Signed,
    RawQuery(raw): RawQuery,
    Query(q): Query<AuditQuery>,
) -> Answer {
    signed.admin.record_read(&app, raw.as_deref()).await?;
    let found = match Search::parse(&q.params(), app.audit.partitions()) {
        Ok(search) => Ok(app
            .audit
            .search(&search, None)
            .await
            .map_err(ScimError::from)?),
        Err(e) => Err(e.to_string()),
    };
    let follow = q.follow == "on";
    let pairs = q.pairs();
    let export = format!("/console/audit/export?{}", layout::query(&pairs[..4]));
    let content = html! {
        form.search method="get" action="/console/audit" role="search" {
            div {
                label for="filter" { "Filter " span.hint { "(SCIM filter over event fields)" } }
                input #filter.wide type="text" name="filter" value=(q.filter)
                    placeholder="type eq \"user.deactivated\" and source eq \"entra\"";
            }
            div {
                label for="q" { "Name contains" }
                input #q type="search" name="q" value=(q.q);
            }
            div {
                label for="since" { "Since " span.hint { "(RFC 3339)" } }
                input #since type="text" name="since" value=(q.since) placeholder="2026-01-01T00:00:00Z";
            }
            div {
                label for="until" { "Until" }
                input #until type="text" name="until" value=(q.until);
            }
            div {
                label for="order" { "Order" }
                select #order name="order" {
                    option value="newest" selected[q.order != "oldest"] { "Newest first" }
                    option value="oldest" selected[q.order == "oldest"] { "Oldest first" }
                }
            }
            div {
                label { input type="checkbox" name="follow" value="on" checked[follow]; " Follow" }
            }
            button type="submit" { "Search" }
            a.button href=(export) { "Export NDJSON" }
        }
        @match &found {
            Err(why) => p.error role="alert" { (why) },
            Ok(found) => {
                @if follow { div data-refresh="5" hidden {} }
                (timeline(&found.events))
                (layout::next_link(found.found.next.as_ref().map(|c| {
                    let mut pairs = pairs.clone();
                    let cursor = c.encode();
                    pairs.push(("after", &cursor));
                    format!("/console/audit?{}", layout::query(&pairs))
                })))
            }
        }
    };
    Ok(page(&signed, Nav::Audit, "Audit trail", content))
}

/// `GET /console/audit/export`: the matching events as NDJSON, streamed, oldest first.
pub async fn export(
    State(app): State<AppState>,
    signed: Signed,
    RawQuery(raw): RawQuery,
    Query(q): Query<AuditQuery>,
) -> Answer {
    signed.admin.record_read(&app, raw.as_deref()).await?;
    let mut p = q.params();
    (p.sort_order, p.limit, p.after) = (None, None, None);
    let search = Search::parse(&p, app.audit.partitions()).map_err(ScimError::from)?;
    let stream = app.audit.clone().export(search);
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"roster-audit.ndjson\""),
    );
    Ok(resp)
}

impl From<crate::audit::AuditError> for Failure {
    fn from(e: crate::audit::AuditError) -> Self {
        Failure(e.into())
    }
}
