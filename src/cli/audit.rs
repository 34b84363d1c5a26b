//! `roster audit ...`: search the audit trail, follow it, show one resource's history or its
//! state at a moment, and export events as NDJSON for a SIEM (through a running server's admin
//! API).

use super::client::{AdminClient, ClientArgs};
use super::render::{emit, emit_json, table, text, time, Format};
use crate::config::Settings;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::Write;

/// How many events a `tail` asks to wait for at once, in seconds.
const TAIL_WAIT_SECS: u32 = 30;
/// The widest a change summary is shown in a table.
const CHANGES_WIDTH: usize = 100;

/// Which events: the same parameters as the audit API's.
#[derive(Args, Debug, Clone, Default)]
pub struct Which {
    /// A SCIM filter over event fields: type, time, directory, actor.kind, actor.id, token,
    /// source, resource.type, resource.id, resource.version, name, correlationId, client.ip,
    /// client.userAgent; e.g. 'type eq "user.replaced" and source eq "entra"'.
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Only events at or after this time: RFC 3339, or a span back from now such as `24h`
    /// or `7days`.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339, or a span back from now).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// A word in the target's name as it was then, the actor or the source.
    #[arg(long, short = 'q', value_name = "WORD")]
    pub query: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Search the audit trail (oldest first unless --descending).
    Search {
        #[command(flatten)]
        which: Which,
        /// The most events to show.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// Newest first.
        #[arg(long)]
        descending: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print events as they are appended, until interrupted.
    Tail {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Every event of one user, group, source, provider, directory or admin token, deleted
    /// or not, with its changes.
    History {
        /// The resource's id.
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A user or group exactly as it was at a time or log position, even if deleted since.
    AsOf {
        /// The user's or group's id.
        #[arg(value_name = "ID")]
        id: String,
        /// RFC 3339, or a span back from now such as `90days`.
        #[arg(long, value_name = "WHEN", required_unless_present = "position")]
        time: Option<String>,
        /// A log position (the `position` of an event).
        #[arg(long, value_name = "N", conflicts_with = "time")]
        position: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Read the whole log and check every directory's seals and links: names the first record
    /// that was changed, forged, removed or moved, and each directory's head (keep it
    /// elsewhere to make a cut at the end evident). Fails when anything is broken.
    Verify {
        /// Only this directory.
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write every matching event, oldest first, to standard output as NDJSON (one JSON event
    /// a line), streamed: `roster audit export --since 24h > audit.ndjson`.
    Export {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// An RFC 3339 time from one given as such or as a span back from now.
///
/// Fails when it is neither.
fn when(given: &str) -> anyhow::Result<String> {
    if chrono::DateTime::parse_from_rfc3339(given).is_ok() {
        return Ok(given.to_owned());
    }
    let back = humantime::parse_duration(given).map_err(|_| {
        anyhow::anyhow!("{given:?} is neither an RFC 3339 time nor a span such as 24h or 7days")
    })?;
    let at = chrono::Utc::now() - chrono::Duration::from_std(back)?;
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The query string for `which` and any further pairs.
fn query(which: &Which, more: &[(&str, String)]) -> anyhow::Result<String> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(f) = &which.filter {
        q.append_pair("filter", f);
    }
    if let Some(s) = &which.since {
        q.append_pair("since", &when(s)?);
    }
    if let Some(u) = &which.until {
        q.append_pair("until", &when(u)?);
    }
    if let Some(w) = &which.query {
        q.append_pair("q", w);
    }
    for (k, v) in more {
        q.append_pair(k, v);
    }
    Ok(q.finish())
}

/// A value in a change summary: strings bare, absent as `-`, the rest as JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// An event's changes on one line: `active: true → false; title: - → CFO`.
pub fn changes(event: &Value) -> String {
    let all: Vec<String> = event["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            if c["redacted"] == true {
                format!("{}: changed", text(&c["path"]))
            } else {
                format!(
                    "{}: {} → {}",
                    text(&c["path"]),
                    shown(&c["old"]),
                    shown(&c["new"])
                )
            }
        })
        .collect();
    let line = all.join("; ");
    if line.chars().count() > CHANGES_WIDTH {
        let cut: String = line.chars().take(CHANGES_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        line
    }
}

fn actor(event: &Value) -> String {
    match (event["actor"]["kind"].as_str(), event["source"].as_str()) {
        (Some("source"), Some(slug)) => format!("source {slug}"),
        (Some("system"), _) => "roster".into(),
        (Some(kind), _) => format!("{kind} {}", text(&event["actor"]["id"])),
        _ => "-".into(),
    }
}

/// Events as a table, one a row.
fn events_table(events: &[Value], version: bool) -> String {
    let rows = events
        .iter()
        .map(|e| {
            let mut row = vec![time(&e["time"])];
            if version {
                row.push(text(&e["target"]["version"]));
            }
            row.extend([
                text(&e["displayName"]),
                format!(
                    "{} {}",
                    text(&e["target"]["type"]),
                    text(&e["target"]["name"])
                ),
                actor(e),
                changes(e),
            ]);
            row
        })
        .collect();
    if version {
        table(
            &["time", "version", "activity", "target", "actor", "changes"],
            &["version"],
            rows,
        )
    } else {
        table(
            &["time", "activity", "target", "actor", "changes"],
            &[],
            rows,
        )
    }
}

/// How many pages after the first `roster audit search` reads to fill a page that the
/// server's scan limit cut short.
const MAX_PAGES_FILLED: usize = 100;

/// Runs one `roster audit ...` command against the admin API and prints the result.
///
/// Fails when the server cannot be reached or answers with an error.
pub async fn run(cmd: &AuditCmd, settings: &Settings) -> anyhow::Result<()> {
    let client = match cmd {
        AuditCmd::Search { client, .. }
        | AuditCmd::Tail { client, .. }
        | AuditCmd::History { client, .. }
        | AuditCmd::AsOf { client, .. }
        | AuditCmd::Verify { client, .. }
        | AuditCmd::Export { client, .. } => client,
    };
    let api = AdminClient::new(client, settings)?;
    match cmd {
        AuditCmd::Search {
            which,
            limit,
            descending,
            ..
        } => {
            let order = descending.then_some(("sortOrder", "descending".to_owned()));
            let page = |want: usize, after: Option<&str>| {
                let mut more = vec![("limit", want.to_string())];
                more.extend(order.clone());
                more.extend(after.map(|a| ("after", a.to_owned())));
                query(which, &more)
            };
            let mut body = api
                .get(&format!("/audit/events?{}", page(*limit, None)?))
                .await?;
            // A page the server's scan limit cut short (`audit_scan_limit`) is filled from
            // the pages after it, a bounded number of them.
            for _ in 0..MAX_PAGES_FILLED {
                let have = body["events"].as_array().map_or(0, Vec::len);
                let Some(next) = body["next"].as_str().filter(|_| have < *limit) else {
                    break;
                };
                let more = api
                    .get(&format!(
                        "/audit/events?{}",
                        page(limit - have, Some(next))?
                    ))
                    .await?;
                let events = more["events"].as_array().cloned().unwrap_or_default();
                if let Some(all) = body["events"].as_array_mut() {
                    all.extend(events);
                }
                body["next"] = more["next"].clone();
                body["resume"] = more["resume"].clone();
            }
            print(&api, &body, false)
        }
        AuditCmd::History { id, .. } => {
            let body = api.get(&format!("/audit/resources/{id}/history")).await?;
            print(&api, &body, true)
        }
        AuditCmd::AsOf {
            id, time, position, ..
        } => {
            let at = match (time, position) {
                (Some(t), _) => format!("time={}", url_encode(&when(t)?)),
                (None, Some(p)) => format!("position={p}"),
                (None, None) => anyhow::bail!("say when: --time or --position"),
            };
            emit_json(
                &api.get(&format!("/audit/resources/{id}/as-of?{at}"))
                    .await?,
            )?;
            Ok(())
        }
        AuditCmd::Tail { which, .. } => tail(&api, which).await,
        AuditCmd::Verify { directory, .. } => {
            let path = match directory {
                Some(d) => format!("/audit/verify?directory={}", url_encode(d)),
                None => "/audit/verify".into(),
            };
            let report = api.get(&path).await?;
            if api.format == Format::Json {
                emit_json(&report)?;
            } else {
                emit(&verify_text(&report))?;
            }
            anyhow::ensure!(
                report["ok"] == true,
                "the log was tampered with: see the breaks above"
            );
            Ok(())
        }
        AuditCmd::Export { which, .. } => {
            let mut resp = api
                .get_streamed(&format!("/audit/export?{}", query(which, &[])?))
                .await?;
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = resp.chunk().await? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

/// A verification report for people: one block per directory.
fn verify_text(report: &Value) -> String {
    let mut out = vec![format!("{} records read", text(&report["records"]))];
    for (name, d) in report["directories"].as_object().into_iter().flatten() {
        let state = match d["first_break"].as_object() {
            None => "ok".to_owned(),
            Some(b) => format!("BROKEN ({})", text(&b["kind"])),
        };
        out.push(format!(
            "directory {name}: {state}\n  {} valid records, {} sealed, {} from before seals\n  head: sequence {}, digest {}",
            text(&d["valid"]),
            text(&d["sealed"]),
            text(&d["unsealed_before_chain"]),
            text(&d["head_seq"]),
            text(&d["head_digest"]),
        ));
        if let Some(b) = d["first_break"].as_object() {
            out.push(format!("  first break: {}", text(&b["why"])));
        }
    }
    out.join("\n")
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn print(api: &AdminClient, body: &Value, version: bool) -> anyhow::Result<()> {
    if api.format == Format::Json {
        emit_json(body)?;
        return Ok(());
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let mut said = events_table(&events, version);
    if body["next"].is_string() {
        said.push_str("\n(more: narrow the search, or use --output json and its `next` cursor)");
    }
    emit(&said)?;
    Ok(())
}

/// Follows the audit trail from now on, printing each event as it is appended.
async fn tail(api: &AdminClient, which: &Which) -> anyhow::Result<()> {
    let mut which = which.clone();
    if which.since.is_none() {
        which.since = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let mut after: Option<String> = None;
    loop {
        let mut more = vec![("wait", TAIL_WAIT_SECS.to_string())];
        if let Some(a) = &after {
            more.push(("after", a.clone()));
        }
        let body = api
            .get(&format!("/audit/events?{}", query(&which, &more)?))
            .await?;
        for e in body["events"].as_array().into_iter().flatten() {
            if api.format == Format::Json {
                emit(&e.to_string())?;
            } else {
                emit(&format!(
                    "{}  {}  {}",
                    time(&e["time"]),
                    text(&e["message"]),
                    changes(e)
                ))?;
            }
        }
        after = body["next"]
            .as_str()
            .or(body["resume"].as_str())
            .map(str::to_owned);
    }
}
