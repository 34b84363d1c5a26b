//! List queries over a directory: visibility (which source may see what), filtering narrowed by
//! the indexes where they can answer ([`Indexes::narrowed`]), and stable pagination in id
//! (creation) order.
//!
//! [`Indexes::narrowed`]: crate::indexes::Indexes::narrowed

use crate::directory::Directory;
use crate::filter::{self, get_ci, Attributes, Filter};
use crate::indexes::{id_order, Indexed, Indexes};
use crate::views::{GroupView, Keys, UserView};
use foldhash::HashSet;
use roster_events::{fold_case, ResourceId};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::schema::{GROUP as GROUP_SCHEMA, USER as USER_SCHEMA};

/// Which objects a reader may see.
#[derive(Clone, Copy, Debug)]
pub enum Visibility<'a> {
    /// Everything (admins).
    All,
    /// Only the objects owned by this source.
    Owner(&'a str),
}

impl Visibility<'_> {
    pub(crate) fn admits(&self, owner: &Option<String>) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Owner(s) => owner.as_deref() == Some(*s),
        }
    }
}

/// A list request: filter and 1-based pagination.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort: Option<SortBy>,
    /// Extension schemas the asking source declared: their attributes' `caseExact` applies.
    pub declared: Vec<crate::schema::DeclaredSchema>,
    /// 1-based index of the first result.
    pub start_index: usize,
    pub count: usize,
    /// The matches are counted up to this many, and a total of one more says "more than
    /// this": a person's search box shows "more than 10,000" rather than have PostgreSQL count
    /// every match of a wide search. `None` counts them all, as SCIM's `totalResults` must.
    pub count_up_to: Option<usize>,
}

impl ListQuery {
    /// `matches` as this query counts them.
    pub fn counted(&self, matches: usize) -> usize {
        match self.count_up_to {
            Some(most) => matches.min(most.saturating_add(1)),
            None => matches,
        }
    }

    /// Whether a walk over the matches in order may stop after `counted` of them, having
    /// filled the page.
    fn counted_enough(&self, counted: usize, page_full: bool) -> bool {
        page_full && self.count_up_to.is_some_and(|most| counted > most)
    }
}

/// RFC 7644 §3.4.2.3: the attribute to sort by and the direction.
#[derive(Clone, Debug)]
pub struct SortBy {
    pub path: filter::AttrPath,
    pub descending: bool,
}

/// A value to sort on. Variants order as listed, so resources without the attribute come
/// last when ascending (and first when descending).
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum SortKey {
    Bool(bool),
    Number(f64),
    Text(String),
    Missing,
}

/// The sort key of a resource: the attribute's value; for a multi-valued attribute, the
/// primary value (or else the first); strings folded unless the attribute is case-exact.
pub fn sort_key(resource: &dyn Attributes, path: &filter::AttrPath) -> SortKey {
    let Some(top) = resource.attribute(path.schema.as_deref(), &path.attr) else {
        return SortKey::Missing;
    };
    let element = match top.as_ref() {
        Value::Array(items) => items
            .iter()
            .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first()),
        v => Some(v),
    };
    let value = match (element, &path.sub) {
        (Some(Value::Object(m)), Some(sub)) => get_ci(m, sub),
        (Some(Value::Object(m)), None) => get_ci(m, "value"),
        (Some(v), None) => Some(v),
        _ => None,
    };
    match value {
        Some(Value::String(s)) if resource.case_exact(path) => SortKey::Text(s.clone()),
        Some(Value::String(s)) => SortKey::Text(fold_case(s)),
        Some(Value::Number(n)) => n.as_f64().map_or(SortKey::Missing, SortKey::Number),
        Some(Value::Bool(b)) => SortKey::Bool(*b),
        _ => SortKey::Missing,
    }
}

/// One page of results and the total number of matches.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub total: usize,
    pub items: Vec<Arc<T>>,
}

fn attribute<'a>(
    resource: &'a serde_json::Map<String, Value>,
    core: &str,
    schema: Option<&str>,
    attr: &str,
) -> Option<Cow<'a, Value>> {
    match schema {
        Some(s) if !s.eq_ignore_ascii_case(core) => get_ci(resource, s)
            .and_then(Value::as_object)
            .and_then(|ext| get_ci(ext, attr))
            .map(Cow::Borrowed),
        _ => get_ci(resource, attr).map(Cow::Borrowed),
    }
}

fn meta(
    resource_type: &str,
    created: &chrono::DateTime<chrono::Utc>,
    modified: &chrono::DateTime<chrono::Utc>,
    version: u64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lastModified": modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": format!("W/\"{version}\""),
    })
}

