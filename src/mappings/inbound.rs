//! A source's mappings run on a user or group it writes, before the write is decided: the
//! document it sent first, then each mapping of the object's kind in the source's order, its
//! attributes deep-merged over what came before (a null removes an attribute). A mapping may
//! refuse the object (`skip`). What no source mapping may produce: `id`, `meta`, a password,
//! or a group's members (those are Roster's, or the request's as sent). The result is checked
//! against the source's schemas, as what the source sent was. The write path and the admin
//! API's preview both go through `steps` and `reshape`.

use super::expression::without_nulls;
use super::{merge, Expression, Needs, Outcome, Variables};
use roster_events::{MappingDef, MappingKind};
use roster_projections::schema::{Checked, ResourceSchemas};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One of the source's mappings, compiled.
pub struct Step<'a> {
    pub name: &'a str,
    pub expression: Arc<Expression>,
}

/// What the mappings made of the document.
#[derive(Debug, PartialEq)]
enum Shaped {
    /// The document as sent is what is stored.
    Unchanged,
    /// The document to store instead.
    Changed(Map<String, Value>),
    /// The named mapping refused the object.
    Refused(String),
}

/// A mapping failed on the object, or produced what no source mapping may.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("mapping {mapping:?}: {message}")]
pub struct Failed {
    pub mapping: String,
    pub message: String,
}

/// The mappings of `kind` among a source's `names`, compiled, in the source's order;
/// `defined` finds a mapping of the source's directory by name.
///
/// Fails, naming the mapping, when one is not defined or its stored expression no longer
/// compiles.
pub fn steps<'a>(
    names: &'a [String],
    kind: MappingKind,
    defined: impl Fn(&str) -> Option<&'a MappingDef>,
) -> Result<Vec<Step<'a>>, Failed> {
    let mut steps = Vec::new();
    for name in names {
        let failed = |message: String| Failed {
            mapping: name.clone(),
            message,
        };
        let def = defined(name).ok_or_else(|| failed("is not defined".into()))?;
        if def.kind != kind {
            continue;
        }
        let expression = Expression::cached(&def.expression)
            .map_err(|e| failed(format!("does not compile: {e}")))?;
        steps.push(Step { name, expression });
    }
    Ok(steps)
}

/// Why a source's mappings refuse a write.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// A mapping returned `skip`.
    #[error("mapping {0:?} refuses it")]
    Skipped(String),
    #[error(transparent)]
    Failed(Failed),
    /// The mappings' result is not a valid object of the source.
    #[error("what the mappings ({}) made of it is not valid: {detail}", .mappings.join(", "))]
    Invalid {
        mappings: Vec<String>,
        detail: String,
    },
}

