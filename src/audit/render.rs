//! An event as a person reads it: what happened in words ("Update user"), a sentence naming
//! the target as it was called then and who acted, and the changes as `{path, old, new}`,
//! computed by comparing the document the event set with the one before it (records store
//! whole documents; the difference is never stored). Secrets never appear: a password set is
//! "password changed", a provider's credentials are left out, tokens show their prefix only.

use super::index::{ActorKind, Entry, Interner};
use super::query::rfc3339;
use roster_events::{Envelope, Event, ProviderConfig};
use serde_json::{json, Map, Value};

pub use roster_projections::audit::resource_type_name as resource_type;

/// What happened, as a short title (Entra's activity display name).
pub fn activity(event_type: &str) -> &'static str {
    match event_type {
        "directory.created" => "Add directory",
        "directory.deleted" => "Delete directory",
        "admin.token_issued" => "Issue admin token",
        "admin.token_revoked" => "Revoke admin token",
        "source.created" => "Add source",
        "source.token_issued" => "Issue source token",
        "source.token_revoked" => "Revoke source token",
        "source.schema_declared" => "Declare extension schema",
        "source.deleted" => "Delete source",
        "user.created" => "Add user",
        "user.replaced" => "Update user",
        "user.deleted" => "Delete user",
        "user.erased" => "Erase personal data of user",
        "user.adopted" => "Adopt user",
        "user.password_set" => "Change user password",
        "group.created" => "Add group",
        "group.replaced" => "Update group",
        "group.members_added" => "Add member to group",
        "group.members_removed" => "Remove member from group",
        "group.deleted" => "Delete group",
        "group.adopted" => "Adopt group",
        "provider.created" => "Add provider",
        "provider.updated" => "Update provider",
        "provider.deleted" => "Delete provider",
        "provider.sync_requested" => "Request full sync",
        "provider.retry_requested" => "Request retry of parked objects",
        "provider.replay_requested" => "Request replay",
        "access.refused" => "Refuse request",
        "audit.read" => "Read audit trail",
        _ => "Other",
    }
}

/// One change an event made: the attribute's SCIM path and its values before and after
/// (`null` for absent).
fn change(path: &str, old: Value, new: Value) -> Value {
    json!({"path": path, "old": old, "new": new})
}

/// The changes between two documents, attribute by attribute, in path order. Complex
/// attributes are compared sub-attribute by sub-attribute; multi-valued ones as a whole.
pub fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    diff_into("", Level::Top, old, new, &mut out);
    out
}

/// Where in a document a comparison is: it decides how an attribute's path is written.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Top,
    /// Directly inside an extension: `urn:...:User:employeeNumber` (RFC 7644 §3.10).
    Extension,
    /// Inside a complex attribute: `name.givenName`.
    Nested,
}

fn diff_into(
    prefix: &str,
    level: Level,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    out: &mut Vec<Value>,
) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if level == Level::Top && key == "schemas" {
            continue;
        }
        let (path, inner) = match level {
            Level::Top if key.starts_with("urn:") => (key.clone(), Level::Extension),
            Level::Top => (key.clone(), Level::Nested),
            Level::Extension => (format!("{prefix}:{key}"), Level::Nested),
            Level::Nested => (format!("{prefix}.{key}"), Level::Nested),
        };
        let empty = Map::new();
        match (old.get(key), new.get(key)) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => diff_into(&path, inner, a, b, out),
            (Some(Value::Object(a)), None) => diff_into(&path, inner, a, &empty, out),
            (None, Some(Value::Object(b))) => diff_into(&path, inner, &empty, b, out),
            (a, b) if a != b => out.push(change(
                &path,
                a.cloned().unwrap_or(Value::Null),
                b.cloned().unwrap_or(Value::Null),
            )),
            _ => {}
        }
    }
}

