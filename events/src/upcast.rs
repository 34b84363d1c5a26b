//! Schema versions and upcasters. A shipped event schema is never edited: a change adds a new
//! version to `CURRENT` and an upcaster from the previous one to `UPCASTERS`. Decoding runs the
//! chain of upcasters until the payload is at the current version, so stored events of every
//! released version keep decoding (the golden fixtures in `fixtures/` prove it).

use serde_json::Value;

/// One step: turns the payload of `event_type` at `from_version` into `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// The current schema version of every event type. Every type is at version 1 so far.
pub fn current_schema_version(event_type: &str) -> Option<u32> {
    crate::types::EVENT_TYPES.contains(&event_type).then_some(1)
}

/// Every upcaster Roster has shipped. Empty while every type is still at version 1.
pub const UPCASTERS: &[Upcaster] = &[];

/// Brings `payload` from `version` to `target` with the upcasters in `chain`.
pub(crate) fn upcast_with(
    chain: &[Upcaster],
    event_type: &str,
    mut version: u32,
    target: u32,
    mut payload: Value,
) -> Result<Value, String> {
    while version < target {
        let step = chain
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| format!("no upcaster for {event_type} v{version}"))?;
        payload = (step.upcast)(payload)?;
        version += 1;
    }
    if version > target {
        return Err(format!(
            "{event_type} v{version} is newer than this release understands (v{target})"
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_title(mut v: Value) -> Result<Value, String> {
        let obj = v.as_object_mut().ok_or("not an object")?;
        if let Some(t) = obj.remove("title") {
            obj.insert("name".into(), t);
        }
        Ok(v)
    }

    fn add_kind(mut v: Value) -> Result<Value, String> {
        v.as_object_mut()
            .ok_or("not an object")?
            .insert("kind".into(), json!("plain"));
        Ok(v)
    }

    const CHAIN: &[Upcaster] = &[
        Upcaster {
            event_type: "x.made",
            from_version: 1,
            upcast: rename_title,
        },
        Upcaster {
            event_type: "x.made",
            from_version: 2,
            upcast: add_kind,
        },
    ];

    #[test]
    fn a_chain_of_upcasters_runs_in_order_up_to_the_target() {
        let out = upcast_with(CHAIN, "x.made", 1, 3, json!({"title": "a"})).unwrap();
        assert_eq!(out, json!({"name": "a", "kind": "plain"}));
        let out = upcast_with(CHAIN, "x.made", 2, 3, json!({"name": "b"})).unwrap();
        assert_eq!(out, json!({"name": "b", "kind": "plain"}));
    }

    #[test]
    fn a_missing_step_or_a_future_version_is_an_error() {
        assert!(upcast_with(CHAIN, "y.made", 1, 2, json!({})).is_err());
        assert!(upcast_with(CHAIN, "x.made", 4, 3, json!({})).is_err());
    }
}
