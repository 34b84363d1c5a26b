//! The sources pages: the list, a new source (its SCIM base URL and first token, shown once,
//! with setup notes for Entra ID and Okta), a source's tokens (issue one, shown once; revoke),
//! its declared extension schemas and the mappings it runs. Changes go through the admin API's
//! own functions, so a source made here is exactly one made with `roster source create`.

use super::layout::{self, page, Nav};
use super::{Answer, Nothing, Signed, Submitted};
use crate::http::sources::{self as api, NewSource};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};
use roster_events::{Ownership, DEFAULT_DIRECTORY};
use roster_projections::SourceView;

pub async fn list(State(app): State<AppState>, signed: Signed) -> Answer {
    let sources = app.store.sources().await?;
    let directories = app.store.directories().await?;
    let content = html! {
        @if sources.is_empty() {
            p.muted { "No sources yet. Create one for each identity provider that writes users and groups." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Slug" }
                        th.optional scope="col" { "Directory" }
                        th scope="col" { "Ownership" }
                        th.num scope="col" { "Active tokens" }
                        th.optional scope="col" { "SCIM base URL" }
                    } }
                    tbody {
                        @for s in &sources {
                            tr {
                                td { a href=(format!("/console/sources/{}", s.slug)) { (s.slug) } }
                                td.optional { (s.directory) }
                                td { (ownership(s.ownership)) }
                                td.num { (s.tokens.values().filter(|t| t.revoked.is_none()).count()) }
                                td.optional { code { (api::scim_base_url(&app, &s.slug)) } }
                            }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "New source" }
            form method="post" action="/console/sources" {
                (layout::csrf(&signed))
                div.field {
                    label for="slug" { "Slug " span.hint { "(lower-case letters, digits and hyphens; part of the URL)" } }
                    input #slug type="text" name="slug" required pattern="[a-z0-9-]{1,63}" placeholder="entra";
                }
                div.field {
                    label for="directory" { "Directory" }
                    select #directory name="directory" {
                        @for d in &directories { option value=(d) selected[d == DEFAULT_DIRECTORY] { (d) } }
                    }
                }
                div.field {
                    label for="ownership" { "Ownership" }
                    select #ownership name="ownership" {
                        option value="owned" selected { "owned: sees only what it created" }
                        option value="adopt" { "adopt: takes over existing users and groups of the same name" }
                    }
                }
                button type="submit" { "Create source" }
            }
        }
    };
    Ok(page(&signed, Nav::Sources, "Sources", content))
}

fn ownership(o: Ownership) -> &'static str {
    match o {
        Ownership::Owned => "owned",
        Ownership::Adopt => "adopt",
    }
}

/// The form of a new source.
#[derive(serde::Deserialize)]
pub struct NewSourceForm {
    slug: String,
    directory: Option<String>,
    ownership: Option<String>,
}

/// `POST /console/sources`: creates the source and shows its first token, once.
pub async fn create(State(app): State<AppState>, posted: Submitted<NewSourceForm>) -> Answer {
    let Submitted { signed, form } = posted;
    let ownership = match form.ownership.as_deref() {
        Some("adopt") => Ownership::Adopt,
        _ => Ownership::Owned,
    };
    let new = NewSource {
        slug: form.slug.trim().to_owned(),
        directory: form
            .directory
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DIRECTORY.to_owned()),
        ownership: Some(ownership),
        undeclared_extensions: None,
    };
    let (source, token_id, secret) = api::create_source_as(&app, &signed.admin, new).await?;
    let content = html! {
        (new_token(&source.slug, &token_id.to_string(), secret.expose()))
        (setup_notes(&api::scim_base_url(&app, &source.slug)))
        p { a href=(format!("/console/sources/{}", source.slug)) { "Go to the source" } }
    };
    let title = format!("Source {} created", source.slug);
    Ok((
        StatusCode::CREATED,
        page(&signed, Nav::Sources, &title, content),
    )
        .into_response())
}

/// A new token, shown this once.
fn new_token(slug: &str, id: &str, secret: &str) -> Markup {
    html! {
        div.secret role="status" {
            p { strong { "The token of " (slug) ", shown this once:" } }
            p { (layout::copyable("new-token", secret)) }
            p.muted { "Roster keeps only its hash. Token id " code { (id) } "." }
        }
    }
}

