//! The web console under `/console/`: server-rendered pages over the same views, commands and
//! audit trail as the admin API, for an admin signed in with an admin token. Every page that
//! only reads works without JavaScript; every change is a form post carrying the session's
//! CSRF token, decided by the directory's writer and recorded with the token that signed in
//! as its actor, exactly as the admin API would.

mod assets;
mod audit;
mod chart;
mod layout;
mod mappings;
mod overview;
mod people;
mod provider_form;
mod providers;
mod rebuild;
pub mod session;
mod sign_in;
mod sources;

pub use session::Sessions;

use super::admin::AdminAuth;
use super::error::{ErrorDetail, ScimError};
use super::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use session::Session;

/// The most bytes a console form may carry.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(overview::show))
        .route("/console/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/sources", get(sources::list).post(sources::create))
        .route("/console/sources/{slug}", get(sources::show))
        .route("/console/sources/{slug}/tokens", post(sources::issue_token))
        .route(
            "/console/sources/{slug}/tokens/{id}/revoke",
            post(sources::revoke_token),
        )
        .route("/console/users", get(people::users))
        .route("/console/users/{id}", get(people::user))
        .route("/console/groups", get(people::groups))
        .route("/console/groups/{id}", get(people::group))
        .route(
            "/console/providers",
            get(providers::list).post(provider_form::create),
        )
        .route("/console/providers/new", get(provider_form::new))
        .route(
            "/console/providers/{name}",
            get(providers::show).post(provider_form::save),
        )
        .route("/console/providers/{name}/edit", get(provider_form::edit))
        .route(
            "/console/providers/{name}/delete",
            post(provider_form::delete),
        )
        .route("/console/providers/{name}/sync", post(providers::sync))
        .route("/console/providers/{name}/retry", post(providers::retry))
        .route("/console/providers/{name}/replay", post(providers::replay))
        .route(
            "/console/providers/{name}/dry-run",
            post(providers::dry_run),
        )
        .route(
            "/console/mappings",
            get(mappings::list).post(mappings::create),
        )
        .route(
            "/console/mappings/{name}",
            get(mappings::show).post(mappings::save),
        )
        .route("/console/mappings/{name}/preview", post(mappings::preview))
        .route("/console/mappings/{name}/delete", post(mappings::delete))
        .route("/console/rebuild", get(rebuild::show).post(rebuild::start))
        .route("/console/audit", get(audit::search))
        .route("/console/audit/export", get(audit::export))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn(security_headers))
}

/// What every console answer carries: a Content-Security-Policy that allows only the
/// console's own scripts and styles (no inline script), no framing, no sniffing, no
/// referrer to other sites, and no caching of pages.
async fn security_headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/console/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: under it a browser sends `Origin: null` with the console's own
        // forms, and the origin check could not tell them from a forged one.
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A signed-in admin: the session the request's cookie names, still live, opened with an
/// admin token that is still valid. A request without one is sent to the sign-in page.
pub struct Signed {
    pub admin: AdminAuth,
    pub session: Session,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        if !super::admin::certified(app, parts) {
            return Err(Failure(super::admin::refuse_uncertified(app, parts)).into_response());
        }
        let to_sign_in = || sign_in::redirect(parts);
        let Some(id) = session::cookie(&parts.headers) else {
            return Err(to_sign_in());
        };
        let Some(session) = app.sessions.touch(id) else {
            return Err(to_sign_in());
        };
        let valid = super::admin::still_valid(app, &session.who)
            .await
            .map_err(|e| Failure(e).into_response())?;
        if !valid {
            app.sessions.close(id);
            return Err(to_sign_in());
        }
        let admin = AdminAuth::signed_in(parts, session.who.clone());
        Ok(Signed { admin, session })
    }
}

/// A form posted by a signed-in admin, with the session's CSRF token, from a page of this
/// server (the `Origin`, when the browser sends one, names this host).
pub struct Submitted<T> {
    pub signed: Signed,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    /// Missing is forged.
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    rest: T,
}

/// A form with nothing in it but its CSRF token.
#[derive(serde::Deserialize)]
pub struct Nothing {}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Submitted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, app).await?;
        let forged = || {
            Failure(ScimError::new(
                StatusCode::FORBIDDEN,
                None,
                "this form was not sent from this console's own page, or is older than your \
                 session: reload the page and try again",
            ))
            .into_response()
        };
        if !same_origin(&parts.headers) {
            return Err(forged());
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| super::guard::too_large(MAX_FORM_BYTES))?;
        let form: WithCsrf<T> = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            Failure(ScimError::bad_request(
                "invalidValue",
                format!("the form could not be read: {e}"),
            ))
            .into_response()
        })?;
        if !signed.session.csrf_matches(&form.csrf) {
            return Err(forged());
        }
        Ok(Submitted {
            signed,
            form: form.rest,
        })
    }
}

/// False when the request's `Origin` (or, without one, its `Referer`) names another host than
/// its `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (from, host) {
        (None, _) => true,
        (Some(from), Some(host)) => url::Url::parse(from).is_ok_and(|u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            u.host_str()
                .is_some_and(|h| format!("{h}{port}").eq_ignore_ascii_case(host))
        }),
        (Some(_), None) => false,
    }
}

/// A request the console refuses or cannot answer: the error as a page, with the status and
/// the detail the admin API would have answered (recorded when it refuses a change).
pub struct Failure(pub ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Failure(e)
    }
}

impl From<roster_projections::StoreError> for Failure {
    fn from(e: roster_projections::StoreError) -> Self {
        Failure(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut resp = (e.status, layout::failure(&e)).into_response();
        resp.extensions_mut().insert(ErrorDetail(e.detail));
        if let Some(secs) = e.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// What a console handler answers.
pub type Answer = Result<Response, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_from_another_site_is_refused_by_its_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "roster.example:8080".parse().unwrap());
        assert!(same_origin(&h), "no Origin: the CSRF token decides");
        h.insert(
            header::ORIGIN,
            "https://roster.example:8080".parse().unwrap(),
        );
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
