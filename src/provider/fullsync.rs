//! A full sync's plan: the desired remote state computed from the current views, compared
//! with what the remote holds (listed page by page), and turned into work for the provider's
//! queue, which carries it out like any other change (concurrency, retries, parking).
//!
//! Remote objects are matched by link first, then by `externalId` (the default mapping sets it
//! to Roster's id), then by `userName` / `displayName`; a match links them. Only objects that
//! differ get work: a remote that already matches costs only the listing. Objects whose
//! externalId is the id of a user or group deleted from the directory are Roster's orphans
//! and are removed (or deactivated); objects Roster cannot prove its own are left alone.

use super::carry::{member_kind, TaskContext};
use super::plan::{self, Kind};
use super::scope;
use super::state::{FullSyncReport, Key, Work};
use super::sync::{fingerprint, Echo, Links, MemoryLinks, SyncError};
use roster_events::{fold_case, Member, MemberType, ResourceId};
use roster_projections::{GroupView, UserView, Visibility};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Objects listed per request.
const PAGE: usize = 500;
/// Local objects read per query.
const LOCAL_PAGE: usize = 1000;
/// Errors kept in a report.
pub const REPORT_ERRORS: usize = 20;

/// What the remote holds of one kind.
#[derive(Default)]
struct RemoteIndex {
    by_id: HashMap<String, Value>,
    by_external: HashMap<String, String>,
    by_name: HashMap<String, String>,
}

impl RemoteIndex {
    fn find(&self, linked: Option<&str>, local: ResourceId, name: Option<&str>) -> Option<&str> {
        if let Some(id) = linked.filter(|id| self.by_id.contains_key(*id)) {
            return self.by_id.get_key_value(id).map(|(k, _)| k.as_str());
        }
        if let Some(id) = self.by_external.get(&local.to_string()) {
            return Some(id);
        }
        name.and_then(|n| self.by_name.get(&fold_case(n)))
            .map(String::as_str)
    }
}

async fn list_all(cx: &TaskContext, kind: Kind) -> Result<RemoteIndex, SyncError> {
    let name_attr = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    let mut index = RemoteIndex::default();
    let mut start = 1;
    loop {
        let page = cx.remote.send(&plan::list(kind, start, PAGE)).await?;
        let body = page.body.unwrap_or(Value::Null);
        let resources = body
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = body
            .get("totalResults")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let n = resources.len();
        for r in resources {
            let Some(id) = r.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            if let Some(x) = r.get("externalId").and_then(Value::as_str) {
                index.by_external.insert(x.to_owned(), id.clone());
            }
            if let Some(name) = r.get(name_attr).and_then(Value::as_str) {
                index.by_name.insert(fold_case(name), id.clone());
            }
            index.by_id.insert(id, r);
        }
        start += n;
        if n == 0 || start > total {
            return Ok(index);
        }
    }
}

/// Whether every attribute of `want` is in `have` with the same value (attribute names
/// compared case-insensitively, RFC 7643 §2.1; extra attributes the remote adds, such as
/// `meta` or defaults, do not count as differences; multi-valued attributes match when each
/// wanted value has a matching remote one).
pub fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| {
            let found = h
                .iter()
                .find(|(hk, _)| hk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v);
            match found {
                Some(hv) => subset(v, hv),
                None => v.is_null() || v.as_array().is_some_and(Vec::is_empty),
            }
        }),
        (Value::Array(w), Value::Array(h)) => w.iter().all(|x| h.iter().any(|y| subset(x, y))),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// The work a full sync found, in the order to queue it (users first), and its counts.
pub struct Plan {
    /// Each object to fix, what to carry for it, and which fix of the report it is.
    pub work: Vec<(Key, Work, Fix)>,
    pub report: FullSyncReport,
    /// Links the plan made (matches found) or dropped (linked objects the remote no longer
    /// has), already applied to the links passed in.
    pub links: Vec<(Kind, ResourceId, Option<String>)>,
}

/// The kind of fix a full sync plans for an object, as its report counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    Create,
    Update,
    Delete,
}

fn relink(
    links: &mut MemoryLinks,
    changed: &mut Vec<(Kind, ResourceId, Option<String>)>,
    kind: Kind,
    local: ResourceId,
    remote: Option<&str>,
) {
    let current = links.remote(kind, local);
    if current.as_deref() == remote {
        return;
    }
    match remote {
        Some(r) => links.link(kind, local, r.to_owned()),
        None => links.unlink(kind, local),
    }
    changed.push((kind, local, remote.map(str::to_owned)));
}

/// Objects of `kind` linked to the remote that the views no longer list: deleted while the
/// provider was away.
fn linked_but_unseen(
    links: &MemoryLinks,
    kind: Kind,
    seen: &HashSet<ResourceId>,
) -> Vec<ResourceId> {
    links
        .0
        .keys()
        .filter(|(k, l)| *k == kind && !seen.contains(l))
        .map(|(_, l)| *l)
        .collect()
}

