//! What a provider's consumer keeps between runs, and where: its log position, its progress
//! (pending and parked work, members waiting for their link, the last full sync) and its map
//! of local id to remote id, saved together by one atomic checkpoint. A saved position means:
//! every change below it is on the remote or in the saved pending work.
//!
//! Two stores behind [`StateStore`]: [`FileStateStore`] in the data directory (the default)
//! and [`PgStateStore`] in PostgreSQL when the views live there.

use super::plan::Kind;
use super::queue::Saved;
use super::sync::{Echo, MemoryLinks};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use roster_events::{Member, ResourceId};
use roster_projections::pg::{EchoRow, LinkRow, PgStore, ProviderCheckpoint};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One object of a provider's work.
pub type Key = (Kind, ResourceId);

/// What to carry to the remote for one object. Work says what to bring up to date, not what
/// to send: the task reads the object's current view and sends what makes the remote match
/// it, so work for one object merges and a repeated change is harmless.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// The object as a whole (created, changed, deleted, or moved in or out of scope).
    #[serde(default)]
    pub whole: bool,
    /// Members added to a group since it was last carried.
    #[serde(default)]
    pub added: BTreeSet<Member>,
    /// Members removed from a group since it was last carried.
    #[serde(default)]
    pub removed: BTreeSet<Member>,
    /// Look the object up by externalId before creating it: its create may have reached the
    /// remote without the link being saved (a crash between the two).
    #[serde(default)]
    pub verify: bool,
    /// When the earliest change in this work was made (ms since the epoch), for the
    /// propagation-time metric.
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// For a deleted user: the groups it left with its deletion (the same record), which it
    /// is taken out of on the remote too where the remote does not do that itself.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub left: BTreeSet<ResourceId>,
}

impl Work {
    pub fn whole() -> Work {
        Work {
            whole: true,
            ..Work::default()
        }
    }

    /// Folds a later change into this one.
    pub fn merge(&mut self, later: Work) {
        self.whole |= later.whole;
        self.verify |= later.verify;
        self.since_ms = match (self.since_ms, later.since_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for m in later.added {
            self.removed.remove(&m);
            self.added.insert(m);
        }
        for m in later.removed {
            self.added.remove(&m);
            self.removed.insert(m);
        }
        self.left.extend(later.left);
    }
}

/// The outcome of one full sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FullSyncReport {
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// The sync was planned after every provider request below this log position was taken:
    /// it answers each sync request below it.
    #[serde(default)]
    pub requests_below: u64,
    /// Local objects in scope, compared with the remote: the unchanged, created and updated
    /// ones and those whose create or update failed.
    pub compared: u64,
    pub unchanged: u64,
    /// Fixes carried (while the sync runs: planned and not failed yet).
    pub created: u64,
    pub updated: u64,
    /// Remote objects removed (or deactivated): out of scope, deleted here, or orphans.
    pub deleted: u64,
    /// Fixes of any kind that failed: their objects are parked.
    pub failed: u64,
    /// The first errors, for operators.
    pub errors: Vec<String>,
}

/// A provider's progress, saved as one document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The first full sync (the bootstrap from a cut of the views) is done.
    pub bootstrapped: bool,
    /// Provider requests (sync, retry, replay) below this log position were taken already;
    /// read again after a replay, they are not carried out twice.
    #[serde(alias = "replay_floor")]
    pub requests_below: u64,
    /// An operator asked for a full sync that has not run yet.
    pub full_sync_requested: bool,
    pub pending: Vec<Saved<Key, Work>>,
    /// Members (users or groups) left out of groups on the remote because they had no remote
    /// id yet: when they get one, these groups get them as members.
    pub waiting: BTreeMap<ResourceId, BTreeSet<ResourceId>>,
    pub last_full_sync: Option<FullSyncReport>,
    /// The parts of the configuration the last full sync ran with
    /// ([`super::config::sync_fingerprint`]): when they change, a full sync runs.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// What Roster learned about the remote by talking to it.
    #[serde(default)]
    pub learned: super::compat::Learned,
}

