//! `roster mapping ...`: create, change, show, list and delete property mappings, and preview
//! what one produces for a stored user or group.

use super::client::{AdminClient, ClientArgs};
use super::render::{emit, emit_json, fields, table, text, time, Format};
use crate::config::Settings;
use clap::Subcommand;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum MappingCmd {
    /// Create a mapping; its expression is compiled and tried on sample users or groups
    /// first, and refused with the place of the error.
    Create {
        /// 1-63 lower-case letters, digits or hyphens.
        #[arg(value_name = "NAME")]
        name: String,
        /// Which objects it shapes, and where (a template's by default).
        #[arg(long, value_parser = ["source_user", "source_group", "provider_user", "provider_group"], required_unless_present = "template")]
        kind: Option<String>,
        /// The file holding the CEL expression (`-` for standard input).
        #[arg(long, value_name = "FILE", required_unless_present = "template")]
        file: Option<PathBuf>,
        /// A ready-made mapping to start from instead (`roster mapping templates`); its kind
        /// and description come with it.
        #[arg(long, value_name = "TEMPLATE", conflicts_with = "file")]
        template: Option<String>,
        /// Its description (a template's by default).
        #[arg(long)]
        description: Option<String>,
        /// The directory the mapping belongs to.
        #[arg(long, default_value = "default", value_name = "DIRECTORY")]
        directory: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a mapping's expression (and its description, when given).
    Update {
        #[arg(value_name = "NAME")]
        name: String,
        /// The file holding the new CEL expression (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one mapping with its expression.
    Show {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the ready-made mappings `create --template` starts from.
    Templates {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the mappings.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a mapping.
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what a mapping produces for a stored user or group.
    Preview {
        #[arg(value_name = "NAME")]
        name: String,
        /// The id of the user or group (by the mapping's kind).
        #[arg(long, value_name = "ID")]
        id: String,
        /// The source the expression sees as `source` (source mappings).
        #[arg(long, value_name = "SLUG")]
        source: Option<String>,
        /// The provider the expression sees as `provider` (provider mappings).
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl MappingCmd {
    fn client(&self) -> &ClientArgs {
        match self {
            MappingCmd::Create { client, .. }
            | MappingCmd::Update { client, .. }
            | MappingCmd::Show { client, .. }
            | MappingCmd::Delete { client, .. }
            | MappingCmd::Preview { client, .. }
            | MappingCmd::List { client }
            | MappingCmd::Templates { client } => client,
        }
    }
}

/// The expression in `file`, or on standard input for `-`.
fn expression(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|e| anyhow::anyhow!("reading standard input: {e}"));
    }
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))
}

/// Runs one `roster mapping ...` command against the admin API and prints the result.
///
/// Fails when a file cannot be read, or the server cannot be reached or answers with an
/// error (a refused expression's error says where it is).
pub async fn run(cmd: &MappingCmd, settings: &Settings) -> anyhow::Result<()> {
    let api = AdminClient::new(cmd.client(), settings)?;
    let body = match cmd {
        MappingCmd::Create {
            name,
            kind,
            file,
            template,
            description,
            directory,
            ..
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("directory".into(), json!(directory));
            if let Some(kind) = kind {
                body.insert("kind".into(), json!(kind));
            }
            if let Some(file) = file {
                body.insert("expression".into(), json!(expression(file)?));
            }
            if let Some(template) = template {
                body.insert("template".into(), json!(template));
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            api.post("/mappings", Value::Object(body)).await?
        }
        MappingCmd::Templates { .. } => api.get("/mapping-templates").await?,
        MappingCmd::Update {
            name,
            file,
            description,
            ..
        } => {
            let mut body = Map::new();
            if let Some(file) = file {
                body.insert("expression".into(), json!(expression(file)?));
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            api.patch(&format!("/mappings/{name}"), Value::Object(body))
                .await?
        }
        MappingCmd::Show { name, .. } => api.get(&format!("/mappings/{name}")).await?,
        MappingCmd::List { .. } => api.get("/mappings").await?,
        MappingCmd::Delete { name, .. } => api.delete(&format!("/mappings/{name}")).await?,
        MappingCmd::Preview {
            name,
            id,
            source,
            provider,
            ..
        } => {
            let body = json!({"id": id, "source": source, "provider": provider});
            api.post(&format!("/mappings/{name}/preview"), body).await?
        }
    };
    if api.format == Format::Json {
        let body = match cmd {
            MappingCmd::Delete { name, .. } => json!({"deleted": name}),
            _ => body,
        };
        emit_json(&body)?;
        return Ok(());
    }
    match cmd {
        MappingCmd::Create { .. } | MappingCmd::Update { .. } | MappingCmd::Show { .. } => {
            emit(&format!(
                "{}\n\n{}",
                fields(&[
                    ("mapping", text(&body["name"])),
                    ("kind", text(&body["kind"])),
                    ("directory", text(&body["directory"])),
                    ("description", text(&body["description"])),
                    ("version", text(&body["version"])),
                    ("changed", time(&body["last_modified"])),
                ]),
                text(&body["expression"])
            ))?
        }
        MappingCmd::List { .. } => {
            let rows = body["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    vec![
                        text(&m["name"]),
                        text(&m["kind"]),
                        text(&m["directory"]),
                        time(&m["last_modified"]),
                        text(&m["description"]),
                    ]
                })
                .collect();
            emit(&table(
                &["mapping", "kind", "directory", "changed", "description"],
                &[],
                rows,
            ))?
        }
        MappingCmd::Delete { name, .. } => emit(&format!("deleted mapping {name}"))?,
        MappingCmd::Templates { .. } => {
            let rows = body["templates"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| vec![text(&t["name"]), text(&t["kind"]), text(&t["description"])])
                .collect();
            emit(&table(&["template", "kind", "description"], &[], rows))?
        }
        MappingCmd::Preview { .. } => emit(&preview(&body))?,
    }
    Ok(())
}

/// A preview: what the mapping gave (attributes, skip or an error).
fn preview(body: &Value) -> String {
    match body["outcome"].as_str() {
        Some("attributes") => serde_json::to_string_pretty(&body["attributes"])
            .unwrap_or_else(|_| body["attributes"].to_string()),
        Some("skip") => "skip: the object would not be written or sent".to_owned(),
        _ => format!("error: {}", text(&body["error"])),
    }
}
