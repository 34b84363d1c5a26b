//! SCIM 2.0 endpoints of a source (RFC 7644): Users and Groups (`resources`), searches at
//! the root, and Bulk. Every request authenticates with one of the source's bearer tokens
//! (`auth`); every body is parsed once into a checked command (`input`); views become SCIM
//! JSON in `render`. The source sees only the objects it owns.

mod auth;
mod bulk;
mod input;
mod render;
mod resources;

pub use auth::SourceAuth;
pub use bulk::MAX_OPERATIONS as MAX_BULK_OPERATIONS;

use super::body::json_object;
use super::error::ScimError;
use super::select::Search;
use super::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use resources::{create, delete, get as read, list, patch, replace, search_post, Groups, Users};
use roster_projections::{GroupView, SortKey, UserView};
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/Users", get(list::<Users>).post(create::<Users>))
        .route(
            "/Users/{id}",
            get(read::<Users>)
                .put(replace::<Users>)
                .delete(delete::<Users>)
                .patch(patch::<Users>),
        )
        .route("/Groups", get(list::<Groups>).post(create::<Groups>))
        .route("/Users/.search", post(search_post::<Users>))
        .route("/Groups/.search", post(search_post::<Groups>))
        .route("/.search", post(search_root))
        .route("/Bulk", post(bulk::bulk))
        .route(
            "/Groups/{id}",
            get(read::<Groups>)
                .put(replace::<Groups>)
                .delete(delete::<Groups>)
                .patch(patch::<Groups>),
        )
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
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
    let (user_schemas, group_schemas) = (auth.users(), auth.groups());
    let mut q = search.to_query(&app, &[user_schemas, group_schemas])?;
    q.declared = user_schemas
        .declared
        .iter()
        .chain(group_schemas.declared)
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
        User(Arc<UserView>),
        Group(Arc<GroupView>),
    }
    let key = |attrs: &dyn roster_projections::filter::Attributes| {
        q.sort.as_ref().map_or(SortKey::Missing, |s| {
            roster_projections::sort_key(attrs, &s.path)
        })
    };
    let mut hits: Vec<(SortKey, Hit)> = Vec::new();
    for u in users.items {
        hits.push((key(&u.attributes()), Hit::User(u)));
    }
    for g in groups.items {
        hits.push((key(&g.attributes()), Hit::Group(g)));
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
            Hit::User(u) => render::user(&app, &auth, &u, &search.selection).await?,
            Hit::Group(g) => render::group(&app, &auth, &g, &search.selection).await?,
        });
    }
    Ok(render::list_response(total, q.start_index, resources))
}
