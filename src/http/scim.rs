//! SCIM 2.0 endpoints of a source (RFC 7644): Users and Groups with create, read, list with
//! filter and pagination, replace and delete. Every request authenticates with one of the
//! source's bearer tokens; the source sees only the objects it owns.

use super::body::{etag, if_match, json_object, parse_etag};
use super::error::{ScimError, SCIM_JSON};
use super::select::{Search, Selection};
use super::AppState;
use crate::auth;
use crate::domain::{Command, Context, MemberRef, Outcome};
use crate::patch;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use roster_events::{Actor, Document, ResourceId};
use roster_projections::schema::{self, DeclaredSchema, Schema};
use roster_projections::{GroupView, SourceView, UserView, Visibility};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/Users", get(list_users).post(create_user))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .delete(delete_user)
                .patch(patch_user),
        )
        .route("/Groups", get(list_groups).post(create_group))
        .route("/Users/.search", post(search_users_post))
        .route("/Groups/.search", post(search_groups_post))
        .route("/.search", post(search_root))
        .route("/Bulk", post(super::bulk::bulk))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .delete(delete_group)
                .patch(patch_group),
        )
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
}

/// An authenticated source, extracted from the path's slug and the bearer token.
pub struct SourceAuth {
    slug: String,
    pub(super) directory: String,
    base: String,
    request_id: Option<String>,
    /// The source itself, as the views hold it (its declared extension schemas).
    source: Arc<SourceView>,
}

impl SourceAuth {
    /// The source's SCIM base URL, as clients reach it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Extension schemas the source declared for its users.
    pub(super) fn user_extensions(&self) -> &[DeclaredSchema] {
        self.source.declared("User")
    }

    /// Extension schemas the source declared for its groups.
    pub(super) fn group_extensions(&self) -> &[DeclaredSchema] {
        self.source.declared("Group")
    }

    pub(super) fn ctx(&self) -> Context {
        Context {
            actor: Actor::Source(format!("source:{}", self.slug)),
            source: Some(self.slug.clone()),
            correlation_id: self.request_id.clone(),
        }
    }

    fn vis(&self) -> Visibility<'_> {
        Visibility::Owner(&self.slug)
    }
}

impl FromRequestParts<AppState> for SourceAuth {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|_| ScimError::not_found("no such source"))?;
        let slug = params.get("slug").cloned().unwrap_or_default();
        let token = super::bearer_token(&parts.headers);
        let source = app.store.source(&slug).await?;
        // Hash and compare even for an unknown source, so timing does not tell sources apart.
        let hashes = source
            .iter()
            .flat_map(|s| s.tokens.values())
            .filter(|t| t.revoked.is_none())
            .map(|t| t.hash.as_str());
        if token.is_empty() || !auth::verify(token, hashes) {
            return Err(ScimError::unauthorized());
        }
        let Some(source) = source else {
            return Err(ScimError::unauthorized());
        };
        tracing::Span::current().record("source", slug.as_str());
        let root = match &app.settings.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        Ok(SourceAuth {
            base: format!("{root}/source/scim/{slug}/v2"),
            directory: source.directory.clone(),
            source: source.clone(),
            slug,
            request_id: super::request_id(&parts.headers),
        })
    }
}

pub(super) fn parse_id(id: &str, what: &str) -> Result<ResourceId, ScimError> {
    id.parse()
        .map_err(|_| ScimError::not_found(format!("{what} {id} not found")))
}

fn scim_response(
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

/// Removes what a client may not set or that is absent by meaning: `id` and `meta` are
/// assigned by Roster (RFC 7643 §3.1), nulls mean absent, `password` is write-only and is not
/// kept in the log.
fn clean(
    doc: Map<String, Value>,
    schema: &'static Schema,
    declared: &[DeclaredSchema],
    drop: &[&str],
) -> Result<Map<String, Value>, ScimError> {
    let core = schema.id;
    // Attribute names in any case: stored as the schemas (built in or declared) spell them.
    let mut doc = schema::canonicalize_with(doc, schema, declared);
    for v in doc.values_mut() {
        drop_nulls(v);
    }
    doc.retain(|k, v| {
        !v.is_null()
            && !k.eq_ignore_ascii_case("id")
            && !k.eq_ignore_ascii_case("meta")
            && !drop.iter().any(|d| k.eq_ignore_ascii_case(d))
    });
    match doc.get("schemas") {
        None => {
            doc.insert("schemas".into(), json!([core]));
        }
        Some(Value::Array(items)) => {
            let ok = items.iter().all(Value::is_string)
                && items
                    .iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(core)));
            if !ok {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    format!("schemas must include {core}"),
                ));
            }
        }
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "schemas must be an array",
            ))
        }
    }
    if doc.get("externalId").is_some_and(|v| !v.is_string()) {
        return Err(ScimError::bad_request(
            "invalidValue",
            "externalId must be a string",
        ));
    }
    Ok(doc)
}

