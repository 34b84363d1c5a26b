//! The users and groups pages: a search (a plain box, or the SCIM filter language, answered by
//! the same indexes as a SCIM client's filter), paged tables, and a detail page with the
//! attributes, memberships, the history timeline (who changed what, old and new values) and
//! the object as it was at any moment.

use super::layout::{self, page, Nav};
use super::{audit, Answer, Signed};
use crate::audit::query::{Search, SearchParams};
use crate::audit::AsOf;
use crate::http::error::ScimError;
use crate::http::AppState;
use axum::extract::{Path, Query, RawQuery, State};
use maud::{html, Markup};
use roster_events::{MemberType, ResourceId, DEFAULT_DIRECTORY};
use roster_projections::Visibility;
use roster_projections::{filter, ListQuery};
use serde_json::{json, Value};

/// Rows on a page of users or groups.
const PAGE_SIZE: usize = 50;

/// A search counts its matches up to this many (or to the end of the page asked for, if that
/// is further) and says "more than" beyond: PostgreSQL would otherwise count every match of a
/// wide search, about 230 ms for a million.
const COUNTED: usize = 10_000;

/// Users or groups: what a page lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::User => "/console/users",
            Kind::Group => "/console/groups",
        }
    }

    fn nav(self) -> Nav {
        match self {
            Kind::User => Nav::Users,
            Kind::Group => Nav::Groups,
        }
    }

    /// The filter a plain search for `text` means: names that start with it, as Okta's and
    /// Entra's search boxes do, answered by the ordered name indexes at any directory size
    /// (a `co` filter in the filter box reads every object).
    fn plain(self, text: &str) -> String {
        let t = Value::from(text).to_string();
        match self {
            Kind::User => format!("userName sw {t} or displayName sw {t}"),
            Kind::Group => format!("displayName sw {t}"),
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListParams {
    directory: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    filter: String,
    page: Option<usize>,
}

/// The directory a page is about: the one asked for, `default` when none is.
async fn directory(
    app: &AppState,
    asked: Option<&str>,
) -> Result<(String, Vec<String>), ScimError> {
    let all = app.store.directories().await?;
    let dir = asked.filter(|d| !d.is_empty()).unwrap_or(DEFAULT_DIRECTORY);
    if !all.iter().any(|d| d == dir) {
        return Err(ScimError::not_found(format!("directory {dir:?} not found")));
    }
    Ok((dir.to_owned(), all))
}

pub async fn users(state: State<AppState>, signed: Signed, q: Query<ListParams>) -> Answer {
    list(state, signed, q, Kind::User).await
}

pub async fn groups(state: State<AppState>, signed: Signed, q: Query<ListParams>) -> Answer {
    list(state, signed, q, Kind::Group).await
}

/// One row of a list: id, name, second column, owner, last modified.
struct Row {
    id: ResourceId,
    name: String,
    detail: String,
    owner: Option<String>,
    modified: String,
}

async fn list(
    State(app): State<AppState>,
    signed: Signed,
    Query(p): Query<ListParams>,
    kind: Kind,
) -> Answer {
    let (dir, all) = directory(&app, p.directory.as_deref()).await?;
    let page_no = p.page.unwrap_or(1).max(1);
    let text = if !p.filter.trim().is_empty() {
        Some(p.filter.trim().to_owned())
    } else if !p.q.trim().is_empty() {
        Some(kind.plain(p.q.trim()))
    } else {
        None
    };
    let parsed = text.as_deref().map(filter::parse).transpose();
    let content = match parsed {
        Err(e) => {
            html! { (search_form(kind, &p, &dir, &all)) p.error role="alert" { "Invalid filter: " (e.0) } }
        }
        Ok(filter) => {
            let start = (page_no - 1).saturating_mul(PAGE_SIZE);
            let end = start.saturating_add(PAGE_SIZE);
            let counted_to = filter.is_some().then(|| COUNTED.max(end));
            let q = ListQuery {
                filter,
                sort: None,
                declared: Vec::new(),
                start_index: start.saturating_add(1),
                count: PAGE_SIZE,
                count_up_to: counted_to,
            };
            let (total, rows) = rows(&app, &dir, kind, &q).await?;
            let pairs = |n: usize| {
                let n = n.to_string();
                format!(
                    "{}?{}",
                    kind.path(),
                    layout::query(&[
                        ("directory", &dir),
                        ("q", &p.q),
                        ("filter", &p.filter),
                        ("page", &n)
                    ])
                )
            };
            // Past the count's bound there are more matches than the page's end.
            let more = end < total;
            let found = match counted_to {
                Some(most) if total > most => format!("More than {}", layout::count(most as u64)),
                _ => layout::count(total as u64),
            };
            html! {
                (search_form(kind, &p, &dir, &all))
                p.muted { (found) " found" }
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { @if kind == Kind::User { "userName" } @else { "displayName" } }
                            th scope="col" { @if kind == Kind::User { "Name" } @else { "Members" } }
                            th.optional scope="col" { "Source" }
                            th.optional scope="col" { "Last modified" }
                        } }
                        tbody {
                            @for r in &rows {
                                tr {
                                    td { a href=(format!("{}/{}?{}", kind.path(), r.id, layout::query(&[("directory", &dir)]))) { (r.name) } }
                                    td { (r.detail) }
                                    td.optional { @if let Some(o) = &r.owner { code { (o) } } @else { span.none { "—" } } }
                                    td.optional { (r.modified) }
                                }
                            }
                        }
                    }
                }
                nav.pager aria-label="Pages" {
                    @if page_no > 1 { a rel="prev" href=(pairs(page_no - 1)) { "← Previous page" } " " }
                    @if more { a rel="next" href=(pairs(page_no + 1)) { "Next page →" } }
                }
            }
        }
    };
    let title = if kind == Kind::User {
        "Users"
    } else {
        "Groups"
    };
    Ok(page(&signed, kind.nav(), title, content))
}

