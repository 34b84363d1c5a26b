//! A group's members as a command names them: references resolved against the directory
//! (what the group has already stays, even if the caller no longer sees it; what is new must
//! be a user or group the caller sees), and a PATCH's member operations turned into the
//! members removed and added, as set operations.

use super::{visible, Context, DomainError, MemberRef};
use crate::patch::MemberOp;
use roster_events::{Member, MemberType, ResourceId};
use roster_projections::filter::{Attributes, Filter};
use roster_projections::{Directory, GroupView};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The member a client refers to: one the group has already (kept as it is, even if the
/// caller no longer sees it: another source may have adopted it), or a user or group of the
/// directory the caller sees.
///
/// Fails with `Invalid` for an id that is neither, a `type` that does not fit, or the group
/// itself.
pub(super) fn resolve_member(
    state: &Directory,
    ctx: &Context,
    group: Option<&GroupView>,
    r: &MemberRef,
) -> Result<Member, DomainError> {
    let invalid = || {
        DomainError::Invalid(format!(
            "member {:?} is not a user or group of this directory",
            r.value
        ))
    };
    let id: ResourceId = r.value.trim().parse().map_err(|_| invalid())?;
    if group.is_some_and(|g| g.id == id) {
        return Err(DomainError::Invalid(
            "a group cannot be a member of itself".into(),
        ));
    }
    let existing = group.and_then(|g| {
        [MemberType::User, MemberType::Group]
            .into_iter()
            .map(|kind| Member { value: id, kind })
            .find(|m| g.members.contains(m))
    });
    let kind = match (existing, state.user(id), state.group(id)) {
        (Some(m), _, _) => m.kind,
        (None, Some(u), _) if visible(&u.owner, ctx) => MemberType::User,
        (None, _, Some(g)) if visible(&g.owner, ctx) => MemberType::Group,
        _ => return Err(invalid()),
    };
    if let Some(k) = &r.kind {
        let said = if k.eq_ignore_ascii_case("user") {
            MemberType::User
        } else if k.eq_ignore_ascii_case("group") {
            MemberType::Group
        } else {
            return Err(DomainError::Invalid(format!(
                "member type {k:?} is not User or Group"
            )));
        };
        if said != kind {
            return Err(DomainError::Invalid(format!(
                "member {} is a {kind:?}, not a {said:?}",
                r.value
            )));
        }
    }
    Ok(Member { value: id, kind })
}

/// The member set a create or PUT names.
pub(super) fn resolve_members(
    state: &Directory,
    ctx: &Context,
    group: Option<&GroupView>,
    refs: &[MemberRef],
) -> Result<BTreeSet<Member>, DomainError> {
    refs.iter()
        .map(|r| resolve_member(state, ctx, group, r))
        .collect()
}

/// A member seen by a `members[...]` filter.
struct MemberElement(serde_json::Map<String, Value>);

impl Attributes for MemberElement {
    fn attribute(&self, _schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        roster_projections::filter::get_ci(&self.0, attr).map(Cow::Borrowed)
    }
}

fn member_matches(f: &Filter, m: &Member) -> bool {
    let mut o = serde_json::Map::new();
    o.insert("value".into(), m.value.to_string().into());
    o.insert("type".into(), format!("{:?}", m.kind).into());
    f.matches(&MemberElement(o))
}

/// The members a PATCH's member operations remove from and add to `group`, in order. Adds and
/// removals by value cost what they name; a replacement, a clear or a removal by another
/// filter looks at the whole set.
pub(super) fn member_changes(
    state: &Directory,
    ctx: &Context,
    group: &GroupView,
    ops: &[MemberOp],
) -> Result<(Vec<Member>, Vec<Member>), DomainError> {
    let base = &group.members;
    let mut removed: BTreeSet<Member> = BTreeSet::new();
    let mut added: BTreeSet<Member> = BTreeSet::new();
    for op in ops {
        match op {
            MemberOp::Add(refs) => {
                for r in refs {
                    let m = resolve_member(state, ctx, Some(group), r)?;
                    if base.contains(&m) {
                        removed.remove(&m);
                    } else {
                        added.insert(m);
                    }
                }
            }
            MemberOp::Remove(values) => {
                for v in values {
                    let Ok(id) = v.trim().parse::<ResourceId>() else {
                        continue;
                    };
                    for kind in [MemberType::User, MemberType::Group] {
                        let m = Member { value: id, kind };
                        if base.contains(&m) {
                            removed.insert(m);
                        }
                        added.remove(&m);
                    }
                }
            }
            MemberOp::RemoveWhere(_) | MemberOp::Clear | MemberOp::Replace(_) => {
                let now: BTreeSet<Member> = base
                    .difference(&removed)
                    .chain(added.iter())
                    .copied()
                    .collect();
                let next: BTreeSet<Member> = match op {
                    MemberOp::RemoveWhere(f) => {
                        now.into_iter().filter(|m| !member_matches(f, m)).collect()
                    }
                    MemberOp::Replace(refs) => resolve_members(state, ctx, Some(group), refs)?,
                    _ => BTreeSet::new(),
                };
                removed = base.difference(&next).copied().collect();
                added = next.difference(base).copied().collect();
            }
        }
    }
    Ok((removed.into_iter().collect(), added.into_iter().collect()))
}