/// A user as filters see it. The stored document is parsed only when a filter asks for an
/// attribute other than the ones copied out of it into the view's keys (`userName`,
/// `displayName`, `externalId`), so that a scan on those does not parse a million documents.
pub struct UserAttributes<'a> {
    view: &'a UserView,
    doc: OnceCell<serde_json::Map<String, Value>>,
}

/// A group as filters see it; its document parsed only when needed (as for users).
pub struct GroupAttributes<'a> {
    view: &'a GroupView,
    doc: OnceCell<serde_json::Map<String, Value>>,
}

impl UserView {
    /// The user as filters see it.
    pub fn attributes(&self) -> UserAttributes<'_> {
        UserAttributes {
            view: self,
            doc: OnceCell::new(),
        }
    }
}

impl GroupView {
    /// The group as filters see it.
    pub fn attributes(&self) -> GroupAttributes<'_> {
        GroupAttributes {
            view: self,
            doc: OnceCell::new(),
        }
    }
}

/// The value of core attribute `attr` when the keys hold it (`userName`, `displayName`,
/// `externalId`): they are copied out of the stored document (whose attribute names are
/// canonical), so they are the document's own value. None sends the filter to the document.
fn from_keys(keys: &Keys, attr: &str) -> Option<Cow<'static, Value>> {
    let key = if attr.eq_ignore_ascii_case("userName") {
        keys.user_name.as_ref()
    } else if attr.eq_ignore_ascii_case("displayName") {
        keys.display_name.as_ref()
    } else if attr.eq_ignore_ascii_case("externalId") {
        keys.external_id.as_ref()
    } else {
        None
    };
    key.map(|k| Cow::Owned(Value::String(k.clone())))
}

impl Attributes for UserAttributes<'_> {
    fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        let u = self.view;
        if schema.is_none() || schema.is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA)) {
            if attr.eq_ignore_ascii_case("id") {
                return Some(Cow::Owned(Value::String(u.id.to_string())));
            }
            if attr.eq_ignore_ascii_case("meta") {
                return Some(Cow::Owned(meta(
                    "User",
                    &u.created,
                    &u.last_modified,
                    u.version,
                )));
            }
            if let Some(v) = from_keys(&u.keys, attr) {
                return Some(v);
            }
        }
        let doc = self.doc.get_or_init(|| u.resource.to_map());
        attribute(doc, USER_SCHEMA, schema, attr)
    }

    fn case_exact(&self, path: &filter::AttrPath) -> bool {
        let (schema, sub) = (path.schema.as_deref(), path.sub.as_deref());
        crate::schema::case_exact(schema, &crate::schema::USER_SCHEMA, &path.attr, sub)
    }
}

impl Attributes for GroupAttributes<'_> {
    fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        let g = self.view;
        if schema.is_none() || schema.is_some_and(|s| s.eq_ignore_ascii_case(GROUP_SCHEMA)) {
            if attr.eq_ignore_ascii_case("id") {
                return Some(Cow::Owned(Value::String(g.id.to_string())));
            }
            if attr.eq_ignore_ascii_case("meta") {
                return Some(Cow::Owned(meta(
                    "Group",
                    &g.created,
                    &g.last_modified,
                    g.version,
                )));
            }
            if attr.eq_ignore_ascii_case("members") {
                let members: Vec<Value> = g
                    .members
                    .iter()
                    .map(|m| json!({"value": m.value.to_string(), "type": format!("{:?}", m.kind)}))
                    .collect();
                return Some(Cow::Owned(Value::Array(members)));
            }
            if let Some(v) = from_keys(&g.keys, attr) {
                return Some(v);
            }
        }
        let doc = self.doc.get_or_init(|| g.resource.to_map());
        attribute(doc, GROUP_SCHEMA, schema, attr)
    }

    fn case_exact(&self, path: &filter::AttrPath) -> bool {
        let (schema, sub) = (path.schema.as_deref(), path.sub.as_deref());
        crate::schema::case_exact(schema, &crate::schema::GROUP_SCHEMA, &path.attr, sub)
    }
}

