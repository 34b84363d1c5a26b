//! An ordered index of one case-insensitive string attribute (a userName, a displayName), by the
//! same folded form the filter compares ([`fold_case`]): the ids whose value starts with a
//! prefix are one range of it. It answers `sw` filters, and so the console's search box, in
//! the time the matches take rather than the size of the directory; `eq` lookups by name go
//! through the [`NameIndex`](crate::name_index::NameIndex), which keys by the coarser
//! comparison key that decides uniqueness.
//!
//! Each entry keeps the first [`KEPT`] bytes of the folded value inline, beside the id: no
//! allocation per entry (a million users' two indexes take about 120 MiB, where entries
//! holding the whole folded names on the heap took about 330). A prefix up to `KEPT` bytes
//! long is answered exactly (a value starts with it exactly when its first bytes do, since
//! the filter folds the same way); a longer one gives the entries that share its first `KEPT`
//! bytes, for the filter to check.

use roster_events::{fold_case, ResourceId};
use std::collections::BTreeSet;
use std::ops::Bound;
use uuid::Uuid;

/// How many bytes of a folded value an entry keeps.
pub(crate) const KEPT: usize = 15;

/// The first bytes of a folded value (up to [`KEPT`], cut anywhere, even inside a character),
/// zero-padded, and how many there are. Ordered as the byte strings they hold are (a shorter
/// one that the other starts with comes first, NUL bytes included), which is the order of the
/// values' own bytes, and UTF-8 orders bytes as code points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head([u8; KEPT], u8);

impl Head {
    fn of(bytes: &[u8]) -> Head {
        let n = bytes.len().min(KEPT);
        let mut head = [0; KEPT];
        head[..n].copy_from_slice(&bytes[..n]);
        Head(head, n as u8)
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PrefixIndex(BTreeSet<(Head, ResourceId)>);

/// The ids a prefix gives, and whether they are exactly the values that start with it (else
/// those that share its first [`KEPT`] bytes).
pub(crate) struct Starting<I> {
    pub(crate) ids: I,
    pub(crate) exact: bool,
}

impl PrefixIndex {
    pub(crate) fn insert(&mut self, value: &str, id: ResourceId) {
        self.0.insert((Head::of(fold_case(value).as_bytes()), id));
    }

    pub(crate) fn remove(&mut self, value: &str, id: ResourceId) {
        self.0.remove(&(Head::of(fold_case(value).as_bytes()), id));
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

    /// The ids whose folded value starts with the folded `prefix` (see [`Starting`]), in value
    /// order: one range, bounded on both ends, walked without comparing.
    pub(crate) fn starting_with(
        &self,
        prefix: &str,
    ) -> Starting<impl Iterator<Item = ResourceId> + '_> {
        let folded = fold_case(prefix);
        let exact = folded.len() <= KEPT;
        let kept = &folded.as_bytes()[..folded.len().min(KEPT)];
        let bound = |bytes: &[u8]| (Head::of(bytes), ResourceId(Uuid::nil()));
        let end = successor(kept).map_or(Bound::Unbounded, |s| Bound::Excluded(bound(&s)));
        let ids = self
            .0
            .range((Bound::Included(bound(kept)), end))
            .map(|(_, id)| *id);
        Starting { ids, exact }
    }
}

/// The least byte string greater than every byte string that starts with `prefix`: its last
/// byte below 0xFF incremented, what follows dropped; None when there is none (`prefix` is
/// empty or all 0xFF, which UTF-8 never holds).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = prefix.to_vec();
    while let Some(last) = bytes.pop() {
        if last < u8::MAX {
            bytes.push(last + 1);
            return Some(bytes);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(ids: impl Iterator<Item = ResourceId>) -> Vec<ResourceId> {
        let mut ids: Vec<_> = ids.collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_prefix_is_one_range_of_folded_values() {
        let ids: Vec<ResourceId> = (0..4).map(|_| ResourceId::new()).collect();
        let mut ix = PrefixIndex::default();
        ix.insert("Alice", ids[0]);
        ix.insert("alicia", ids[1]);
        ix.insert("ALI", ids[2]);
        ix.insert("bob", ids[3]);
        ix.insert("Alice", ids[3]);
        let Starting { ids: found, exact } = ix.starting_with("ALIC");
        assert!(exact);
        assert_eq!(sorted(found), sorted([ids[0], ids[1], ids[3]].into_iter()));
        assert_eq!(ix.starting_with("").ids.count(), 5);
        assert_eq!(ix.starting_with("alice!").ids.count(), 0);
        ix.replace(Some("Alice"), Some("Zoe"), ids[0]);
        ix.replace(Some("bob"), Some("bob"), ids[3]);
        assert_eq!(ix.starting_with("alice").ids.collect::<Vec<_>>(), [ids[3]]);
        assert_eq!(ix.starting_with("z").ids.collect::<Vec<_>>(), [ids[0]]);
        ix.replace(Some("ALI"), None, ids[2]);
        assert_eq!(ix.starting_with("ali").ids.count(), 2);
    }

    #[test]
    fn a_prefix_longer_than_what_entries_keep_gives_those_that_share_its_start() {
        let (a, b, c) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
        let mut ix = PrefixIndex::default();
        ix.insert("Christopher.Robinson@example.com", a);
        ix.insert("christopher.robertson@example.com", b);
        ix.insert("christopher.r", c);
        {
            let exact = ix.starting_with("CHRISTOPHER.RO");
            assert!(exact.exact, "fourteen bytes");
            assert_eq!(sorted(exact.ids), sorted([a, b].into_iter()));
            let long = ix.starting_with("christopher.robi");
            assert!(!long.exact, "sixteen bytes: a superset");
            assert_eq!(sorted(long.ids), sorted([a, b].into_iter()));
        }
        // A character cut by the kept length: the bytes still order as the values do.
        ix.insert("aaaaaaaaaaaaaaé", c);
        assert_eq!(
            ix.starting_with("aaaaaaaaaaaaaaé").ids.collect::<Vec<_>>(),
            [c]
        );
        assert_eq!(ix.starting_with("aaaaaaaaaaaaaae").ids.count(), 0);
    }

    #[test]
    fn the_range_ends_at_the_least_byte_string_past_the_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
        let mut ix = PrefixIndex::default();
        let id = ResourceId::new();
        for v in [
            "a",
            "a\u{10ffff}",
            "a\u{10ffff}x",
            "ab",
            "b",
            "\u{10ffff}",
            "a\0",
            "a\0b",
        ] {
            ix.insert(v, id);
        }
        assert_eq!(ix.starting_with("a\u{10ffff}").ids.count(), 2);
        assert_eq!(ix.starting_with("a").ids.count(), 6);
        assert_eq!(ix.starting_with("a\0").ids.count(), 2);
        assert_eq!(ix.starting_with("\u{10ffff}").ids.count(), 1);
    }
}
