//! The property mappings pages: the list with who runs each, a new mapping (written or from a
//! ready-made template), and a mapping's editor with a preview of what the expression as
//! edited, saved or not, makes of a stored user or group or of a document given there. With
//! the script, the preview follows the editor as it is typed. Saving goes through the admin
//! API's own functions, so a mapping is compiled and tried on the samples before it is saved.

use super::layout::{self, page, Nav};
use super::{Answer, Nothing, Signed, Submitted};
use crate::http::error::ScimError;
use crate::http::mappings as api;
use crate::http::AppState;
use crate::mappings::MappingSettings;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};
use roster_events::{MappingKind, DEFAULT_DIRECTORY};
use roster_projections::MappingView;
use serde_json::Value;

/// Who runs `name`: sources and providers, by name.
async fn users_of(app: &AppState, name: &str) -> Result<Vec<String>, ScimError> {
    let mut out = Vec::new();
    for s in app.store.sources().await? {
        if s.mappings.iter().any(|m| m == name) {
            out.push(format!("source {}", s.slug));
        }
    }
    for p in app.store.providers().await? {
        if p.config.mappings.iter().any(|m| m == name) {
            out.push(format!("provider {}", p.config.name));
        }
    }
    Ok(out)
}

pub async fn list(State(app): State<AppState>, signed: Signed) -> Answer {
    let all = app.store.mappings().await?;
    let directories = app.store.directories().await?;
    let templates = crate::mappings::templates::TEMPLATES;
    let mut rows = Vec::with_capacity(all.len());
    for (dir, m) in &all {
        rows.push((dir, m, users_of(&app, &m.mapping.name).await?));
    }
    let content = html! {
        @if rows.is_empty() {
            p.muted { "No mappings yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Kind" }
                    th.optional scope="col" { "Directory" } th scope="col" { "Run by" }
                    th.optional scope="col" { "Description" }
                } }
                tbody { @for (dir, m, users) in &rows { tr {
                    td { a href=(format!("/console/mappings/{}", m.mapping.name)) { (m.mapping.name) } }
                    td { code { (m.mapping.kind.as_str()) } }
                    td.optional { (dir) }
                    td { @if users.is_empty() { span.none { "nobody" } } @else { (users.join(", ")) } }
                    td.optional { (m.mapping.description) }
                } } }
            } }
        }
        section.panel {
            h2 { "New mapping" }
            form method="post" action="/console/mappings" {
                (layout::csrf(&signed))
                div.field {
                    label for="name" { "Name " span.hint { "(lower-case letters, digits and hyphens)" } }
                    input #name type="text" name="name" required pattern="[a-z0-9-]{1,63}";
                }
                div.field {
                    label for="template" { "From a template " span.hint { "(or write the expression below)" } }
                    select #template name="template" {
                        option value="" { "none" }
                        @for t in templates {
                            option value=(t.name) {
                                (t.name) " — " (t.description)
                            }
                        }
                    }
                }
                div.field {
                    label for="kind" { "Kind" }
                    select #kind name="kind" {
                        @for k in MappingKind::ALL { option value=(k.as_str()) { (k.as_str()) } }
                    }
                }
                div.field {
                    label for="directory" { "Directory" }
                    select #directory name="directory" {
                        @for d in &directories { option value=(d) selected[d == DEFAULT_DIRECTORY] { (d) } }
                    }
                }
                div.field {
                    label for="expression" { "Expression " span.hint { "(CEL: a map of attributes, or skip)" } }
                    textarea #expression name="expression" rows="6" class="wide code" spellcheck="false"
                        placeholder="{\"displayName\": user.name.givenName + \" \" + user.name.familyName}" {}
                }
                div.field {
                    label for="description" { "Description" }
                    input #description.wide type="text" name="description";
                }
                button type="submit" { "Create mapping" }
            }
        }
    };
    Ok(page(&signed, Nav::Mappings, "Property mappings", content))
}

