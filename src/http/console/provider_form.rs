//! The form that creates and changes an outbound provider: its remote, credentials (write-only:
//! a secret is never shown, and one left empty when editing is kept), compatibility mode,
//! scope, TLS (a private CA, a client certificate; the key write-only like the secrets),
//! concurrency, schedule, mappings, dry run and whether it runs. The form becomes the admin
//! API's typed settings and goes through its own functions, so it is checked and recorded the
//! same way.

use super::layout::{self, page, Nav};
use super::{Answer, Nothing, Signed, Submitted};
use crate::http::error::ScimError;
use crate::http::providers as api;
use crate::http::AppState;
use crate::provider::config::PublicAuth;
use crate::provider::settings::{
    AuthSettings, GrantKind, ProviderSettings, ScopeSettings, TlsSettings,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{html, Markup};
use roster_events::{ProviderMode, ResourceId, DEFAULT_DIRECTORY};
use serde_json::Value;

/// The form's fields, all as text (a checkbox is `on` when ticked).
#[derive(serde::Deserialize, Default)]
pub struct ProviderForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    directory: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    auth_type: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    concurrency: String,
    #[serde(default)]
    full_sync_interval_secs: String,
    /// Mapping names, separated by commas or spaces, in order.
    #[serde(default)]
    mappings: String,
    #[serde(default)]
    dry_run: String,
    #[serde(default)]
    enabled: String,
    #[serde(default)]
    deactivate: String,
    #[serde(default)]
    exclude_service_accounts: String,
    /// Group ids, separated by commas or spaces.
    #[serde(default)]
    group_filter: String,
    /// Group ids, separated by commas or spaces.
    #[serde(default)]
    access_groups: String,
    #[serde(default)]
    ca_bundle: String,
    #[serde(default)]
    client_cert: String,
    /// Write-only; left empty, the saved one is kept.
    #[serde(default)]
    client_key: String,
    /// Shown, not sent back: whether a client key is saved.
    #[serde(skip)]
    client_key_set: bool,
}