/// What the remote last answered for each object (see [`Echo`]).
pub type Echoes = HashMap<Key, Echo>;

/// A provider's saved state.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub next_position: u64,
    pub progress: Progress,
    pub links: MemoryLinks,
    pub echoes: Echoes,
}

/// One checkpoint: the new position and progress, the links changed since the previous
/// checkpoint, and (for stores that compact) all links.
pub struct Checkpoint<'a> {
    pub directory: &'a str,
    pub partition: u32,
    pub next_position: u64,
    pub progress: &'a Progress,
    pub changed: &'a [(Kind, ResourceId, Option<String>)],
    pub links: &'a MemoryLinks,
    /// Echoes set or dropped since the previous checkpoint, and (for stores that compact)
    /// all of them.
    pub echoes_changed: &'a [(Kind, ResourceId, Option<Echo>)],
    pub echoes: &'a Echoes,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store cannot be reached or written; nothing of the checkpoint was saved.
    #[error("provider state unavailable: {0}")]
    Unavailable(String),
    /// Stored state cannot be read back.
    #[error("provider state corrupt: {0}")]
    Corrupt(String),
}

/// Where providers' state lives.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The saved state of `provider`, None if it never saved any.
    async fn load(&self, provider: ResourceId) -> Result<Option<Loaded>, StateError>;
    /// Saves a checkpoint atomically: all of it or none of it.
    async fn save(
        &self,
        provider: ResourceId,
        checkpoint: Checkpoint<'_>,
    ) -> Result<(), StateError>;
    /// Deletes the state of a deleted provider.
    async fn forget(&self, provider: ResourceId) -> Result<(), StateError>;
}

/// One line of a provider's journal, or its snapshot.
#[derive(Serialize, Deserialize)]
struct Entry {
    seq: u64,
    next_position: u64,
    progress: Progress,
    /// Links set (`remote` Some) or removed.
    links: Vec<(Kind, ResourceId, Option<String>)>,
    /// Echoes set or dropped (absent in state written before echoes were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    echoes: Vec<(Kind, ResourceId, Option<Echo>)>,
}

/// Per provider, in `<data_dir>/providers/<id>/`: `snapshot.json` (state and every link as of
/// one checkpoint) and `journal.ndjson` (one line per checkpoint after it, fsynced before the
/// save returns). Loading applies the journal to the snapshot and cuts a torn last line. The
/// journal is folded into a new snapshot once it outgrows it.
pub struct FileStateStore {
    root: PathBuf,
    /// Per provider: the last sequence number and the journal's size.
    open: Mutex<HashMap<ResourceId, (u64, u64)>>,
}

const COMPACT_MIN_BYTES: u64 = 1 << 20;

impl FileStateStore {
    pub fn new(data_dir: &Path) -> FileStateStore {
        FileStateStore {
            root: data_dir.join("providers"),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, provider: ResourceId) -> PathBuf {
        self.root.join(provider.to_string())
    }

    fn load_sync(&self, provider: ResourceId) -> Result<Option<Loaded>, StateError> {
        let dir = self.dir(provider);
        let corrupt = |e: String| StateError::Corrupt(format!("{}: {e}", dir.display()));
        let snapshot = match std::fs::read(dir.join("snapshot.json")) {
            Ok(bytes) => {
                Some(serde_json::from_slice::<Entry>(&bytes).map_err(|e| corrupt(e.to_string()))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StateError::Unavailable(e.to_string())),
        };
        let journal_path = dir.join("journal.ndjson");
        let mut lines = Vec::new();
        let mut valid_len = 0u64;
        match std::fs::File::open(&journal_path) {
            Ok(f) => {
                let mut reader = std::io::BufReader::new(f);
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = reader
                        .read_line(&mut line)
                        .map_err(|e| StateError::Unavailable(e.to_string()))?;
                    if n == 0 || !line.ends_with('\n') {
                        break;
                    }
                    match serde_json::from_str::<Entry>(&line) {
                        Ok(e) => lines.push(e),
                        // A torn or half-written last checkpoint: it was never acknowledged.
                        Err(_) => break,
                    }
                    valid_len += n as u64;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Unavailable(e.to_string())),
        }
        if snapshot.is_none() && lines.is_empty() {
            return Ok(None);
        }
        // Cut what follows the last whole line, so that appends start on a line boundary.
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&journal_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len > valid_len {
                f.set_len(valid_len)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| StateError::Unavailable(e.to_string()))?;
            }
        }
        let mut links = MemoryLinks::default();
        let mut state = Loaded::default();
        let mut seq = 0;
        for e in snapshot.into_iter().chain(lines) {
            if e.seq <= seq && seq != 0 {
                continue;
            }
            seq = e.seq;
            state.next_position = e.next_position;
            state.progress = e.progress;
            for (kind, local, remote) in e.links {
                match remote {
                    Some(r) => links.0.insert((kind, local), r),
                    None => links.0.remove(&(kind, local)),
                };
            }
            for (kind, local, echo) in e.echoes {
                match echo {
                    Some(echo) => state.echoes.insert((kind, local), echo),
                    None => state.echoes.remove(&(kind, local)),
                };
            }
        }
        state.links = links;
        let lock = self.open.lock();
        lock.unwrap_or_else(|p| p.into_inner())
            .insert(provider, (seq, valid_len));
        Ok(Some(state))
    }

