//! An event as a person reads it: what happened in words ("Update user"), a sentence naming
//! the target as it was called then and who acted, and the changes as `{path, old, new}`,
//! computed by comparing the document the event set with the one before it (records store
//! whole documents; the difference is never stored). Secrets never appear: a password set is
//! "password changed", a provider's credentials are left out, tokens show their prefix only.

use super::index::{ActorKind, Entry, Interner};
use super::query::rfc3339;
use roster_events::{Envelope, Event, ProviderConfig, Record, ResourceId};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

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
        "mapping.created" => "Add property mapping",
        "mapping.updated" => "Update property mapping",
        "mapping.deleted" => "Delete property mapping",
        "source.mappings_set" => "Set source's property mappings",
        "access.refused" => "Refuse request",
        "audit.read" => "Read audit trail",
        _ => "Other",
    }
}

/// One change an event made, as the audit API shows it.
pub enum Change<'a> {
    /// An attribute, by its SCIM path, with its values before and after exactly as stored
    /// (`None` for absent, shown as `null`).
    Attribute {
        path: String,
        old: Option<&'a RawValue>,
        new: Option<&'a RawValue>,
    },
    /// Anything else, as shown: a member, a token, or a marker that the values are erased
    /// or redacted.
    Shown(Value),
}

impl Serialize for Change<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Change::Attribute { path, old, new } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("path", path)?;
                m.serialize_entry("old", old)?;
                m.serialize_entry("new", new)?;
                m.end()
            }
            Change::Shown(v) => v.serialize(s),
        }
    }
}

fn change(path: &str, old: Value, new: Value) -> Change<'static> {
    Change::Shown(json!({"path": path, "old": old, "new": new}))
}

/// An object member's name, borrowed from the document's text unless it holds escapes.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// An object's members in name order, each value left as its JSON text.
type Members<'a> = BTreeMap<Key<'a>, &'a RawValue>;

/// The members of the JSON object `text`; none when it is not one (documents always are).
fn members(text: &str) -> Members<'_> {
    serde_json::from_str(text).unwrap_or_default()
}

fn is_object(v: &RawValue) -> bool {
    v.get().starts_with('{')
}

/// Whether two stored values are the same JSON value (the same text, or texts that parse to
/// equal values).
fn same(a: Option<&RawValue>, b: Option<&RawValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a.get() == b.get() => true,
        (Some(a), Some(b)) => {
            let parse = |v: &RawValue| serde_json::from_str::<Value>(v.get()).ok();
            matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
        }
        _ => false,
    }
}

/// The changes between two documents (JSON objects as text), attribute by attribute, in
/// path order. Complex attributes are compared sub-attribute by sub-attribute; multi-valued
/// ones as a whole. The values are borrowed from the texts: nothing is copied into a tree.
pub fn diff<'a>(old: &'a str, new: &'a str) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    diff_into("", Level::Top, &members(old), &members(new), &mut out);
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

fn diff_into<'a>(
    prefix: &str,
    level: Level,
    old: &Members<'a>,
    new: &Members<'a>,
    out: &mut Vec<Change<'a>>,
) {
    let mut keys: Vec<&Key> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let name = &*key.0;
        if level == Level::Top && name == "schemas" {
            continue;
        }
        let (a, b) = (old.get(key).copied(), new.get(key).copied());
        if matches!((a, b), (Some(a), Some(b)) if a.get() == b.get()) {
            continue;
        }
        let (path, inner) = match level {
            Level::Top if name.starts_with("urn:") => (name.to_owned(), Level::Extension),
            Level::Top => (name.to_owned(), Level::Nested),
            Level::Extension => (format!("{prefix}:{name}"), Level::Nested),
            Level::Nested => (format!("{prefix}.{name}"), Level::Nested),
        };
        let inside = |v: Option<&'a RawValue>| v.map(|v| members(v.get())).unwrap_or_default();
        match (a, b) {
            (Some(x), Some(y)) if is_object(x) && is_object(y) => {
                diff_into(&path, inner, &inside(a), &inside(b), out)
            }
            (Some(x), None) | (None, Some(x)) if is_object(x) => {
                diff_into(&path, inner, &inside(a), &inside(b), out)
            }
            _ if same(a, b) => {}
            _ => out.push(Change::Attribute {
                path,
                old: a,
                new: b,
            }),
        }
    }
}