/// A list of ids or names typed separated by commas or spaces.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ProviderForm {
    /// The form of a provider as the API shows it (no secrets).
    fn of(p: &api::ProviderOut) -> ProviderForm {
        let c = &p.config;
        let on = |b: bool| if b { "on".to_owned() } else { String::new() };
        let ids = |ids: &[ResourceId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut f = ProviderForm {
            name: c.name.clone(),
            directory: p.directory.clone(),
            base_url: c.base_url.clone(),
            mode: c.mode.name().to_owned(),
            concurrency: c.concurrency.to_string(),
            full_sync_interval_secs: c.full_sync_interval_secs.to_string(),
            mappings: c.mappings.join(", "),
            dry_run: on(c.dry_run),
            enabled: on(c.enabled),
            deactivate: on(c.deactivate),
            exclude_service_accounts: on(c.scope.exclude_service_accounts),
            group_filter: ids(&c.scope.group_filter),
            access_groups: ids(&c.scope.access_groups),
            ca_bundle: c.tls.ca_bundle.clone().unwrap_or_default(),
            client_cert: c.tls.client_cert.clone().unwrap_or_default(),
            client_key_set: c.tls.client_key_set,
            ..ProviderForm::default()
        };
        match &c.auth {
            PublicAuth::Bearer => f.auth_type = "bearer".into(),
            PublicAuth::Basic { username } => {
                f.auth_type = "basic".into();
                f.username = username.clone();
            }
            PublicAuth::Oauth2 {
                token_url,
                client_id,
                grant,
                username,
                ..
            } => {
                f.auth_type = "oauth2".into();
                f.token_url = token_url.clone();
                f.client_id = client_id.clone();
                f.grant = (*grant).to_owned();
                f.username = username.clone().unwrap_or_default();
            }
        }
        f
    }

    /// The admin API's settings for this form (`creating`: with name and directory).
    fn body(&self, creating: bool) -> Result<ProviderSettings, ScimError> {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let bad = |what: String| ScimError::bad_request("invalidValue", what);
        let number = |name: &str, s: &str| -> Result<Option<u64>, ScimError> {
            given(s)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("{name} must be a whole number")))
                })
                .transpose()
        };
        let auth = match self.auth_type.as_str() {
            "basic" => AuthSettings::Basic {
                username: given(&self.username),
                password: given(&self.password),
            },
            "oauth2" => {
                let grant = match given(&self.grant).as_deref() {
                    None | Some("client_credentials") => GrantKind::ClientCredentials,
                    Some("password") => GrantKind::Password,
                    Some(other) => {
                        return Err(bad(format!(
                            "auth.grant {other:?} is not client_credentials or password"
                        )))
                    }
                };
                let password_grant = grant == GrantKind::Password;
                AuthSettings::Oauth2 {
                    token_url: given(&self.token_url),
                    client_id: given(&self.client_id),
                    client_secret: given(&self.client_secret),
                    grant: Some(grant),
                    username: given(&self.username).filter(|_| password_grant),
                    password: given(&self.password).filter(|_| password_grant),
                    extra: None,
                }
            }
            "bearer" => AuthSettings::Bearer {
                token: given(&self.token),
            },
            other => {
                return Err(bad(format!(
                    "auth.type {other:?} is not bearer, basic or oauth2"
                )))
            }
        };
        let mode = given(&self.mode).unwrap_or("default".into());
        let mode: ProviderMode =
            serde_json::from_value(Value::String(mode.clone())).map_err(|_| {
                bad(format!(
                    "mode {mode:?} is not default, aws, slack, salesforce or webex"
                ))
            })?;
        let mappings = words(&self.mappings);
        let ids = |name: &str, text: &str| -> Result<Vec<ResourceId>, ScimError> {
            words(text)
                .iter()
                .map(|w| {
                    w.parse()
                        .map_err(|_| bad(format!("{name}: {w:?} is not a group id")))
                })
                .collect()
        };
        let scope = ScopeSettings {
            exclude_service_accounts: Some(self.exclude_service_accounts == "on"),
            group_filter: Some(ids("group filter", &self.group_filter)?),
            access_groups: Some(ids("access groups", &self.access_groups)?),
        };
        // Empty clears a certificate; an empty key keeps the saved one.
        let tls = TlsSettings {
            ca_bundle: Some(given(&self.ca_bundle)),
            client_cert: Some(given(&self.client_cert)),
            client_key: given(&self.client_key).map(Some),
        };
        Ok(ProviderSettings {
            name: creating.then(|| self.name.trim().to_owned()),
            directory: given(&self.directory).filter(|_| creating),
            base_url: Some(self.base_url.trim().to_owned()),
            auth: Some(auth),
            mode: Some(mode),
            concurrency: number("concurrency", &self.concurrency)?,
            full_sync_interval_secs: number(
                "the full sync interval",
                &self.full_sync_interval_secs,
            )?,
            mappings: Some(Some(mappings)),
            scope: Some(scope),
            tls: Some(Some(tls)),
            dry_run: Some(self.dry_run == "on"),
            enabled: Some(self.enabled == "on"),
            deactivate: Some(self.deactivate == "on"),
        })
    }
}

