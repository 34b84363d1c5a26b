//! The audit API (`/admin/v1/audit`): search the events (time range, SCIM filter over event
//! fields, keyword, order, cursor paging with `Link: rel="next"`, and following the log with
//! `wait`), one resource's history, and a resource as it was at a time or log position. Admin
//! tokens only; every read is recorded in the audit trail before it is answered.

use super::admin::AdminAuth;
use super::error::ScimError;
use super::AppState;
use crate::audit::query::{QueryError, Search, SearchParams};
use crate::audit::render::Rendered;
use crate::audit::{AsOf, AuditError, Page};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;
use uuid::Uuid;

/// The longest a search follows the log for (`wait`, in seconds).
const MAX_WAIT_SECS: u64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit/events", get(events))
        .route("/audit/resources/{id}/history", get(history))
        .route("/audit/resources/{id}/as-of", get(as_of))
        .route("/audit/export", get(export))
        .route("/audit/verify", get(verify))
}

impl From<QueryError> for ScimError {
    fn from(e: QueryError) -> Self {
        let kind = match e {
            QueryError::Filter(_) => "invalidFilter",
            QueryError::Value(_) | QueryError::Cursor => "invalidValue",
        };
        ScimError::bad_request(kind, e.to_string())
    }
}

impl From<AuditError> for ScimError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::CatchingUp { .. } => ScimError {
                retry_after: Some(2),
                ..ScimError::busy(e.to_string())
            },
            AuditError::Log(crate::log::LogError::Unavailable(_)) => ScimError::unavailable(&e),
            AuditError::Store(_) => ScimError::unavailable(&e),
            AuditError::Log(_) | AuditError::Missing { .. } => ScimError::internal(&e),
        }
    }
}

/// The search parameters and `wait`, from the query string.
#[derive(serde::Deserialize)]
struct EventsParams {
    #[serde(flatten)]
    search: SearchParams,
    wait: Option<String>,
}

fn wait(raw: Option<&str>) -> Result<Option<Duration>, ScimError> {
    raw.map(|w| match w.parse::<u64>() {
        Ok(s) if s <= MAX_WAIT_SECS => Ok(Duration::from_secs(s)),
        _ => Err(ScimError::bad_request(
            "invalidValue",
            format!("wait must be a number of seconds from 0 to {MAX_WAIT_SECS}, not {w:?}"),
        )),
    })
    .transpose()
}

/// The query string with `after` set to `cursor`, for the `Link` header.
fn with_after(raw: Option<&str>, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "after")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    pairs.push(("after".into(), cursor.into()));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A page of events as the API answers it.
#[derive(serde::Serialize)]
struct PageBody<'a> {
    /// The resource whose history the page is.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    events: &'a [Rendered],
    next: Option<&'a str>,
    resume: String,
}

