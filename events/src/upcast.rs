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
    /// A cheap look at the stored payload text: false when this step leaves the payload as
    /// it is, so that it is decoded straight from its text (replaying old logs stays fast).
    pub changes: fn(&str) -> bool,
}

/// The current schema version of every event type.
pub fn current_schema_version(event_type: &str) -> Option<u32> {
    if !crate::types::EVENT_TYPES.contains(&event_type) {
        return None;
    }
    Some(match event_type {
        "source.created" | "group.created" | "user.password_set" => 2,
        "group.replaced" | "user.created" => 3,
        "user.replaced" => 4,
        _ => 1,
    })
}

/// Every upcaster Roster has shipped.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "source.created",
        from_version: 1,
        upcast: source_created_keeps_undeclared_extensions,
        changes: always,
    },
    Upcaster {
        event_type: "user.replaced",
        from_version: 1,
        upcast: extension_under_its_urn,
        changes: may_hold_a_split_urn,
    },
    Upcaster {
        event_type: "group.replaced",
        from_version: 1,
        upcast: extension_under_its_urn,
        changes: may_hold_a_split_urn,
    },
    // Personal data may be sealed from these versions on (docs/adr/0014); a clear value
    // reads as it did.
    Upcaster {
        event_type: "user.created",
        from_version: 1,
        upcast: unchanged,
        changes: never,
    },
    Upcaster {
        event_type: "user.replaced",
        from_version: 2,
        upcast: unchanged,
        changes: never,
    },
    Upcaster {
        event_type: "user.password_set",
        from_version: 1,
        upcast: unchanged,
        changes: never,
    },
    // What a source sent when its mappings changed it (`mapped`) may follow from these
    // versions on; a payload without it reads as it did.
    Upcaster {
        event_type: "user.created",
        from_version: 2,
        upcast: unchanged,
        changes: never,
    },
    Upcaster {
        event_type: "user.replaced",
        from_version: 3,
        upcast: unchanged,
        changes: never,
    },
    Upcaster {
        event_type: "group.created",
        from_version: 1,
        upcast: unchanged,
        changes: never,
    },
    Upcaster {
        event_type: "group.replaced",
        from_version: 2,
        upcast: unchanged,
        changes: never,
    },
];

fn always(_: &str) -> bool {
    true
}

fn never(_: &str) -> bool {
    false
}

fn unchanged(v: Value) -> Result<Value, String> {
    Ok(v)
}

/// Sources created before schema 2 stored attributes of undeclared extensions as sent.
fn source_created_keeps_undeclared_extensions(mut v: Value) -> Result<Value, String> {
    v.as_object_mut()
        .ok_or("source.created payload is not an object")?
        .insert("undeclared_extensions".into(), "keep".into());
    Ok(v)
}

/// The last part of an extension URN that an older release's PATCH split off: a whole
/// extension set by its URN (`...:enterprise:2.0:User`) was stored under `...:enterprise:2.0`
/// as an attribute called `User`.
const SPLIT_PARTS: [&str; 2] = ["User", "Group"];

fn may_hold_a_split_urn(raw: &str) -> bool {
    SPLIT_PARTS
        .iter()
        .any(|p| raw.contains(&format!("{{\"{p}\":")))
}

/// Moves an extension stored under a split URN back under its whole URN (merging with what
/// is already there, which wins), and names it in `schemas` instead of the split part.
fn extension_under_its_urn(mut v: Value) -> Result<Value, String> {
    let doc = v
        .get_mut("resource")
        .and_then(Value::as_object_mut)
        .ok_or("replaced payload has no resource object")?;
    let split: Vec<(String, String)> = doc
        .iter()
        .filter(|(k, _)| k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")))
        .filter_map(|(k, v)| {
            let inner = v.as_object()?;
            let part = inner
                .iter()
                .find(|(ik, iv)| {
                    iv.is_object() && SPLIT_PARTS.iter().any(|p| p.eq_ignore_ascii_case(ik))
                })
                .map(|(ik, _)| ik.clone())?;
            Some((k.clone(), part))
        })
        .collect();
    for (urn, part) in split {
        let whole = format!("{urn}:{part}");
        let Some(Value::Object(mut outer)) = doc.remove(&urn) else {
            continue;
        };
        let Some(Value::Object(moved)) = outer.remove(&part) else {
            continue;
        };
        if !outer.is_empty() {
            doc.insert(urn.clone(), Value::Object(outer));
        }
        let target = doc
            .entry(whole.clone())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(t) = target {
            for (k, x) in moved {
                t.entry(k).or_insert(x);
            }
        }
        let still_used = doc.contains_key(&urn);
        if let Some(Value::Array(schemas)) = doc.get_mut("schemas") {
            schemas.retain(|s| still_used || s.as_str() != Some(urn.as_str()));
            if !schemas.iter().any(|s| s.as_str() == Some(whole.as_str())) {
                schemas.push(Value::String(whole));
            }
        }
    }
    Ok(v)
}

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
            changes: always,
        },
        Upcaster {
            event_type: "x.made",
            from_version: 2,
            upcast: add_kind,
            changes: always,
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
    fn a_split_extension_urn_is_put_back_under_the_whole_urn() {
        const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0";
        let stored = json!({"resource": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
            "userName": "ada",
            EXT: {"User": {"employeeNumber": "7"}}
        }});
        assert!(may_hold_a_split_urn(&stored.to_string()));
        let out = extension_under_its_urn(stored).unwrap();
        assert_eq!(
            out,
            json!({"resource": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", format!("{EXT}:User")],
                "userName": "ada",
                format!("{EXT}:User"): {"employeeNumber": "7"}
            }})
        );
        let fine = json!({"resource": {"userName": "ada", "name": {"givenName": "A"}}});
        assert!(!may_hold_a_split_urn(&fine.to_string()));
        assert_eq!(extension_under_its_urn(fine.clone()).unwrap(), fine);
    }

    #[test]
    fn a_missing_step_or_a_future_version_is_an_error() {
        assert!(upcast_with(CHAIN, "y.made", 1, 2, json!({})).is_err());
        assert!(upcast_with(CHAIN, "x.made", 4, 3, json!({})).is_err());
    }
}