fn form(signed: &Signed, f: &ProviderForm, directories: &[String], editing: bool) -> Markup {
    let action = if editing {
        format!("/console/providers/{}", f.name)
    } else {
        "/console/providers".to_owned()
    };
    let secret_hint = if editing {
        "(write-only: left empty, the saved one is kept)"
    } else {
        "(write-only: never shown again)"
    };
    html! {
        form method="post" action=(action) {
            (layout::csrf(signed))
            @if editing {
                input type="hidden" name="name" value=(f.name);
            } @else {
                div.field {
                    label for="name" { "Name " span.hint { "(lower-case letters, digits and hyphens)" } }
                    input #name type="text" name="name" value=(f.name) required pattern="[a-z0-9-]{1,63}";
                }
                div.field {
                    label for="directory" { "Directory" }
                    select #directory name="directory" {
                        @for d in directories { option value=(d) selected[d == DEFAULT_DIRECTORY] { (d) } }
                    }
                }
            }
            div.field {
                label for="base_url" { "SCIM base URL of the remote" }
                input #base_url.wide type="url" name="base_url" value=(f.base_url) required placeholder="https://api.example.com/scim/v2";
            }
            div.field {
                label for="mode" { "Compatibility mode" }
                select #mode name="mode" {
                    @for m in ProviderMode::ALL.map(ProviderMode::name) { option value=(m) selected[f.mode == m] { (m) } }
                }
            }
            fieldset {
                legend { "Authentication" }
                div.field {
                    label for="auth_type" { "Type" }
                    select #auth_type name="auth_type" {
                        option value="bearer" selected[f.auth_type == "bearer"] { "bearer token" }
                        option value="basic" selected[f.auth_type == "basic"] { "basic (username and password)" }
                        option value="oauth2" selected[f.auth_type == "oauth2"] { "OAuth 2.0" }
                    }
                }
                div.field {
                    label for="token" { "Bearer token " span.hint { (secret_hint) } }
                    input #token.wide type="password" name="token" autocomplete="off";
                }
                div.field {
                    label for="username" { "Username " span.hint { "(basic; OAuth 2.0 password grant)" } }
                    input #username type="text" name="username" value=(f.username) autocomplete="off";
                }
                div.field {
                    label for="password" { "Password " span.hint { (secret_hint) } }
                    input #password type="password" name="password" autocomplete="off";
                }
                div.field {
                    label for="token_url" { "Token URL " span.hint { "(OAuth 2.0)" } }
                    input #token_url.wide type="url" name="token_url" value=(f.token_url);
                }
                div.field {
                    label for="client_id" { "Client id " span.hint { "(OAuth 2.0)" } }
                    input #client_id type="text" name="client_id" value=(f.client_id);
                }
                div.field {
                    label for="client_secret" { "Client secret " span.hint { (secret_hint) } }
                    input #client_secret type="password" name="client_secret" autocomplete="off";
                }
                div.field {
                    label for="grant" { "Grant " span.hint { "(OAuth 2.0)" } }
                    select #grant name="grant" {
                        option value="client_credentials" selected[f.grant != "password"] { "client credentials" }
                        option value="password" selected[f.grant == "password"] { "password" }
                    }
                }
            }
            fieldset {
                legend { "Scope" }
                div.field { label { input type="checkbox" name="exclude_service_accounts" value="on" checked[f.exclude_service_accounts == "on"]; " Leave out service accounts (users whose userType says so)" } }
                div.field {
                    label for="group_filter" { "Only these groups " span.hint { "(group ids, separated by commas; empty: every group)" } }
                    input #group_filter.wide type="text" name="group_filter" value=(f.group_filter);
                }
                div.field {
                    label for="access_groups" { "Only members of " span.hint { "(group ids, direct or nested members; empty: every user)" } }
                    input #access_groups.wide type="text" name="access_groups" value=(f.access_groups);
                }
            }
            fieldset {
                legend { "TLS to the remote" }
                div.field {
                    label for="ca_bundle" { "CA certificates " span.hint { "(PEM, trusted besides the public roots; empty: the public roots only)" } }
                    textarea #ca_bundle name="ca_bundle" rows="3" class="wide code" spellcheck="false" { (f.ca_bundle) }
                }
                div.field {
                    label for="client_cert" { "Client certificate " span.hint { "(PEM chain, leaf first, for mutual TLS; empty: none)" } }
                    textarea #client_cert name="client_cert" rows="3" class="wide code" spellcheck="false" { (f.client_cert) }
                }
                div.field {
                    label for="client_key" { "Client key " span.hint {
                        @if f.client_key_set { "(PEM; write-only: one is saved, left empty it is kept)" } @else { "(PEM; write-only: never shown)" }
                    } }
                    textarea #client_key name="client_key" rows="3" class="wide code" spellcheck="false" autocomplete="off" {}
                }
            }
            div.field {
                label for="mappings" { "Mappings " span.hint { "(provider mappings, in order, separated by commas)" } }
                input #mappings.wide type="text" name="mappings" value=(f.mappings);
            }
            div.field {
                label for="concurrency" { "Objects carried at once " span.hint { "(1 to 64)" } }
                input #concurrency type="text" inputmode="numeric" name="concurrency" value=(f.concurrency) placeholder="8";
            }
            div.field {
                label for="full_sync_interval_secs" { "Full sync every (seconds) " span.hint { "(0: only when asked)" } }
                input #full_sync_interval_secs type="text" inputmode="numeric" name="full_sync_interval_secs" value=(f.full_sync_interval_secs) placeholder="3600";
            }
            div.field { label { input type="checkbox" name="enabled" value="on" checked[f.enabled == "on" || !editing]; " Enabled" } }
            div.field { label { input type="checkbox" name="dry_run" value="on" checked[f.dry_run == "on"]; " Dry run (plan requests, send none)" } }
            div.field { label { input type="checkbox" name="deactivate" value="on" checked[f.deactivate == "on"]; " Deactivate users out of scope instead of deleting them" } }
            button type="submit" { @if editing { "Save provider" } @else { "Create provider" } }
        }
    }
}

