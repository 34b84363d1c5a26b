//! The audit API (`/admin/v1/audit`): search the events (time range, SCIM filter over event
//! fields, keyword, order, cursor paging with `Link: rel="next"`, and following the log with
//! `wait`), one resource's history, and a resource as it was at a time or log position. Admin
//! tokens only; every read is recorded in the audit trail before it is answered.

use super::admin::AdminAuth;
use super::error::{ErrorBody, ScimError};
use super::AppState;
use crate::audit::query::{QueryError, Search, SearchParams};
use crate::audit::render::Rendered;
use crate::audit::{AsOf, AuditError, Page};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The longest a search follows the log for (`wait`, in seconds).
const MAX_WAIT_SECS: u64 = 60;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(history))
        .routes(routes!(as_of))
        .routes(routes!(export))
        .routes(routes!(verify))
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
            AuditError::Store(e) => e.into(),
            AuditError::Log(_) | AuditError::Missing { .. } | AuditError::Thread(_) => {
                ScimError::internal(&e)
            }
        }
    }
}

/// `wait`, from the query string (beside the search parameters).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Wait {
    /// Follow the log: when no event matches yet, wait up to this many seconds (0 to 60) for
    /// one to be appended.
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
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PageBody<'a> {
    /// The resource whose history the page is.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    events: &'a [Rendered],
    /// The cursor of the next page (`after`), when there may be more: also on a page that
    /// stopped short of `limit`, even empty, after passing over `audit_scan_limit` events.
    next: Option<&'a str>,
    /// The cursor to poll with for events appended after this page.
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
#[utoipa::path(get, path = "/audit/events", operation_id = "audit_events", tag = "audit", params(SearchParams, Wait),
    responses(
        (status = 200, description = "A page of events; `Link: <...>; rel=\"next\"` when there may be more", body = PageBody),
        (status = 400, description = "A bad parameter or filter", body = ErrorBody),
    ))]
async fn events(
    State(app): State<AppState>,
    admin: AdminAuth,
    RawQuery(raw): RawQuery,
    Query(p): Query<SearchParams>,
    Query(w): Query<Wait>,
) -> Result<Response, ScimError> {
    admin.record_read(&app, raw.as_deref()).await?;
    let search = Search::parse(&p, app.audit.partitions())?;
    let page = app.audit.search(&search, wait(w.wait.as_deref())?).await?;
    Ok(page_response(
        "/admin/v1/audit/events",
        raw.as_deref(),
        page,
        None,
    ))
}

/// `GET /audit/export`: every matching event, oldest first, as NDJSON, streamed (for SIEMs).
#[utoipa::path(get, path = "/audit/export", operation_id = "audit_export", tag = "audit", params(SearchParams),
    responses(
        (status = 200, description = "One event per line, as `GET /audit/events` shows them", content_type = "application/x-ndjson", body = crate::audit::render::Rendered),
        (status = 400, description = "A bad parameter or filter, or a paging parameter", body = ErrorBody),
    ))]
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VerifyParams {
    /// Check this directory's chain only.
    directory: Option<String>,
}

/// `GET /audit/verify`: reads the whole log and checks every directory's seals and links
/// (`ok: false` and the first break of each directory when something was tampered with).
#[utoipa::path(get, path = "/audit/verify", operation_id = "audit_verify", tag = "audit", params(VerifyParams),
    responses((status = 200, description = "What verification found", body = crate::audit::verify::Report)))]
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
#[utoipa::path(get, path = "/audit/resources/{id}/history", operation_id = "audit_history", tag = "audit",
    params(("id" = Uuid, Path, description = "The resource's id"), SearchParams),
    responses(
        (status = 200, description = "A page of the resource's events", body = PageBody),
        (status = 400, description = "A bad parameter or filter", body = ErrorBody),
        (status = 404, description = "No such resource in the log", body = ErrorBody),
    ))]
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AsOfParams {
    /// The moment (RFC 3339).
    time: Option<String>,
    /// Or the log position (of the resource's directory's partition).
    position: Option<String>,
}

/// `GET /audit/resources/{id}/as-of?time=...` (or `position=...`): a user or group exactly as
/// it was then, even if it was deleted since.
#[utoipa::path(get, path = "/audit/resources/{id}/as-of", operation_id = "audit_as_of", tag = "audit",
    params(("id" = Uuid, Path, description = "The user's or group's id"), AsOfParams),
    responses(
        (status = 200, description = "The SCIM document as it was then", body = Object),
        (status = 400, description = "Neither time nor position, or a bad one", body = ErrorBody),
        (status = 404, description = "It did not exist then, was deleted before, or its data is erased", body = ErrorBody),
    ))]
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
