//! The audit trail's index in memory as a snapshot subject ([`crate::audit::image`]): taken
//! chunk by chunk under the index's read lock, read back with everything derived rebuilt.
//! Start-up checks the snapshot against the log before serving and reads its body in the
//! background; audit queries answer 503 until the index has caught up, as they do while it
//! folds the log.

use super::{Picture, Reflects, Subject};
use crate::audit::image::{self, Reflected, Restored};
use crate::audit::Audit;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

impl Subject for Audit {
    const FILE: &'static str = "audit.snap";
    const OF: &'static str = "audit";
    const WHAT: &'static str = "snapshot of the audit index";
    const FORMAT: u32 = image::FORMAT;
    type Picture = image::Picture;
    type Loaded = Restored;

    fn next_positions(&self) -> Vec<u64> {
        Audit::next_positions(self)
    }

    fn erasures(&self) -> u64 {
        Audit::erasures(self)
    }

    fn picture(self: &Arc<Self>) -> image::Picture {
        image::Picture::take(self)
    }

    fn read_body(mut input: impl BufRead + Send) -> anyhow::Result<(Restored, Reflects)> {
        let (restored, reflected) = image::read(&mut input)?;
        Ok((restored, reflects(reflected)))
    }
}

impl Picture for image::Picture {
    fn reflects(&self) -> Reflects {
        reflects(self.reflected())
    }

    fn write_body(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_to(out)
    }
}

fn reflects(r: Reflected) -> Reflects {
    Reflects {
        next_positions: r.next_positions,
        tails: r.tails,
        erasures: r.erasures,
        counts: BTreeMap::from([("entries".to_owned(), r.entries)]),
    }
}
