//! Views to SCIM JSON (RFC 7643 §3, RFC 7644 §3.4.2): a resource's stored document spliced
//! after its `id`, `meta` and computed attributes (a user's `groups`, a group's `members`),
//! shaped by `attributes` / `excludedAttributes`; ETags and `Location`; list responses; 304.

use super::super::error::{ScimError, SCIM_JSON};
use super::super::select::Selection;
use super::super::{body::etag, body::parse_etag, AppState};
use super::auth::SourceAuth;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use roster_events::{Document, ResourceId};
use roster_projections::schema;
use roster_projections::{GroupView, UserView};
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Borrow;
use std::sync::Arc;

const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A SCIM response with its body, ETag and Location.
pub(super) fn scim_response(
    status: StatusCode,
    body: String,
    version: Option<u64>,
    location: Option<&str>,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(v) = version {
        if let Ok(v) = HeaderValue::from_str(&etag(v)) {
            h.insert(header::ETAG, v);
        }
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    resp
}

/// Writes a resource as `{<head>,<the stored document's attributes>}`: the stored text is
/// spliced in, never re-parsed.
fn splice(head: &str, doc: &Document) -> String {
    let doc = doc.as_str().trim();
    let rest = doc.strip_prefix('{').unwrap_or("}").trim_start();
    let mut out = String::with_capacity(head.len() + doc.len() + 2);
    out.push('{');
    out.push_str(head);
    if rest != "}" {
        out.push(',');
    }
    out.push_str(rest);
    out
}

/// A resource's `meta` (RFC 7643 §3.1), serialized straight from borrowed parts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    resource_type: &'a str,
    created: String,
    last_modified: String,
    location: &'a str,
    version: String,
}

fn meta(resource_type: &str, v: (&DateTime<Utc>, &DateTime<Utc>, u64), location: &str) -> String {
    use chrono::SecondsFormat::Millis;
    let meta = Meta {
        resource_type,
        created: v.0.to_rfc3339_opts(Millis, true),
        last_modified: v.1.to_rfc3339_opts(Millis, true),
        location,
        version: etag(v.2),
    };
    // A struct of strings always serializes; the default is never reached.
    serde_json::to_string(&meta).unwrap_or_default()
}

pub(super) fn user_location(base: &str, u: &UserView) -> String {
    format!("{base}/Users/{}", u.id)
}

pub(super) fn group_location(base: &str, g: &GroupView) -> String {
    format!("{base}/Groups/{}", g.id)
}

fn user_json(
    u: &UserView,
    base: &str,
    groups: &[(ResourceId, String, bool)],
    sel: &Selection,
) -> String {
    let location = user_location(base, u);
    let meta = meta("User", (&u.created, &u.last_modified, u.version), &location);
    let mut head = format!("\"id\":\"{}\",\"meta\":{meta}", u.id);
    if !groups.is_empty() {
        // RFC 7643 §4.1.2: read-only, direct and indirect (nested) memberships.
        let list: Vec<Value> = groups
            .iter()
            .map(|(id, display, direct)| {
                json!({
                    "value": id.to_string(),
                    "$ref": format!("{base}/Groups/{id}"),
                    "display": display,
                    "type": if *direct { "direct" } else { "indirect" },
                })
            })
            .collect();
        head.push_str(&format!(",\"groups\":{}", Value::Array(list)));
    }
    sel.apply(splice(&head, &u.resource), schema::USER)
}

/// A user as the source sees it, its group memberships included.
pub(super) async fn user(
    app: &AppState,
    auth: &SourceAuth,
    u: &UserView,
    sel: &Selection,
) -> Result<String, ScimError> {
    let groups = if sel.returns("groups", schema::USER) {
        app.store
            .groups_of(&auth.directory, u.id, auth.vis())
            .await?
    } else {
        Vec::new()
    };
    Ok(user_json(u, auth.base(), &groups, sel))
}