/// Filters, sorts (if asked) and paginates. `select` returns None for a resource the filter
/// rejects, else its sort key (ignored when not sorting). Without a sort, results are in id
/// (creation) order, which keeps pagination stable while data changes.
pub(crate) fn page<T: HasId>(
    candidates: impl Iterator<Item = Arc<T>>,
    select: impl Fn(&T) -> Option<SortKey>,
    q: &ListQuery,
) -> Page<T> {
    let skip = q.start_index.max(1) - 1;
    let Some(sort) = &q.sort else {
        let mut total = 0;
        let mut items = Vec::new();
        for item in candidates {
            if select(item.as_ref()).is_none() {
                continue;
            }
            if total >= skip && items.len() < q.count {
                items.push(item);
            }
            total += 1;
            if q.counted_enough(total, items.len() == q.count) {
                break;
            }
        }
        return Page {
            total: q.counted(total),
            items,
        };
    };
    let mut all: Vec<(SortKey, Arc<T>)> = candidates
        .filter_map(|item| select(item.as_ref()).map(|k| (k, item)))
        .collect();
    all.sort_by(|(ka, a), (kb, b)| {
        // Ties go by id (creation order); descending is the exact reverse of ascending, ties
        // included, so `meta.created descending` is newest first even within a millisecond.
        let ascending = ka
            .partial_cmp(kb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id().cmp(&b.id()));
        if sort.descending {
            ascending.reverse()
        } else {
            ascending
        }
    });
    let total = q.counted(all.len());
    let items = all
        .into_iter()
        .skip(skip)
        .take(q.count)
        .map(|(_, item)| item)
        .collect();
    Page { total, items }
}

/// Resources have ids, the tie-breaker of every order.
pub trait HasId {
    fn id(&self) -> ResourceId;
}

impl HasId for UserView {
    fn id(&self) -> ResourceId {
        self.id
    }
}

impl HasId for GroupView {
    fn id(&self) -> ResourceId {
        self.id
    }
}

/// A resource seen with the case rules of the schemas a source declared.
struct WithDeclared<'a> {
    inner: &'a dyn Attributes,
    declared: &'a [crate::schema::DeclaredSchema],
}

impl Attributes for WithDeclared<'_> {
    fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        self.inner.attribute(schema, attr)
    }

    fn case_exact(&self, path: &filter::AttrPath) -> bool {
        let declared = path
            .schema
            .as_deref()
            .and_then(|s| self.declared.iter().find(|d| d.id.eq_ignore_ascii_case(s)));
        match declared {
            Some(d) => d.case_exact(&path.attr, path.sub.as_deref()),
            None => self.inner.case_exact(path),
        }
    }
}

/// Applies the query's filter and sort to one resource (parsed once for both).
pub(crate) fn select(resource: &dyn Attributes, q: &ListQuery) -> Option<SortKey> {
    let with = WithDeclared {
        inner: resource,
        declared: &q.declared,
    };
    let resource: &dyn Attributes = &with;
    if q.filter.as_ref().is_some_and(|f| !f.matches(resource)) {
        return None;
    }
    Some(
        q.sort
            .as_ref()
            .map_or(SortKey::Missing, |s| sort_key(resource, &s.path)),
    )
}

/// Up to `count` of `all` that `vis` admits, in id order, after `after`.
fn after<V, S: std::hash::BuildHasher>(
    all: &BTreeMap<ResourceId, Arc<V>>,
    by_owner: &HashMap<Option<String>, BTreeSet<ResourceId>, S>,
    vis: Visibility<'_>,
    after: Option<ResourceId>,
    count: usize,
) -> Vec<Arc<V>> {
    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
    match vis {
        Visibility::All => all
            .range((from, Bound::Unbounded))
            .take(count)
            .map(|(_, v)| v.clone())
            .collect(),
        Visibility::Owner(o) => by_owner
            .get(&Some(o.to_owned()))
            .into_iter()
            .flat_map(|ids| ids.range((from, Bound::Unbounded)))
            .filter_map(|id| all.get(id))
            .take(count)
            .cloned()
            .collect(),
    }
}

/// A page of everything `vis` admits, in id order, when the query has neither filter nor
/// sort: counted from the sizes of the maps, not by walking them, so that the first page of a
/// million costs what the first page of ten does.
fn unfiltered<V, S: std::hash::BuildHasher>(
    all: &BTreeMap<ResourceId, Arc<V>>,
    by_owner: &HashMap<Option<String>, BTreeSet<ResourceId>, S>,
    vis: Visibility<'_>,
    q: &ListQuery,
) -> Page<V> {
    let skip = q.start_index.max(1) - 1;
    match vis {
        Visibility::All => Page {
            total: q.counted(all.len()),
            items: all.values().skip(skip).take(q.count).cloned().collect(),
        },
        Visibility::Owner(o) => {
            let ids = by_owner.get(&Some(o.to_owned()));
            Page {
                total: q.counted(ids.map_or(0, BTreeSet::len)),
                items: ids
                    .into_iter()
                    .flatten()
                    .skip(skip)
                    .filter_map(|id| all.get(id))
                    .take(q.count)
                    .cloned()
                    .collect(),
            }
        }
    }
}

