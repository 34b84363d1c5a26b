//! `/Users` and `/Groups` (RFC 7644 §3.3 to §3.6): create, read, list and search, replace,
//! patch and delete a source's resources. The handlers are written once, over [`Resource`],
//! which says for users and for groups how to load, list, render and turn a body into a
//! command. A write answers with the resource exactly as that write left it.

use super::super::body::{if_match, json_object};
use super::super::error::ScimError;
use super::super::select::{Search, Selection};
use super::super::AppState;
use super::auth::{parse_id, SourceAuth};
use super::input;
use super::render::{self, scim_response};
use crate::domain::Command;
use crate::pipeline::Written;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_events::ResourceId;
use roster_projections::schema::ResourceSchemas;
use roster_projections::{GroupView, ListQuery, Page, StoreError, UserView};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;

/// What the handlers need to know about one resource type.
pub(super) trait Resource: Send + Sync + 'static {
    type View: Send + Sync + 'static;
    /// `user` or `group`, for messages.
    const NAME: &'static str;

    fn id(v: &Self::View) -> ResourceId;
    fn version(v: &Self::View) -> u64;
    fn owner(v: &Self::View) -> &Option<String>;
    fn location(base: &str, v: &Self::View) -> String;
    fn schemas(auth: &SourceAuth) -> ResourceSchemas<'_>;
    /// The view a command of this type left, if that is what it left.
    fn written(w: Written) -> Result<Arc<Self::View>, Written>;
    fn delete(id: ResourceId, if_match: Option<u64>) -> Command;

    fn load(
        app: &AppState,
        dir: &str,
        id: ResourceId,
    ) -> impl Future<Output = Result<Option<Arc<Self::View>>, StoreError>> + Send;
    fn list(
        app: &AppState,
        auth: &SourceAuth,
        q: &ListQuery,
    ) -> impl Future<Output = Result<Page<Self::View>, StoreError>> + Send;
    fn render(
        app: &AppState,
        auth: &SourceAuth,
        views: &[Arc<Self::View>],
        sel: &Selection,
    ) -> impl Future<Output = Result<Vec<String>, ScimError>> + Send;
    fn create(
        app: &AppState,
        auth: &SourceAuth,
        body: Map<String, Value>,
    ) -> impl Future<Output = Result<Command, ScimError>> + Send;
    fn replace(
        app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> impl Future<Output = Result<Command, ScimError>> + Send;
    fn patch(
        app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> impl Future<Output = Result<Command, ScimError>> + Send;
}

/// Users.
pub(super) struct Users;
/// Groups.
pub(super) struct Groups;

impl Resource for Users {
    type View = UserView;
    const NAME: &'static str = "user";

    fn id(v: &UserView) -> ResourceId {
        v.id
    }
    fn version(v: &UserView) -> u64 {
        v.version
    }
    fn owner(v: &UserView) -> &Option<String> {
        &v.owner
    }
    fn location(base: &str, v: &UserView) -> String {
        render::user_location(base, v)
    }
    fn schemas(auth: &SourceAuth) -> ResourceSchemas<'_> {
        auth.users()
    }
    fn written(w: Written) -> Result<Arc<UserView>, Written> {
        match w {
            Written::User(u) => Ok(u),
            other => Err(other),
        }
    }
    fn delete(id: ResourceId, if_match: Option<u64>) -> Command {
        Command::DeleteUser { id, if_match }
    }
    async fn load(
        app: &AppState,
        dir: &str,
        id: ResourceId,
    ) -> Result<Option<Arc<UserView>>, StoreError> {
        app.store.user(dir, id).await
    }
    async fn list(
        app: &AppState,
        auth: &SourceAuth,
        q: &ListQuery,
    ) -> Result<Page<UserView>, StoreError> {
        app.store.list_users(&auth.directory, auth.vis(), q).await
    }
    async fn render(
        app: &AppState,
        auth: &SourceAuth,
        views: &[Arc<UserView>],
        sel: &Selection,
    ) -> Result<Vec<String>, ScimError> {
        render::users(app, auth, views, sel).await
    }
    async fn create(
        app: &AppState,
        auth: &SourceAuth,
        body: Map<String, Value>,
    ) -> Result<Command, ScimError> {
        input::create_user(app, auth, body).await
    }
    async fn replace(
        app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<Command, ScimError> {
        input::replace_user(app, auth, id, body, if_match).await
    }
    async fn patch(
        app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<Command, ScimError> {
        input::patch_user(app, auth, id, body, if_match).await
    }
}

impl Resource for Groups {
    type View = GroupView;
    const NAME: &'static str = "group";

    fn id(v: &GroupView) -> ResourceId {
        v.id
    }
    fn version(v: &GroupView) -> u64 {
        v.version
    }
    fn owner(v: &GroupView) -> &Option<String> {
        &v.owner
    }
    fn location(base: &str, v: &GroupView) -> String {
        render::group_location(base, v)
    }
    fn schemas(auth: &SourceAuth) -> ResourceSchemas<'_> {
        auth.groups()
    }
    fn written(w: Written) -> Result<Arc<GroupView>, Written> {
        match w {
            Written::Group(g) => Ok(g),
            other => Err(other),
        }
    }
    fn delete(id: ResourceId, if_match: Option<u64>) -> Command {
        Command::DeleteGroup { id, if_match }
    }
    async fn load(
        app: &AppState,
        dir: &str,
        id: ResourceId,
    ) -> Result<Option<Arc<GroupView>>, StoreError> {
        app.store.group(dir, id).await
    }
    async fn list(
        app: &AppState,
        auth: &SourceAuth,
        q: &ListQuery,
    ) -> Result<Page<GroupView>, StoreError> {
        app.store.list_groups(&auth.directory, auth.vis(), q).await
    }
    async fn render(
        app: &AppState,
        auth: &SourceAuth,
        views: &[Arc<GroupView>],
        sel: &Selection,
    ) -> Result<Vec<String>, ScimError> {
        render::groups(app, auth, views, sel).await
    }
    async fn create(
        _app: &AppState,
        auth: &SourceAuth,
        body: Map<String, Value>,
    ) -> Result<Command, ScimError> {
        input::create_group(auth, body)
    }
    async fn replace(
        _app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<Command, ScimError> {
        input::replace_group(auth, id, body, if_match)
    }
    async fn patch(
        app: &AppState,
        auth: &SourceAuth,
        id: ResourceId,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<Command, ScimError> {
        input::patch_group(app, auth, id, body, if_match).await
    }
}

/// Runs a command of `R` and gives back the resource as it left it.
///
/// Fails with the writer's refusal, or 500 if the command left something else (a bug).
pub(super) async fn write<R: Resource>(
    app: &AppState,
    auth: &SourceAuth,
    cmd: Command,
) -> Result<Arc<R::View>, ScimError> {
    let writer = app.writers.get(&auth.directory).await?;
    R::written(writer.write(cmd, auth.ctx()).await?).map_err(|other| {
        ScimError::internal(&format!("a {} command left {:?}", R::NAME, other.outcome()))
    })
}

/// The answer to a read or write of one resource: it, with its ETag (and, for a create, 201
/// and Location).
async fn answer<R: Resource>(
    app: &AppState,
    auth: &SourceAuth,
    view: Arc<R::View>,
    sel: &Selection,
    created: bool,
) -> Result<Response, ScimError> {
    let (status, location) = if created {
        (StatusCode::CREATED, Some(R::location(auth.base(), &view)))
    } else {
        (StatusCode::OK, None)
    };
    let version = R::version(&view);
    let body = R::render(app, auth, &[view], sel)
        .await?
        .pop()
        .unwrap_or_default();
    Ok(scim_response(
        status,
        body,
        Some(version),
        location.as_deref(),
    ))
}

// RFC 7644 §3.3
pub(super) async fn create<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let cmd = R::create(&app, &auth, json_object(&headers, body)?).await?;
    let view = write::<R>(&app, &auth, cmd).await?;
    answer::<R>(&app, &auth, view, &sel, true).await
}

// RFC 7644 §3.4.1
pub(super) async fn get<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, R::NAME)?;
    let view = R::load(&app, &auth.directory, id).await?;
    let view = view
        .filter(|v| auth.owns(R::owner(v)))
        .ok_or_else(|| ScimError::not_found(format!("{} {id} not found", R::NAME)))?;
    if let Some(resp) = render::not_modified(&headers, R::version(&view)) {
        return Ok(resp);
    }
    answer::<R>(&app, &auth, view, &sel, false).await
}

