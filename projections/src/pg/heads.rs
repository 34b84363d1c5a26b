//! The chain heads the views reflect (`chain_heads`: per generation and directory, the
//! sequence number, record id and digest of the last valid record folded): read and written
//! by the incremental fold in its transaction, by a rebuild's attach, and by the writers'
//! decision state.

use super::PgStore;
use crate::store::StoreError;
use roster_events::ChainHead;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Inserts or moves on the heads of [`HeadColumns`] (`$1` the generation).
pub(super) const UPSERT: &str = "INSERT INTO chain_heads (gen, directory, seq, record_id, digest) \
     SELECT $1, * FROM UNNEST($2::text[], $3::int8[], $4::uuid[], $5::bytea[]) \
     ON CONFLICT (gen, directory) DO UPDATE SET seq = EXCLUDED.seq, \
     record_id = EXCLUDED.record_id, digest = EXCLUDED.digest";

/// The heads of some directories (`$1` the generation, `$2` the names).
pub(super) const LOAD: &str = "SELECT seq, record_id, digest, directory FROM chain_heads \
     WHERE gen = $1 AND directory = ANY($2)";

/// A stored chain-head digest, if it has the right length (views written before digests
/// were kept have none).
fn digest_of(bytes: Option<Vec<u8>>) -> Option<roster_events::chain::Digest> {
    bytes.and_then(|b| b.try_into().ok())
}

/// A `chain_heads` row (`seq, record_id, digest`, then anything) as a head.
pub(super) fn head_from(r: &tokio_postgres::Row) -> ChainHead {
    ChainHead {
        seq: r.get::<_, i64>(0) as u64,
        record_id: r.get(1),
        digest: digest_of(r.get(2)),
    }
}

/// Chain heads as the columns of one `UNNEST` insert into `chain_heads`.
pub(super) struct HeadColumns {
    pub dirs: Vec<String>,
    pub seqs: Vec<i64>,
    pub ids: Vec<Option<Uuid>>,
    pub digests: Vec<Option<Vec<u8>>>,
}

impl HeadColumns {
    pub fn of<'a>(heads: impl Iterator<Item = (&'a String, &'a ChainHead)>) -> HeadColumns {
        let mut c = HeadColumns {
            dirs: Vec::new(),
            seqs: Vec::new(),
            ids: Vec::new(),
            digests: Vec::new(),
        };
        for (dir, head) in heads {
            c.dirs.push(dir.clone());
            c.seqs.push(head.seq as i64);
            c.ids.push(head.record_id);
            c.digests.push(head.digest.map(|d| d.to_vec()));
        }
        c
    }
}

impl PgStore {
    /// The heads of `names` in generation `gen` (the empty head where a directory has none
    /// yet), read in the fold's transaction.
    ///
    /// Fails when the database fails.
    pub(super) async fn load_heads(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        names: &[String],
    ) -> Result<BTreeMap<String, ChainHead>, StoreError> {
        let rows = self.query(tx, LOAD, &[&gen, &names]).await?;
        let mut heads: BTreeMap<String, ChainHead> = names
            .iter()
            .map(|n| (n.clone(), ChainHead::default()))
            .collect();
        heads.extend(rows.iter().map(|r| (r.get(3), head_from(r))));
        Ok(heads)
    }
}