/// A list as the views answer it while they are locked: the page itself, or the resources
/// that are still to be read for it ([`Listing::Walk`]), which is done once the lock is let go
/// (`finish`): a walk over a million users takes a second or more, and the fold, which needs
/// the lock to apply the next write, must not wait that long.
pub(crate) enum Listing<V> {
    Page(Page<V>),
    /// The resources `vis` admits among the candidates, in id order: the query's filter and
    /// sort are still to be applied to them.
    Walk(Vec<Arc<V>>),
    /// Every resource `vis` admits (this many) is to be walked. They are taken out a chunk at a
    /// time in id order, the lock let go between chunks, so that a write waits for one chunk
    /// at most; a resource written meanwhile is seen as it was when its chunk was taken, and
    /// none twice.
    Everything(usize),
}

/// How many resources a walk of everything takes out under the lock at once.
pub(crate) const WALK_CHUNK: usize = 16_384;

impl<V: HasId> Listing<V> {
    /// The page: a walk applies `q` to each resource (`selects`), moved off the worker thread
    /// when it is long ([`walking`]). `chunk(after)` gives the next [`WALK_CHUNK`] resources
    /// `vis` admits after `after`, in id order (`Directory::users_after`), for `Everything`.
    fn finished(
        self,
        q: &ListQuery,
        mut chunk: impl FnMut(Option<ResourceId>) -> Vec<Arc<V>>,
        selects: impl Fn(&V) -> Option<SortKey>,
    ) -> Page<V> {
        match self {
            Listing::Page(page) => page,
            Listing::Walk(all) => walking(all.len(), || page(all.into_iter(), selects, q)),
            Listing::Everything(n) => walking(n, || {
                // Taken a chunk at a time as the page reads them: a page that has counted
                // enough (`ListQuery::counted_enough`) takes no more.
                let (mut taken, mut after, mut last) =
                    (Vec::<Arc<V>>::new().into_iter(), None, false);
                let all = std::iter::from_fn(|| loop {
                    if let Some(v) = taken.next() {
                        after = Some(v.id());
                        return Some(v);
                    }
                    if last {
                        return None;
                    }
                    // Bounded: each chunk starts after the last resource taken.
                    let next = chunk(after);
                    last = next.len() < WALK_CHUNK;
                    taken = next.into_iter();
                });
                page(all, selects, q)
            }),
        }
    }
}

impl Listing<UserView> {
    /// The page, `chunk` giving the users to walk for `Everything` (see `finished`).
    pub(crate) fn finish(
        self,
        q: &ListQuery,
        chunk: impl FnMut(Option<ResourceId>) -> Vec<Arc<UserView>>,
    ) -> Page<UserView> {
        self.finished(q, chunk, |u| select(&u.attributes(), q))
    }
}

impl Listing<GroupView> {
    /// The page, `chunk` giving the groups to walk for `Everything` (see `finished`).
    pub(crate) fn finish(
        self,
        q: &ListQuery,
        chunk: impl FnMut(Option<ResourceId>) -> Vec<Arc<GroupView>>,
    ) -> Page<GroupView> {
        self.finished(q, chunk, |g| select(&g.attributes(), q))
    }
}

/// A page of `all` that `vis` admits and `q` selects, from the candidates the indexes give
/// when they can answer the filter, else from everything `vis` admits. When the candidates are
/// exactly the matches and nothing is sorted, only the page's own ids are sorted and read: a
/// search that matches a hundred thousand names reads fifty. Otherwise the candidates are
/// taken out to be walked ([`Listing::Walk`]).
fn listing<V: Indexed + HasId>(
    all: &BTreeMap<ResourceId, Arc<V>>,
    index: &Indexes,
    vis: Visibility<'_>,
    q: &ListQuery,
) -> Listing<V> {
    if q.filter.is_none() && q.sort.is_none() {
        return Listing::Page(unfiltered(all, &index.by_owner, vis, q));
    }
    let owned = |o: &str| index.by_owner.get(&Some(o.to_owned()));
    let narrowed = q
        .filter
        .as_ref()
        .and_then(|f| index.narrowed::<V>(f, &|id| all.contains_key(&id)));
    let mut ids = match narrowed {
        Some(c) if c.exact && q.sort.is_none() => {
            let ids = match vis {
                Visibility::All => c.ids,
                // A source that owns everything (one source to a directory) sees it all.
                Visibility::Owner(o) if owned(o).is_some_and(|s| s.len() == all.len()) => c.ids,
                Visibility::Owner(o) => visible(c.ids, owned(o)),
            };
            let skip = q.start_index.max(1) - 1;
            return Listing::Page(Page {
                total: q.counted(ids.len()),
                items: first_in_order(ids, skip, q.count)
                    .iter()
                    .filter_map(|id| all.get(id))
                    .cloned()
                    .collect(),
            });
        }
        Some(c) => c.ids,
        None => {
            return Listing::Everything(match vis {
                Visibility::All => all.len(),
                Visibility::Owner(o) => owned(o).map_or(0, BTreeSet::len),
            });
        }
    };
    ids.sort_unstable_by_key(id_order);
    Listing::Walk(
        ids.iter()
            .filter_map(|id| all.get(id))
            .filter(|v| vis.admits(v.owner()))
            .cloned()
            .collect(),
    )
}

