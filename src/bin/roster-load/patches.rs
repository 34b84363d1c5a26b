//! `roster-load patches`: PATCH /Users/{id} replacing `displayName`, the change Entra ID sends
//! most often, from N concurrent clients over users that already exist.

use serde_json::json;
use std::sync::Arc;

/// Sends `total` PATCHes from `concurrency` clients, request i to the user picked by a
/// multiplicative hash of i among the first `users` the server lists, each with a value no
/// earlier run sent; a request counts when it is answered 200 or 204.
pub(crate) async fn run(
    http: reqwest::Client,
    url: &str,
    token: String,
    concurrency: usize,
    total: usize,
    users: usize,
) -> anyhow::Result<()> {
    let base = format!("{}/Users", url.trim_end_matches('/'));
    let ids = Arc::new(super::ids::users(&http, &base, &token, users).await?);
    anyhow::ensure!(!ids.is_empty(), "{base} lists no users to PATCH");
    // Each run writes values of its own: a PATCH that changes nothing is answered without a
    // write.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let what = format!("patches at {concurrency} clients");
    super::drive(&what, concurrency, total, move |i| {
        let (http, token) = (http.clone(), token.clone());
        let k = i.wrapping_mul(2_654_435_761) % ids.len();
        let target = format!("{base}/{}", ids[k]);
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "displayName", "value": format!("User {k} r{run} v{i}")}],
        })
        .to_string();
        async move {
            let r = http
                .patch(&target)
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(body)
                .send()
                .await;
            matches!(r, Ok(r) if r.status() == 200 || r.status() == 204)
        }
    })
    .await;
    Ok(())
}
