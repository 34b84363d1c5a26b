//! An ordered index of one case-insensitive string attribute (a userName, a displayName), by the
//! same folded form the filter compares ([`fold_case`]): the ids whose value starts with a
//! prefix are one range of it. It answers `sw` filters, and so the console's search box, in
//! the time the matches take rather than the size of the directory; `eq` lookups by name go
//! through the [`NameIndex`](crate::name_index::NameIndex), which keys by the coarser
//! comparison key that decides uniqueness.
//!
//! Keyed by exactly the filter's folding, a value folded by this index starts with a folded
//! prefix exactly when the filter's `sw` holds: the range is the answer, not a superset.

use roster_events::{fold_case, ResourceId};
use std::collections::BTreeSet;
use std::ops::Bound;
use uuid::Uuid;

#[derive(Clone, Debug, Default)]
pub(crate) struct PrefixIndex(BTreeSet<(Box<str>, ResourceId)>);

impl PrefixIndex {
    pub(crate) fn insert(&mut self, value: &str, id: ResourceId) {
        self.0.insert((fold_case(value).into(), id));
    }

    pub(crate) fn remove(&mut self, value: &str, id: ResourceId) {
        self.0.remove(&(fold_case(value).into(), id));
    }

    /// Replaces `old` by `new` for `id`, doing nothing when the value did not change (a PATCH
    /// of another attribute).
    pub(crate) fn replace(&mut self, old: Option<&str>, new: Option<&str>, id: ResourceId) {
        if old == new {
            return;
        }
        if let Some(o) = old {
            self.remove(o, id);
        }
        if let Some(n) = new {
            self.insert(n, id);
        }
    }

    /// The ids whose folded value starts with the folded `prefix`, in value order.
    pub(crate) fn starting_with(&self, prefix: &str) -> impl Iterator<Item = ResourceId> + '_ {
        let prefix = fold_case(prefix);
        let from = (Box::<str>::from(prefix.as_str()), ResourceId(Uuid::nil()));
        self.0
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |(value, _)| value.starts_with(prefix.as_str()))
            .map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_one_range_of_folded_values() {
        let ids: Vec<ResourceId> = (0..4).map(|_| ResourceId::new()).collect();
        let mut ix = PrefixIndex::default();
        ix.insert("Alice", ids[0]);
        ix.insert("alicia", ids[1]);
        ix.insert("ALI", ids[2]);
        ix.insert("bob", ids[3]);
        ix.insert("Alice", ids[3]);
        let mut found: Vec<_> = ix.starting_with("ALIC").collect();
        found.sort();
        let mut wanted = vec![ids[0], ids[1], ids[3]];
        wanted.sort();
        assert_eq!(found, wanted);
        assert_eq!(ix.starting_with("").count(), 5);
        assert_eq!(ix.starting_with("alice!").count(), 0);
        ix.replace(Some("Alice"), Some("Zoe"), ids[0]);
        ix.replace(Some("bob"), Some("bob"), ids[3]);
        assert_eq!(ix.starting_with("alice").collect::<Vec<_>>(), [ids[3]]);
        assert_eq!(ix.starting_with("z").collect::<Vec<_>>(), [ids[0]]);
        ix.replace(Some("ALI"), None, ids[2]);
        assert_eq!(ix.starting_with("ali").count(), 2);
    }
}
