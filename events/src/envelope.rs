//! The envelope every event travels in, and its stored JSON form.

use crate::ids::ResourceId;
use crate::types::Event;
use crate::upcast::{current_schema_version, upcast_with, UPCASTERS};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// What kind of resource an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Directory,
    AdminToken,
    Source,
    User,
    Group,
    Provider,
    /// A property mapping.
    Mapping,
    /// A request, for audit-only events (a refused request, a read of the audit trail): each
    /// record of them has an id of its own, at version 1.
    Request,
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A source's service account, writing over SCIM.
    Source(String),
    /// An operator, identified by the admin token's id.
    Admin(String),
    /// Roster itself (first start, internal bookkeeping).
    System,
    /// A client that did not prove who it is (a refused request).
    Anonymous,
}

/// The client a request came from, as the server saw it: recorded with every event the
/// request caused, for the audit trail. Absent from events written before it was recorded,
/// and from events Roster causes itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The id of the bearer token the request was authenticated with (a source token's or an
    /// admin token's id, `config` for the configured admin token); never the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The address of the peer that connected (a proxy's, when there is one in front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::IpAddr>,
    /// The `User-Agent` header, cut to 256 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// One event with everything needed to audit and replay it.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// UUIDv7, unique for every event.
    pub event_id: Uuid,
    pub directory: String,
    pub resource_type: ResourceType,
    pub resource_id: ResourceId,
    /// Per resource, 1 for its first event and +1 for each later one; it is the ETag.
    pub resource_version: u64,
    pub time: DateTime<Utc>,
    pub actor: Actor,
    /// The source slug through which the change came, if any.
    pub source: Option<String>,
    /// The request that caused the event.
    pub correlation_id: Option<String>,
    /// The client the request came from.
    pub client: Option<Client>,
    pub event: Event,
}

/// Why a stored event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed event JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("cannot upcast {event_type}: {reason}")]
    Upcast { event_type: String, reason: String },
}

#[derive(Serialize)]
struct StoredOut<'a> {
    event_id: Uuid,
    directory: &'a str,
    resource_type: ResourceType,
    resource_id: ResourceId,
    resource_version: u64,
    event_type: &'static str,
    schema_version: u32,
    time: DateTime<Utc>,
    actor: &'a Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a Client>,
    payload: serde_json::Value,
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let event_type = self.event.event_type();
        StoredOut {
            event_id: self.event_id,
            directory: &self.directory,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            resource_version: self.resource_version,
            event_type,
            schema_version: current_schema_version(event_type).unwrap_or(1),
            time: self.time,
            actor: &self.actor,
            source: self.source.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            client: self.client.as_ref(),
            payload: self.event.payload_json(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    EventId,
    Directory,
    ResourceType,
    ResourceId,
    ResourceVersion,
    EventType,
    SchemaVersion,
    Time,
    Actor,
    Source,
    CorrelationId,
    Client,
    Payload,
    #[serde(other)]
    Unknown,
}

/// Decodes an envelope in one pass. Roster writes `event_type` and `schema_version` before
/// `payload`, so a current-version payload is decoded in place, straight into its type; in any
/// other order, or for an older version, the payload is kept raw, then upcast and decoded.
struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event envelope")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        use serde::de::Error;
        let mut event_id = None;
        let mut directory = None;
        let mut resource_type = None;
        let mut resource_id = None;
        let mut resource_version = None;
        let mut event_type: Option<String> = None;
        let mut schema_version: Option<u32> = None;
        let mut time = None;
        let mut actor = None;
        let mut source = None;
        let mut correlation_id = None;
        let mut client = None;
        let mut event = None;
        let mut raw: Option<Box<RawValue>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::EventId => event_id = Some(map.next_value()?),
                Field::Directory => directory = Some(map.next_value()?),
                Field::ResourceType => resource_type = Some(map.next_value()?),
                Field::ResourceId => resource_id = Some(map.next_value()?),
                Field::ResourceVersion => resource_version = Some(map.next_value()?),
                Field::EventType => event_type = Some(map.next_value()?),
                Field::SchemaVersion => schema_version = Some(map.next_value()?),
                Field::Time => time = Some(map.next_value()?),
                Field::Actor => actor = Some(map.next_value()?),
                Field::Source => source = map.next_value()?,
                Field::CorrelationId => correlation_id = map.next_value()?,
                Field::Client => client = map.next_value()?,
                Field::Payload => {
                    let current = event_type.as_deref().and_then(current_schema_version);
                    match (&event_type, current) {
                        (Some(t), Some(c)) if schema_version == Some(c) => {
                            event = Some(map.next_value_seed(PayloadSeed(t))?);
                        }
                        _ => raw = Some(map.next_value()?),
                    }
                }
                Field::Unknown => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = |f: &'static str| A::Error::missing_field(f);
        let event_type = event_type.ok_or_else(|| missing("event_type"))?;
        let event = match event {
            Some(e) => e,
            None => {
                let raw = raw.ok_or_else(|| missing("payload"))?;
                let version = schema_version.ok_or_else(|| missing("schema_version"))?;
                decode_payload(&event_type, version, raw.get()).map_err(A::Error::custom)?
            }
        };
        Ok(Envelope {
            event_id: event_id.ok_or_else(|| missing("event_id"))?,
            directory: directory.ok_or_else(|| missing("directory"))?,
            resource_type: resource_type.ok_or_else(|| missing("resource_type"))?,
            resource_id: resource_id.ok_or_else(|| missing("resource_id"))?,
            resource_version: resource_version.ok_or_else(|| missing("resource_version"))?,
            time: time.ok_or_else(|| missing("time"))?,
            actor: actor.ok_or_else(|| missing("actor"))?,
            source,
            correlation_id,
            client,
            event,
        })
    }
}

struct PayloadSeed<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Event;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Event, D::Error> {
        Event::deserialize_payload(self.0, d)
    }
}

/// Decodes a raw payload of `event_type` stored at `version`, upcasting it if it is older
/// than the current version.
fn decode_payload(event_type: &str, version: u32, raw: &str) -> Result<Event, DecodeError> {
    let current = current_schema_version(event_type)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    let unchanged = (version..current).all(|v| {
        UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == v)
            .is_some_and(|u| !(u.changes)(raw))
    });
    if version == current || (version < current && unchanged) {
        // Straight from the text, so documents keep their stored text exactly.
        let mut de = serde_json::Deserializer::from_str(raw);
        let event = Event::deserialize_payload(event_type, &mut de)?;
        de.end()?;
        return Ok(event);
    }
    let value: serde_json::Value = serde_json::from_str(raw)?;
    let payload =
        upcast_with(UPCASTERS, event_type, version, current, value).map_err(|reason| {
            DecodeError::Upcast {
                event_type: event_type.to_owned(),
                reason,
            }
        })?;
    Ok(Event::from_payload(event_type, payload)?)
}

impl Envelope {
    /// Decodes one stored event (JSON), upcasting it to the current schema version.
    ///
    /// Fails when the JSON is malformed, the type is unknown, or no upcaster chain reaches the
    /// current version.
    pub fn decode(json: &str) -> Result<Envelope, DecodeError> {
        Ok(serde_json::from_str(json)?)
    }
}