/// A provider's settings with its credentials left out (their kind stays), as JSON text.
fn provider_settings(config: &ProviderConfig) -> String {
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
    Value::Object(v).to_string()
}

/// The document or settings an event leaves its resource with, as JSON text, if it sets
/// them whole and they can be read.
fn state(event: &Event) -> Option<Cow<'_, str>> {
    match event {
        Event::UserCreated(e) => e.resource.value().map(|d| Cow::Borrowed(d.as_str())),
        Event::UserReplaced(e) => e.resource.value().map(|d| Cow::Borrowed(d.as_str())),
        Event::GroupCreated(e) => Some(Cow::Borrowed(e.resource.as_str())),
        Event::GroupReplaced(e) => Some(Cow::Borrowed(e.resource.as_str())),
        Event::ProviderCreated(e) => Some(Cow::Owned(provider_settings(&e.config))),
        Event::ProviderUpdated(e) => Some(Cow::Owned(provider_settings(&e.config))),
        Event::MappingCreated(e) => serde_json::to_string(&e.mapping).ok().map(Cow::Owned),
        Event::MappingUpdated(e) => serde_json::to_string(&e.mapping).ok().map(Cow::Owned),
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

/// The documents an event and the one before it set, as text: what its changes are computed
/// from (and borrow).
pub struct States<'a> {
    after: Option<Cow<'a, str>>,
    before: Option<Cow<'a, str>>,
}

impl<'a> States<'a> {
    pub fn of(event: &'a Event, before: Option<&'a Event>) -> States<'a> {
        States {
            after: state(event),
            before: before.and_then(state),
        }
    }
}

/// The changes `event` made, given the event that set the document it replaced (if it sets
/// one) and both documents' texts (`States::of` the two events).
pub fn changes<'a>(
    event: &'a Event,
    before: Option<&Event>,
    states: &'a States<'a>,
) -> Vec<Change<'a>> {
    let sets_user = matches!(event, Event::UserCreated(_) | Event::UserReplaced(_));
    if erased(event) || (sets_user && before.is_some_and(erased)) {
        return vec![Change::Shown(
            json!({"path": null, "old": null, "new": null, "erased": true}),
        )];
    }
    if let Some(after) = &states.after {
        return diff(states.before.as_deref().unwrap_or("{}"), after);
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
        Event::UserPasswordSet(_) => vec![Change::Shown(
            json!({"path": "password", "old": null, "new": null, "redacted": true}),
        )],
        Event::UserErased(_) => vec![Change::Shown(
            json!({"path": null, "old": null, "new": null, "erased": true}),
        )],
        Event::SourceCreated(e) => [
            ("ownership", json!(e.ownership)),
            ("serviceAccount", json!(e.service_account)),
            ("slug", json!(e.slug)),
            ("undeclaredExtensions", json!(e.undeclared_extensions)),
        ]
        .into_iter()
        .map(|(path, v)| change(path, Value::Null, v))
        .collect(),
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
        Event::SourceMappingsSet(e) => vec![change("mappings", Value::Null, json!(e.mappings))],
        _ => Vec::new(),
    }
}

/// What a source sent when its mappings reshaped what the event stores: the event's merge
/// patch over its document, with the mappings that ran (null where the user's data key was
/// destroyed).
fn sent(event: &Event) -> Option<Value> {
    let (resource, patch, mappings) = match event {
        Event::UserCreated(e) => {
            let m = e.mapped.as_ref()?;
            (e.resource.value(), m.sent_patch.value(), &m.mappings)
        }
        Event::UserReplaced(e) => {
            let m = e.mapped.as_ref()?;
            (e.resource.value(), m.sent_patch.value(), &m.mappings)
        }
        Event::GroupCreated(e) => {
            let m = e.mapped.as_ref()?;
            (Some(&e.resource), Some(&m.sent_patch), &m.mappings)
        }
        Event::GroupReplaced(e) => {
            let m = e.mapped.as_ref()?;
            (Some(&e.resource), Some(&m.sent_patch), &m.mappings)
        }
        _ => return None,
    };
    Some(sent_json(resource, patch, mappings))
}

