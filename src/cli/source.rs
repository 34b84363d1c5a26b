//! `roster source ...`: create and delete sources, issue and revoke their tokens, declare
//! their extension schemas and the mappings they run, re-map what they wrote, list them.

use super::client::{AdminClient, ClientArgs};
use super::render::{emit, emit_json, fields, table, text, time, Format};
use crate::config::Settings;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Create a source and print its SCIM base URL and first token (shown once).
    Create {
        /// The source's name in its SCIM base URL, /source/scim/<SLUG>/v2: 1-63 lower-case
        /// letters, digits or hyphens.
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The directory the source writes into.
        #[arg(long, default_value = "default", value_name = "DIRECTORY")]
        directory: String,
        /// `owned` (the source sees only what it created; a taken userName is 409) or
        /// `adopt` (creating an existing userName/displayName adopts that object).
        #[arg(long, default_value = "owned", value_parser = ["owned", "adopt"])]
        ownership: String,
        /// What writes may carry under extension schemas the source has not declared:
        /// `refuse` (400 naming the schema) or `keep` (stored and returned as sent, unchecked).
        #[arg(long, default_value = "refuse", value_parser = ["refuse", "keep"])]
        undeclared_extensions: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Issue another token for a source (shown once); earlier tokens stay valid until revoked.
    Token {
        /// The source's slug (`roster source list` shows them).
        #[arg(value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Declare an extension schema (RFC 7643 §7 JSON in a file) for a source's users or groups.
    Schema {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The file holding the schema definition: {"id": "urn:...", "name": ...,
        /// "attributes": [...]}.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The resource type the schema extends.
        #[arg(long, default_value = "User", value_parser = ["User", "Group"])]
        resource_type: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke one of a source's tokens: clients using it get 401 from now on.
    Revoke {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The token's id, as `roster source list` shows it (not the token itself).
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the source mappings a source runs on the users and groups it writes, in order
    /// (`roster mapping list` shows them); with none, it runs none. New writes use them;
    /// `roster source remap` runs them on what the source wrote before.
    Mappings {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The mappings' names, in the order they run (source_user ones on users,
        /// source_group ones on groups).
        #[arg(value_name = "MAPPING")]
        mappings: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what the source's mappings would make of a user or group a client sends (JSON in
    /// a file): the document that would be stored, or why the write would be refused.
    /// Nothing is written.
    Preview {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The file holding the user (or group) as a SCIM client would send it.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The document is a group.
        #[arg(long)]
        group: bool,
        /// The id of the stored object the write would replace (what the mappings see as
        /// `existing`).
        #[arg(long, value_name = "ID")]
        replacing: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a source's mappings again on every user and group it owns, as stored; each object
    /// the mappings change is recorded as an update by this admin.
    Remap {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List sources and their tokens (prefixes only).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a source: its tokens are refused from now on. The users and groups it wrote
    /// stay in the directory (providers keep carrying them); a source created again with the
    /// same slug gets them back.
    Delete {
        /// The source's slug.
        #[arg(value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl SourceCmd {
    fn client(&self) -> &ClientArgs {
        match self {
            SourceCmd::Create { client, .. }
            | SourceCmd::Schema { client, .. }
            | SourceCmd::Token { client, .. }
            | SourceCmd::Revoke { client, .. }
            | SourceCmd::Delete { client, .. }
            | SourceCmd::Mappings { client, .. }
            | SourceCmd::Remap { client, .. }
            | SourceCmd::Preview { client, .. }
            | SourceCmd::List { client } => client,
        }
    }
}

const SHOWN_ONCE: &str = "(the token is shown only now; Roster keeps only its hash)";

/// Runs one `roster source ...` command against the admin API and prints the result.
///
/// Fails when the server cannot be reached or answers with an error.
pub async fn run(cmd: &SourceCmd, settings: &Settings) -> anyhow::Result<()> {
    let api = AdminClient::new(cmd.client(), settings)?;
    let body = match cmd {
        SourceCmd::Create {
            slug,
            directory,
            ownership,
            undeclared_extensions,
            ..
        } => {
            api.post(
                "/sources",
                json!({
                    "slug": slug,
                    "directory": directory,
                    "ownership": ownership,
                    "undeclared_extensions": undeclared_extensions,
                }),
            )
            .await?
        }
        SourceCmd::Token { slug, .. } => {
            api.post(&format!("/sources/{slug}/tokens"), json!({}))
                .await?
        }
        SourceCmd::Schema {
            slug,
            file,
            resource_type,
            ..
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            api.post(
                &format!("/sources/{slug}/schemas"),
                json!({"resource_type": resource_type, "schema": schema}),
            )
            .await?
        }
        SourceCmd::Revoke { slug, token_id, .. } => {
            api.delete(&format!("/sources/{slug}/tokens/{token_id}"))
                .await?
        }
        SourceCmd::Delete { slug, .. } => api.delete(&format!("/sources/{slug}")).await?,
        SourceCmd::Mappings { slug, mappings, .. } => {
            api.put(
                &format!("/sources/{slug}/mappings"),
                json!({ "mappings": mappings }),
            )
            .await?
        }
        SourceCmd::Remap { slug, .. } => {
            api.post(&format!("/sources/{slug}/remap"), json!({}))
                .await?
        }
        SourceCmd::Preview {
            slug,
            file,
            group,
            replacing,
            ..
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let resource: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut body = json!({
                "resource": resource,
                "type": if *group { "Group" } else { "User" },
            });
            if let Some(id) = replacing {
                body["id"] = json!(id);
            }
            api.post(&format!("/sources/{slug}/preview"), body).await?
        }
        SourceCmd::List { .. } => api.get("/sources").await?,
    };
    if api.format == Format::Json {
        let body = match cmd {
            SourceCmd::Revoke { token_id, .. } => json!({"revoked": token_id}),
            SourceCmd::Delete { slug, .. } => json!({"deleted": slug}),
            _ => body,
        };
        emit_json(&body)?;
        return Ok(());
    }
    match cmd {
        SourceCmd::Create { .. } => emit(&format!(
            "{}\n{SHOWN_ONCE}",
            fields(&[
                ("source", text(&body["slug"])),
                ("directory", text(&body["directory"])),
                ("SCIM base URL", text(&body["scim_base_url"])),
                ("token id", text(&body["token"]["id"])),
                ("token", text(&body["token"]["token"])),
            ])
        ))?,
        SourceCmd::Token { .. } => emit(&format!(
            "{}\n{SHOWN_ONCE}",
            fields(&[
                ("token id", text(&body["id"])),
                ("token", text(&body["token"]))
            ])
        ))?,
        SourceCmd::Revoke { token_id, .. } => emit(&format!("revoked token {token_id}"))?,
        SourceCmd::Delete { slug, .. } => emit(&format!(
            "deleted source {slug}: its tokens are refused; its users and groups stay"
        ))?,
        SourceCmd::Schema { .. } => {
            let rows = body["schemas"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| vec![text(&d["id"]), text(&d["resource_type"])])
                .collect();
            emit(&table(&["schema", "extends"], &[], rows))?
        }
        SourceCmd::Mappings { slug, .. } => {
            let names: Vec<String> = body["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            emit(&if names.is_empty() {
                format!("source {slug} runs no mappings")
            } else {
                format!("source {slug} runs, in order: {}", names.join(", "))
            })?
        }
        SourceCmd::Remap { .. } => emit(&remapped(&body))?,
        SourceCmd::Preview { .. } => emit(&previewed(&body))?,
        SourceCmd::List { .. } => emit(&list(&body))?,
    }
    Ok(())
}

/// The sources as a table, then their tokens as another.
fn list(body: &Value) -> String {
    let sources: Vec<&Value> = body["sources"].as_array().into_iter().flatten().collect();
    let rows = sources
        .iter()
        .map(|s| {
            let active = s["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["revoked"].is_null())
                .count();
            vec![
                text(&s["slug"]),
                text(&s["directory"]),
                text(&s["ownership"]),
                active.to_string(),
                text(&s["scim_base_url"]),
            ]
        })
        .collect();
    let tokens = sources
        .iter()
        .flat_map(|s| {
            s["tokens"].as_array().into_iter().flatten().map(|t| {
                vec![
                    text(&s["slug"]),
                    text(&t["id"]),
                    format!("{}…", text(&t["prefix"])),
                    time(&t["created"]),
                    if t["revoked"].is_null() {
                        "active".to_owned()
                    } else {
                        format!("revoked {}", time(&t["revoked"]))
                    },
                ]
            })
        })
        .collect();
    format!(
        "{}\n\n{}",
        table(
            &[
                "source",
                "directory",
                "ownership",
                "tokens",
                "scim base url"
            ],
            &["tokens"],
            rows
        ),
        table(
            &["source", "token id", "prefix", "issued", "state"],
            &[],
            tokens
        )
    )
}

/// What a re-map did: a line for users and groups, then the failures it lists.
fn remapped(body: &Value) -> String {
    let rows = ["users", "groups"]
        .iter()
        .map(|k| {
            let t = &body[*k];
            vec![
                (*k).to_owned(),
                text(&t["examined"]),
                text(&t["changed"]),
                text(&t["failed"]),
            ]
        })
        .collect();
    let mut out = table(
        &["objects", "examined", "changed", "failed"],
        &["examined", "changed", "failed"],
        rows,
    );
    let failures: Vec<Vec<String>> = body["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| vec![text(&f["id"]), text(&f["detail"])])
        .collect();
    if !failures.is_empty() {
        out.push_str("\n\n");
        out.push_str(&table(&["failed object", "why"], &[], failures));
    }
    out
}

/// What a preview says: the document that would be stored, or why the write is refused.
fn previewed(body: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    match body["outcome"].as_str() {
        Some("unchanged") => format!("stored as sent:\n{}", pretty(&body["resource"])),
        Some("changed") => format!("stored:\n{}", pretty(&body["resource"])),
        Some("refused") => format!("refused by mapping {}", text(&body["mapping"])),
        Some("invalid") => format!(
            "refused: the result is not valid: {}",
            text(&body["detail"])
        ),
        _ => format!(
            "refused: mapping {}: {}",
            text(&body["mapping"]),
            text(&body["detail"])
        ),
    }
}
