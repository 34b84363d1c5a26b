//! The providers pages: each outbound provider with its state and lag, and a provider's status
//! (its lag over the last day, pending, in-flight, failing and parked objects, the last full
//! sync's figures, a progress bar while one runs, recent requests and their answers, the
//! requests a dry run planned) with buttons for a full sync, a retry of the parked objects, a replay from a log position and
//! turning dry run on or off. The figures are the admin API's status, read the same way; the
//! buttons record the same events as the admin API's.

use super::chart::{self, Size};
use super::layout::{self, page, Nav};
use super::{Answer, Nothing, Signed, Submitted};
use crate::domain::ProviderRequest;
use crate::http::error::ScimError;
use crate::http::providers as api;
use crate::http::AppState;
use crate::provider::runner::{FailingObject, ParkedObject};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};

/// A provider's state as a badge.
fn state(s: &str) -> Markup {
    let kind = match s {
        "running" => "ok",
        "failed" | "stopped" | "unknown" => "bad",
        _ => "warn",
    };
    layout::badge(kind, s)
}

pub async fn list(State(app): State<AppState>, signed: Signed) -> Answer {
    let providers = api::listed(&app).await?;
    let content = html! {
        p { a.button href="/console/providers/new" { "New provider" } }
        @if providers.is_empty() {
            p.muted { "No providers yet." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "State" }
                        th.num scope="col" { "Lag" }
                        th.num scope="col" { "Pending" }
                        th.num scope="col" { "Parked" }
                        th.optional scope="col" { "Directory" }
                        th.optional scope="col" { "Remote" }
                    } }
                    tbody {
                        @for p in &providers {
                            @let (name, s) = (&p.provider.config.name, &p.status);
                            tr {
                                td { a href=(format!("/console/providers/{name}")) { (name) } }
                                td { (state(s.state)) }
                                td.num { (layout::count(s.lag)) }
                                td.num { (layout::count(s.pending as u64)) }
                                td.num { (layout::count(s.parked as u64)) }
                                td.optional { (p.provider.directory) }
                                td.optional { code { (p.provider.config.base_url) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&signed, Nav::Providers, "Providers", content))
}

pub async fn show(State(app): State<AppState>, signed: Signed, Path(name): Path<String>) -> Answer {
    status_page(&app, &signed, &name, "").await
}

/// The status page of the provider `name`, with `warnings` (of a check of its remote just
/// made) above it.
pub async fn status_page(app: &AppState, signed: &Signed, name: &str, warnings: &str) -> Answer {
    let p = api::provider_status(app, name).await?;
    let s = &p.status;
    let busy = s.full_sync.is_some()
        || matches!(
            s.state,
            "starting" | "settling" | "bootstrapping" | "full sync"
        );
    let content = html! {
        @if !warnings.is_empty() { p.notice role="status" { (warnings) } }
        @if busy { div data-refresh="2" hidden {} }
        dl.facts {
            dt { "State" } dd { (state(s.state)) @if !p.enabled { " " (layout::badge("warn", "disabled")) } @if p.dry_run { " " (layout::badge("warn", "dry run")) } }
            @if let Some(e) = &s.error { dt { "Error" } dd.error { (e) } }
            dt { "Carried up to" } dd { "position " (s.position) " of " (s.views_position) }
            dt { "Lag" } dd { (layout::count(p.lag)) @if p.lag == 1 { " record" } @else { " records" } }
            dt { "Pending / in flight" } dd { (s.pending) " / " (s.in_flight) }
            @if let Some(t) = &s.last_checkpoint { dt { "Last checkpoint" } dd { (layout::time(t)) } }
        }
        h2 { "Lag, last 24 hours (UTC)" }
        (chart::hourly(&chart::lag(&p.lag_history, chrono::Utc::now()), "The most records the provider was behind the views in each of the last 24 hours", "records behind", Size::Wide))
        @if let Some(f) = &s.full_sync {
            @let (done, all) = (f.carried as u64, f.objects as u64);
            h2 { "Full sync running" }
            label for="sync-progress" { (layout::count(done)) " of " (layout::count(all)) " objects carried" }
            progress #sync-progress max=(all.max(1)) value=(done) { (done) " of " (all) }
        }
        div.actions {
            form.inline method="post" action=(format!("/console/providers/{name}/sync")) {
                (layout::csrf(signed))
                button type="submit" { "Full sync" }
            }
            " "
            form.inline method="post" action=(format!("/console/providers/{name}/retry")) {
                (layout::csrf(signed))
                button.secondary type="submit" { "Retry parked objects" }
            }
            " "
            @let dry = p.dry_run;
            form.inline method="post" action=(format!("/console/providers/{name}/dry-run"))
                data-confirm=(if dry { "Turn dry run off? Planned requests are sent from now on." } else { "Turn dry run on? Writes are planned and listed here, none is sent." }) {
                (layout::csrf(signed))
                input type="hidden" name="dry_run" value=(if dry { "off" } else { "on" });
                button.secondary type="submit" { (if dry { "Turn dry run off" } else { "Dry run" }) }
            }
            " "
            a.button.secondary href=(format!("/console/providers/{name}/edit")) { "Edit" }
        }
        form.replay method="post" action=(format!("/console/providers/{name}/replay"))
            data-confirm="Carry every change from this position again?" {
            (layout::csrf(signed))
            div.field {
                label for="from" { "Replay from position " span.hint { "(carries every change of the directory from there again; the views reflect the log up to " (s.views_position) ")" } }
                input #from type="number" name="from" min="0" required;
            }
            button.secondary type="submit" { "Replay" }
        }
        (objects("Parked", &s.parked.iter().map(Object::from).collect::<Vec<_>>(), "Parked objects wait for a retry (above) or a change."))
        (objects("Failing", &s.failing.iter().map(Object::from).collect::<Vec<_>>(), "Failing objects are tried again on their own."))
        h2 { "Last full sync" }
        @match &s.last_full_sync {
            None => p.muted { "None yet." },
            Some(f) => dl.facts {
                dt { "Finished" } dd { (f.finished.as_ref().map_or_else(|| "not yet".to_owned(), layout::time)) }
                dt { "Compared" } dd { (layout::count(f.compared)) }
                dt { "Unchanged" } dd { (layout::count(f.unchanged)) }
                dt { "Created" } dd { (layout::count(f.created)) }
                dt { "Updated" } dd { (layout::count(f.updated)) }
                dt { "Deleted" } dd { (layout::count(f.deleted)) }
                dt { "Failed" } dd { (layout::count(f.failed)) }
            },
        }
        @let planned = &s.dry_run_requests;
        @if p.dry_run || !planned.is_empty() {
            h2 { "Planned by the dry run (" (planned.len()) ")" }
            @if planned.is_empty() { p.muted { "None yet: writes the provider would send are listed here." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "At" } th scope="col" { "Method" } th scope="col" { "Path" } } }
                    tbody { @for r in planned.iter().rev() { tr {
                        td { (layout::time(&r.at)) }
                        td { (r.method) }
                        td { code { (r.path) } }
                    } } }
                } }
            }
        }
        h2 { "Recent requests" }
        @if p.recent_requests.is_empty() { p.muted { "None yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Method" } th scope="col" { "Path" } th.num scope="col" { "Status" } th.num scope="col" { "ms" } } }
                tbody { @for r in &p.recent_requests { tr {
                    td { (r.method) }
                    td { code { (r.path) } }
                    td.num { (r.status.unwrap_or(0)) }
                    td.num { (format!("{:.1}", r.duration_ms)) }
                } } }
            } }
        }
    };
    Ok(page(
        signed,
        Nav::Providers,
        &format!("Provider {name}"),
        content,
    ))
}

