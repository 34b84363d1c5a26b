//! What the audit trail keeps of each event, whichever store keeps it: the fields a search
//! filters on ([`Facts`], read from the envelope once), and the two facts that depend on the
//! events before it ([`Lineage`]): the resource's name at that moment and the event that last
//! set its whole document (whose document the changes are computed against). The memory index
//! and the PostgreSQL audit projection both fold with these, so that they answer alike.

use roster_events::{Actor, Envelope, Event, ResourceType, EVENT_TYPES};

/// What a source's, an admin's, Roster's own or an unauthenticated action looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ActorKind {
    Source,
    Admin,
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Source => "source",
            ActorKind::Admin => "admin",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    /// The kind [`ActorKind::as_str`] names.
    pub fn parse(s: &str) -> Option<ActorKind> {
        [
            ActorKind::Source,
            ActorKind::Admin,
            ActorKind::System,
            ActorKind::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The name of a resource type as the audit trail shows it.
pub fn resource_type_name(t: ResourceType) -> &'static str {
    match t {
        ResourceType::Directory => "directory",
        ResourceType::AdminToken => "admin_token",
        ResourceType::Source => "source",
        ResourceType::User => "user",
        ResourceType::Group => "group",
        ResourceType::Provider => "provider",
        ResourceType::Mapping => "mapping",
        ResourceType::Request => "request",
    }
}

/// The resource type [`resource_type_name`] names.
pub fn parse_resource_type(s: &str) -> Option<ResourceType> {
    [
        ResourceType::Directory,
        ResourceType::AdminToken,
        ResourceType::Source,
        ResourceType::User,
        ResourceType::Group,
        ResourceType::Provider,
        ResourceType::Mapping,
        ResourceType::Request,
    ]
    .into_iter()
    .find(|t| resource_type_name(*t) == s)
}

/// The key a request id is found by: a 64-bit hash of it (0 for none). Request ids are unique
/// per request, so keeping each as a string would cost more than the rest of an entry.
pub fn correlation_key(id: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(id) = id else { return 0 };
    // SipHash with fixed keys: the same in every process and release.
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish().max(1)
}

/// The fields of one event a search filters on, read from its envelope.
pub struct Facts<'a> {
    /// Index into [`EVENT_TYPES`].
    pub kind: u8,
    pub time_ms: i64,
    /// The resource's version after the event (its ETag).
    pub version: u32,
    pub actor_kind: ActorKind,
    pub actor: Option<&'a str>,
    pub directory: &'a str,
    pub source: Option<&'a str>,
    pub token: Option<&'a str>,
    pub ip: Option<String>,
    pub user_agent: Option<&'a str>,
    pub correlation: u64,
    /// The name the event gives its resource, if it names it.
    pub name: Option<String>,
    /// Whether the event sets its resource's whole document.
    pub sets_document: bool,
}

impl<'a> Facts<'a> {
    pub fn of(env: &'a Envelope) -> Facts<'a> {
        let (actor_kind, actor) = match &env.actor {
            Actor::Source(a) => (ActorKind::Source, Some(a.as_str())),
            Actor::Admin(a) => (ActorKind::Admin, Some(a.as_str())),
            Actor::System => (ActorKind::System, None),
            Actor::Anonymous => (ActorKind::Anonymous, None),
        };
        let client = env.client.as_ref();
        let event_type = env.event.event_type();
        Facts {
            kind: kind_of(event_type),
            time_ms: env.time.timestamp_millis(),
            version: u32::try_from(env.resource_version).unwrap_or(u32::MAX),
            actor_kind,
            actor,
            directory: &env.directory,
            source: env.source.as_deref(),
            token: client.and_then(|c| c.token_id.as_deref()),
            ip: client.and_then(|c| c.ip).map(|ip| ip.to_string()),
            user_agent: client.and_then(|c| c.user_agent.as_deref()),
            correlation: correlation_key(env.correlation_id.as_deref()),
            name: name_of(&env.event),
            sets_document: sets_document(event_type),
        }
    }
}

/// The index of `event_type` in [`EVENT_TYPES`] (0 for a type it does not list, which every
/// type Roster writes is).
pub fn kind_of(event_type: &str) -> u8 {
    EVENT_TYPES
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or_default() as u8
}

/// Whether an event of this type sets its resource's whole document (users, groups,
/// providers, mappings).
pub fn sets_document(event_type: &str) -> bool {
    matches!(
        event_type,
        "user.created"
            | "user.replaced"
            | "group.created"
            | "group.replaced"
            | "provider.created"
            | "provider.updated"
            | "mapping.created"
            | "mapping.updated"
    )
}

/// Whether an event of this type is the first of its resource: one whose id Roster has just
/// drawn (a UUIDv7, never used before), so no earlier event names it.
pub fn begins(event_type: &str) -> bool {
    matches!(
        event_type,
        "user.created" | "group.created" | "access.refused" | "audit.read"
    )
}

/// What the audit trail remembers of one resource between its events: its current name and
/// the entry of the event that last set its document. `N` is how a store holds a name, `E`
/// how it numbers entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lineage<N, E> {
    pub name: Option<N>,
    pub document: Option<E>,
}

