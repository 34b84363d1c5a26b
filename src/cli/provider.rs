//! `roster provider ...`: create, change, delete, list and show providers; their status;
//! ask for a full sync, a retry of parked objects or a replay, and follow it with --wait.

use super::client::{AdminClient, ClientArgs};
use super::render::{duration, emit, emit_json, fields, table, text, time, Format};
use super::watch;
use crate::config::Settings;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Create a provider from a JSON file (`-` for standard input) holding the admin API's
    /// body; secrets go in the file, never on the command line. Roster then checks that it
    /// can reach the remote and says so.
    #[command(after_help = PROVIDER_FILE)]
    Create {
        /// The provider file (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a provider: the file holds only the settings to change (an `auth` of the same
    /// type without its secret keeps the secret).
    #[command(after_help = PROVIDER_FILE)]
    Update {
        /// The provider's name (`roster provider list` shows them).
        #[arg(value_name = "NAME")]
        name: String,
        /// A file with the settings to change (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a provider (what it synced stays on the remote).
    Delete {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List providers with their state, lag, pending and parked objects and last error.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a provider's configuration (without secrets).
    Show {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// State and errors, position and lag, pending, in-flight and parked objects, the last
    /// full sync, recent requests and dry-run requests.
    Status {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a full sync now: compare the views with the remote and fix every difference.
    Sync {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Follow the sync until it ends, with a progress bar on a terminal.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Try the parked objects again now.
    Retry {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Follow the retry until nothing is pending, then say what is still parked.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Carry every change again from a position of the directory's log partition.
    Replay {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The log position to carry from: 0 for the whole history; `roster provider status`
        /// shows the provider's current position, and each event's position is in the log.
        #[arg(long, value_name = "POSITION")]
        from: u64,
        /// Follow the replay until it reaches where the log was, with a progress bar.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what the provider would send for a stored user or group: the built-in document
    /// shaped by its property mappings, skip, or the error of the mapping that fails.
    Preview {
        /// The provider's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The id of a user.
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "group",
            required_unless_present = "group"
        )]
        user: Option<String>,
        /// The id of a group.
        #[arg(long, value_name = "ID")]
        group: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

const PROVIDER_FILE: &str = r#"The provider file, for example:
  {"name": "slack", "directory": "default",
   "base_url": "https://api.slack.com/scim/v2",
   "mode": "slack",
   "auth": {"type": "bearer", "token": "xoxp-..."},
   "scope": {"exclude_service_accounts": true, "access_groups": [], "group_filter": []},
   "full_sync_interval_secs": 3600, "concurrency": 8,
   "deactivate": false, "dry_run": false, "enabled": true,
   "mappings": ["slack-names"]}
mode: default, aws, slack, salesforce or webex.
mappings: property mappings applied after the built-in one, in order (`roster mapping list`).
auth is one of:
  {"type": "bearer", "token": "..."}
  {"type": "basic", "username": "...", "password": "..."}
  {"type": "oauth2", "token_url": "https://...", "client_id": "...", "client_secret": "...",
   "grant": "client_credentials" | "password", "username": "...", "password": "...",
   "extra": {"resource": "..."}}
See docs/operations.md, "Providers"."#;

impl ProviderCmd {
    fn client(&self) -> &ClientArgs {
        use ProviderCmd as P;
        match self {
            P::Create { client, .. }
            | P::Update { client, .. }
            | P::Delete { client, .. }
            | P::List { client }
            | P::Show { client, .. }
            | P::Status { client, .. }
            | P::Sync { client, .. }
            | P::Retry { client, .. }
            | P::Replay { client, .. }
            | P::Preview { client, .. } => client,
        }
    }
}

fn read_json_file(file: &std::path::Path) -> anyhow::Result<Value> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Runs one `roster provider ...` command against the admin API and prints the answer.
///
/// Fails when a file cannot be read, the server cannot be reached or answers with an error,
/// or a followed request ends in failure.
pub async fn run(cmd: &ProviderCmd, settings: &Settings) -> anyhow::Result<()> {
    use ProviderCmd as P;
    let api = AdminClient::new(cmd.client(), settings)?;
    let json_out = api.format == Format::Json;
    match cmd {
        P::Create { file, .. } | P::Update { file, .. } => {
            let body = read_json_file(file)?;
            let answer = match cmd {
                P::Update { name, .. } => api.patch(&format!("/providers/{name}"), body).await?,
                _ => api.post("/providers", body).await?,
            };
            if json_out {
                emit_json(&answer)?;
            } else {
                emit(&show(&answer))?;
            }
        }
        P::Preview {
            name, user, group, ..
        } => {
            let body = match (user, group) {
                (Some(u), _) => json!({"user": u}),
                (None, g) => json!({"group": g}),
            };
            let answer = api
                .post(&format!("/providers/{name}/preview"), body)
                .await?;
            if json_out {
                emit_json(&answer)?;
            } else {
                emit(&match answer["outcome"].as_str() {
                    Some("send") => serde_json::to_string_pretty(&answer["document"])
                        .unwrap_or_else(|_| answer["document"].to_string()),
                    Some("skip") => "skip: the provider would not send it".to_owned(),
                    _ => format!("error: {}", text(&answer["error"])),
                })?;
            }
        }
        P::Delete { name, .. } => {
            api.delete(&format!("/providers/{name}")).await?;
            if json_out {
                emit_json(&json!({"deleted": name}))?;
            } else {
                emit(&format!("deleted provider {name}"))?;
            }
        }
        P::List { .. } | P::Show { .. } | P::Status { .. } => {
            let (path, render): (String, fn(&Value) -> String) = match cmd {
                P::Show { name, .. } => (format!("/providers/{name}"), show),
                P::Status { name, .. } => (format!("/providers/{name}/status"), status),
                _ => ("/providers".to_owned(), list),
            };
            let answer = api.get(&path).await?;
            if json_out {
                emit_json(&answer)?;
            } else {
                emit(&render(&answer))?;
            }
        }
        P::Sync { name, wait, .. } | P::Retry { name, wait, .. } | P::Replay { name, wait, .. } => {
            let (verb, body, asked) = match cmd {
                P::Replay { from, .. } => (
                    "replay",
                    json!({"from": from}),
                    format!("replay of {name} from position {from} requested"),
                ),
                P::Retry { .. } => (
                    "retry",
                    json!({}),
                    format!("retry of {name}'s parked objects requested"),
                ),
                _ => ("sync", json!({}), format!("full sync of {name} requested")),
            };
            let before = api.get(&format!("/providers/{name}/status")).await?;
            let answer = api.post(&format!("/providers/{name}/{verb}"), body).await?;
            let request = watch::Request::new(&api, name, &answer)?;
            if !*wait {
                requested(&api, &answer, &asked, name)?;
                return Ok(());
            }
            let parked = |v: &Value| v["parked"].as_array().map_or(0, Vec::len);
            let (end, line) = match cmd {
                P::Replay { from, .. } => {
                    let end = request.replay(*from).await?;
                    let line = format!(
                        "replayed positions {from}..{} to {name}; {} parked",
                        request.position(),
                        parked(&end)
                    );
                    (end, line)
                }
                P::Retry { .. } => {
                    let end = request.carried("retrying").await?;
                    let (was, now) = (parked(&before), parked(&end));
                    let line = format!(
                        "retried {was} parked objects: {} carried, {now} parked again",
                        was.saturating_sub(now)
                    );
                    (end, line)
                }
                _ => {
                    let end = request.sync().await?;
                    let line = sync_outcome(&end);
                    (end, line)
                }
            };
            outcome(&api, &end, &line)?;
        }
    }
    Ok(())
}

/// What a request without --wait prints: that it was recorded, and how to follow it.
fn requested(api: &AdminClient, answer: &Value, line: &str, name: &str) -> std::io::Result<()> {
    if api.format == Format::Json {
        return emit_json(answer);
    }
    emit(&format!(
        "{line}\nfollow it with `roster provider status {name}`, or add --wait"
    ))
}

/// What a followed request prints when it ends.
fn outcome(api: &AdminClient, end: &Value, line: &str) -> std::io::Result<()> {
    if api.format == Format::Json {
        return emit_json(end);
    }
    emit(line)
}

fn sync_outcome(end: &Value) -> String {
    let r = &end["last_full_sync"];
    let took = super::render::between(&r["started"], &r["finished"])
        .map(duration)
        .unwrap_or_else(|| "-".into());
    format!("full sync done in {took}: {}", counts(r))
}

/// A full-sync report's counts in one line.
fn counts(r: &Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    format!(
        "{} compared: {} unchanged, {} created, {} updated, {} deleted, {} failed",
        n("compared"),
        n("unchanged"),
        n("created"),
        n("updated"),
        n("deleted"),
        n("failed")
    )
}

/// The providers as a table.
fn list(body: &Value) -> String {
    let rows = body["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let s = &p["status"];
            vec![
                text(&p["name"]),
                text(&p["directory"]),
                text(&p["mode"]),
                state(p, s),
                text(&s["lag"]),
                text(&s["pending"]),
                text(&s["parked"]),
                text(&s["error"]),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "directory",
            "mode",
            "state",
            "lag",
            "pending",
            "parked",
            "last error",
        ],
        &["lag", "pending", "parked"],
        rows,
    )
}

/// A provider's state with what qualifies it (disabled, dry run).
fn state(p: &Value, s: &Value) -> String {
    let mut st = text(&s["state"]);
    if p["enabled"] == false {
        st = "disabled".into();
    }
    if p["dry_run"] == true {
        st.push_str(" (dry run)");
    }
    st
}

/// A provider's configuration as fields.
fn show(p: &Value) -> String {
    let every = p["full_sync_interval_secs"].as_u64().unwrap_or(0);
    let mut out = fields(&[
        ("name", text(&p["name"])),
        ("directory", text(&p["directory"])),
        ("base url", text(&p["base_url"])),
        ("mode", text(&p["mode"])),
        ("auth", text(&p["auth"]["type"])),
        ("scope", p["scope"].to_string()),
        (
            "full sync",
            if every == 0 {
                "on request only".into()
            } else {
                format!("every {}", duration(std::time::Duration::from_secs(every)))
            },
        ),
        ("concurrency", text(&p["concurrency"])),
        (
            "deletes",
            if p["deactivate"] == true {
                "deactivate".into()
            } else {
                "delete".into()
            },
        ),
        ("enabled", text(&p["enabled"])),
        ("dry run", text(&p["dry_run"])),
        (
            "mappings",
            match p["mappings"].as_array() {
                Some(m) if !m.is_empty() => m.iter().map(text).collect::<Vec<_>>().join(", "),
                _ => "built-in only".into(),
            },
        ),
        ("version", text(&p["version"])),
        ("created", time(&p["created"])),
        ("last modified", time(&p["last_modified"])),
    ]);
    for w in p["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nwarning: {}", text(w)));
    }
    out
}

/// A provider's status: fields, then its parked objects, recent and dry-run requests.
fn status(s: &Value) -> String {
    let r = &s["last_full_sync"];
    let last_sync = if r.is_null() {
        "never".to_owned()
    } else {
        format!("{}: {}", time(&r["started"]), counts(r))
    };
    let here = if s["running_here"] == true {
        "this process"
    } else {
        "another process, or none"
    };
    let mut pairs = vec![
        ("provider", text(&s["provider"])),
        ("state", state(s, s)),
        ("runs in", here.to_owned()),
        ("error", text(&s["error"])),
        (
            "position",
            format!(
                "{} (the views are at {}, lag {})",
                s["position"], s["views_position"], s["lag"]
            ),
        ),
        ("pending", text(&s["pending"])),
        ("in flight", text(&s["in_flight"])),
        (
            "parked",
            s["parked"].as_array().map_or(0, Vec::len).to_string(),
        ),
        ("last full sync", last_sync),
        ("last checkpoint", time(&s["last_checkpoint"])),
    ];
    if let Some(f) = s.get("full_sync").filter(|f| !f.is_null()) {
        pairs.push((
            "full sync now",
            format!("{} of {} objects carried", f["carried"], f["objects"]),
        ));
    }
    let rows = |key: &str, row: &dyn Fn(&Value) -> Vec<String>| -> Vec<Vec<String>> {
        s[key].as_array().into_iter().flatten().map(row).collect()
    };
    let parked = rows("parked", &|p| {
        vec![
            text(&p["kind"]),
            text(&p["id"]),
            text(&p["attempts"]),
            text(&p["error"]),
        ]
    });
    let recent = rows("recent_requests", &|r| {
        let ms = r["duration_ms"].as_f64().unwrap_or(0.0);
        vec![
            text(&r["method"]),
            text(&r["path"]),
            text(&r["status"]),
            duration(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0)),
        ]
    });
    let planned = rows("dry_run_requests", &|r| {
        vec![time(&r["at"]), text(&r["method"]), text(&r["path"])]
    });
    let sections = [
        (
            "Parked objects",
            &["kind", "id", "attempts", "error"][..],
            &["attempts"][..],
            parked,
        ),
        (
            "Recent requests",
            &["method", "path", "status", "took"],
            &["took"],
            recent,
        ),
        (
            "Requests a dry run would have sent",
            &["at", "method", "path"],
            &[],
            planned,
        ),
    ];
    let mut out = fields(&pairs);
    for (title, headers, right, rows) in sections {
        if !rows.is_empty() {
            out.push_str(&format!("\n\n{title}\n{}", table(headers, right, rows)));
        }
    }
    out
}