    /// The bytes of one checkpoint: a journal line, or a whole snapshot once the journal has
    /// outgrown what a snapshot would take. No I/O.
    fn encode(&self, provider: ResourceId, c: Checkpoint<'_>) -> Result<Encoded, StateError> {
        let (seq, journal_len) = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.get(&provider).copied().unwrap_or((0, 0))
        };
        let seq = seq + 1;
        let snapshot = journal_len > COMPACT_MIN_BYTES.max(c.links.0.len() as u64 * 80);
        let (links, echoes) = if snapshot {
            let links = c
                .links
                .0
                .iter()
                .map(|((k, l), r)| (*k, *l, Some(r.clone())))
                .collect();
            let echoes = c.echoes.iter().map(|((k, l), e)| (*k, *l, Some(*e)));
            (links, echoes.collect())
        } else {
            (c.changed.to_vec(), c.echoes_changed.to_vec())
        };
        let entry = Entry {
            seq,
            next_position: c.next_position,
            progress: c.progress.clone(),
            links,
            echoes,
        };
        let mut bytes =
            serde_json::to_vec(&entry).map_err(|e| StateError::Unavailable(e.to_string()))?;
        if !snapshot {
            bytes.push(b'\n');
        }
        Ok(Encoded {
            dir: self.dir(provider),
            bytes,
            snapshot,
            seq,
            journal_len,
        })
    }

    /// Writes an encoded checkpoint durably and returns the journal's new length.
    fn write(e: &Encoded) -> std::io::Result<u64> {
        let dir = &e.dir;
        crate::datadir::create_dir(dir)?;
        if e.snapshot {
            let tmp = dir.join("snapshot.json.tmp");
            let mut f = crate::datadir::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&e.bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join("snapshot.json"))?;
            std::fs::File::open(dir)?.sync_all()?;
            // Lines at or below the snapshot's sequence are skipped on load, so a crash before
            // this truncation loses nothing.
            let journal = crate::datadir::file_options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("journal.ndjson"))?;
            journal.set_len(0)?;
            journal.sync_all()?;
            return Ok(0);
        }
        let mut journal = crate::datadir::file_options()
            .create(true)
            .append(true)
            .open(dir.join("journal.ndjson"))?;
        journal.write_all(&e.bytes)?;
        journal.sync_data()?;
        if e.journal_len == 0 && e.seq == 1 {
            // The journal's directory entry is new: make it durable too.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(e.journal_len + e.bytes.len() as u64)
    }
}

/// One checkpoint, encoded, ready to write.
struct Encoded {
    dir: PathBuf,
    bytes: Vec<u8>,
    snapshot: bool,
    seq: u64,
    journal_len: u64,
}

