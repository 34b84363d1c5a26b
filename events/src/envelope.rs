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
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A source's service account, writing over SCIM.
    Source(String),
    /// An operator, identified by the admin token's id.
    Admin(String),
    /// Roster itself (first start, internal bookkeeping).
    System,
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
    payload: serde_json::Value,
}

#[derive(Deserialize)]
struct StoredIn<'a> {
    event_id: Uuid,
    directory: String,
    resource_type: ResourceType,
    resource_id: ResourceId,
    resource_version: u64,
    #[serde(borrow)]
    event_type: std::borrow::Cow<'a, str>,
    schema_version: u32,
    time: DateTime<Utc>,
    actor: Actor,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(borrow)]
    payload: &'a RawValue,
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
            payload: self.event.payload_json(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = StoredIn::deserialize(d)?;
        Envelope::from_stored(stored).map_err(D::Error::custom)
    }
}

impl Envelope {
    fn from_stored(s: StoredIn<'_>) -> Result<Envelope, DecodeError> {
        let event_type = s.event_type.as_ref();
        let current = current_schema_version(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        let event = if s.schema_version == current {
            // The common case: decode straight from the raw bytes.
            Event::from_payload_str(event_type, s.payload.get())?
        } else {
            let raw: serde_json::Value = serde_json::from_str(s.payload.get())?;
            let payload = upcast_with(UPCASTERS, event_type, s.schema_version, current, raw)
                .map_err(|reason| DecodeError::Upcast {
                    event_type: event_type.to_owned(),
                    reason,
                })?;
            Event::from_payload(event_type, payload)?
        };
        Ok(Envelope {
            event_id: s.event_id,
            directory: s.directory,
            resource_type: s.resource_type,
            resource_id: s.resource_id,
            resource_version: s.resource_version,
            time: s.time,
            actor: s.actor,
            source: s.source,
            correlation_id: s.correlation_id,
            event,
        })
    }

    /// Decodes one stored event (JSON), upcasting it to the current schema version.
    ///
    /// Fails when the JSON is malformed, the type is unknown, or no upcaster chain reaches the
    /// current version.
    pub fn decode(json: &str) -> Result<Envelope, DecodeError> {
        let stored: StoredIn<'_> = serde_json::from_str(json)?;
        Envelope::from_stored(stored)
    }
}