/// Nulls mean absent (RFC 7643 §2.5), at any depth: they are not stored.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => {
            items.retain(|x| !x.is_null());
            items.iter_mut().for_each(drop_nulls);
        }
        _ => {}
    }
}

/// A user document as a command carries it: validated, and with the password (if any)
/// replaced by an Argon2id hash. The hash is made last, on the blocking pool (it is slow on
/// purpose), so a request that fails validation costs nothing; the password policy may
/// refuse passwords instead.
pub(super) async fn user_input(
    app: &AppState,
    auth: &SourceAuth,
    mut doc: Map<String, Value>,
) -> Result<(Map<String, Value>, Option<String>), ScimError> {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case("password"))
        .cloned();
    let password = match key.and_then(|k| doc.remove(&k)) {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "password must be a string",
            ))
        }
    };
    let resource = user_resource(doc, auth.user_extensions())?;
    let hash = match password {
        Some(p) => Some(hash_password(app, p).await?),
        None => None,
    };
    Ok((resource, hash))
}

async fn hash_password(app: &AppState, password: String) -> Result<String, ScimError> {
    if app.settings.password_policy == crate::config::PasswordPolicy::Refuse {
        return Err(ScimError::bad_request(
            "invalidValue",
            "this server does not accept passwords",
        ));
    }
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| ScimError::internal(&e))?
        .map_err(|e| ScimError::internal(&e))
}

/// Takes password changes out of PATCH operations (a path of `password`, or a `password` key
/// in a path-less value) and hashes the last one set.
pub(super) async fn take_patch_password(
    app: &AppState,
    ops: &mut Vec<patch::PatchOp>,
) -> Result<Option<String>, ScimError> {
    let mut password = None;
    let is_password = |p: &patch::PatchPath| {
        p.attr.attr.eq_ignore_ascii_case("password")
            && p.attr.sub.is_none()
            && p.filter.is_none()
            && p.attr
                .schema
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(schema::USER))
    };
    let mut kept = Vec::with_capacity(ops.len());
    for mut op in ops.drain(..) {
        match &op.path {
            Some(p) if is_password(p) => {
                if op.op != patch::OpKind::Remove {
                    match op.value.take() {
                        Some(Value::String(p)) => password = Some(p),
                        _ => {
                            return Err(ScimError::bad_request(
                                "invalidValue",
                                "password must be a string",
                            ))
                        }
                    }
                }
                continue;
            }
            None => {
                if let Some(Value::Object(values)) = op.value.as_mut() {
                    let key = values
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case("password"))
                        .cloned();
                    match key.and_then(|k| values.remove(&k)) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(p)) => password = Some(p),
                        Some(_) => {
                            return Err(ScimError::bad_request(
                                "invalidValue",
                                "password must be a string",
                            ))
                        }
                    }
                    if values.is_empty() {
                        continue;
                    }
                }
            }
            _ => {}
        }
        kept.push(op);
    }
    *ops = kept;
    match password {
        Some(p) => hash_password(app, p).await.map(Some),
        None => Ok(None),
    }
}

pub(super) fn user_resource(
    doc: Map<String, Value>,
    declared: &[DeclaredSchema],
) -> Result<Map<String, Value>, ScimError> {
    let mut doc = clean(doc, &schema::USER_SCHEMA, declared, &["password", "groups"])?;
    patch::normalize_user(&mut doc);
    Ok(doc)
}

