//! `roster rebuild`: starts a blue/green rebuild of the PostgreSQL views on a running server
//! and, with --wait, follows it until the new generation serves.

use super::client::{AdminClient, ClientError};
use super::render::{emit, emit_json, Format};
use super::watch;
use indicatif::ProgressBar;
use serde_json::{json, Value};
use std::time::Duration;

/// Starts a rebuild (or, with `wait`, joins one already running) and follows it if asked.
///
/// Fails when the server cannot be reached, refuses the rebuild, or the rebuild fails.
pub async fn run(api: &AdminClient, wait: bool) -> anyhow::Result<()> {
    let started = match api.post("/rebuild", json!({})).await {
        Ok(s) => s,
        Err(ClientError::Answer {
            status: 409,
            detail,
        }) if wait => {
            let s = api.get("/rebuild").await?;
            if s["state"] != "running" {
                anyhow::bail!("409: {detail}");
            }
            s
        }
        Err(e) => return Err(e.into()),
    };
    if !wait {
        if api.format == Format::Json {
            emit_json(&started)?;
        } else {
            emit(
                "rebuild started\nfollow it with `roster rebuild --wait` (it joins the running \
                 rebuild) or GET /admin/v1/rebuild",
            )?;
        }
        return Ok(());
    }
    let bar = ProgressBar::new_spinner();
    let end = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = api.get("/rebuild").await?;
        match s["state"].as_str().unwrap_or("") {
            "running" => watch::show(
                &bar,
                s["entries"].as_u64().unwrap_or(0),
                None,
                format!("{}: {} entries folded", phase(&s), s["entries"]),
            ),
            "done" => break s,
            other => {
                bar.finish_and_clear();
                anyhow::bail!(
                    "rebuild {other}: {}",
                    s["error"].as_str().unwrap_or("no detail")
                )
            }
        }
    };
    bar.finish_and_clear();
    if api.format == Format::Json {
        emit_json(&end)?;
    } else {
        emit(&format!(
            "done: generation {} serves; {} entries at {:.0} entries/s",
            end["generation"],
            end["entries"],
            end["entries_per_second"].as_f64().unwrap_or(0.0)
        ))?;
    }
    Ok(())
}

fn phase(s: &Value) -> &str {
    s["phase"].as_str().unwrap_or("running")
}
