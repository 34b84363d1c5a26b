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

    /// The ids whose folded value starts with the folded `prefix`, in value order: one range,
    /// bounded on both ends, so that walking it reads no value.
    pub(crate) fn starting_with(&self, prefix: &str) -> impl Iterator<Item = ResourceId> + '_ {
        let prefix = fold_case(prefix);
        let bound = |s: String| (s.into_boxed_str(), ResourceId(Uuid::nil()));
        let end = successor(&prefix).map_or(Bound::Unbounded, |s| Bound::Excluded(bound(s)));
        self.0
            .range((Bound::Included(bound(prefix)), end))
            .map(|(_, id)| *id)
    }
}

/// The least string greater than every string that starts with `prefix` (its last character
/// that can be incremented, incremented, and what follows dropped), or None when there is none
/// (`prefix` is empty or only `char::MAX`). UTF-8 orders bytes as code points, so the strings
/// from `prefix` up to it are exactly those that start with `prefix`.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, stepping over the surrogates.
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
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

    #[test]
    fn the_range_ends_at_the_least_string_past_the_prefix() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(successor("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10ffff}\u{10ffff}"), None);
        assert_eq!(successor(""), None);
        let mut ix = PrefixIndex::default();
        let id = ResourceId::new();
        for v in ["a", "a\u{10ffff}", "a\u{10ffff}x", "ab", "b", "\u{10ffff}"] {
            ix.insert(v, id);
        }
        assert_eq!(ix.starting_with("a\u{10ffff}").count(), 2);
        assert_eq!(ix.starting_with("a").count(), 4);
        assert_eq!(ix.starting_with("\u{10ffff}").count(), 1);
    }
}
