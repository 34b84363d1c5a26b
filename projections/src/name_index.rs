//! An index of ids by a string key, for keys that are unique or nearly so: userNames and group
//! displayNames by their comparison key ([`name_key`]), one id per key since a directory's
//! decisions keep names unique by it; externalIds as given. A key holds a set only where
//! several resources share it (records written before names compared by their key: `carol`
//! and `carol `; an externalId two sources both use): those still fold, and the index still
//! finds them all. One id costs no allocation beyond its key, which matters at a million users
//! (the writers hold a copy too).
//!
//! [`name_key`]: crate::names::name_key

use foldhash::HashMap;
use roster_events::ResourceId;
use std::collections::BTreeSet;

/// Ids under one key; a set costs an allocation, so one id is kept as itself.
#[derive(Clone, Debug)]
enum Ids {
    One(ResourceId),
    Many(BTreeSet<ResourceId>),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NameIndex(HashMap<String, Ids>);

impl NameIndex {
    pub(crate) fn insert(&mut self, key: String, id: ResourceId) {
        match self.0.get_mut(&key) {
            None => {
                self.0.insert(key, Ids::One(id));
            }
            Some(Ids::One(other)) if *other == id => {}
            Some(slot @ Ids::One(_)) => {
                let Ids::One(other) = *slot else { return };
                *slot = Ids::Many(BTreeSet::from([other, id]));
            }
            Some(Ids::Many(set)) => {
                set.insert(id);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str, id: ResourceId) {
        let Some(ids) = self.0.get_mut(key) else {
            return;
        };
        match ids {
            Ids::One(other) if *other == id => {
                self.0.remove(key);
            }
            Ids::One(_) => {}
            Ids::Many(set) => {
                set.remove(&id);
                if let Some(&last) = set.iter().next().filter(|_| set.len() == 1) {
                    *ids = Ids::One(last);
                }
            }
        }
    }

    /// How many keys hold ids.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids under `key`, in id order.
    pub(crate) fn get(&self, key: &str) -> impl Iterator<Item = ResourceId> + '_ {
        let (one, many) = match self.0.get(key) {
            None => (None, None),
            Some(Ids::One(id)) => (Some(*id), None),
            Some(Ids::Many(set)) => (None, Some(set)),
        };
        one.into_iter().chain(many.into_iter().flatten().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_key_and_a_set_only_where_several_share_it() {
        let (a, b) = (ResourceId::new(), ResourceId::new());
        let mut ix = NameIndex::default();
        ix.insert("carol".into(), a);
        ix.insert("carol".into(), a);
        assert_eq!(ix.get("carol").collect::<Vec<_>>(), [a]);
        ix.insert("carol".into(), b);
        assert_eq!(ix.get("carol").collect::<Vec<_>>(), [a, b]);
        ix.remove("carol", a);
        assert!(matches!(ix.0.get("carol"), Some(Ids::One(id)) if *id == b));
        ix.remove("carol", a);
        ix.remove("carol", b);
        assert_eq!(ix.get("carol").count(), 0);
        assert!(ix.0.is_empty());
    }
}
