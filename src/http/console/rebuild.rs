//! The rebuild page: a blue/green rebuild of the PostgreSQL views from the log, started here
//! and followed with a progress bar (the page reloads itself while it runs).

use super::layout::{self, page, Nav};
use super::{Answer, Nothing, Signed, Submitted};
use crate::http::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use maud::html;

pub async fn show(State(app): State<AppState>, signed: Signed) -> Answer {
    let s = app.rebuilds.status();
    let (position, lag) = app.progress();
    let total = position + lag;
    let postgres = app.settings.store == crate::config::StoreBackend::Postgres;
    let content = html! {
        @if !postgres {
            p.notice { "The views are in memory: they are rebuilt from the log at every start. A rebuild is for views in PostgreSQL." }
        }
        @if s.state == "running" { div data-refresh="2" hidden {} }
        dl.facts {
            dt { "State" } dd {
                (layout::badge(match s.state { "running" => "warn", "failed" => "bad", _ => "ok" }, s.state))
                @if !s.phase.is_empty() { " " (s.phase) }
            }
            @if let Some(g) = s.generation { dt { "Generation" } dd { (g) } }
            @if let Some(t) = &s.started { dt { "Started" } dd { (layout::time(t)) } }
            @if let Some(t) = &s.finished { dt { "Finished" } dd { (layout::time(t)) } }
            dt { "Log entries folded" } dd { (layout::count(s.entries)) " of about " (layout::count(total)) }
            @if let Some(r) = s.entries_per_second { dt { "Speed" } dd { (layout::count(r as u64)) " entries a second" } }
            @if let Some(e) = &s.error { dt { "Error" } dd.error { (e) } }
        }
        @if s.state == "running" {
            label for="rebuild-progress" { "Folding the log" }
            progress #rebuild-progress max=(total.max(1)) value=(s.entries.min(total)) { (s.entries) " of " (total) }
        }
        @if postgres && s.state != "running" {
            form method="post" action="/console/rebuild"
                data-confirm="Rebuild the PostgreSQL views from the log? They keep answering from the current generation until the new one is swapped in." {
                (layout::csrf(&signed))
                p { button type="submit" { "Start a rebuild" } }
            }
        }
    };
    Ok(page(&signed, Nav::Rebuild, "Rebuild the views", content))
}

/// `POST /console/rebuild`: starts a rebuild, then follows it.
pub async fn start(State(app): State<AppState>, posted: Submitted<Nothing>) -> Answer {
    crate::http::admin::start_rebuild_as(&app, &posted.signed.admin)?;
    Ok(Redirect::to("/console/rebuild").into_response())
}
