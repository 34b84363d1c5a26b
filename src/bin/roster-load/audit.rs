//! `roster-load audit`: the audit trail over a seeded data directory, in process (no HTTP):
//! how fast the index in memory is built from the log and what it costs per event (or, with
//! `--postgres-url`, how fast a rebuild loads the audit projection and its size on disk), then
//! timed history, actor-page and as-of reads (percentiles), and the export and verify rates.

use crate::{percentile, pg_options, rss_mib};
use futures_util::StreamExt;
use roster::audit::query::{Search, SearchParams};
use roster::audit::{Audit, AuditError};
use roster::log::{EventLog, FileLog, FileLogOptions};
use roster_projections::pg::PgStore;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn search(filter: &str, limit: usize, descending: bool) -> anyhow::Result<Search> {
    let params = SearchParams {
        filter: Some(filter.to_owned()),
        limit: Some(limit.to_string()),
        sort_order: Some(
            if descending {
                "descending"
            } else {
                "ascending"
            }
            .into(),
        ),
        ..SearchParams::default()
    };
    Ok(Search::parse(&params, 1)?)
}

fn timed(what: &str, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    println!(
        "{what}: {} reads, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// The index in memory, built from `log`, and what stops it following the log; prints how
/// fast it was built and at what memory cost.
async fn in_memory(log: &Arc<dyn EventLog>) -> anyhow::Result<(Arc<Audit>, watch::Sender<bool>)> {
    let before = rss_mib();
    let started = Instant::now();
    let audit = Audit::new(log.clone());
    let (stop, stopped) = watch::channel(false);
    audit.follow(stopped);
    let probe = search("type pr", 1, false)?;
    // Bounded: each round waits up to 5 s for the index; a log of ten million events is
    // folded in well under the limit.
    for round in 0.. {
        match audit.search(&probe, None).await {
            Ok(_) => break,
            Err(AuditError::CatchingUp { .. }) if round < 720 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let built = started.elapsed();
    let events = audit.events();
    let grown = (rss_mib() - before) * 1024.0 * 1024.0;
    println!(
        "index: {events} events in {:.2}s = {:.0}/s; {:.0} bytes per event ({:.0} MiB)",
        built.as_secs_f64(),
        events as f64 / built.as_secs_f64(),
        grown / events.max(1) as f64,
        grown / 1024.0 / 1024.0,
    );
    Ok((audit, stop))
}

/// One figure timed alone.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Only {
    Verify,
    Export,
}

pub async fn run(
    dir: &Path,
    samples: usize,
    postgres_url: Option<String>,
    only: Option<Only>,
) -> anyhow::Result<()> {
    let log: Arc<dyn EventLog> =
        Arc::new(FileLog::open(dir.join("log"), FileLogOptions::default())?);
    // Read as the server reads it: personal data opened with the data directory's keys.
    let (log, _) = crate::sealed(dir, log).await?;
    match (only, &postgres_url) {
        (Some(Only::Verify), _) => return time_verify(dir, log.as_ref()).await,
        (Some(Only::Export), None) => {
            let (audit, _stop) = in_memory(&log).await?;
            return time_export(audit).await;
        }
        (Some(Only::Export), Some(url)) => {
            // Over the projection an earlier run loaded (no rebuild).
            let store = Arc::new(PgStore::open(&pg_options(url.clone())).await?);
            let (_views, audit) = on_postgres(&log, store);
            return time_export(audit).await;
        }
        (None, _) => {}
    }
    // What the audit trail needs while it answers: in memory what stops its index, in
    // PostgreSQL the positions its views reflect.
    let mut stop = None;
    let mut views = Vec::new();
    let audit = match postgres_url {
        None => {
            let (audit, stopper) = in_memory(&log).await?;
            stop = Some(stopper);
            audit
        }
        Some(url) => {
            let options = pg_options(url);
            let started = Instant::now();
            let progress = roster::rebuild::Rebuilds::default();
            roster::rebuild::rebuild(log.clone(), &options, &progress).await?;
            let built = started.elapsed();
            let store = Arc::new(PgStore::open(&options).await?);
            let (events, bytes) = store.audit_size().await?;
            println!(
                "rebuild (views and audit projection): {events} events in {:.2}s = {:.0}/s; \
                 audit_events {:.0} bytes per event with its indexes ({:.0} MiB)",
                built.as_secs_f64(),
                events as f64 / built.as_secs_f64(),
                bytes as f64 / events.max(1) as f64,
                bytes as f64 / 1048576.0,
            );
            let (v, audit) = on_postgres(&log, store);
            views = v;
            audit
        }
    };

    // Users to look at, spread over the log.
    let users = audit
        .search(&search("type eq \"user.created\"", 1000, false)?, None)
        .await?;
    let users: Vec<serde_json::Value> = users
        .events
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let picks: Vec<(String, String)> = users
        .iter()
        .step_by((users.len() / samples.max(1)).max(1))
        .map(|e| {
            (
                e["target"]["id"].as_str().unwrap_or_default().to_owned(),
                e["time"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut lat = Vec::new();
    for (id, _) in &picks {
        let s = search(&format!("resource.id eq \"{id}\""), 100, false)?;
        let t = Instant::now();
        audit.search(&s, None).await?;
        lat.push(t.elapsed());
    }
    timed("history of one user", lat);

    let mut lat = Vec::new();
    let page = search("actor.id eq \"source:default\"", 100, true)?;
    for _ in 0..picks.len() {
        let t = Instant::now();
        audit.search(&page, None).await?;
        lat.push(t.elapsed());
    }
    timed("page of 100 by actor.id, newest first", lat);

    let mut lat = Vec::new();
    for (id, time) in &picks {
        let at = chrono::DateTime::parse_from_rfc3339(time)?.timestamp_millis();
        let t = Instant::now();
        audit.as_of(id.parse()?, Some(at), None).await?;
        lat.push(t.elapsed());
    }
    timed("user as of its creation", lat);

    time_export(audit).await?;
    time_verify(dir, log.as_ref()).await?;
    if let Some(stop) = stop {
        let _ = stop.send(true);
    }
    drop(views);
    Ok(())
}

/// The audit trail over the projection in `store`, which reflects the whole of `log`; with
/// what tells it how far the views are (kept until the reads are done).
fn on_postgres(
    log: &Arc<dyn EventLog>,
    store: Arc<PgStore>,
) -> (Vec<watch::Sender<u64>>, Arc<Audit>) {
    let views: Vec<_> = (0..log.partitions())
        .map(|p| watch::Sender::new(*log.end(p).borrow()))
        .collect();
    let projected = views.iter().map(|tx| tx.subscribe()).collect();
    (views, Audit::on_postgres(log.clone(), store, projected))
}

/// Exports every event as NDJSON and prints the rate and the memory it took.
async fn time_export(audit: Arc<Audit>) -> anyhow::Result<()> {
    let before = rss_mib();
    let t = Instant::now();
    let mut lines = 0usize;
    let mut bytes = 0usize;
    let mut stream = std::pin::pin!(audit.export(search("type pr", 1, false)?));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
        bytes += chunk.len();
    }
    let took = t.elapsed();
    println!(
        "export: {lines} events ({:.0} MiB of NDJSON) in {:.2}s = {:.0}/s; memory grew {:.0} MiB",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        rss_mib() - before,
    );
    Ok(())
}

/// Verifies the whole log and prints the rate.
async fn time_verify(dir: &Path, log: &dyn EventLog) -> anyhow::Result<()> {
    let key = roster::sealing::SecretKey::load(None, dir)?.chain_key();
    let t = Instant::now();
    let report = roster::audit::verify::verify(log, &key, None).await?;
    let took = t.elapsed();
    println!(
        "verify: {} records in {:.2}s = {:.0}/s; ok: {}",
        report.records,
        took.as_secs_f64(),
        report.records as f64 / took.as_secs_f64(),
        report.ok,
    );
    Ok(())
}