/// The form of a new mapping.
#[derive(serde::Deserialize)]
pub struct NewMapping {
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    directory: String,
    #[serde(default)]
    expression: String,
    #[serde(default)]
    description: String,
}

/// `POST /console/mappings`.
pub async fn create(State(app): State<AppState>, posted: Submitted<NewMapping>) -> Answer {
    let Submitted { signed, form } = posted;
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let template = given(&form.template);
    let written = template.is_none();
    let body = MappingSettings {
        name: Some(form.name.trim().to_owned()),
        kind: Some(form.kind.clone()).filter(|_| written),
        expression: Some(form.expression.clone()).filter(|_| written),
        template,
        directory: given(&form.directory),
        description: given(&form.description),
    };
    let (_, m) = api::create_as(&app, &signed.admin, body).await?;
    Ok(Redirect::to(&format!("/console/mappings/{}", m.mapping.name)).into_response())
}

/// What the editor holds: the expression and description as typed, and what to preview on.
#[derive(serde::Deserialize, Default)]
pub struct Edited {
    #[serde(default)]
    expression: String,
    #[serde(default)]
    description: String,
    /// The id of a stored user or group to preview on.
    #[serde(default)]
    object_id: String,
    /// Or a document, as JSON.
    #[serde(default)]
    object: String,
    /// The source or provider the expression sees.
    #[serde(default)]
    seen_by: String,
}

pub async fn show(State(app): State<AppState>, signed: Signed, Path(name): Path<String>) -> Answer {
    let (dir, m) = api::by_name(&app, &name).await?;
    let edited = Edited {
        expression: m.mapping.expression.clone(),
        description: m.mapping.description.clone(),
        ..Edited::default()
    };
    let users = users_of(&app, &name).await?;
    Ok(page(
        &signed,
        Nav::Mappings,
        &format!("Mapping {name}"),
        editor(
            &signed,
            &dir,
            &m,
            &users,
            &edited,
            html! { p.muted { "Give an id or a document to preview on." } },
        ),
    ))
}

fn editor(
    signed: &Signed,
    dir: &str,
    m: &MappingView,
    users: &[String],
    edited: &Edited,
    preview: Markup,
) -> Markup {
    let name = &m.mapping.name;
    let kind = m.mapping.kind;
    let who = if kind.users() { "user" } else { "group" };
    let seen_by = if matches!(kind, MappingKind::SourceUser | MappingKind::SourceGroup) {
        "Source slug"
    } else {
        "Provider name"
    };
    html! {
        dl.facts {
            dt { "Kind" } dd { code { (kind.as_str()) } }
            dt { "Directory" } dd { (dir) }
            dt { "Run by" } dd { @if users.is_empty() { span.none { "nobody" } } @else { (users.join(", ")) } }
            dt { "Version" } dd { (m.version) ", last changed " (layout::time(&m.last_modified)) }
        }
        div.split {
        form #editor method="post" action=(format!("/console/mappings/{name}")) data-live=(format!("/console/mappings/{name}/preview")) {
            (layout::csrf(signed))
            div.field {
                label for="expression" { "Expression" }
                textarea #expression name="expression" rows="8" class="wide code" spellcheck="false" { (edited.expression) }
            }
            div.field {
                label for="description" { "Description" }
                input #description.wide type="text" name="description" value=(edited.description);
            }
            h2 { "Preview" }
            p.muted { "What the expression as edited above makes of a stored " (who) " or of a document. Nothing is saved." }
            div.field {
                label for="object_id" { "A stored " (who) "'s id" }
                input #object_id.wide type="text" name="object_id" value=(edited.object_id);
            }
            div.field {
                label for="object" { "or a document (JSON)" }
                textarea #object name="object" rows="5" class="wide code" spellcheck="false" { (edited.object) }
            }
            div.field {
                label for="seen_by" { (seen_by) " " span.hint { "(what the expression sees as such)" } }
                input #seen_by type="text" name="seen_by" value=(edited.seen_by);
            }
            div.actions {
                button type="submit" formaction=(format!("/console/mappings/{name}/preview")) { "Preview" }
                button.secondary type="submit" { "Save" }
            }
        }
        section.panel #preview aria-live="polite" { h2 { "Result" } (preview) }
        }
        form method="post" action=(format!("/console/mappings/{name}/delete"))
            data-confirm=(format!("Delete the mapping {name}?")) {
            (layout::csrf(signed))
            p { button.danger type="submit" { "Delete mapping" } }
        }
    }
}