/// Links the remote objects of `kind` that are Roster's own but no longer in the views: those
/// whose externalId is the id of a user or group deleted from the directory (ids are never
/// reused, so nothing else can carry one) and that no local object is linked to. Such an
/// object was created on the remote before a crash lost its link, or by an earlier provider;
/// once linked, the plan deletes it like any linked object the views no longer list. Objects
/// Roster cannot prove its own are left alone.
async fn adopt_orphans(
    cx: &TaskContext,
    remote: &RemoteIndex,
    kind: Kind,
    seen: &HashSet<ResourceId>,
    links: &mut MemoryLinks,
    changed: &mut Vec<(Kind, ResourceId, Option<String>)>,
) -> Result<(), String> {
    let claimed: HashSet<&str> = links
        .0
        .iter()
        .filter(|((k, _), _)| *k == kind)
        .map(|(_, r)| r.as_str())
        .collect();
    let candidates: HashMap<ResourceId, String> = remote
        .by_external
        .iter()
        .filter(|(_, id)| !claimed.contains(id.as_str()))
        .filter_map(|(x, id)| {
            let local = ResourceId(uuid::Uuid::parse_str(x).ok()?);
            (!seen.contains(&local) && links.remote(kind, local).is_none())
                .then(|| (local, id.clone()))
        })
        .collect();
    let ids: Vec<ResourceId> = candidates.keys().copied().collect();
    for chunk in ids.chunks(LOCAL_PAGE) {
        let retired = cx
            .store
            .retired(&cx.directory, chunk)
            .await
            .map_err(|e| e.to_string())?;
        for local in retired {
            relink(
                links,
                changed,
                kind,
                local,
                candidates.get(&local).map(String::as_str),
            );
        }
    }
    Ok(())
}

/// Whether the remote holds what was last sent for `key`, as it answered then: a remote that
/// normalises documents still matches what it made of them.
fn echoed(echoes: &HashMap<Key, Echo>, key: Key, desired: &Value, have: &Value) -> bool {
    echoes
        .get(&key)
        .is_some_and(|e| e.sent == fingerprint(desired) && e.answered == fingerprint(have))
}

/// Plans a full sync of the provider of `cx`, linking what it matches in `links`; `echoes`
/// hold what the remote answered to what was last sent.
///
/// Fails when the remote cannot be listed or the views cannot be read; nothing is queued
/// then (links already made stay: they are true).
pub async fn plan(
    cx: &TaskContext,
    links: &mut MemoryLinks,
    echoes: &HashMap<Key, Echo>,
) -> Result<Plan, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let mut report = FullSyncReport {
        started: Some(chrono::Utc::now()),
        ..FullSyncReport::default()
    };
    let mut work: Vec<(Key, Work, Fix)> = Vec::new();
    let mut changed = Vec::new();

    let remote_users = list_all(cx, Kind::User).await.map_err(|e| text(&e))?;
    let remote_groups = list_all(cx, Kind::Group).await.map_err(|e| text(&e))?;

    // Users.
    let mut seen: HashSet<ResourceId> = HashSet::new();
    let mut after = None;
    loop {
        let page = cx
            .store
            .users_after(&cx.directory, Visibility::All, after, LOCAL_PAGE)
            .await
            .map_err(|e| text(&e))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let refs: Vec<&UserView> = page.iter().map(|u| u.as_ref()).collect();
        let in_scope = scope::users_in_scope(cx.store.as_ref(), &cx.directory, &cx.scope, &refs)
            .await
            .map_err(|e| text(&e))?;
        for (user, keep) in page.iter().zip(in_scope) {
            seen.insert(user.id);
            let linked = links.remote(Kind::User, user.id);
            if !keep {
                // Out of scope: taken off the remote, found by link or by externalId.
                let own = remote_users.by_external.get(&user.id.to_string());
                if let (None, Some(remote)) = (&linked, own) {
                    relink(links, &mut changed, Kind::User, user.id, Some(remote));
                }
                if linked.is_some() || own.is_some() {
                    work.push(((Kind::User, user.id), Work::whole(), Fix::Delete));
                    report.deleted += 1;
                }
                continue;
            }
            report.compared += 1;
            let found = remote_users
                .find(linked.as_deref(), user.id, Some(user.user_name()))
                .map(str::to_owned);
            relink(links, &mut changed, Kind::User, user.id, found.as_deref());
            let Some(remote_id) = found else {
                work.push(((Kind::User, user.id), Work::whole(), Fix::Create));
                report.created += 1;
                continue;
            };
            let have = &remote_users.by_id[&remote_id];
            let key = (Kind::User, user.id);
            // A mapping that fails is carried all the same: the failure shows there.
            let differs = match cx.mapping.user(user) {
                Ok(Some(d)) => {
                    let d = Value::Object(d);
                    !subset(&d, have) && !echoed(echoes, key, &d, have)
                }
                Ok(None) => false,
                Err(_) => true,
            };
            if differs {
                work.push(((Kind::User, user.id), Work::whole(), Fix::Update));
                report.updated += 1;
            } else {
                report.unchanged += 1;
            }
        }
        if page.len() < LOCAL_PAGE {
            break;
        }
    }
    adopt_orphans(cx, &remote_users, Kind::User, &seen, links, &mut changed).await?;
    for local in linked_but_unseen(links, Kind::User, &seen) {
        work.push(((Kind::User, local), Work::whole(), Fix::Delete));
        report.deleted += 1;
    }

    // Groups.
    let reverse: HashMap<(Kind, String), ResourceId> = links
        .0
        .iter()
        .map(|((k, l), r)| ((*k, r.clone()), *l))
        .collect();
    let mut seen: HashSet<ResourceId> = HashSet::new();
    let mut after = None;
    loop {
        let page = cx
            .store
            .groups_after(&cx.directory, Visibility::All, after, LOCAL_PAGE)
            .await
            .map_err(|e| text(&e))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for group in &page {
            seen.insert(group.id);
            if !scope::group_in_scope(&cx.scope, group.id) {
                continue;
            }
            report.compared += 1;
            let linked = links.remote(Kind::Group, group.id);
            let found = remote_groups
                .find(
                    linked.as_deref(),
                    group.id,
                    group.keys.display_name.as_deref(),
                )
                .map(str::to_owned);
            relink(links, &mut changed, Kind::Group, group.id, found.as_deref());
            let Some(remote_id) = found else {
                work.push(((Kind::Group, group.id), Work::whole(), Fix::Create));
                report.created += 1;
                continue;
            };
            let have = &remote_groups.by_id[&remote_id];
            let echo = echoes.get(&(Kind::Group, group.id));
            match group_difference(cx, group, have, links, &reverse, echo).await? {
                None => report.unchanged += 1,
                Some(w) => {
                    work.push(((Kind::Group, group.id), w, Fix::Update));
                    report.updated += 1;
                }
            }
        }
        if page.len() < LOCAL_PAGE {
            break;
        }
    }
    adopt_orphans(cx, &remote_groups, Kind::Group, &seen, links, &mut changed).await?;
    for local in linked_but_unseen(links, Kind::Group, &seen) {
        work.push(((Kind::Group, local), Work::whole(), Fix::Delete));
        report.deleted += 1;
    }
    Ok(Plan {
        work,
        report,
        links: changed,
    })
}