#[async_trait]
impl StateStore for Arc<FileStateStore> {
    async fn load(&self, provider: ResourceId) -> Result<Option<Loaded>, StateError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.load_sync(provider))
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?
    }

    async fn save(&self, provider: ResourceId, c: Checkpoint<'_>) -> Result<(), StateError> {
        let encoded = self.encode(provider, c)?;
        let (encoded, written) = tokio::task::spawn_blocking(move || {
            let written = FileStateStore::write(&encoded);
            (encoded, written)
        })
        .await
        .map_err(|e| StateError::Unavailable(e.to_string()))?;
        let len = written.map_err(|e| StateError::Unavailable(e.to_string()))?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(provider, (encoded.seq, len));
        Ok(())
    }

    async fn forget(&self, provider: ResourceId) -> Result<(), StateError> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&provider);
        match std::fs::remove_dir_all(self.dir(provider)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StateError::Unavailable(e.to_string()))
            }
            _ => Ok(()),
        }
    }
}

/// Providers' state in PostgreSQL (tables `provider_state` and `provider_links`).
pub struct PgStateStore(pub Arc<PgStore>);

fn kind_code(kind: Kind) -> i16 {
    match kind {
        Kind::User => 0,
        Kind::Group => 1,
    }
}

#[async_trait]
impl StateStore for PgStateStore {
    async fn load(&self, provider: ResourceId) -> Result<Option<Loaded>, StateError> {
        let saved = self
            .0
            .load_provider(provider.0)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?;
        let Some(saved) = saved else {
            return Ok(None);
        };
        let progress = serde_json::from_str(&saved.progress)
            .map_err(|e| StateError::Corrupt(format!("provider {provider}: {e}")))?;
        let kind = |code: i16| if code == 1 { Kind::Group } else { Kind::User };
        let mut links = MemoryLinks::default();
        for (k, local, remote) in saved.links {
            links.0.insert((kind(k), ResourceId(local)), remote);
        }
        let echoes = saved
            .echoes
            .into_iter()
            .map(|(k, local, sent, answered)| {
                let echo = Echo {
                    sent: sent as u64,
                    answered: answered as u64,
                };
                ((kind(k), ResourceId(local)), echo)
            })
            .collect();
        Ok(Some(Loaded {
            next_position: saved.next_position,
            progress,
            links,
            echoes,
        }))
    }