fn sent_json(
    resource: Option<&roster_events::Document>,
    patch: Option<&roster_events::Document>,
    mappings: &[String],
) -> Value {
    let sent = match (resource, patch) {
        (Some(resource), Some(patch)) => {
            let mut doc = resource.to_map();
            crate::mappings::merge(&mut doc, patch.to_map());
            Value::Object(crate::mappings::expression::without_nulls(doc))
        }
        _ => Value::Null,
    };
    json!({"sent": sent, "mappings": mappings})
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

/// What a change to `active` set it to, if the event made one.
fn active_set_to(changes: &[Change]) -> Option<bool> {
    changes.iter().find_map(|c| match c {
        Change::Attribute {
            path, new: Some(v), ..
        } if path == "active" => serde_json::from_str(v.get()).ok(),
        _ => None,
    })
}

/// What the event did to its target, in words.
fn verb(event_type: &str, changes: &[Change]) -> String {
    match (event_type, active_set_to(changes)) {
        ("user.replaced", Some(false)) => "deactivated".into(),
        ("user.replaced", Some(true)) => "reactivated".into(),
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
        ("source.mappings_set", _) => "had its mappings set".into(),
        (t, _) => match t.rsplit('.').next() {
            Some("created") => "created".into(),
            Some("replaced" | "updated") => "updated".into(),
            Some("deleted") => "deleted".into(),
            Some("adopted") => "adopted".into(),
            _ => "changed".into(),
        },
    }
}

/// One event of a record read back from the log.
#[derive(Clone)]
pub struct Stored {
    record: Arc<Record>,
    index: usize,
}

impl Stored {
    /// Event `index` of `record`; None when the record has no such event.
    pub fn new(record: Arc<Record>, index: usize) -> Option<Stored> {
        (index < record.events.len()).then_some(Stored { record, index })
    }

    pub fn envelope(&self) -> &Envelope {
        &self.record.events[self.index]
    }
}

/// An event as the audit API shows it. Serializing it writes its JSON straight out, the
/// changes computed on the way from the stored documents' text (no tree of values is built).
pub struct Rendered {
    entry: Entry,
    partition: u32,
    /// The strings `entry` names (shared by the events of one page).
    strings: Arc<Interner>,
    event: Stored,
    /// The event that set the document this one replaced.
    before: Option<Stored>,
}

impl Rendered {
    pub fn new(
        entry: Entry,
        partition: u32,
        strings: Arc<Interner>,
        event: Stored,
        before: Option<Stored>,
    ) -> Rendered {
        Rendered {
            entry,
            partition,
            strings,
            event,
            before,
        }
    }
}

/// An event as the audit API shows it (the schema of [`Rendered`]).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEvent)]
struct Shown<'a> {
    id: Uuid,
    partition: u32,
    position: u64,
    time: String,
    #[serde(rename = "type")]
    event_type: &'static str,
    display_name: &'static str,
    message: String,
    outcome: &'static str,
    directory: &'a str,
    actor: ShownActor<'a>,
    source: Option<&'a str>,
    client: ShownClient<'a>,
    correlation_id: Option<&'a str>,
    target: Target<'a>,
    /// What the event changed: `{path, old, new}` per attribute, or a member, token or marker
    /// that values are erased or redacted.
    #[schema(value_type = Vec<Object>)]
    changes: Vec<Change<'a>>,
    /// What an audit-only event counted (how many requests, from when to when, and why); the
    /// request an erasure answered and what it could not erase.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ShownActor<'a> {
    kind: &'static str,
    id: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ShownClient<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Target<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a ResourceId,
    name: Option<&'a str>,
    version: u32,
    etag: String,
}

impl utoipa::PartialSchema for Rendered {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <Shown<'static> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Rendered {
    fn name() -> std::borrow::Cow<'static, str> {
        <Shown<'static> as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Shown<'static> as utoipa::ToSchema>::schemas(schemas)
    }
}

