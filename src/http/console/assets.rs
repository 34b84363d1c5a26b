//! The console's stylesheet and script, written for it and embedded in the binary; served
//! with a version in their names, so browsers may cache them for good.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The stylesheet's URL (its name changes with the binary's version).
pub const CSS: &str = concat!(
    "/console/assets/console-",
    env!("CARGO_PKG_VERSION"),
    ".css"
);
/// The script's URL.
pub const JS: &str = concat!("/console/assets/console-", env!("CARGO_PKG_VERSION"), ".js");

const CSS_TEXT: &str = include_str!("assets/console.css");
const JS_TEXT: &str = include_str!("assets/console.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/console/assets/{file}");
    let (body, kind) = if path == CSS {
        (CSS_TEXT, "text/css; charset=utf-8")
    } else if path == JS {
        (JS_TEXT, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}
