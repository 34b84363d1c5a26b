//! Which users and groups a provider carries (its scope), read from the current views.
//!
//! - Service accounts (users whose `userType` says so) are left out when asked.
//! - With access groups, only users that are members of one of them, directly or through
//!   nested groups, are carried; a user who leaves them is deleted (or deactivated) remotely.
//! - With a group filter, only those groups are carried; a group taken out of the filter is
//!   left on the remote as it was.

use roster_events::{MemberType, ProviderScope, ResourceId};
use roster_projections::{GroupView, ProjectionStore, StoreError, UserView, Visibility};
use std::collections::{BTreeSet, HashSet};

/// `userType` values that mark a service account, compared case-insensitively with spaces,
/// hyphens and underscores ignored.
const SERVICE_ACCOUNT_TYPES: &[&str] = &["serviceaccount", "service", "serviceuser", "bot"];

pub fn is_service_account(user: &UserView) -> bool {
    let resource = user.resource.to_map();
    let user_type = resource
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userType"))
        .and_then(|(_, v)| v.as_str());
    user_type.is_some_and(|t| {
        let t: String = t
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        SERVICE_ACCOUNT_TYPES.contains(&t.as_str())
    })
}

pub fn group_in_scope(scope: &ProviderScope, group: ResourceId) -> bool {
    scope.group_filter.is_empty() || scope.group_filter.contains(&group)
}

/// Whether each of `users` is in scope, in order.
///
/// Fails when the store cannot answer.
pub async fn users_in_scope(
    store: &dyn ProjectionStore,
    directory: &str,
    scope: &ProviderScope,
    users: &[&UserView],
) -> Result<Vec<bool>, StoreError> {
    let mut out: Vec<bool> = users
        .iter()
        .map(|u| !(scope.exclude_service_accounts && is_service_account(u)))
        .collect();
    if scope.access_groups.is_empty() {
        return Ok(out);
    }
    let ids: Vec<ResourceId> = users.iter().map(|u| u.id).collect();
    let memberships = store
        .groups_of_each(directory, &ids, Visibility::All)
        .await?;
    for (keep, groups) in out.iter_mut().zip(memberships) {
        *keep = *keep
            && groups
                .iter()
                .any(|(g, _, _)| scope.access_groups.contains(g));
    }
    Ok(out)
}

/// Whether `group` is one of the access groups or nested (at any depth) in one: a change of
/// its members moves users in or out of scope.
///
/// Fails when the store cannot answer.
pub async fn grants_access(
    store: &dyn ProjectionStore,
    directory: &str,
    scope: &ProviderScope,
    group: ResourceId,
) -> Result<bool, StoreError> {
    if scope.access_groups.is_empty() {
        return Ok(false);
    }
    if scope.access_groups.contains(&group) {
        return Ok(true);
    }
    let parents = store.groups_of(directory, group, Visibility::All).await?;
    Ok(parents
        .iter()
        .any(|(g, _, _)| scope.access_groups.contains(g)))
}

/// Every user that is a member of `group`, directly or through nested groups.
///
/// Fails when the store cannot answer.
pub async fn users_under(
    store: &dyn ProjectionStore,
    directory: &str,
    group: &GroupView,
) -> Result<BTreeSet<ResourceId>, StoreError> {
    let mut users = BTreeSet::new();
    let mut seen = HashSet::from([group.id]);
    let mut frontier: Vec<ResourceId> = Vec::new();
    let mut take = |g: &GroupView, frontier: &mut Vec<ResourceId>| {
        for m in &g.members {
            match m.kind {
                MemberType::User => {
                    users.insert(m.value);
                }
                MemberType::Group => frontier.push(m.value),
            }
        }
    };
    take(group, &mut frontier);
    while let Some(id) = frontier.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(g) = store.group(directory, id).await? {
            take(&g, &mut frontier);
        }
    }
    Ok(users)
}