/// A provider's settings with its credentials left out (their kind stays).
fn provider_settings(config: &ProviderConfig) -> Map<String, Value> {
    let mut v = match serde_json::to_value(config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let kind = match &config.auth {
        roster_events::ProviderAuth::Bearer { .. } => "bearer",
        roster_events::ProviderAuth::Basic { .. } => "basic",
        roster_events::ProviderAuth::Oauth2 { .. } => "oauth2",
    };
    v.insert("auth".into(), json!({"type": kind}));
    v
}

/// The document or settings an event leaves its resource with, if it sets them whole.
fn state(event: &Event) -> Option<Map<String, Value>> {
    match event {
        Event::UserCreated(e) => e.resource.value().map(|d| d.to_map()),
        Event::UserReplaced(e) => e.resource.value().map(|d| d.to_map()),
        Event::GroupCreated(e) => Some(e.resource.to_map()),
        Event::GroupReplaced(e) => Some(e.resource.to_map()),
        Event::ProviderCreated(e) => Some(provider_settings(&e.config)),
        Event::ProviderUpdated(e) => Some(provider_settings(&e.config)),
        _ => None,
    }
}

/// Whether `event` sets a user's document that can no longer be read (docs/adr/0014).
fn erased(event: &Event) -> bool {
    match event {
        Event::UserCreated(e) => e.resource.is_erased(),
        Event::UserReplaced(e) => e.resource.is_erased(),
        _ => false,
    }
}

/// The changes `event` made, given the document it replaced (if it sets one).
pub fn changes(event: &Event, before: Option<&Event>) -> Vec<Value> {
    let sets_user = matches!(event, Event::UserCreated(_) | Event::UserReplaced(_));
    if erased(event) || (sets_user && before.is_some_and(erased)) {
        return vec![json!({"path": null, "old": null, "new": null, "erased": true})];
    }
    if let Some(after) = state(event) {
        let before = before.and_then(state).unwrap_or_default();
        return diff(&before, &after);
    }
    let member = |m: &roster_events::Member| json!({"value": m.value, "type": m.kind});
    match event {
        Event::GroupMembersAdded(e) => e
            .members
            .iter()
            .map(|m| change("members", Value::Null, member(m)))
            .collect(),
        Event::GroupMembersRemoved(e) => e
            .members
            .iter()
            .map(|m| change("members", member(m), Value::Null))
            .collect(),
        Event::UserAdopted(e) | Event::GroupAdopted(e) => {
            vec![change("owner", json!(e.previous_owner), json!(e.owner))]
        }
        Event::UserPasswordSet(_) => {
            vec![json!({"path": "password", "old": null, "new": null, "redacted": true})]
        }
        Event::UserErased(_) => {
            vec![json!({"path": null, "old": null, "new": null, "erased": true})]
        }
        Event::SourceCreated(e) => diff(
            &Map::new(),
            &json_map(json!({
                "slug": e.slug,
                "serviceAccount": e.service_account,
                "ownership": e.ownership,
                "undeclaredExtensions": e.undeclared_extensions,
            })),
        ),
        Event::DirectoryCreated(e) => vec![change("name", Value::Null, json!(e.name))],
        Event::SourceTokenIssued(e) => vec![change(
            "tokens",
            Value::Null,
            json!({"id": e.token_id, "prefix": e.prefix}),
        )],
        Event::AdminTokenIssued(e) => vec![change(
            "tokens",
            Value::Null,
            json!({"id": e.token_id, "prefix": e.prefix}),
        )],
        Event::SourceTokenRevoked(e) => {
            vec![change("tokens", json!({"id": e.token_id}), Value::Null)]
        }
        Event::AdminTokenRevoked(e) => {
            vec![change("tokens", json!({"id": e.token_id}), Value::Null)]
        }
        Event::SourceSchemaDeclared(e) => vec![change(
            "schemas",
            Value::Null,
            json!({"resourceType": e.resource_type, "id": e.schema.id}),
        )],
        Event::ProviderReplayRequested(e) => {
            vec![change("replayFrom", Value::Null, json!(e.from))]
        }
        _ => Vec::new(),
    }
}

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Who acted, in words.
fn actor_words(e: &Entry, strings: &Interner) -> String {
    let id = strings.get(e.actor).unwrap_or("");
    match e.actor_kind {
        ActorKind::Source => format!("source {}", strings.get(e.source).unwrap_or(id)),
        ActorKind::Admin if id == "config" => "the configured admin token".to_owned(),
        ActorKind::Admin => format!("admin token {id}"),
        ActorKind::System => "Roster".to_owned(),
        ActorKind::Anonymous => "an unauthenticated client".to_owned(),
    }
}

/// What the event did to its target, in words.
fn verb(event_type: &str, changes: &[Value]) -> String {
    let active = changes
        .iter()
        .find(|c| c["path"] == "active")
        .map(|c| c["new"].clone());
    match (event_type, active) {
        ("user.replaced", Some(Value::Bool(false))) => "deactivated".into(),
        ("user.replaced", Some(Value::Bool(true))) => "reactivated".into(),
        ("group.members_added", _) => format!("gained {} member(s)", changes.len()),
        ("group.members_removed", _) => format!("lost {} member(s)", changes.len()),
        ("user.password_set", _) => "had its password changed".into(),
        ("user.erased", _) => "had its personal data erased".into(),
        ("source.token_issued" | "admin.token_issued", _) => "got a new token".into(),
        ("source.token_revoked" | "admin.token_revoked", _) => "had a token revoked".into(),
        ("source.schema_declared", _) => "declared an extension schema".into(),
        ("provider.sync_requested", _) => "was asked for a full sync".into(),
        ("provider.retry_requested", _) => "was asked to retry its parked objects".into(),
        ("provider.replay_requested", _) => "was asked to replay".into(),
        (t, _) => match t.rsplit('.').next() {
            Some("created") => "created".into(),
            Some("replaced" | "updated") => "updated".into(),
            Some("deleted") => "deleted".into(),
            Some("adopted") => "adopted".into(),
            _ => "changed".into(),
        },
    }
}

/// The event as the audit API shows it.
pub fn render(
    e: &Entry,
    partition: u32,
    strings: &Interner,
    env: &Envelope,
    before: Option<&Envelope>,
) -> Value {
    let changes = changes(&env.event, before.map(|b| &b.event));
    let event_type = e.event_type();
    let kind = resource_type(e.resource_type);
    let name = strings.get(e.name);
    let target = match name {
        Some(n) => format!("{} {n}", kind.replace('_', " ")),
        None => format!("{} {}", kind.replace('_', " "), e.resource),
    };
    let (message, outcome) = match &env.event {
        Event::AccessRefused(r) => (refusal_words(r, e, strings), "failure"),
        Event::AuditRead(r) => (
            format!(
                "{} read {}{}",
                actor_words(e, strings),
                r.path,
                times(r.count)
            ),
            "success",
        ),
        _ => (
            format!(
                "{target} {} by {}",
                verb(event_type, &changes),
                actor_words(e, strings)
            ),
            "success",
        ),
    };
    let mut client = Map::new();
    for (key, sym) in [
        ("tokenId", e.token),
        ("ip", e.ip),
        ("userAgent", e.user_agent),
    ] {
        if let Some(s) = strings.get(sym) {
            client.insert(key.into(), Value::from(s));
        }
    }
    let mut rendered = json!({
        "id": env.event_id,
        "partition": partition,
        "position": e.position,
        "time": rfc3339(e.time_ms),
        "type": event_type,
        "displayName": activity(event_type),
        "message": message,
        "outcome": outcome,
        "directory": env.directory,
        "actor": {"kind": e.actor_kind.as_str(), "id": strings.get(e.actor)},
        "source": env.source,
        "client": client,
        "correlationId": env.correlation_id,
        "target": {
            "type": kind,
            "id": env.resource_id,
            "name": name,
            "version": e.version,
            "etag": format!("W/\"{}\"", e.version),
        },
        "changes": changes,
    });
    // What an audit-only event counted (how many requests, from when to when, and why); the
    // request an erasure answered and what it could not erase.
    if env.event.audit_only() || matches!(env.event, Event::UserErased(_)) {
        rendered["details"] = env.event.payload_json();
    }
    rendered
}

/// " (7 times)" for a record that counts more than one request.
fn times(count: u64) -> String {
    if count > 1 {
        format!(" ({count} times)")
    } else {
        String::new()
    }
}

/// A refusal in words: "GET /source/scim/entra/v2/Users refused (401: invalid token) for
/// 203.0.113.9".
fn refusal_words(r: &roster_events::AccessRefused, e: &Entry, strings: &Interner) -> String {
    use roster_events::RefusalReason;
    let why = match r.reason {
        RefusalReason::NoToken => "no bearer token",
        RefusalReason::UnknownSource => "no such source",
        RefusalReason::InvalidToken => "invalid token",
        RefusalReason::ActionRefused => r.detail.as_deref().unwrap_or("refused"),
    };
    let whom = match e.actor_kind {
        ActorKind::Anonymous => match strings.get(e.ip) {
            Some(ip) => format!("a client at {ip}"),
            None => "a client".to_owned(),
        },
        _ => actor_words(e, strings),
    };
    format!(
        "{} {} refused ({}: {why}) for {whom}{}",
        r.method,
        r.path,
        r.status,
        times(r.count)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        json_map(v)
    }

    #[test]
    fn a_diff_names_each_changed_attribute_by_its_scim_path() {
        let old = map(json!({
            "userName": "alice",
            "active": true,
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Sales",
                "manager": {"value": "m1"}
            }
        }));
        let new = map(json!({
            "userName": "alice",
            "active": false,
            "name": {"givenName": "Alicia", "familyName": "Liddell"},
            "emails": [{"value": "b@x", "type": "work"}],
            "title": "CEO",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Sales",
                "manager": {"value": "m2"}
            }
        }));
        let got = diff(&old, &new);
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(
            got,
            vec![
                change("active", json!(true), json!(false)),
                change(
                    "emails",
                    json!([{"value": "a@x", "type": "work"}]),
                    json!([{"value": "b@x", "type": "work"}])
                ),
                change("name.givenName", json!("Alice"), json!("Alicia")),
                change("title", Value::Null, json!("CEO")),
                change(&format!("{ent}:manager.value"), json!("m1"), json!("m2")),
            ]
        );
    }

    #[test]
    fn a_password_set_shows_no_hash() {
        let e = Event::UserPasswordSet(roster_events::UserPasswordSet {
            hash: roster_events::Personal::Plain("$argon2id$v=19$secret".into()),
        });
        let shown = serde_json::to_string(&changes(&e, None)).unwrap();
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("\"redacted\":true"), "{shown}");
    }
}
