//! Helpers shared by this crate's unit tests: an event of directory `d` as the fold sees it.

use chrono::Utc;
use roster_events::{Actor, Envelope, Event, ResourceId, ResourceType};

/// `event` on resource `id` (of type `rt`) at `version`, in directory `d`, by the system.
pub(crate) fn env(rt: ResourceType, id: ResourceId, version: u64, event: Event) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7(),
        directory: "d".into(),
        resource_type: rt,
        resource_id: id,
        resource_version: version,
        time: Utc::now(),
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
        event,
    }
}
