//! A group's members in a PATCH: operations on `members` taken out of the request and kept as
//! set operations, so that a change to a group of any size costs what it changes, never a copy
//! of the whole member list as JSON. The same parsing reads the member list of a POST or PUT.

use super::{err, OpKind, PatchError, PatchOp};
use roster_projections::filter::{get_ci, Filter, Op};
use serde_json::Value;

/// A member as a client referred to it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRef {
    pub value: String,
    /// `User` or `Group` if the client said.
    pub kind: Option<String>,
}

/// One change to a group's member set.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberOp {
    /// Add these (members already there stay as they are).
    Add(Vec<MemberRef>),
    /// Remove the members with these values; values that are no member change nothing.
    Remove(Vec<String>),
    /// Remove the members the filter matches (`members[type eq "Group"]`); each member is
    /// seen as `{"value": id, "type": "User"|"Group"}`.
    RemoveWhere(Filter),
    /// Remove every member.
    Clear,
    /// The members become exactly these.
    Replace(Vec<MemberRef>),
}

/// Reads a member list: an array of objects with a string `value` (an id) and an optional
/// `type`; `display` and `$ref` are read-only and ignored. A single object is one member.
///
/// Fails with `invalidValue` naming what is wrong.
pub fn refs(v: &Value) -> Result<Vec<MemberRef>, PatchError> {
    let one = |m: &Value| -> Result<MemberRef, PatchError> {
        let Some(o) = m.as_object() else {
            return err("invalidValue", "a member must be an object with a value");
        };
        let Some(Value::String(value)) = get_ci(o, "value") else {
            return err("invalidValue", "every member needs a string value");
        };
        let kind = match get_ci(o, "type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return err("invalidValue", "a member's type must be a string"),
        };
        Ok(MemberRef {
            value: value.clone(),
            kind,
        })
    };
    match v {
        Value::Array(items) => items.iter().filter(|m| !m.is_null()).map(one).collect(),
        Value::Null => Ok(vec![]),
        o @ Value::Object(_) => Ok(vec![one(o)?]),
        _ => err("invalidValue", "members must be an array"),
    }
}

/// The value a filter of exactly `value eq "<id>"` names.
fn value_eq(f: &Filter) -> Option<String> {
    match f {
        Filter::Compare {
            path,
            op: Op::Eq,
            value: Value::String(s),
        } if path.is("value") => Some(s.clone()),
        _ => None,
    }
}

/// Splits a group's checked operations into those on its document and those on its members.
///
/// Fails with `invalidPath` for a member operation that names a member's sub-attribute (they
/// are immutable) or filters an add, and `invalidValue` for a member list that does not read.
pub fn split_members(ops: Vec<PatchOp>) -> Result<(Vec<PatchOp>, Vec<MemberOp>), PatchError> {
    let mut doc = Vec::new();
    let mut members = Vec::new();
    for op in ops {
        let Some(path) = op
            .path
            .as_ref()
            .filter(|p| p.attr.schema.is_none() && p.attr.attr.eq_ignore_ascii_case("members"))
        else {
            doc.push(op);
            continue;
        };
        if path.attr.sub.is_some() || path.sub_after.is_some() {
            return err(
                "invalidPath",
                "a member's value and type cannot change: remove it and add another",
            );
        }
        let value = op.value.as_ref().unwrap_or(&Value::Null);
        members.push(match (op.op, &path.filter) {
            (OpKind::Add, None) => MemberOp::Add(refs(value)?),
            (OpKind::Replace, None) => MemberOp::Replace(refs(value)?),
            (OpKind::Remove, None) if value.is_null() => MemberOp::Clear,
            (OpKind::Remove, None) => {
                MemberOp::Remove(refs(value)?.into_iter().map(|r| r.value).collect())
            }
            (OpKind::Remove, Some(f)) => match value_eq(f) {
                Some(v) => MemberOp::Remove(vec![v]),
                None => MemberOp::RemoveWhere(f.clone()),
            },
            (_, Some(_)) => {
                return err(
                    "invalidPath",
                    "add and replace of members take the members as the value, not a filter",
                )
            }
        });
    }
    Ok((doc, members))
}