impl Serialize for Rendered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, strings) = (&self.entry, &*self.strings);
        let env = self.event.envelope();
        let before = self.before.as_ref().map(|b| &b.envelope().event);
        let states = States::of(&env.event, before);
        let changes = changes(&env.event, before, &states);
        let event_type = e.event_type();
        let kind = resource_type(e.resource_type);
        let name = strings.get(e.name);
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
            _ => {
                let kind = kind.replace('_', " ");
                let target = match name {
                    Some(n) => format!("{kind} {n}"),
                    None => format!("{kind} {}", e.resource),
                };
                let verb = verb(event_type, &changes);
                let actor = actor_words(e, strings);
                (format!("{target} {verb} by {actor}"), "success")
            }
        };
        let details = if env.event.audit_only() || matches!(env.event, Event::UserErased(_)) {
            Some(env.event.payload_json())
        } else {
            sent(&env.event)
        };
        Shown {
            id: env.event_id,
            partition: self.partition,
            position: e.position,
            time: rfc3339(e.time_ms),
            event_type,
            display_name: activity(event_type),
            message,
            outcome,
            directory: &env.directory,
            actor: ShownActor {
                kind: e.actor_kind.as_str(),
                id: strings.get(e.actor),
            },
            source: env.source.as_deref(),
            client: ShownClient {
                token_id: strings.get(e.token),
                ip: strings.get(e.ip),
                user_agent: strings.get(e.user_agent),
            },
            correlation_id: env.correlation_id.as_deref(),
            target: Target {
                kind,
                id: &env.resource_id,
                name,
                version: e.version,
                etag: format!("W/\"{}\"", e.version),
            },
            changes,
            details,
        }
        .serialize(s)
    }
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
        RefusalReason::NoClientCertificate => "no client certificate",
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

    fn shown(changes: &[Change]) -> Value {
        serde_json::to_value(changes).unwrap()
    }

    fn expected(path: &str, old: Value, new: Value) -> Value {
        json!({"path": path, "old": old, "new": new})
    }

    #[test]
    fn a_diff_names_each_changed_attribute_by_its_scim_path() {
        let old = json!({
            "userName": "alice",
            "active": true,
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Sales",
                "manager": {"value": "m1"}
            }
        })
        .to_string();
        let new = json!({
            "userName": "alice",
            "active": false,
            "name": {"givenName": "Alicia", "familyName": "Liddell"},
            "emails": [{"value": "b@x", "type": "work"}],
            "title": "CEO",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Sales",
                "manager": {"value": "m2"}
            }
        })
        .to_string();
        let got = diff(&old, &new);
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(
            shown(&got),
            json!([
                expected("active", json!(true), json!(false)),
                expected(
                    "emails",
                    json!([{"value": "a@x", "type": "work"}]),
                    json!([{"value": "b@x", "type": "work"}])
                ),
                expected("name.givenName", json!("Alice"), json!("Alicia")),
                expected("title", Value::Null, json!("CEO")),
                expected(&format!("{ent}:manager.value"), json!("m1"), json!("m2")),
            ])
        );
        assert_eq!(active_set_to(&got), Some(false));
    }

    #[test]
    fn a_diff_compares_values_not_their_text() {
        // The same values written differently (spacing, an escape, a number's form) are no
        // change; an object that appears or disappears is listed member by member.
        let old = r#"{"a": 1.5, "b": "\u00e9", "c": [1, 2], "gone": {"x": 1}, "keep": null}"#;
        let new = r#"{"a":1.5e0,"b":"é","c":[1,2],"keep":null,"new":{"y":{"z":true}}}"#;
        assert_eq!(
            shown(&diff(old, new)),
            json!([
                expected("gone.x", json!(1), Value::Null),
                expected("new.y.z", Value::Null, json!(true)),
            ])
        );
    }

    #[test]
    fn a_member_name_with_an_escape_is_read() {
        let got = diff("{}", r#"{"na\"me": {"gi\u0076en": "A"}}"#);
        assert_eq!(
            shown(&got),
            json!([expected("na\"me.given", Value::Null, json!("A"))])
        );
    }

    #[test]
    fn a_password_set_shows_no_hash() {
        let e = Event::UserPasswordSet(roster_events::UserPasswordSet {
            hash: roster_events::Personal::Plain("$argon2id$v=19$secret".into()),
        });
        let states = States::of(&e, None);
        let shown = serde_json::to_string(&changes(&e, None, &states)).unwrap();
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("\"redacted\":true"), "{shown}");
    }
}