impl<N: Clone, E: Copy> Lineage<N, E> {
    /// Takes the event numbered `this` into account; returns the name the resource has at
    /// that event and the entry whose document it replaced.
    pub fn step(
        &mut self,
        this: E,
        name: Option<N>,
        sets_document: bool,
    ) -> (Option<N>, Option<E>) {
        if name.is_some() {
            self.name = name;
        }
        let previous = self.document;
        if sets_document {
            self.document = Some(this);
        }
        (self.name.clone(), previous)
    }
}

/// The name a resource takes from `event`, if the event names it: a user's userName, a
/// group's displayName, a source's slug, a provider's or a directory's name, an admin token's
/// prefix, the request of an audit-only event.
fn name_of(event: &Event) -> Option<String> {
    /// The naming attributes of a stored document; the rest is not decoded.
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(rename = "userName")]
        user_name: Option<String>,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
    }
    let names = |doc: &roster_events::Document| doc.fields::<Names>().ok();
    match event {
        Event::UserCreated(e) => names(e.resource.value()?)?.user_name,
        Event::UserReplaced(e) => names(e.resource.value()?)?.user_name,
        Event::GroupCreated(e) => names(&e.resource)?.display_name,
        Event::GroupReplaced(e) => names(&e.resource)?.display_name,
        Event::SourceCreated(e) => Some(e.slug.clone()),
        Event::ProviderCreated(e) => Some(e.config.name.clone()),
        Event::ProviderUpdated(e) => Some(e.config.name.clone()),
        Event::MappingCreated(e) => Some(e.mapping.name.clone()),
        Event::MappingUpdated(e) => Some(e.mapping.name.clone()),
        Event::DirectoryCreated(e) => Some(e.name.clone()),
        Event::AdminTokenIssued(e) => Some(format!("{}…", e.prefix)),
        Event::AccessRefused(e) => Some(format!("{} {}", e.method, e.path)),
        Event::AuditRead(e) => Some(e.path.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_kinds_and_types_read_back() {
        for k in [
            ActorKind::Source,
            ActorKind::Admin,
            ActorKind::System,
            ActorKind::Anonymous,
        ] {
            assert_eq!(ActorKind::parse(k.as_str()), Some(k));
        }
        for t in ["user", "group", "request", "admin_token"] {
            assert_eq!(parse_resource_type(t).map(resource_type_name), Some(t));
        }
        assert_eq!(parse_resource_type("User"), None);
    }

    #[test]
    fn a_lineage_keeps_the_last_name_and_document() {
        let mut l: Lineage<String, u32> = Lineage::default();
        assert_eq!(l.step(0, Some("a".into()), true), (Some("a".into()), None));
        assert_eq!(l.step(1, None, false), (Some("a".into()), Some(0)));
        assert_eq!(
            l.step(2, Some("b".into()), true),
            (Some("b".into()), Some(0))
        );
        assert_eq!(l.step(3, None, false), (Some("b".into()), Some(2)));
    }
}