/// What `steps` make of `sent`, checked against the source's `schemas` (only what they
/// changed is checked again): None when the result is what was sent.
///
/// Fails when a mapping refuses or fails, or the result is not valid.
pub fn reshape(
    kind: MappingKind,
    steps: &[Step<'_>],
    slug: &str,
    sent: &Checked,
    id: Option<&str>,
    existing: Option<&Value>,
    schemas: &ResourceSchemas<'_>,
) -> Result<Option<Checked>, Refusal> {
    let doc = match run(kind, steps, slug, sent.as_map(), id, existing) {
        Err(e) => return Err(Refusal::Failed(e)),
        Ok(Shaped::Unchanged) => return Ok(None),
        Ok(Shaped::Refused(name)) => return Err(Refusal::Skipped(name)),
        Ok(Shaped::Changed(doc)) => doc,
    };
    let checked = schemas
        .check_changes(doc, sent)
        .map_err(|e| Refusal::Invalid {
            mappings: steps.iter().map(|s| s.name.to_owned()).collect(),
            detail: e.detail,
        })?;
    Ok((checked != *sent).then_some(checked))
}

/// The members no source mapping may set, compared without case.
const ROSTERS: &[&str] = &["id", "meta", "password", "members"];

/// Runs `steps` (mappings of `kind`, a source kind) on `sent`, the document a source named
/// `slug` sent. `id` is the object's id when it exists, `existing` the stored object before
/// this write (as [`super::user_object`] or [`super::group_object`] give it).
///
/// Fails, naming the mapping, when one fails or sets a member that is Roster's.
fn run(
    kind: MappingKind,
    steps: &[Step<'_>],
    slug: &str,
    sent: &Map<String, Value>,
    id: Option<&str>,
    existing: Option<&Value>,
) -> Result<Shaped, Failed> {
    if steps.is_empty() {
        return Ok(Shaped::Unchanged);
    }
    let mut object = sent.clone();
    if let Some(id) = id {
        object.insert("id".into(), Value::from(id));
    }
    let object = Value::Object(object);
    let vars = Variables {
        kind,
        object: &object,
        existing,
        source: Some(slug),
        provider: None,
    };
    let failed = |name: &str, message: String| Failed {
        mapping: name.to_owned(),
        message,
    };
    let union;
    let needs = match steps {
        [one] => one.expression.needs(),
        _ => {
            union = Needs::union(steps.iter().map(|s| s.expression.needs()));
            &union
        }
    };
    let bindings = vars.bindings(needs);
    let mut out = sent.clone();
    for step in steps {
        let attributes = match step.expression.evaluate_in(&bindings) {
            Ok(Outcome::Skip) => return Ok(Shaped::Refused(step.name.to_owned())),
            Ok(Outcome::Attributes(a)) => a,
            Err(e) => return Err(failed(step.name, e.to_string())),
        };
        if let Some(k) = attributes
            .keys()
            .find(|k| ROSTERS.iter().any(|r| r.eq_ignore_ascii_case(k)))
        {
            return Err(failed(
                step.name,
                format!("a source's mapping cannot set {k:?}"),
            ));
        }
        merge(&mut out, attributes);
    }
    let out = without_nulls(out);
    if out == *sent {
        return Ok(Shaped::Unchanged);
    }
    Ok(Shaped::Changed(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(list: &[(&'static str, &str)]) -> Vec<Step<'static>> {
        list.iter()
            .map(|(name, e)| Step {
                name,
                expression: Expression::cached(e).unwrap(),
            })
            .collect()
    }

    fn sent() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "Adele.Vance@Contoso.example",
            "name": {"givenName": "Adele", "familyName": "Vance"},
            "title": "Manager"
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn run_users(list: &[(&'static str, &str)]) -> Result<Shaped, Failed> {
        run(
            MappingKind::SourceUser,
            &steps(list),
            "entra",
            &sent(),
            None,
            None,
        )
    }

    #[test]
    fn mappings_merge_in_order_over_what_was_sent() {
        let out = run_users(&[
            ("lower", "{'userName': user.userName.lowerAscii()}"),
            (
                "names",
                "{'name': {'formatted': user.name.givenName + ' ' + user.name.familyName}, \
                 'title': null, 'displayName': source.slug}",
            ),
        ])
        .unwrap();
        let Shaped::Changed(doc) = out else {
            panic!("{out:?}")
        };
        assert_eq!(doc["userName"], "adele.vance@contoso.example");
        assert_eq!(doc["name"]["givenName"], "Adele");
        assert_eq!(doc["name"]["formatted"], "Adele Vance");
        assert_eq!(doc["displayName"], "entra");
        assert!(!doc.contains_key("title"));
    }

    #[test]
    fn a_mapping_that_changes_nothing_leaves_the_document_as_sent() {
        assert_eq!(
            run_users(&[("same", "{'userName': user.userName}")]).unwrap(),
            Shaped::Unchanged
        );
        assert_eq!(run_users(&[]).unwrap(), Shaped::Unchanged);
    }

    #[test]
    fn skip_refuses_the_object_naming_the_mapping() {
        let out = run_users(&[
            ("first", "{'title': 'x'}"),
            ("no-managers", "user.title == 'Manager' ? skip : {}"),
        ]);
        assert_eq!(out.unwrap(), Shaped::Refused("no-managers".into()));
    }

    #[test]
    fn what_is_rosters_cannot_be_set() {
        for key in ["id", "Meta", "password", "members"] {
            let e = run_users(&[("bad", &format!("{{'{key}': 'x'}}"))]).unwrap_err();
            assert_eq!(e.mapping, "bad");
            assert!(e.message.contains(key), "{e}");
        }
    }

    #[test]
    fn a_failure_names_the_mapping() {
        let e = run_users(&[("ok", "{}"), ("broken", "{'a': user.nothing.here}")]).unwrap_err();
        assert_eq!(e.mapping, "broken");
    }

    #[test]
    fn existing_and_the_id_are_seen_on_a_replacement() {
        let existing = json!({"id": "u1", "userName": "old@contoso.example", "title": "Boss"});
        let out = run(
            MappingKind::SourceUser,
            &steps(&[(
                "keep-title",
                "has(existing.title) && !has(user.title) ? {'title': existing.title} : {'nickName': user.id}",
            )]),
            "entra",
            &sent(),
            Some("u1"),
            Some(&existing),
        )
        .unwrap();
        let Shaped::Changed(doc) = out else {
            panic!("{out:?}")
        };
        assert_eq!(doc["nickName"], "u1");
        assert!(!doc.contains_key("id"));
    }

    #[test]
    fn a_merge_patch_turns_the_stored_document_back_into_what_was_sent() {
        let cases = [
            (
                json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}),
                json!({"a": 1, "b": {"c": 4}, "f": "x"}),
            ),
            (json!({"a": {"b": {"c": 1}}}), json!({"a": 2})),
            (json!({"a": 2}), json!({"a": {"b": [1, 2]}})),
            (json!({}), json!({"x": {"y": true}})),
            (json!({"x": [1, 2]}), json!({})),
        ];
        for (from, to) in cases {
            let (from, to) = (from.as_object().unwrap(), to.as_object().unwrap());
            let patch = super::super::merge_patch(from, to);
            let mut back = from.clone();
            merge(&mut back, patch);
            assert_eq!(&without_nulls(back), to);
        }
    }
}