/// `POST /console/mappings/{name}`: saves the expression and description.
pub async fn save(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Edited>,
) -> Answer {
    let Submitted { signed, form } = posted;
    let body = MappingSettings {
        expression: Some(form.expression.clone()),
        description: Some(form.description.trim().to_owned()),
        ..MappingSettings::default()
    };
    api::update_as(&app, &signed.admin, &name, body).await?;
    Ok(Redirect::to(&format!("/console/mappings/{name}")).into_response())
}

/// `POST /console/mappings/{name}/delete`.
pub async fn delete(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Nothing>,
) -> Answer {
    api::remove_as(&app, &posted.signed.admin, &name).await?;
    Ok(Redirect::to("/console/mappings").into_response())
}

/// `POST /console/mappings/{name}/preview`: the editor again, with what the expression as
/// edited makes of the chosen object.
pub async fn preview(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Edited>,
) -> Answer {
    let Submitted { signed, form } = posted;
    let (dir, m) = api::by_name(&app, &name).await?;
    let users = users_of(&app, &name).await?;
    let result = outcome(&app, &m, &name, &form).await;
    Ok(page(
        &signed,
        Nav::Mappings,
        &format!("Mapping {name}"),
        editor(&signed, &dir, &m, &users, &form, result),
    ))
}

/// The preview's result, or why there is none.
async fn outcome(app: &AppState, m: &MappingView, name: &str, form: &Edited) -> Markup {
    let mut body = api::MappingPreviewRequest::default();
    let id = form.object_id.trim();
    if !id.is_empty() {
        match id.parse() {
            Ok(id) => body.id = Some(id),
            Err(_) => return html! { p.error role="alert" { "id " (id) " is not a resource id." } },
        }
    } else if !form.object.trim().is_empty() {
        match serde_json::from_str::<Value>(&form.object) {
            Ok(Value::Object(resource)) => body.resource = Some(resource),
            _ => return html! { p.error role="alert" { "The document is not a JSON object." } },
        }
    } else {
        return html! { p.muted { "Give an id or a document to preview on." } };
    }
    let seen_by = Some(form.seen_by.trim().to_owned()).filter(|s| !s.is_empty());
    if matches!(
        m.mapping.kind,
        MappingKind::SourceUser | MappingKind::SourceGroup
    ) {
        body.source = seen_by;
    } else {
        body.provider = seen_by;
    }
    match api::preview_as(app, name, Some(&form.expression), &body).await {
        Err(e) => html! { p.error role="alert" { (e.detail) } },
        Ok(answer) => {
            let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
            html! {
                @match (&answer.outcome, &answer.attributes) {
                    (api::MappingOutcome::Attributes, Some(attributes)) => {
                        p { (layout::badge("ok", "attributes")) " The expression sets:" }
                        pre.code { (pretty(&Value::Object(attributes.clone()))) }
                    }
                    (api::MappingOutcome::Skip, _) => p { (layout::badge("warn", "skip")) " The object would not be written or sent." },
                    _ => p.error role="alert" { (layout::badge("bad", "error")) " " (answer.error.as_deref().unwrap_or("")) },
                }
                details {
                    summary { "The object the expression saw" }
                    pre.code { (pretty(&answer.object)) }
                }
            }
        }
    }
}
