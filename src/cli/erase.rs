//! `roster erase <USER_ID>`: erase one person's personal data (docs/adr/0014) through the
//! admin API, and say what was done.

use super::client::AdminClient;
use super::render::{emit, emit_json, Format};
use serde_json::{json, Value};

/// Erases `user` and prints what the server did.
///
/// Fails when the server cannot be reached or refuses (an unknown user, not a user).
pub async fn run(
    api: &AdminClient,
    user: uuid::Uuid,
    reference: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = json!({"user": user});
    if let Some(r) = reference {
        body["reference"] = Value::String(r.to_owned());
    }
    let done = api.post("/erasures", body).await?;
    if api.format == Format::Json {
        return Ok(emit_json(&done)?);
    }
    let mut said = if done["recorded"] == true {
        format!(
            "erased the personal data of user {user} in directory {}",
            done["directory"].as_str().unwrap_or("?")
        )
    } else {
        format!("user {user} was erased before; its data key is destroyed")
    };
    match done["key"].as_str() {
        Some(key) => said.push_str(&format!("\ndata key {key} destroyed")),
        None => said.push_str("\nno data key: none of its data was ever sealed"),
    }
    let in_clear = done["inClear"].as_u64().unwrap_or(0);
    if in_clear > 0 {
        said.push_str(&format!(
            "\nwarning: {in_clear} of its events were written before personal data was sealed; \
             the log keeps them in clear"
        ));
    }
    Ok(emit(&said)?)
}
