//! The memory store's views as a snapshot subject: the picture is the store's image
//! ([`roster_projections::Image`], listed under the store's read lock and written as JSON
//! lines), read back through the store's own `restore_*` calls.

use super::{Picture, Reflects, Subject};
use roster_projections::{Image, MemoryStore, IMAGE_FORMAT};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

/// What a view snapshot's header says it is of.
pub const OF: &str = "views";

impl Subject for MemoryStore {
    const FILE: &'static str = "views.snap";
    const OF: &'static str = OF;
    const WHAT: &'static str = "view snapshot";
    const FORMAT: u32 = IMAGE_FORMAT;
    type Picture = Image;
    type Loaded = MemoryStore;

    fn next_positions(&self) -> Vec<u64> {
        MemoryStore::next_positions(self)
    }

    fn erasures(&self) -> u64 {
        MemoryStore::erasures(self)
    }

    fn picture(self: &Arc<Self>) -> Image {
        self.image()
    }

    fn read_body(input: impl BufRead + Send) -> anyhow::Result<(MemoryStore, Reflects)> {
        let (store, info) = MemoryStore::read_image(input)?;
        let counts = counts(info.users, info.groups);
        Ok((
            store,
            Reflects {
                next_positions: info.next_positions,
                tails: info.tails,
                erasures: info.erasures,
                counts,
            },
        ))
    }
}

impl Picture for Image {
    fn reflects(&self) -> Reflects {
        let (users, groups) = self.counts();
        Reflects {
            next_positions: self.next_positions.clone(),
            tails: self.tails.clone(),
            erasures: self.erasures,
            counts: counts(users, groups),
        }
    }

    fn write_body(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_to(out)
    }
}

/// What a view snapshot's header counts.
fn counts(users: u64, groups: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([("users".to_owned(), users), ("groups".to_owned(), groups)])
}