/// A parked or failing object, as its table shows it.
struct Object<'a> {
    kind: &'static str,
    id: String,
    attempts: u32,
    error: &'a str,
}

impl<'a> From<&'a ParkedObject> for Object<'a> {
    fn from(o: &'a ParkedObject) -> Self {
        Object {
            kind: o.kind.name(),
            id: o.id.to_string(),
            attempts: o.attempts,
            error: &o.error,
        }
    }
}

impl<'a> From<&'a FailingObject> for Object<'a> {
    fn from(o: &'a FailingObject) -> Self {
        Object {
            kind: o.kind.name(),
            id: o.id.to_string(),
            attempts: o.attempts,
            error: &o.error,
        }
    }
}

fn objects(title: &str, list: &[Object<'_>], empty_hint: &str) -> Markup {
    html! {
        h2 { (title) " (" (list.len()) ")" }
        @if list.is_empty() { p.muted { "None. " (empty_hint) } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Object" } th.num scope="col" { "Attempts" } th scope="col" { "Error" } } }
                tbody { @for o in list { tr {
                    td { (o.kind) " " code { (o.id) } }
                    td.num { (o.attempts) }
                    td { (o.error) }
                } } }
            } }
        }
    }
}

async fn ask(app: &AppState, name: &str, signed: Signed, request: ProviderRequest) -> Answer {
    api::ask(app, &signed.admin, name, request).await?;
    Ok(Redirect::to(&format!("/console/providers/{name}")).into_response())
}

/// `POST /console/providers/{name}/sync`: asks for a full sync.
pub async fn sync(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Nothing>,
) -> Answer {
    ask(&app, &name, posted.signed, ProviderRequest::Sync).await
}

/// `POST /console/providers/{name}/retry`: asks for the parked objects to be tried again.
pub async fn retry(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Nothing>,
) -> Answer {
    ask(&app, &name, posted.signed, ProviderRequest::Retry).await
}

#[derive(serde::Deserialize)]
pub struct Replay {
    from: String,
}

/// `POST /console/providers/{name}/replay`: asks for every change from a position to be
/// carried again.
pub async fn replay(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Replay>,
) -> Answer {
    let from = posted.form.from.trim().parse().map_err(|_| {
        ScimError::bad_request(
            "invalidValue",
            format!(
                "{:?} is not a log position (a non-negative integer)",
                posted.form.from
            ),
        )
    })?;
    ask(&app, &name, posted.signed, ProviderRequest::Replay { from }).await
}

#[derive(serde::Deserialize)]
pub struct DryRun {
    dry_run: String,
}

/// `POST /console/providers/{name}/dry-run`: turns dry run on (`on`) or off (`off`), a change
/// of the provider's settings like the edit page's.
pub async fn dry_run(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<DryRun>,
) -> Answer {
    let on = match posted.form.dry_run.as_str() {
        "on" => true,
        "off" => false,
        other => {
            return Err(ScimError::bad_request(
                "invalidValue",
                format!("dry_run is on or off, not {other:?}"),
            )
            .into())
        }
    };
    let body = crate::provider::settings::ProviderSettings {
        dry_run: Some(on),
        ..Default::default()
    };
    api::update_as(&app, &posted.signed.admin, &name, body).await?;
    Ok(Redirect::to(&format!("/console/providers/{name}")).into_response())
}