pub(super) fn group_resource(
    mut doc: Map<String, Value>,
    declared: &[DeclaredSchema],
) -> Result<(Map<String, Value>, Vec<MemberRef>), ScimError> {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned();
    let members = match key.and_then(|k| doc.remove(&k)) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|m| {
                let value = m.get("value").and_then(Value::as_str);
                let value = value.ok_or_else(|| {
                    ScimError::bad_request("invalidValue", "every member needs a string value")
                })?;
                Ok(MemberRef {
                    value: value.to_owned(),
                    kind: m.get("type").and_then(Value::as_str).map(str::to_owned),
                })
            })
            .collect::<Result<_, ScimError>>()?,
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "members must be an array",
            ))
        }
    };
    Ok((clean(doc, &schema::GROUP_SCHEMA, declared, &[])?, members))
}

fn meta(resource_type: &str, v: (&DateTime<Utc>, &DateTime<Utc>, u64), location: &str) -> Value {
    use chrono::SecondsFormat::Millis;
    json!({
        "resourceType": resource_type,
        "created": v.0.to_rfc3339_opts(Millis, true),
        "lastModified": v.1.to_rfc3339_opts(Millis, true),
        "location": location,
        "version": etag(v.2),
    })
}

pub(super) fn user_location(base: &str, u: &UserView) -> String {
    format!("{base}/Users/{}", u.id)
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
async fn render_user(
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
    Ok(user_json(u, &auth.base, &groups, sel))
}

/// A page of users as the source sees them, their memberships read in one go.
async fn render_users(
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
        .map(|(u, groups)| user_json(u, &auth.base, &groups, sel))
        .collect())
}

pub(super) fn group_location(base: &str, g: &GroupView) -> String {
    format!("{base}/Groups/{}", g.id)
}

async fn group_json(
    app: &AppState,
    dir: &str,
    g: &GroupView,
    base: &str,
    sel: &Selection,
) -> Result<String, ScimError> {
    let members: Vec<_> = g.members.iter().copied().collect();
    let displays = if sel.returns("members", schema::GROUP) {
        app.store.member_displays(dir, &members).await?
    } else {
        vec![None; members.len()]
    };
    Ok(group_body(g, base, displays, sel))
}

/// A page of groups, the display names of all their members read in one go.
async fn groups_json(
    app: &AppState,
    dir: &str,
    groups: &[Arc<GroupView>],
    base: &str,
    sel: &Selection,
) -> Result<Vec<String>, ScimError> {
    let members: Vec<_> = groups
        .iter()
        .flat_map(|g| g.members.iter().copied())
        .collect();
    let mut displays = if sel.returns("members", schema::GROUP) {
        app.store.member_displays(dir, &members).await?
    } else {
        vec![None; members.len()]
    }
    .into_iter();
    Ok(groups
        .iter()
        .map(|g| {
            let own = displays.by_ref().take(g.members.len()).collect();
            group_body(g, base, own, sel)
        })
        .collect())
}

/// A group's JSON, given its members' display names (in member order).
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
            let mut o = json!({
                "value": mem.value.to_string(),
                "type": kind,
                "$ref": format!("{base}/{path}/{}", mem.value),
            });
            if let Some(d) = display {
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

fn list_response(total: usize, start_index: usize, resources: Vec<String>) -> Response {
    let mut body = format!(
        "{{\"schemas\":[\"{LIST_SCHEMA}\"],\"totalResults\":{total},\"startIndex\":{start_index},\"itemsPerPage\":{},\"Resources\":[",
        resources.len()
    );
    body.push_str(&resources.join(","));
    body.push_str("]}");
    scim_response(StatusCode::OK, body, None, None)
}

/// 304 Not Modified: the ETag and no body.
fn not_modified_response(version: u64) -> Response {
    scim_response(StatusCode::NOT_MODIFIED, String::new(), Some(version), None)
        .map(|_| axum::body::Body::empty())
}

/// RFC 7644 §3.4.1: If-None-Match with the current ETag answers 304.
fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || parse_etag(t) == Some(version))
        })
}

// RFC 7644 §3.3
async fn create_user(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let (resource, password_hash) = user_input(&app, &auth, json_object(&headers, body)?).await?;
    let writer = app.writers.get(&auth.directory).await?;
    let cmd = Command::CreateUser {
        resource,
        password_hash,
    };
    let Outcome::User(id) = writer.execute(cmd, auth.ctx()).await? else {
        return Err(ScimError::internal(&"create gave no user"));
    };
    let user = app.store.user(&auth.directory, id).await?;
    let user = user.ok_or_else(|| ScimError::internal(&"created user not in views"))?;
    let location = user_location(&auth.base, &user);
    let body = render_user(&app, &auth, &user, &sel).await?;
    Ok(scim_response(
        StatusCode::CREATED,
        body,
        Some(user.version),
        Some(&location),
    ))
}

