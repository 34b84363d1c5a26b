//! Signing in to the console with an admin token (exchanged for a session; the token itself is
//! never kept) and signing out. A refused sign-in is recorded in the audit trail as any
//! refused admin request is.

use super::layout::bare;
use super::session::set_cookie;
use super::{Failure, Nothing, Submitted};
use crate::http::error::ScimError;
use crate::http::AppState;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use roster_events::RefusalReason;

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console/",
    }
}

/// The answer that sends a request without a session to the sign-in page (and, for a page,
/// back to it afterwards).
pub fn redirect(parts: &Parts) -> Response {
    let next = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or("/console/", |p| p.as_str())
    } else {
        "/console/"
    };
    let to = format!(
        "/console/sign-in?{}",
        super::layout::query(&[("next", safe_next(Some(next)))])
    );
    Redirect::to(&to).into_response()
}

fn secure(app: &AppState) -> bool {
    app.settings.scheme() == "https"
        || app
            .settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

#[derive(serde::Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

fn sign_in_page(next: &str, error: Option<&str>) -> Html<String> {
    let markup = bare(
        "Sign in",
        html! {
            @if let Some(error) = error {
                p.error role="alert" #sign-in-error { (error) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password"
                        required autofocus class="wide";
                }
                button type="submit" { "Sign in" }
            }
            p.muted {
                "Use an admin token: the one printed at first start, one from "
                code { "roster admin-token issue" }
                ", or the configured one. It is exchanged for a session and not kept."
            }
        },
    );
    Html(markup.into_string())
}

/// `GET /console/sign-in`: the sign-in form.
pub async fn form(Query(p): Query<NextParam>) -> Response {
    sign_in_page(safe_next(p.next.as_deref()), None).into_response()
}

#[derive(serde::Deserialize)]
struct Credentials {
    token: String,
    next: Option<String>,
}

/// `POST /console/sign-in`: checks the admin token and opens a session.
pub async fn submit(State(app): State<AppState>, req: Request) -> Result<Response, Failure> {
    let (parts, body) = req.into_parts();
    if !crate::http::admin::certified(&app, &parts) {
        return Err(Failure(crate::http::admin::refuse_uncertified(
            &app, &parts,
        )));
    }
    if !super::same_origin(&parts.headers) {
        return Err(Failure(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "sign in from this console's own page",
        )));
    }
    let bytes = axum::body::to_bytes(body, super::MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            Failure(ScimError::bad_request(
                "invalidValue",
                "the form is too large",
            ))
        })?;
    let creds: Credentials = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        Failure(ScimError::bad_request(
            "invalidValue",
            format!("the form could not be read: {e}"),
        ))
    })?;
    let next = safe_next(creds.next.as_deref()).to_owned();
    let token = creds.token.trim();
    let who = if token.is_empty() {
        crate::http::admin::refuse(&app, &parts, RefusalReason::NoToken);
        None
    } else {
        let who = crate::http::admin::token_admin(&app, token).await?;
        if who.is_none() {
            crate::http::admin::refuse(&app, &parts, RefusalReason::InvalidToken);
        }
        who
    };
    let Some(who) = who else {
        let page = sign_in_page(&next, Some("That is not a valid admin token."));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    tracing::info!(admin = %who, "signed in to the console");
    let id = app.sessions.open(who);
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(Some(&id), secure(&app))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `POST /console/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(State(app): State<AppState>, posted: Submitted<Nothing>) -> Response {
    let signed = posted.signed;
    tracing::info!(admin = %signed.session.who, "signed out of the console");
    app.sessions.close_for(&signed.session);
    let mut resp = Redirect::to("/console/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(None, secure(&app))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_where_sign_in_leads() {
        assert_eq!(safe_next(Some("/console/users?q=a")), "/console/users?q=a");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/admin/v1/sources",
            "/console\\",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
    }
}
