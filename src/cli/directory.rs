//! `roster directory ...`: create, list and delete directories (each with users, groups,
//! sources and providers apart from the others).

use super::client::{AdminClient, ClientArgs};
use super::render::{emit, emit_json, table, text, Format};
use crate::config::Settings;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum DirectoryCmd {
    /// Create a directory; then `roster source create <SLUG> --directory <NAME>`.
    Create {
        /// The directory's name: 1-63 lower-case letters, digits or hyphens.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the directories.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an empty directory (no users, groups, sources or providers left); `default`
    /// cannot be deleted.
    Delete {
        /// The directory's name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs one `roster directory ...` command against the admin API and prints the result.
///
/// Fails when the server cannot be reached or answers with an error.
pub async fn run(cmd: &DirectoryCmd, settings: &Settings) -> anyhow::Result<()> {
    let client = match cmd {
        DirectoryCmd::Create { client, .. }
        | DirectoryCmd::List { client }
        | DirectoryCmd::Delete { client, .. } => client,
    };
    let api = AdminClient::new(client, settings)?;
    let (body, said) = match cmd {
        DirectoryCmd::Create { name, .. } => {
            let body = api.post("/directories", json!({"name": name})).await?;
            (body, format!("created directory {name}"))
        }
        DirectoryCmd::List { .. } => {
            let body = api.get("/directories").await?;
            let rows = body["directories"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| vec![text(d)])
                .collect();
            let said = table(&["directory"], &[], rows);
            (body, said)
        }
        DirectoryCmd::Delete { name, .. } => {
            api.delete(&format!("/directories/{name}")).await?;
            (
                json!({"deleted": name}),
                format!("deleted directory {name}"),
            )
        }
    };
    if api.format == Format::Json {
        emit_json(&body)?;
    } else {
        emit(&said)?;
    }
    Ok(())
}