/// `GET /console/providers/new`.
pub async fn new(State(app): State<AppState>, signed: Signed) -> Answer {
    let directories = app.store.directories().await?;
    let f = ProviderForm {
        auth_type: "bearer".into(),
        ..ProviderForm::default()
    };
    let content = form(&signed, &f, &directories, false);
    Ok(page(&signed, Nav::Providers, "New provider", content))
}

/// `GET /console/providers/{name}/edit`.
pub async fn edit(State(app): State<AppState>, signed: Signed, Path(name): Path<String>) -> Answer {
    let p = api::by_name(&app, &name).await?;
    let f = ProviderForm::of(&api::ProviderOut::of(&p));
    let content = html! {
        (form(&signed, &f, &[], true))
        form method="post" action=(format!("/console/providers/{name}/delete"))
            data-confirm=(format!("Delete the provider {name}? Nothing is removed from the remote.")) {
            (layout::csrf(&signed))
            p { button.danger type="submit" { "Delete provider" } }
        }
    };
    Ok(page(
        &signed,
        Nav::Providers,
        &format!("Edit provider {name}"),
        content,
    ))
}

/// The warnings of the check of the remote, shown above the provider's status.
fn warned(checked: &api::CheckedProvider) -> String {
    checked.warnings.join(" ")
}

/// `POST /console/providers`: creates the provider and shows its status.
pub async fn create(State(app): State<AppState>, posted: Submitted<ProviderForm>) -> Answer {
    let Submitted { signed, form } = posted;
    let created = api::create_as(&app, &signed.admin, form.body(true)?).await?;
    let name = created.provider.config.name.clone();
    let warnings = warned(&created);
    let resp = super::providers::status_page(&app, &signed, &name, &warnings).await?;
    Ok((StatusCode::CREATED, resp).into_response())
}

/// `POST /console/providers/{name}`: saves the changes and shows the provider's status.
pub async fn save(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<ProviderForm>,
) -> Answer {
    let Submitted { signed, form } = posted;
    let changed = api::update_as(&app, &signed.admin, &name, form.body(false)?).await?;
    super::providers::status_page(&app, &signed, &name, &warned(&changed)).await
}

/// `POST /console/providers/{name}/delete`.
pub async fn delete(
    State(app): State<AppState>,
    Path(name): Path<String>,
    posted: Submitted<Nothing>,
) -> Answer {
    api::remove_as(&app, &posted.signed.admin, &name).await?;
    Ok(Redirect::to("/console/providers").into_response())
}
