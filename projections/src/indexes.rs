//! The indexes of one kind of resource in a directory (its users, or its groups), derived from
//! the views and kept in step with them by [`Indexes::reindex`], and what they can answer of a
//! filter ([`Indexes::narrowed`]):
//! - the unique name (a user's userName, a group's displayName) by its comparison key
//!   ([`name_key`]): `eq` filters and the write path's uniqueness decisions;
//! - externalId, exactly: `eq` filters;
//! - the owning source: what a source may list;
//! - userName and displayName in folded order ([`PrefixIndex`]): `sw` filters, and so the
//!   console's search box.

use crate::filter::{self, Filter, Op};
use crate::name_index::NameIndex;
use crate::names::name_key;
use crate::prefix_index::{PrefixIndex, Starting};
use crate::views::{GroupView, Keys, UserView};
use foldhash::{HashMap, HashSet};
use roster_events::ResourceId;
use serde_json::Value;
use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::hash::Hash;

/// A view the indexes are derived from.
pub(crate) trait Indexed {
    /// The attribute whose value is unique in a directory.
    const UNIQUE: &'static str;
    /// Its value; a view without it (which the write path refuses) is indexed under the empty
    /// name, as every release has done.
    fn unique_name(&self) -> &str;
    fn keys(&self) -> &Keys;
    fn owner(&self) -> &Option<String>;
}

impl Indexed for UserView {
    const UNIQUE: &'static str = "userName";
    fn unique_name(&self) -> &str {
        self.user_name()
    }
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn owner(&self) -> &Option<String> {
        &self.owner
    }
}