/// A page as JSON (of the history of `id`, if given), with `Link: <...>; rel="next"` when
/// there may be more.
fn page_response(path: &str, raw: Option<&str>, page: Page, id: Option<Uuid>) -> Response {
    let next = page.found.next.as_ref().map(|c| c.encode());
    let body = PageBody {
        id,
        events: &page.events,
        next: next.as_deref(),
        resume: page.found.resume.encode(),
    };
    let mut resp = Json(body).into_response();
    if let Some(next) = next {
        let link = format!("<{path}?{}>; rel=\"next\"", with_after(raw, &next));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// `GET /audit/events`: a page of events, oldest first unless `sortOrder=descending`.
async fn events(
    State(app): State<AppState>,
    admin: AdminAuth,
    RawQuery(raw): RawQuery,
    Query(p): Query<EventsParams>,
) -> Result<Response, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    let search = Search::parse(&p.search, app.audit.partitions())?;
    let page = app.audit.search(&search, wait(p.wait.as_deref())?).await?;
    Ok(page_response(
        "/admin/v1/audit/events",
        raw.as_deref(),
        page,
        None,
    ))
}

/// `GET /audit/export`: every matching event, oldest first, as NDJSON, streamed (for SIEMs).
async fn export(
    State(app): State<AppState>,
    admin: AdminAuth,
    RawQuery(raw): RawQuery,
    Query(p): Query<SearchParams>,
) -> Result<Response, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    if p.after.is_some() || p.limit.is_some() || p.sort_order.is_some() {
        return Err(ScimError::bad_request(
            "invalidValue",
            "an export takes since, until, filter and q; it is not paged",
        ));
    }
    let search = Search::parse(&p, app.audit.partitions())?;
    let stream = app.audit.clone().export(search);
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

#[derive(serde::Deserialize)]
struct VerifyParams {
    directory: Option<String>,
}

/// `GET /audit/verify`: reads the whole log and checks every directory's seals and links
/// (`ok: false` and the first break of each directory when something was tampered with).
async fn verify(
    State(app): State<AppState>,
    admin: AdminAuth,
    RawQuery(raw): RawQuery,
    Query(p): Query<VerifyParams>,
) -> Result<Json<crate::audit::verify::Report>, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    let key = app.secret_key.chain_key();
    let log = app.log.follower().unwrap_or_else(|| app.log.clone());
    let report = crate::audit::verify::verify(log.as_ref(), &key, p.directory.as_deref())
        .await
        .map_err(|e| match e {
            crate::log::LogError::Unavailable(_) => ScimError::unavailable(&e),
            _ => ScimError::internal(&e),
        })?;
    tracing::info!(admin = %admin.who(), ok = report.ok, records = report.records, "audit verified");
    Ok(Json(report))
}

fn resource_id(id: &str) -> Result<Uuid, ScimError> {
    id.parse()
        .map_err(|_| ScimError::not_found(format!("no resource {id:?} (ids are UUIDs)")))
}

/// `GET /audit/resources/{id}/history`: every event of one resource (a user, group, source,
/// provider, directory or admin token), deleted or not, with its changes and ETag.
async fn history(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(mut p): Query<SearchParams>,
) -> Result<Response, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    let uuid = resource_id(&id)?;
    let own = format!("resource.id eq \"{uuid}\"");
    p.filter = Some(match p.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => format!("{own} and ({f})"),
        None => own,
    });
    let search = Search::parse(&p, app.audit.partitions())?;
    let page = app.audit.search(&search, None).await?;
    if page.events.is_empty() && search.after.is_none() && app.audit.unknown(uuid).await? {
        return Err(ScimError::not_found(format!(
            "no resource {uuid} in the log"
        )));
    }
    Ok(page_response(
        &format!("/admin/v1/audit/resources/{uuid}/history"),
        raw.as_deref(),
        page,
        Some(uuid),
    ))
}

#[derive(serde::Deserialize)]
struct AsOfParams {
    time: Option<String>,
    position: Option<String>,
}

/// `GET /audit/resources/{id}/as-of?time=...` (or `position=...`): a user or group exactly as
/// it was then, even if it was deleted since.
async fn as_of(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(p): Query<AsOfParams>,
) -> Result<Response, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    let uuid = resource_id(&id)?;
    let time = p
        .time
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ScimError::bad_request("invalidValue", format!("time must be RFC 3339: {e}"))
                })
        })
        .transpose()?;
    let position = p
        .position
        .as_deref()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ScimError::bad_request("invalidValue", format!("position must be a number: {s:?}"))
            })
        })
        .transpose()?;
    if time.is_none() && position.is_none() {
        return Err(ScimError::bad_request(
            "invalidValue",
            "say when: time=<RFC 3339> or position=<log position>",
        ));
    }
    match app.audit.as_of(uuid, time, position).await? {
        AsOf::Existed(doc) => Ok((StatusCode::OK, Json(doc)).into_response()),
        AsOf::Deleted { at } => Err(ScimError::not_found(format!(
            "{uuid} was deleted at {at}, before that moment"
        ))),
        AsOf::Erased { at } => Err(ScimError::not_found(format!(
            "the personal data of {uuid} was erased at {at}: what it looked like can no longer \
             be read"
        ))),
        AsOf::Unknown => Err(ScimError::not_found(format!(
            "no user or group {uuid} existed at that moment"
        ))),
    }
}