/// What a linked group needs: nothing, its members changed, or all of it.
async fn group_difference(
    cx: &TaskContext,
    group: &GroupView,
    have: &Value,
    links: &MemoryLinks,
    reverse: &HashMap<(Kind, String), ResourceId>,
    echo: Option<&Echo>,
) -> Result<Option<Work>, String> {
    let mut desired = match cx.mapping.group(group, Vec::new()) {
        Ok(d) => d.map(Value::Object).unwrap_or(Value::Null),
        // Carried all the same: the failure shows there.
        Err(_) => return Ok(Some(Work::whole())),
    };
    if let Value::Object(m) = &mut desired {
        m.remove("members");
    }
    // Fingerprints leave members out: they are compared one by one below.
    let echoed =
        echo.is_some_and(|e| e.sent == fingerprint(&desired) && e.answered == fingerprint(have));
    if !subset(&desired, have) && !echoed {
        return Ok(Some(Work::whole()));
    }
    let wanted = super::carry::members_in_scope(cx, group).await?;
    let remote_members: Vec<&str> = have
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
        .collect();
    let mut there: BTreeSet<Member> = BTreeSet::new();
    for value in &remote_members {
        let local = reverse
            .get(&(Kind::User, value.to_string()))
            .map(|id| (*id, MemberType::User))
            .or_else(|| {
                reverse
                    .get(&(Kind::Group, value.to_string()))
                    .map(|id| (*id, MemberType::Group))
            });
        match local {
            Some((value, kind)) => {
                there.insert(Member { value, kind });
            }
            // A member Roster does not know: only a whole replacement takes it out.
            None => return Ok(Some(Work::whole())),
        }
    }
    let mut work = Work::default();
    for m in &wanted {
        let linked = links.remote(member_kind(m.kind), m.value).is_some();
        if !there.contains(m) || !linked {
            work.added.insert(*m);
        }
    }
    for m in there.difference(&wanted) {
        work.removed.insert(*m);
    }
    Ok((!work.added.is_empty() || !work.removed.is_empty()).then_some(work))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_remote_that_adds_attributes_still_matches() {
        let want = json!({"userName": "a", "name": {"givenName": "A"},
                          "emails": [{"value": "a@x", "type": "work"}], "active": true});
        let have = json!({"id": "1", "UserName": "a", "meta": {"created": "x"},
                          "name": {"givenName": "A", "formatted": "A"},
                          "emails": [{"value": "b@x"}, {"value": "a@x", "type": "work", "primary": false}],
                          "active": true});
        assert!(subset(&want, &have));
        assert!(!subset(&json!({"userName": "b"}), &have));
        assert!(!subset(&json!({"title": "x"}), &have));
        assert!(subset(&json!({"title": null, "phoneNumbers": []}), &have));
        assert!(subset(&json!({"n": 1}), &json!({"n": 1.0})));
    }
}