/// How to point Entra ID and Okta at a source.
fn setup_notes(base_url: &str) -> Markup {
    html! {
        section.panel {
            h2 { "Setting up the identity provider" }
            p { "SCIM base URL: " (layout::copyable("base-url", base_url)) }
            h3 { "Microsoft Entra ID" }
            ol {
                li { "Enterprise applications → your application → Provisioning → Provisioning Mode: Automatic." }
                li { "Tenant URL: the SCIM base URL above (Entra ID sends its newer, RFC-conformant requests when the URL ends in " code { "?aadOptscim062020" } ")." }
                li { "Secret Token: the token. Test Connection, then Save and start provisioning." }
            }
            h3 { "Okta" }
            ol {
                li { "Applications → your SCIM app → Provisioning → Integration." }
                li { "SCIM connector base URL: the SCIM base URL above; Unique identifier field for users: " code { "userName" } "." }
                li { "Supported actions: Push New Users, Push Profile Updates, Push Groups. Authentication Mode: HTTP Header, with the token as the Bearer token." }
            }
        }
    }
}

pub async fn show(State(app): State<AppState>, signed: Signed, Path(slug): Path<String>) -> Answer {
    let s = api::source_named(&app, &slug).await?;
    Ok(page(
        &signed,
        Nav::Sources,
        &format!("Source {}", s.slug),
        source_page(&app, &signed, &s),
    ))
}

fn source_page(app: &AppState, signed: &Signed, s: &SourceView) -> Markup {
    let mut tokens: Vec<_> = s.tokens.values().collect();
    tokens.sort_by_key(|t| std::cmp::Reverse(t.created));
    html! {
        dl.facts {
            dt { "SCIM base URL" } dd { (layout::copyable("base-url", &api::scim_base_url(app, &s.slug))) }
            dt { "Directory" } dd { (s.directory) }
            dt { "Ownership" } dd { (ownership(s.ownership)) }
            dt { "Created" } dd { (layout::time(&s.created)) }
            dt { "Mappings" } dd {
                @if s.mappings.is_empty() { span.none { "none" } }
                @for m in &s.mappings { code { (m) } " " }
            }
        }
        p {
            a href=(format!("/console/audit?{}", layout::query(&[("filter", &format!("source eq {}", serde_json::Value::from(s.slug.as_str())))]))) { "This source's activity in the audit trail" }
        }
        h2 { "Tokens" }
        div.scroll {
            table {
                thead { tr { th scope="col" { "Prefix" } th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { span.skip { "Actions" } } } }
                tbody {
                    @for t in &tokens {
                        tr {
                            td { code { (t.prefix) "…" } }
                            td { (layout::time(&t.created)) }
                            td { @if let Some(r) = &t.revoked { (layout::badge("bad", "revoked")) " " (layout::time(r)) } @else { (layout::badge("ok", "active")) } }
                            td {
                                @if t.revoked.is_none() {
                                    form.inline method="post" action=(format!("/console/sources/{}/tokens/{}/revoke", s.slug, t.id))
                                        data-confirm=(format!("Revoke the token {}…? Clients using it are refused at once.", t.prefix)) {
                                        (layout::csrf(signed))
                                        button.danger type="submit" aria-label=(format!("Revoke token {}", t.prefix)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action=(format!("/console/sources/{}/tokens", s.slug)) {
            (layout::csrf(signed))
            p { button.secondary type="submit" { "Issue another token" } }
        }
        h2 { "Declared extension schemas" }
        @let declared: Vec<_> = s.all_declared().collect();
        @if declared.is_empty() {
            p.muted { "None. Declare one with " code { "roster source schema " (s.slug) " --file schema.json" } "." }
        } @else {
            ul { @for (rt, d) in &declared { li { (rt) ": " code { (d.id) } } } }
        }
    }
}

/// `POST /console/sources/{slug}/tokens`: issues another token and shows it, once.
pub async fn issue_token(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    posted: Submitted<Nothing>,
) -> Answer {
    let signed = posted.signed;
    let (id, secret) = api::issue_source_token(&app, &signed.admin, &slug).await?;
    let content = html! {
        (new_token(&slug, &id.to_string(), secret.expose()))
        p { a href=(format!("/console/sources/{slug}")) { "Back to the source" } }
    };
    let title = format!("New token for {slug}");
    Ok((
        StatusCode::CREATED,
        page(&signed, Nav::Sources, &title, content),
    )
        .into_response())
}

/// `POST /console/sources/{slug}/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(app): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    posted: Submitted<Nothing>,
) -> Answer {
    api::revoke_source_token(&app, &posted.signed.admin, &slug, &id).await?;
    Ok(Redirect::to(&format!("/console/sources/{slug}")).into_response())
}
