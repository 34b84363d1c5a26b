//! The overview: whether Roster is ready, the log position and how far the views are behind
//! it, how many users, groups, sources and providers there are, the events of each of the
//! last 24 hours, each provider's state and lag (now and over the last day), and the latest
//! activity.

use super::chart::{self, Size};
use super::layout::{self, page, Nav};
use super::{audit, Answer, Signed};
use crate::audit::query::{Search, SearchParams};
use crate::http::error::ScimError;
use crate::http::providers as api;
use crate::http::AppState;
use axum::extract::State;
use maud::{html, Markup};
use roster_projections::ListQuery;
use roster_projections::Visibility;

fn card(label: &str, figure: Markup) -> Markup {
    html! { div.card { div.figure { (figure) } div.label { (label) } } }
}

pub async fn show(State(app): State<AppState>, signed: Signed) -> Answer {
    signed.admin.record_read(&app, None).await?;
    let (position, lag) = app.progress();
    let unready = app.unready();
    let everyone = ListQuery {
        filter: None,
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 0,
        count_up_to: None,
    };
    let (mut users, mut groups) = (0, 0);
    for dir in app.store.directories().await? {
        users += app
            .store
            .list_users(&dir, Visibility::All, &everyone)
            .await?
            .total;
        groups += app
            .store
            .list_groups(&dir, Visibility::All, &everyone)
            .await?
            .total;
    }
    let sources = app.store.sources().await?.len();
    let hours = app
        .audit
        .per_hour(24, chrono::Utc::now())
        .await
        .map_err(ScimError::from)?;
    let providers = api::listed(&app).await?;
    let recent = SearchParams {
        sort_order: Some("descending".into()),
        limit: Some("10".into()),
        ..Default::default()
    };
    let search = Search::parse(&recent, app.audit.partitions()).map_err(ScimError::from)?;
    let recent = app
        .audit
        .search(&search, None)
        .await
        .map_err(ScimError::from)?;
    let count = |n: usize| html! { (layout::count(n as u64)) };
    let activity = format!(
        "{} events recorded in the last {} hours",
        layout::count(hours.iter().map(|h| h.events).sum()),
        hours.len()
    );
    let now = chrono::Utc::now();
    let content = html! {
        div.cards {
            (card("Status", match &unready {
                None => layout::badge("ok", "ready"),
                Some(_) => layout::badge("bad", "not ready"),
            }))
            (card("Log position", count(position as usize)))
            (card("Views behind the log", count(lag as usize)))
            (card("Users", count(users)))
            (card("Groups", count(groups)))
            (card("Sources", count(sources)))
            (card("Providers", count(providers.len())))
        }
        @if let Some(why) = &unready { p.error role="alert" { (why) } }
        h2 { "Activity, last 24 hours (UTC)" }
        (chart::hourly(&chart::events(&hours), &activity, "events", Size::Wide))
        @if !providers.is_empty() {
            section.panel {
                h2 { "Providers" }
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "State" } th.num scope="col" { "Lag" } th scope="col" { "Lag, last 24 hours" } th.num scope="col" { "Parked" } } }
                    tbody {
                        @for p in &providers {
                            @let (name, s) = (&p.provider.config.name, &p.status);
                            tr {
                                td { a href=(format!("/console/providers/{name}")) { (name) } }
                                td { (s.state) }
                                td.num { (s.lag) }
                                td { (chart::hourly(&chart::lag(&s.lag_history, now), &format!("{name}: the most records it was behind in each of the last 24 hours"), "records behind", Size::Small)) }
                                td.num { (s.parked) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Latest activity" }
        (audit::timeline(&recent.events))
        p { a href="/console/audit" { "The whole audit trail" } }
    };
    Ok(page(&signed, Nav::Overview, "Overview", content))
}