/// A page of users as the source sees them, their memberships read in one go.
pub(super) async fn users(
    app: &AppState,
    auth: &SourceAuth,
    users: &[Arc<UserView>],
    sel: &Selection,
) -> Result<Vec<String>, ScimError> {
    let groups = if sel.returns("groups", schema::USER) {
        let ids: Vec<ResourceId> = users.iter().map(|u| u.id).collect();
        app.store
            .groups_of_each(&auth.directory, &ids, auth.vis())
            .await?
    } else {
        vec![Vec::new(); users.len()]
    };
    Ok(users
        .iter()
        .zip(groups)
        .map(|(u, groups)| user_json(u, auth.base(), &groups, sel))
        .collect())
}

/// A group as the source sees it.
pub(super) async fn group(
    app: &AppState,
    auth: &SourceAuth,
    g: &GroupView,
    sel: &Selection,
) -> Result<String, ScimError> {
    Ok(groups(app, auth, &[g], sel)
        .await?
        .pop()
        .unwrap_or_default())
}

/// A page of groups, the display names of all their members read in one go.
pub(super) async fn groups<G: Borrow<GroupView>>(
    app: &AppState,
    auth: &SourceAuth,
    groups: &[G],
    sel: &Selection,
) -> Result<Vec<String>, ScimError> {
    let members: Vec<_> = groups
        .iter()
        .flat_map(|g| g.borrow().members.iter().copied())
        .collect();
    let mut displays = if sel.returns("members", schema::GROUP) {
        app.store
            .member_displays(&auth.directory, &members, auth.vis())
            .await?
    } else {
        vec![None; members.len()]
    }
    .into_iter();
    Ok(groups
        .iter()
        .map(|g| {
            let g = g.borrow();
            let own = displays.by_ref().take(g.members.len()).collect();
            group_body(g, auth.base(), own, sel)
        })
        .collect())
}

/// A group's JSON, given its members' display names (in member order). A member the source
/// does not see (another source adopted it) shows only its value and type.
fn group_body(g: &GroupView, base: &str, displays: Vec<Option<String>>, sel: &Selection) -> String {
    let list: Vec<Value> = g
        .members
        .iter()
        .zip(displays)
        .map(|(mem, display)| {
            let (kind, path) = match mem.kind {
                roster_events::MemberType::User => ("User", "Users"),
                roster_events::MemberType::Group => ("Group", "Groups"),
            };
            let mut o = json!({"value": mem.value.to_string(), "type": kind});
            if let Some(d) = display {
                o["$ref"] = format!("{base}/{path}/{}", mem.value).into();
                o["display"] = d.into();
            }
            o
        })
        .collect();
    let location = group_location(base, g);
    let meta = meta(
        "Group",
        (&g.created, &g.last_modified, g.version),
        &location,
    );
    let head = format!(
        "\"id\":\"{}\",\"members\":{},\"meta\":{meta}",
        g.id,
        Value::Array(list)
    );
    sel.apply(splice(&head, &g.resource), schema::GROUP)
}

pub(super) fn list_response(total: usize, start_index: usize, resources: Vec<String>) -> Response {
    let mut body = format!(
        "{{\"schemas\":[\"{LIST_SCHEMA}\"],\"totalResults\":{total},\"startIndex\":{start_index},\"itemsPerPage\":{},\"Resources\":[",
        resources.len()
    );
    body.push_str(&resources.join(","));
    body.push_str("]}");
    scim_response(StatusCode::OK, body, None, None)
}

/// RFC 7644 §3.4.1: If-None-Match with the current ETag answers 304 (the ETag, no body).
pub(super) fn not_modified(headers: &HeaderMap, version: u64) -> Option<Response> {
    let matched = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || parse_etag(t) == Some(version))
        });
    matched.then(|| {
        scim_response(StatusCode::NOT_MODIFIED, String::new(), Some(version), None)
            .map(|_| axum::body::Body::empty())
    })
}