// RFC 7644 §3.4.1
async fn get_user(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "user")?;
    let user = app.store.user(&auth.directory, id).await?;
    let user = user
        .filter(|u| u.owner.as_deref() == Some(auth.slug.as_str()))
        .ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
    if not_modified(&headers, user.version) {
        return Ok(not_modified_response(user.version));
    }
    Ok(scim_response(
        StatusCode::OK,
        render_user(&app, &auth, &user, &sel).await?,
        Some(user.version),
        None,
    ))
}

// RFC 7644 §3.4.2
async fn list_users(
    State(app): State<AppState>,
    auth: SourceAuth,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ScimError> {
    search_users(&app, &auth, Search::from_query(&params)?).await
}

// RFC 7644 §3.4.3
async fn search_users_post(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    search_users(&app, &auth, Search::from_body(&body)?).await
}

async fn search_users(
    app: &AppState,
    auth: &SourceAuth,
    search: Search,
) -> Result<Response, ScimError> {
    let mut q = search.to_query(app)?;
    q.declared = auth.user_extensions().to_vec();
    let page = app
        .store
        .list_users(&auth.directory, auth.vis(), &q)
        .await?;
    let resources = render_users(app, auth, &page.items, &search.selection).await?;
    Ok(list_response(page.total, q.start_index, resources))
}

// RFC 7644 §3.5.1
async fn replace_user(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "user")?;
    let (resource, password_hash) = user_input(&app, &auth, json_object(&headers, body)?).await?;
    let cmd = Command::ReplaceUser {
        id,
        resource,
        password_hash,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    let user = app.store.user(&auth.directory, id).await?;
    let user = user.ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
    Ok(scim_response(
        StatusCode::OK,
        render_user(&app, &auth, &user, &sel).await?,
        Some(user.version),
        None,
    ))
}

// RFC 7644 §3.6
async fn delete_user(
    State(app): State<AppState>,
    auth: SourceAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "user")?;
    let cmd = Command::DeleteUser {
        id,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// RFC 7644 §3.3
async fn create_group(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let (resource, members) =
        group_resource(json_object(&headers, body)?, auth.group_extensions())?;
    let writer = app.writers.get(&auth.directory).await?;
    let cmd = Command::CreateGroup { resource, members };
    let Outcome::Group(id) = writer.execute(cmd, auth.ctx()).await? else {
        return Err(ScimError::internal(&"create gave no group"));
    };
    let group = app.store.group(&auth.directory, id).await?;
    let group = group.ok_or_else(|| ScimError::internal(&"created group not in views"))?;
    let location = group_location(&auth.base, &group);
    let body = group_json(&app, &auth.directory, &group, &auth.base, &sel).await?;
    Ok(scim_response(
        StatusCode::CREATED,
        body,
        Some(group.version),
        Some(&location),
    ))
}

// RFC 7644 §3.4.1
async fn get_group(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let group = app.store.group(&auth.directory, id).await?;
    let group = group
        .filter(|g| g.owner.as_deref() == Some(auth.slug.as_str()))
        .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
    if not_modified(&headers, group.version) {
        return Ok(not_modified_response(group.version));
    }
    let body = group_json(&app, &auth.directory, &group, &auth.base, &sel).await?;
    Ok(scim_response(
        StatusCode::OK,
        body,
        Some(group.version),
        None,
    ))
}

// RFC 7644 §3.4.2
async fn list_groups(
    State(app): State<AppState>,
    auth: SourceAuth,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ScimError> {
    search_groups(&app, &auth, Search::from_query(&params)?).await
}

// RFC 7644 §3.4.3
async fn search_groups_post(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    search_groups(&app, &auth, Search::from_body(&body)?).await
}

async fn search_groups(
    app: &AppState,
    auth: &SourceAuth,
    search: Search,
) -> Result<Response, ScimError> {
    let mut q = search.to_query(app)?;
    q.declared = auth.group_extensions().to_vec();
    let page = app
        .store
        .list_groups(&auth.directory, auth.vis(), &q)
        .await?;
    let resources = groups_json(
        app,
        &auth.directory,
        &page.items,
        &auth.base,
        &search.selection,
    )
    .await?;
    Ok(list_response(page.total, q.start_index, resources))
}

// RFC 7644 §3.4.3: a search at the root covers Users and Groups. Both are filtered (and
// sorted) by the same request; users come before groups unless a sort says otherwise.
async fn search_root(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    let search = Search::from_body(&body)?;
    let mut q = search.to_query(&app)?;
    q.declared = auth
        .user_extensions()
        .iter()
        .chain(auth.group_extensions())
        .cloned()
        .collect();
    let everything = roster_projections::ListQuery {
        start_index: 1,
        count: usize::MAX,
        ..q.clone()
    };
    let users = app
        .store
        .list_users(&auth.directory, auth.vis(), &everything)
        .await?;
    let groups = app
        .store
        .list_groups(&auth.directory, auth.vis(), &everything)
        .await?;
    enum Hit {
        User(std::sync::Arc<UserView>),
        Group(std::sync::Arc<GroupView>),
    }
    let mut hits: Vec<(roster_projections::SortKey, Hit)> = Vec::new();
    for u in users.items {
        let key = q
            .sort
            .as_ref()
            .map_or(roster_projections::SortKey::Missing, |s| {
                roster_projections::sort_key(&u.attributes(), &s.path)
            });
        hits.push((key, Hit::User(u)));
    }
    for g in groups.items {
        let key = q
            .sort
            .as_ref()
            .map_or(roster_projections::SortKey::Missing, |s| {
                roster_projections::sort_key(&g.attributes(), &s.path)
            });
        hits.push((key, Hit::Group(g)));
    }
    if let Some(sort) = &q.sort {
        // A stable sort keeps users-then-groups, each in id order, among equal keys.
        hits.sort_by(|(a, _), (b, _)| {
            let o = a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
            if sort.descending {
                o.reverse()
            } else {
                o
            }
        });
    }
    let total = hits.len();
    let mut resources = Vec::new();
    for (_, hit) in hits.into_iter().skip(q.start_index - 1).take(q.count) {
        resources.push(match hit {
            Hit::User(u) => render_user(&app, &auth, &u, &search.selection).await?,
            Hit::Group(g) => {
                group_json(&app, &auth.directory, &g, &auth.base, &search.selection).await?
            }
        });
    }
    Ok(list_response(total, q.start_index, resources))
}

// RFC 7644 §3.5.1
async fn replace_group(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let (resource, members) =
        group_resource(json_object(&headers, body)?, auth.group_extensions())?;
    let cmd = Command::ReplaceGroup {
        id,
        resource,
        members,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    let group = app.store.group(&auth.directory, id).await?;
    let group = group.ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
    let body = group_json(&app, &auth.directory, &group, &auth.base, &sel).await?;
    Ok(scim_response(
        StatusCode::OK,
        body,
        Some(group.version),
        None,
    ))
}

// RFC 7644 §3.6
async fn delete_group(
    State(app): State<AppState>,
    auth: SourceAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let cmd = Command::DeleteGroup {
        id,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn patch_ops(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<patch::PatchOp>, ScimError> {
    let body = json_object(headers, body)?;
    patch::parse_request(&body).map_err(|e| ScimError::bad_request(e.scim_type, e.detail))
}

// RFC 7644 §3.5.2
async fn patch_user(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "user")?;
    let mut ops = patch_ops(&headers, body)?;
    let password_hash = take_patch_password(&app, &mut ops).await?;
    let cmd = Command::PatchUser {
        id,
        ops,
        password_hash,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    let user = app.store.user(&auth.directory, id).await?;
    let user = user.ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
    Ok(scim_response(
        StatusCode::OK,
        render_user(&app, &auth, &user, &sel).await?,
        Some(user.version),
        None,
    ))
}

// RFC 7644 §3.5.2
async fn patch_group(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let ops = patch_ops(&headers, body)?;
    let cmd = Command::PatchGroup {
        id,
        ops,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    let group = app.store.group(&auth.directory, id).await?;
    let group = group.ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
    let body = group_json(&app, &auth.directory, &group, &auth.base, &sel).await?;
    Ok(scim_response(
        StatusCode::OK,
        body,
        Some(group.version),
        None,
    ))
}