impl Indexed for GroupView {
    const UNIQUE: &'static str = "displayName";
    fn unique_name(&self) -> &str {
        self.display_name()
    }
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn owner(&self) -> &Option<String> {
        &self.owner
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Indexes {
    pub(crate) by_name: NameIndex,
    pub(crate) by_external: NameIndex,
    pub(crate) by_owner: HashMap<Option<String>, BTreeSet<ResourceId>>,
    user_names: PrefixIndex,
    display_names: PrefixIndex,
    /// The two prefix indexes above are not kept (a writer's copy: its decisions never ask
    /// for a prefix); a `sw` filter is then answered by reading every resource.
    no_prefixes: bool,
}

/// One string of a view's keys, if it has it.
fn field(keys: Option<&Keys>, f: fn(&Keys) -> &Option<String>) -> Option<&str> {
    keys.and_then(|k| f(k).as_deref())
}

/// Moves `id` from the set under `old` to the one under `new` when the keys differ, dropping
/// a set left empty.
fn move_id<K, Q>(
    map: &mut HashMap<K, BTreeSet<ResourceId>>,
    old: Option<&Q>,
    new: Option<&Q>,
    id: ResourceId,
) where
    K: Borrow<Q> + Hash + Eq,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
{
    if old == new {
        return;
    }
    if let Some(set) = old.and_then(|k| map.get_mut(k)) {
        set.remove(&id);
        if set.is_empty() {
            map.remove(old.expect("found under it"));
        }
    }
    if let Some(k) = new {
        map.entry(k.to_owned()).or_default().insert(id);
    }
}

impl Indexes {
    /// A copy without the prefix indexes, which it then does not keep: a quarter of what
    /// copying a directory's indexes for a writer costs.
    pub(crate) fn without_prefixes(&self) -> Indexes {
        Indexes {
            by_name: self.by_name.clone(),
            by_external: self.by_external.clone(),
            by_owner: self.by_owner.clone(),
            user_names: PrefixIndex::default(),
            display_names: PrefixIndex::default(),
            no_prefixes: true,
        }
    }

    /// Moves `id` from what `old` is indexed under to what `new` is; an index whose key did
    /// not change (a PATCH of another attribute) is not touched.
    pub(crate) fn reindex<V: Indexed>(&mut self, id: ResourceId, old: Option<&V>, new: Option<&V>) {
        let (name, new_name) = (old.map(V::unique_name), new.map(V::unique_name));
        if name != new_name {
            if let Some(o) = name {
                self.by_name.remove(&name_key(o), id);
            }
            if let Some(n) = new_name {
                self.by_name.insert(name_key(n), id);
            }
        }
        let (o, n) = (old.map(V::keys), new.map(V::keys));
        let user_name: fn(&Keys) -> &Option<String> = |k| &k.user_name;
        let display_name: fn(&Keys) -> &Option<String> = |k| &k.display_name;
        if !self.no_prefixes {
            self.user_names
                .replace(field(o, user_name), field(n, user_name), id);
            self.display_names
                .replace(field(o, display_name), field(n, display_name), id);
        }
        let external_id: fn(&Keys) -> &Option<String> = |k| &k.external_id;
        let (external, new_external) = (field(o, external_id), field(n, external_id));
        if external != new_external {
            if let Some(e) = external {
                self.by_external.remove(e, id);
            }
            if let Some(e) = new_external {
                self.by_external.insert(e.to_owned(), id);
            }
        }
        move_id(&mut self.by_owner, old.map(V::owner), new.map(V::owner), id);
    }

    /// What the indexes can tell of which resources `filter` matches, without reading every
    /// resource: `id`, the unique name and `externalId` compared `eq`, userName and
    /// displayName compared `sw`, and `and` / `or` of those (an `and` needs one side answered,
    /// an `or` both). `exists` tells whether an id is one of this kind's.
    pub(crate) fn narrowed<V: Indexed>(
        &self,
        filter: &Filter,
        exists: &dyn Fn(ResourceId) -> bool,
    ) -> Option<Candidates> {
        match filter {
            Filter::And(a, b) => {
                match (self.narrowed::<V>(a, exists), self.narrowed::<V>(b, exists)) {
                    (Some(x), Some(y)) => Some(x.and(y)),
                    (Some(x), None) | (None, Some(x)) => Some(Candidates { exact: false, ..x }),
                    (None, None) => None,
                }
            }
            Filter::Or(a, b) => {
                let x = self.narrowed::<V>(a, exists)?;
                Some(x.or(self.narrowed::<V>(b, exists)?))
            }
            Filter::Compare {
                path,
                op,
                value: Value::String(s),
            } => {
                let is = |attr| path.is(attr);
                let (ids, exact): (Vec<ResourceId>, bool) = match op {
                    // Equalities with a time compare as times: no index of strings answers them.
                    Op::Eq if filter::looks_like_time(s) => return None,
                    // `id` is shown in canonical form only; the parse takes other spellings.
                    Op::Eq if is("id") => (
                        s.parse()
                            .ok()
                            .filter(|id| exists(*id))
                            .into_iter()
                            .collect(),
                        false,
                    ),
                    // The comparison key is coarser than the filter's equality.
                    Op::Eq if is(V::UNIQUE) => (self.by_name.get(&name_key(s)).collect(), false),
                    Op::Eq if is("externalId") => (self.by_external.get(s).collect(), true),
                    // Keyed by the filter's own folding: a range, each id once.
                    Op::Sw if self.no_prefixes => return None,
                    Op::Sw if is("userName") => {
                        return Some(self.user_names.starting_with(s).into())
                    }
                    Op::Sw if is("displayName") => {
                        return Some(self.display_names.starting_with(s).into())
                    }
                    _ => return None,
                };
                Some(Candidates::new(ids, exact))
            }
            _ => None,
        }
    }
}

/// What the indexes answer of a filter: ids, each once, in no particular order (a range of
/// names is in name order; sorting a million ids is most of what answering costs, and a page
/// needs only its own sorted), and whether they are exactly the resources the filter matches
/// (else a superset, each to be checked against the filter).
#[derive(Debug)]
pub(crate) struct Candidates {
    pub(crate) ids: Vec<ResourceId>,
    pub(crate) exact: bool,
}

/// The order of ids: `ResourceId`'s (a UUID's bytes, big-endian), compared as one number.
pub(crate) fn id_order(id: &ResourceId) -> u128 {
    id.0.as_u128()
}

impl<I: Iterator<Item = ResourceId>> From<Starting<I>> for Candidates {
    fn from(s: Starting<I>) -> Self {
        Candidates {
            ids: s.ids.collect(),
            exact: s.exact,
        }
    }
}

impl Candidates {
    /// Candidates from a lookup that may name an id twice.
    fn new(mut ids: Vec<ResourceId>, exact: bool) -> Self {
        ids.sort_unstable_by_key(id_order);
        ids.dedup();
        Candidates { ids, exact }
    }

    /// The larger side's ids, and the smaller's as a set.
    fn sides(self, other: Candidates) -> (Vec<ResourceId>, HashSet<ResourceId>, bool) {
        let exact = self.exact && other.exact;
        let (large, small) = if self.ids.len() >= other.ids.len() {
            (self.ids, other.ids)
        } else {
            (other.ids, self.ids)
        };
        (large, small.into_iter().collect(), exact)
    }

    fn and(self, other: Candidates) -> Candidates {
        let (mut ids, small, exact) = self.sides(other);
        ids.retain(|id| small.contains(id));
        Candidates { ids, exact }
    }

    fn or(self, other: Candidates) -> Candidates {
        let (mut ids, small, exact) = self.sides(other);
        if !small.is_empty() {
            ids.retain(|id| !small.contains(id));
            ids.extend(small);
        }
        Candidates { ids, exact }
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::parse;
    use crate::testing::env;
    use crate::{Directory, ListQuery, Visibility};
    use proptest::prelude::*;
    use roster_events::{
        Document, Event, GroupCreated, Personal, ResourceId, ResourceType, UserCreated,
        UserReplaced,
    };
    use serde_json::{json, Value};

    /// Pieces of names where folding is not one character for one: final sigma, a combining
    /// accent (after `e`, and alone), the Kelvin sign, dotted capital I, sharp s, a ligature.
    const PIECES: &[&str] = &[
        "a",
        "A",
        "b",
        " ",
        "é",
        "e\u{301}",
        "\u{301}",
        "Σ",
        "σ",
        "ς",
        "\u{212a}",
        "k",
        "İ",
        "i",
        "ß",
        "SS",
        "ﬁ",
        "\"",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..=max).prop_map(|p| p.concat())
    }

    fn doc(v: Value) -> Document {
        Document::from_map(v.as_object().unwrap())
    }

    /// Who owns the `i`th user or group: no source, `s` or `t` in turn (from the `shift`th of
    /// those, so that `s` sometimes owns every one).
    fn owner(i: usize) -> Option<String> {
        [None, Some("s".to_owned()), Some("t".to_owned())][i % 3].clone()
    }

    /// A directory of users (some renamed afterwards) and groups with these names.
    fn directory(
        users: &[(String, Option<String>, Option<String>)],
        groups: &[String],
        shift: usize,
    ) -> Directory {
        let mut d = Directory::new("d");
        for (i, (name, display, renamed)) in users.iter().enumerate() {
            let id = ResourceId::new();
            let user = |n: &str| {
                let mut v = json!({ "userName": n, "externalId": name });
                if let Some(dn) = display {
                    v["displayName"] = json!(dn);
                }
                Personal::Plain(doc(v))
            };
            let created = UserCreated {
                owner: owner(i + shift),
                resource: user(name),
                mapped: None,
            };
            d.apply(env(ResourceType::User, id, 1, Event::UserCreated(created)))
                .unwrap();
            if let Some(r) = renamed {
                let replaced = UserReplaced {
                    resource: user(r),
                    mapped: None,
                };
                d.apply(env(
                    ResourceType::User,
                    id,
                    2,
                    Event::UserReplaced(replaced),
                ))
                .unwrap();
            }
        }
        for (i, name) in groups.iter().enumerate() {
            let created = GroupCreated {
                owner: owner(i + shift),
                resource: doc(json!({ "displayName": name })),
                mapped: None,
            };
            let id = ResourceId::new();
            d.apply(env(
                ResourceType::Group,
                id,
                1,
                Event::GroupCreated(created),
            ))
            .unwrap();
        }
        d
    }

    fn query(filter: &str, start_index: usize, count: usize) -> ListQuery {
        ListQuery {
            filter: Some(parse(filter).unwrap_or_else(|e| panic!("{filter}: {e:?}"))),
            sort: None,
            declared: Vec::new(),
            start_index,
            count,
            count_up_to: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the names, a filter the indexes narrow answers exactly what reading every
        /// resource answers (`not (not (f))` means `f` but no index answers it).
        #[test]
        fn narrowed_lists_answer_as_a_full_scan(
            users in prop::collection::vec(
                (text(4), prop::option::of(text(4)), prop::option::of(text(4))),
                0..12,
            ),
            groups in prop::collection::vec(text(4), 0..6),
            prefix in text(3),
            other in text(3),
            start_index in 0..6usize,
            count in prop_oneof![0..4usize, Just(usize::MAX)],
            shift in 0..3usize,
        ) {
            let d = directory(&users, &groups, shift);
            let (p, o) = (Value::from(prefix).to_string(), Value::from(other).to_string());
            let user_filters = [
                format!("userName sw {p}"),
                format!("displayName sw {p}"),
                format!("userName sw {p} or displayName sw {p}"),
                format!("userName sw {p} and displayName sw {o}"),
                format!("userName eq {p} or displayName sw {o}"),
                format!("userName sw {p} and title pr"),
                format!("externalId eq {p} or userName eq {o}"),
                format!("externalId eq {p} and userName sw {o}"),
            ];
            for f in user_filters {
                let fast = query(&f, start_index, count);
                let slow = query(&format!("not (not ({f}))"), start_index, count);
                for vis in [Visibility::All, Visibility::Owner("s")] {
                let fast = d.list_users(vis, &fast);
                let slow = d.list_users(vis, &slow);
                let ids = |p: &crate::Page<crate::UserView>| p.items.iter().map(|u| u.id).collect::<Vec<_>>();
                prop_assert_eq!(ids(&fast), ids(&slow), "{}", f);
                prop_assert_eq!(fast.total, slow.total, "{}", f);
                }
            }
            for f in [format!("displayName sw {p}"), format!("displayName sw {p} or displayName eq {o}")] {
                let fast = query(&f, start_index, count);
                let slow = query(&format!("not (not ({f}))"), start_index, count);
                for vis in [Visibility::All, Visibility::Owner("s")] {
                let fast = d.list_groups(vis, &fast);
                let slow = d.list_groups(vis, &slow);
                let ids = |p: &crate::Page<crate::GroupView>| p.items.iter().map(|g| g.id).collect::<Vec<_>>();
                prop_assert_eq!(ids(&fast), ids(&slow), "{}", f);
                prop_assert_eq!(fast.total, slow.total, "{}", f);
                }
            }
        }
    }

    /// A list that walks every user takes them out a chunk at a time (`WALK_CHUNK`), and one
    /// of `LONG_WALK` or more hands its worker's other tasks on first: on a worker of a
    /// multi-threaded runtime and off any runtime, it answers what the users say, over more
    /// users than a chunk holds.
    #[test]
    fn a_long_walk_in_chunks_on_a_runtime_worker_answers_as_off_it() {
        let n = crate::query::WALK_CHUNK + 10;
        let users: Vec<(String, Option<String>, Option<String>)> = (0..n)
            .map(|i| {
                (
                    format!("u{i}"),
                    (i % 7 == 0).then(|| format!("seven {i}")),
                    None,
                )
            })
            .collect();
        let d = std::sync::Arc::new(directory(&users, &[], 0));
        let sevens: Vec<ResourceId> = d
            .users
            .values()
            .filter(|u| u.keys.display_name.is_some())
            .map(|u| u.id)
            .collect();
        assert_eq!(sevens.len(), n.div_ceil(7));
        let q = query(r#"displayName co "seven""#, 3, 20);
        let off = d.list_users(Visibility::All, &q);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let on = runtime.block_on({
            let (d, q) = (d.clone(), q.clone());
            async move {
                tokio::spawn(async move { d.list_users(Visibility::All, &q) })
                    .await
                    .unwrap()
            }
        });
        for page in [&off, &on] {
            let ids: Vec<ResourceId> = page.items.iter().map(|u| u.id).collect();
            assert_eq!(ids, sevens[2..22]);
            assert_eq!(page.total, sevens.len());
        }
    }

    #[test]
    fn the_indexes_answer_sw_eq_and_their_combinations_but_not_co() {
        let d = directory(
            &[("alice".into(), Some("Alice Smith".into()), None)],
            &[],
            0,
        );
        let narrows = |f: &str| {
            d.user_index
                .narrowed::<crate::UserView>(&parse(f).unwrap(), &|_| true)
                .is_some()
        };
        assert!(narrows(r#"userName sw "al""#));
        assert!(narrows(r#"userName sw "al" or displayName sw "sm""#));
        assert!(narrows(r#"userName sw "al" and title pr"#));
        assert!(narrows(r#"externalId eq "x" or userName eq "bob""#));
        assert!(!narrows(r#"userName co "li""#));
        assert!(!narrows(r#"userName sw "al" or title pr"#));
        assert!(!narrows(r#"name.familyName sw "s""#));
    }
}