    async fn save(&self, provider: ResourceId, c: Checkpoint<'_>) -> Result<(), StateError> {
        let progress = serde_json::to_string(c.progress)
            .map_err(|e| StateError::Unavailable(e.to_string()))?;
        // The net effect of the changes, in order: the last word on each link wins.
        let mut net: BTreeMap<(Kind, ResourceId), Option<&String>> = BTreeMap::new();
        for (k, l, r) in c.changed {
            net.insert((*k, *l), r.as_ref());
        }
        let linked: Vec<LinkRow> = net
            .iter()
            .filter_map(|((k, l), r)| r.map(|r| (kind_code(*k), l.0, r.clone())))
            .collect();
        let unlinked: Vec<(i16, uuid::Uuid)> = net
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|((k, l), _)| (kind_code(*k), l.0))
            .collect();
        let mut net_echoes: BTreeMap<(Kind, ResourceId), Option<Echo>> = BTreeMap::new();
        for (k, l, e) in c.echoes_changed {
            net_echoes.insert((*k, *l), *e);
        }
        let echoed: Vec<EchoRow> = net_echoes
            .iter()
            .filter_map(|((k, l), e)| {
                e.map(|e| (kind_code(*k), l.0, e.sent as i64, e.answered as i64))
            })
            .collect();
        let unechoed: Vec<(i16, uuid::Uuid)> = net_echoes
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|((k, l), _)| (kind_code(*k), l.0))
            .collect();
        self.0
            .save_provider(ProviderCheckpoint {
                provider: provider.0,
                directory: c.directory,
                partition: c.partition,
                next_position: c.next_position,
                progress: &progress,
                linked: &linked,
                unlinked: &unlinked,
                replace_links: false,
                echoed: &echoed,
                unechoed: &unechoed,
            })
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    async fn forget(&self, provider: ResourceId) -> Result<(), StateError> {
        self.0
            .forget_provider(provider.0)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_ECHOES: std::sync::LazyLock<Echoes> = std::sync::LazyLock::new(Echoes::new);

    fn checkpoint<'a>(
        position: u64,
        progress: &'a Progress,
        changed: &'a [(Kind, ResourceId, Option<String>)],
        links: &'a MemoryLinks,
    ) -> Checkpoint<'a> {
        Checkpoint {
            directory: "default",
            partition: 0,
            next_position: position,
            progress,
            changed,
            links,
            echoes_changed: &[],
            echoes: &NO_ECHOES,
        }
    }

    #[tokio::test]
    async fn a_file_store_gives_back_the_last_checkpoint_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStateStore::new(dir.path()));
        let p = ResourceId::new();
        assert!(store.load(p).await.unwrap().is_none());
        let (a, b) = (ResourceId::new(), ResourceId::new());
        let mut links = MemoryLinks::default();
        let progress = Progress {
            bootstrapped: true,
            ..Progress::default()
        };
        links.0.insert((Kind::User, a), "ra".into());
        let changed = [(Kind::User, a, Some("ra".to_string()))];
        store
            .save(p, checkpoint(5, &progress, &changed, &links))
            .await
            .unwrap();
        links.0.insert((Kind::Group, b), "rb".into());
        links.0.remove(&(Kind::User, a));
        let changed = [
            (Kind::Group, b, Some("rb".to_string())),
            (Kind::User, a, None),
        ];
        store
            .save(p, checkpoint(9, &progress, &changed, &links))
            .await
            .unwrap();
        let journal = dir
            .path()
            .join("providers")
            .join(p.to_string())
            .join("journal.ndjson");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        f.write_all(b"{\"seq\":3,\"next_po").unwrap();

        let again = Arc::new(FileStateStore::new(dir.path()));
        let loaded = again.load(p).await.unwrap().unwrap();
        assert_eq!(loaded.next_position, 9);
        assert!(loaded.progress.bootstrapped);
        assert_eq!(loaded.links, links);
        let changed = [];
        again
            .save(p, checkpoint(12, &progress, &changed, &links))
            .await
            .unwrap();
        let third = Arc::new(FileStateStore::new(dir.path()));
        let loaded = third.load(p).await.unwrap().unwrap();
        assert_eq!(
            loaded.next_position, 12,
            "the torn line was cut, not appended to"
        );
        assert_eq!(loaded.links, links);
    }

    #[tokio::test]
    async fn a_compacted_file_store_keeps_every_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStateStore::new(dir.path()));
        let p = ResourceId::new();
        let mut links = MemoryLinks::default();
        let progress = Progress::default();
        // Enough checkpoints to outgrow the compaction threshold.
        for i in 0..3000u64 {
            let id = ResourceId::new();
            let remote = format!("remote-{i}-{}", "x".repeat(300));
            links.0.insert((Kind::User, id), remote.clone());
            let changed = [(Kind::User, id, Some(remote))];
            store
                .save(p, checkpoint(i + 1, &progress, &changed, &links))
                .await
                .unwrap();
        }
        let base = dir.path().join("providers").join(p.to_string());
        assert!(base.join("snapshot.json").exists(), "compacted");
        let loaded = Arc::new(FileStateStore::new(dir.path()))
            .load(p)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.next_position, 3000);
        assert_eq!(loaded.links.0.len(), 3000);
        assert_eq!(loaded.links, links);
        store.forget(p).await.unwrap();
        assert!(!base.exists());
    }

    #[test]
    fn merged_work_keeps_the_last_word_on_each_member() {
        let m = Member {
            value: ResourceId::new(),
            kind: roster_events::MemberType::User,
        };
        let mut w = Work {
            added: [m].into(),
            ..Work::default()
        };
        w.merge(Work {
            removed: [m].into(),
            ..Work::default()
        });
        assert!(w.added.is_empty());
        assert_eq!(w.removed, [m].into());
        w.merge(Work::whole());
        assert!(w.whole);
    }
}