async fn rows(
    app: &AppState,
    dir: &str,
    kind: Kind,
    q: &ListQuery,
) -> Result<(usize, Vec<Row>), ScimError> {
    Ok(match kind {
        Kind::User => {
            let page = app.store.list_users(dir, Visibility::All, q).await?;
            let rows = page
                .items
                .iter()
                .map(|u| {
                    let doc: Value = serde_json::from_str(u.resource.as_str()).unwrap_or_default();
                    let name = doc
                        .get("displayName")
                        .or_else(|| doc.pointer("/name/formatted"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    Row {
                        id: u.id,
                        name: u.user_name().to_owned(),
                        detail: name,
                        owner: u.owner.clone(),
                        modified: layout::time(&u.last_modified),
                    }
                })
                .collect();
            (page.total, rows)
        }
        Kind::Group => {
            let page = app.store.list_groups(dir, Visibility::All, q).await?;
            let rows = page
                .items
                .iter()
                .map(|g| Row {
                    id: g.id,
                    name: g.display_name().to_owned(),
                    detail: layout::count(g.members.len() as u64),
                    owner: g.owner.clone(),
                    modified: layout::time(&g.last_modified),
                })
                .collect();
            (page.total, rows)
        }
    })
}

fn search_form(kind: Kind, p: &ListParams, dir: &str, all: &[String]) -> Markup {
    html! {
        form.search method="get" action=(kind.path()) role="search" {
            @if all.len() > 1 {
                div {
                    label for="directory" { "Directory" }
                    select #directory name="directory" {
                        @for d in all { option value=(d) selected[d == dir] { (d) } }
                    }
                }
            } @else {
                input type="hidden" name="directory" value=(dir);
            }
            div {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(p.q)
                    placeholder=(if kind == Kind::User { "userName or display name starts with" } else { "group name starts with" });
            }
            div {
                label for="filter" { "or SCIM filter" }
                input #filter.wide type="text" name="filter" value=(p.filter)
                    placeholder=(if kind == Kind::User { "userName sw \"a\" and active eq true" } else { "displayName eq \"Sales\"" });
            }
            button type="submit" { "Search" }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct DetailParams {
    directory: Option<String>,
    /// An RFC 3339 time: also show the object as it was then.
    #[serde(default)]
    as_of: String,
}

pub async fn user(
    state: State<AppState>,
    signed: Signed,
    id: Path<String>,
    raw: RawQuery,
    q: Query<DetailParams>,
) -> Answer {
    detail(state, signed, id, raw, q, Kind::User).await
}

pub async fn group(
    state: State<AppState>,
    signed: Signed,
    id: Path<String>,
    raw: RawQuery,
    q: Query<DetailParams>,
) -> Answer {
    detail(state, signed, id, raw, q, Kind::Group).await
}

/// What the views hold of one user or group now.
struct Current {
    name: String,
    doc: Value,
    owner: Option<String>,
    version: u64,
    created: String,
    modified: String,
    related: Markup,
}

/// What both users and groups show of themselves.
struct Facts<'a> {
    name: &'a str,
    doc: &'a roster_events::Document,
    owner: &'a Option<String>,
    version: u64,
    created: &'a chrono::DateTime<chrono::Utc>,
    modified: &'a chrono::DateTime<chrono::Utc>,
}

impl Facts<'_> {
    fn with(self, related: Markup) -> Current {
        Current {
            name: self.name.to_owned(),
            doc: serde_json::from_str(self.doc.as_str()).unwrap_or_default(),
            owner: self.owner.clone(),
            version: self.version,
            created: layout::time(self.created),
            modified: layout::time(self.modified),
            related,
        }
    }
}

async fn current(
    app: &AppState,
    dir: &str,
    id: ResourceId,
    kind: Kind,
) -> Result<Option<Current>, ScimError> {
    let q = layout::query(&[("directory", dir)]);
    Ok(match kind {
        Kind::User => match app.store.user(dir, id).await? {
            None => None,
            Some(u) => {
                let groups = app.store.groups_of(dir, id, Visibility::All).await?;
                let facts = Facts {
                    name: u.user_name(),
                    doc: &u.resource,
                    owner: &u.owner,
                    version: u.version,
                    created: &u.created,
                    modified: &u.last_modified,
                };
                Some(facts.with(html! {
                    h2 { "Groups" }
                    @if groups.is_empty() { p.muted { "Member of no group." } }
                    ul {
                        @for (gid, name, direct) in &groups {
                            li {
                                a href=(format!("/console/groups/{gid}?{q}")) { (name) }
                                @if !direct { " " span.muted { "(through a nested group)" } }
                            }
                        }
                    }
                }))
            }
        },
        Kind::Group => match app.store.group(dir, id).await? {
            None => None,
            Some(g) => {
                let members: Vec<_> = g.members.iter().cloned().collect();
                let names = app
                    .store
                    .member_displays(dir, &members, Visibility::All)
                    .await?;
                let facts = Facts {
                    name: g.display_name(),
                    doc: &g.resource,
                    owner: &g.owner,
                    version: g.version,
                    created: &g.created,
                    modified: &g.last_modified,
                };
                Some(facts.with(html! {
                    h2 { "Members (" (layout::count(members.len() as u64)) ")" }
                    @if members.is_empty() { p.muted { "No members." } }
                    ul {
                        @for (m, name) in members.iter().zip(&names) {
                            @let path = if m.kind == MemberType::User { "users" } else { "groups" };
                            li {
                                a href=(format!("/console/{path}/{}?{q}", m.value)) {
                                    (name.as_deref().unwrap_or("(gone)"))
                                }
                                @if m.kind == MemberType::Group { " " span.muted { "(group)" } }
                            }
                        }
                    }
                }))
            }
        },
    })
}

async fn detail(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(p): Query<DetailParams>,
    kind: Kind,
) -> Answer {
    let (dir, _) = directory(&app, p.directory.as_deref()).await?;
    let uuid: uuid::Uuid = id
        .parse()
        .map_err(|_| ScimError::not_found(format!("no resource {id:?} (ids are UUIDs)")))?;
    // The history and the as-of view read the audit trail: recorded first.
    signed.admin.record_read(&app, raw.as_deref()).await?;
    let now = current(&app, &dir, ResourceId(uuid), kind).await?;
    let history = SearchParams {
        filter: Some(format!("resource.id eq \"{uuid}\"")),
        sort_order: Some("descending".into()),
        limit: Some("100".into()),
        ..Default::default()
    };
    let search = Search::parse(&history, app.audit.partitions()).map_err(ScimError::from)?;
    let history = app
        .audit
        .search(&search, None)
        .await
        .map_err(ScimError::from)?;
    if now.is_none() && history.events.is_empty() {
        return Err(
            ScimError::not_found(format!("no user or group {uuid} in directory {dir:?}")).into(),
        );
    }
    let as_of = as_of(&app, uuid, &p.as_of).await?;
    let title = now
        .as_ref()
        .map_or_else(|| format!("{uuid} (deleted)"), |c| c.name.clone());
    let content = html! {
        @match &now {
            None => p.notice { "This " (if kind == Kind::User { "user" } else { "group" }) " no longer exists; its history remains." },
            Some(c) => {
                dl.facts {
                    dt { "id" } dd { code { (uuid) } }
                    dt { "Directory" } dd { (dir) }
                    dt { "Source" } dd { @if let Some(o) = &c.owner { a href=(format!("/console/sources/{o}")) { (o) } } @else { span.none { "none (admin)" } } }
                    dt { "Version" } dd { code { "W/\"" (c.version) "\"" } }
                    dt { "Created" } dd { (c.created) }
                    dt { "Last modified" } dd { (c.modified) }
                }
                h2 { "Attributes" }
                (attributes(&c.doc))
                (c.related)
            }
        }
        h2 #as-of { "As of a moment" }
        form.search method="get" action=(format!("{}/{uuid}", kind.path())) {
            input type="hidden" name="directory" value=(dir);
            div {
                label for="as_of" { "Time " span.hint { "(RFC 3339, UTC)" } }
                input #as_of type="text" name="as_of" value=(p.as_of) placeholder="2026-06-30T23:59:59Z";
            }
            button.secondary type="submit" { "Show" }
        }
        (as_of)
        h2 { "History" }
        (audit::timeline(&history.events))
    };
    Ok(page(&signed, kind.nav(), &title, content))
}

fn attributes(doc: &Value) -> Markup {
    html! {
        div.scroll {
            table {
                tbody {
                    @for (path, v) in layout::leaves(doc) {
                        tr { th scope="row" { code { (path) } } td { (layout::value(Some(v))) } }
                    }
                }
            }
        }
    }
}

/// The object as it was at `time`, when one is given.
async fn as_of(app: &AppState, id: uuid::Uuid, time: &str) -> Result<Markup, ScimError> {
    let time = time.trim();
    if time.is_empty() {
        return Ok(html! {});
    }
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(time) else {
        return Ok(
            html! { p.error role="alert" { "The time must be RFC 3339, such as 2026-06-30T23:59:59Z." } },
        );
    };
    let found = app
        .audit
        .as_of(id, Some(at.timestamp_millis()), None)
        .await
        .map_err(ScimError::from)?;
    Ok(match found {
        AsOf::Existed(mut doc) => {
            let version = doc.pointer("/meta/version").cloned().unwrap_or(json!(null));
            if let Some(m) = doc.as_object_mut() {
                m.remove("meta");
                m.remove("schemas");
            }
            html! {
                p { "As it was at " (layout::time(&at.to_utc())) " (version " (layout::value(Some(&version))) "):" }
                (attributes(&doc))
            }
        }
        AsOf::Deleted { at } => {
            html! { p.notice { "It had been deleted, at " (layout::time_text(&at)) "." } }
        }
        AsOf::Erased { at } => {
            html! { p.notice { "Its personal data was erased at " (layout::time_text(&at)) "; what it looked like can no longer be read." } }
        }
        AsOf::Unknown => html! { p.notice { "It did not exist yet at that moment." } },
    })
}
