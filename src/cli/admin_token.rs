//! `roster admin-token ...`: issue, list and revoke the admin API's bearer tokens (rotation:
//! issue a new one, switch to it, revoke the old one).

use super::client::{AdminClient, ClientArgs};
use super::render::{emit, emit_json, fields, table, text, time, Format};
use crate::config::Settings;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand, Debug)]
pub enum AdminTokenCmd {
    /// Issue another admin token (shown once); the others stay valid until revoked.
    Issue {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the issued admin tokens (prefixes only) and whether a configured one is accepted.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an admin token: it is refused from now on. The last valid issued token stays
    /// unless a configured `admin_token` remains.
    Revoke {
        /// The token's id, as `roster admin-token list` shows it (not the token itself).
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs one `roster admin-token ...` command against the admin API and prints the result.
///
/// Fails when the server cannot be reached or answers with an error.
pub async fn run(cmd: &AdminTokenCmd, settings: &Settings) -> anyhow::Result<()> {
    let client = match cmd {
        AdminTokenCmd::Issue { client }
        | AdminTokenCmd::List { client }
        | AdminTokenCmd::Revoke { client, .. } => client,
    };
    let api = AdminClient::new(client, settings)?;
    let (body, said) = match cmd {
        AdminTokenCmd::Issue { .. } => {
            let body = api.post("/admin-tokens", json!({})).await?;
            let said = format!(
                "{}\n(the token is shown only now; Roster keeps only its hash)",
                fields(&[
                    ("token id", text(&body["id"])),
                    ("token", text(&body["token"]))
                ])
            );
            (body, said)
        }
        AdminTokenCmd::List { .. } => {
            let body = api.get("/admin-tokens").await?;
            let said = list(&body);
            (body, said)
        }
        AdminTokenCmd::Revoke { token_id, .. } => {
            api.delete(&format!("/admin-tokens/{token_id}")).await?;
            let said = format!("revoked admin token {token_id}");
            (json!({"revoked": token_id}), said)
        }
    };
    if api.format == Format::Json {
        emit_json(&body)?;
    } else {
        emit(&said)?;
    }
    Ok(())
}

/// The issued tokens as a table, then whether a configured token is accepted too.
fn list(body: &Value) -> String {
    let rows = body["admin_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                text(&t["id"]),
                format!("{}…", text(&t["prefix"])),
                time(&t["created"]),
                if t["revoked"].is_null() && t["current"] == json!(true) {
                    "active (this token)".to_owned()
                } else if t["revoked"].is_null() {
                    "active".to_owned()
                } else {
                    format!("revoked {}", time(&t["revoked"]))
                },
            ]
        })
        .collect();
    let configured = if body["configured_token"] == json!(true) {
        "a configured admin_token is accepted too"
    } else {
        "no configured admin_token"
    };
    format!(
        "{}\n\n{configured}",
        table(&["token id", "prefix", "issued", "state"], &[], rows)
    )
}