// RFC 7644 §3.4.2
pub(super) async fn list<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ScimError> {
    search::<R>(&app, &auth, Search::from_query(&params)?).await
}

// RFC 7644 §3.4.3
pub(super) async fn search_post<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    search::<R>(&app, &auth, Search::from_body(&body)?).await
}

async fn search<R: Resource>(
    app: &AppState,
    auth: &SourceAuth,
    search: Search,
) -> Result<Response, ScimError> {
    let schemas = R::schemas(auth);
    let mut q = search.to_query(app, &[schemas])?;
    q.declared = schemas.declared.to_vec();
    let page = R::list(app, auth, &q).await?;
    let resources = R::render(app, auth, &page.items, &search.selection).await?;
    Ok(render::list_response(page.total, q.start_index, resources))
}

// RFC 7644 §3.5.1
pub(super) async fn replace<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, R::NAME)?;
    let body = json_object(&headers, body)?;
    let cmd = R::replace(&app, &auth, id, body, if_match(&headers)?).await?;
    let view = write::<R>(&app, &auth, cmd).await?;
    answer::<R>(&app, &auth, view, &sel, false).await
}

// RFC 7644 §3.5.2
pub(super) async fn patch<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, R::NAME)?;
    let body = json_object(&headers, body)?;
    let cmd = R::patch(&app, &auth, id, body, if_match(&headers)?).await?;
    let view = write::<R>(&app, &auth, cmd).await?;
    answer::<R>(&app, &auth, view, &sel, false).await
}

// RFC 7644 §3.6
pub(super) async fn delete<R: Resource>(
    State(app): State<AppState>,
    auth: SourceAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let cmd = R::delete(parse_id(&id, R::NAME)?, if_match(&headers)?);
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