/// From how many resources a list's walk is long enough (milliseconds: a resource's filter
/// costs a microsecond or two) to be moved off a worker thread.
const LONG_WALK: usize = 4096;

/// Runs `walk`, which reads the `n` resources a list may show (a filter no index answers
/// exactly, or a sort): a second or more at a million users. When that is long, on a worker
/// thread of a multi-threaded tokio runtime, the worker's other tasks are handed to another
/// thread first ([`tokio::task::block_in_place`]), so the requests queued there do not wait
/// for it.
fn walking<T>(n: usize, walk: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if n >= LONG_WALK && h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(walk)
        }
        _ => walk(),
    }
}

/// Those of `ids` a source that owns `owned` may see: the smaller side is made a set.
fn visible(mut ids: Vec<ResourceId>, owned: Option<&BTreeSet<ResourceId>>) -> Vec<ResourceId> {
    let Some(owned) = owned else {
        return Vec::new();
    };
    if owned.len() < ids.len() {
        let ids: HashSet<ResourceId> = ids.into_iter().collect();
        owned
            .iter()
            .filter(|id| ids.contains(id))
            .copied()
            .collect()
    } else {
        ids.retain(|id| owned.contains(id));
        ids
    }
}

/// The ids from `skip` to `skip + count` in id order, found without sorting the rest.
fn first_in_order(mut ids: Vec<ResourceId>, skip: usize, count: usize) -> Vec<ResourceId> {
    let end = skip.saturating_add(count).min(ids.len());
    if end < ids.len() {
        ids.select_nth_unstable_by_key(end, id_order);
        ids.truncate(end);
    }
    ids.sort_unstable_by_key(id_order);
    ids.drain(..skip.min(end));
    ids
}

impl Directory {
    /// See [`crate::ProjectionStore::users_after`].
    pub fn users_after(
        &self,
        vis: Visibility<'_>,
        after_id: Option<ResourceId>,
        count: usize,
    ) -> Vec<Arc<UserView>> {
        after(&self.users, &self.user_index.by_owner, vis, after_id, count)
    }

    /// See [`crate::ProjectionStore::groups_after`].
    pub fn groups_after(
        &self,
        vis: Visibility<'_>,
        after_id: Option<ResourceId>,
        count: usize,
    ) -> Vec<Arc<GroupView>> {
        after(
            &self.groups,
            &self.group_index.by_owner,
            vis,
            after_id,
            count,
        )
    }

    /// Lists users visible to `vis` that match the query, in id order.
    pub fn list_users(&self, vis: Visibility<'_>, q: &ListQuery) -> Page<UserView> {
        let chunk = |after| self.users_after(vis, after, WALK_CHUNK);
        self.users_listing(vis, q).finish(q, chunk)
    }

    /// Lists groups visible to `vis` that match the query, in id order.
    pub fn list_groups(&self, vis: Visibility<'_>, q: &ListQuery) -> Page<GroupView> {
        let chunk = |after| self.groups_after(vis, after, WALK_CHUNK);
        self.groups_listing(vis, q).finish(q, chunk)
    }

    /// [`Self::list_users`], as far as it needs the directory.
    pub(crate) fn users_listing(&self, vis: Visibility<'_>, q: &ListQuery) -> Listing<UserView> {
        listing(&self.users, &self.user_index, vis, q)
    }

    /// [`Self::list_groups`], as far as it needs the directory.
    pub(crate) fn groups_listing(&self, vis: Visibility<'_>, q: &ListQuery) -> Listing<GroupView> {
        listing(&self.groups, &self.group_index, vis, q)
    }
}
