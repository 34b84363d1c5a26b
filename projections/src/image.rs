//! A memory store written out and read back: the body of a view snapshot (the server seals it
//! and keeps it in its data directory; start-up loads it and replays only the log after it).
//!
//! An [`Image`] is taken under the store's read lock as lists of the shared views (no view is
//! copied, so the projector waits only for the lists), then written without the lock as one
//! JSON value per line: a header with the log positions, the chain heads and the counts; per
//! directory its record, then its users, groups, sources, admin tokens, providers and retired
//! ids; and an end line with the counts again, so that a body cut short is refused even by a
//! reader that trusts the bytes. Reading it back installs every view through the same
//! `restore_*` calls the PostgreSQL store uses, so the indexes come out as a fold would make
//! them. The image carries everything the fold keeps, and nothing derived that could disagree.

use crate::store::{Inner, MemoryStore};
use crate::views::{
    AdminTokenView, DirectoryMeta, GroupView, Keys, ProviderView, SourceView, UserView,
};
use crate::Directory;
use chrono::{DateTime, Utc};
use roster_events::chain::Digest;
use roster_events::{ChainHead, Document, KeyId, Member, ResourceId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use uuid::Uuid;

/// The version of the line format; a reader refuses any other.
pub const IMAGE_FORMAT: u32 = 1;

/// A memory store's state at one log position, ready to be written.
pub struct Image {
    /// Per partition, the first position the state does not reflect.
    pub next_positions: Vec<u64>,
    /// Per partition, the digest of the record just before `next_positions` (none before the
    /// first record): what a reader checks the log against.
    pub tails: Vec<Option<Digest>>,
    /// How many user.erased events the state reflects (a snapshot taken before an erasure
    /// still holds the person's data and must go).
    pub erasures: u64,
    fold_errors: u64,
    heads: Vec<(String, ChainHead)>,
    source_dirs: Vec<(String, String)>,
    dirs: Vec<DirImage>,
}

struct DirImage {
    name: String,
    meta: Option<DirectoryMeta>,
    users: Vec<Arc<UserView>>,
    groups: Vec<Arc<GroupView>>,
    sources: Vec<Arc<SourceView>>,
    admin_tokens: Vec<(ResourceId, AdminTokenView)>,
    providers: Vec<Arc<ProviderView>>,
    retired: Vec<ResourceId>,
}

/// What an image read back holds, besides the store.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInfo {
    pub next_positions: Vec<u64>,
    pub tails: Vec<Option<Digest>>,
    pub erasures: u64,
    pub users: u64,
    pub groups: u64,
}

/// Why an image could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("reading the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} of the image does not parse: {error}")]
    Parse { line: u64, error: serde_json::Error },
    #[error("the image is in format {0}; this release reads format {IMAGE_FORMAT}")]
    Format(u32),
    #[error("the image does not fit together: {0}")]
    Shape(String),
}

/// A moment as whole seconds and nanoseconds (any `DateTime` fits, and it reads back without
/// parsing text).
type Stamp = (i64, u32);

fn stamp(t: &DateTime<Utc>) -> Stamp {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn unstamp(line: u64, (secs, nanos): Stamp) -> Result<DateTime<Utc>, ImageError> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| ImageError::Shape(format!("line {line}: a time out of range")))
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    next_positions: Vec<u64>,
    tails: Vec<Option<Digest>>,
    erasures: u64,
    fold_errors: u64,
    /// Directory, sequence, record id and digest of each chain head.
    heads: Vec<(String, u64, Option<Uuid>, Option<Digest>)>,
    /// Source slug to the directory that last created it.
    source_dirs: Vec<(String, String)>,
}

/// A user, with the keys the indexes need (so reading back does not parse the document).
/// Written from borrowed views, read back owned.
#[derive(Serialize, Deserialize)]
struct UserLine<'a> {
    id: ResourceId,
    owner: Cow<'a, Option<String>>,
    doc: Cow<'a, Document>,
    keys: Cow<'a, Keys>,
    password_hash: Cow<'a, Option<String>>,
    data_key: Option<Uuid>,
    version: u64,
    created: Stamp,
    modified: Stamp,
}

#[derive(Serialize, Deserialize)]
struct GroupLine<'a> {
    id: ResourceId,
    owner: Cow<'a, Option<String>>,
    doc: Cow<'a, Document>,
    keys: Cow<'a, Keys>,
    members: Cow<'a, BTreeSet<Member>>,
    version: u64,
    created: Stamp,
    modified: Stamp,
}

/// One line of the body. Externally tagged: `{"User":{...}}`.
#[derive(Serialize, Deserialize)]
enum Line<'a> {
    Header(Header),
    Directory {
        name: Cow<'a, str>,
        meta: Cow<'a, Option<DirectoryMeta>>,
    },
    User(UserLine<'a>),
    Group(GroupLine<'a>),
    Source(Cow<'a, SourceView>),
    AdminToken(ResourceId, Cow<'a, AdminTokenView>),
    Provider(Box<Cow<'a, ProviderView>>),
    Retired(ResourceId),
    End {
        users: u64,
        groups: u64,
    },
}

impl MemoryStore {
    /// The store's state as it is now, for writing out. Holds the read lock only to list the
    /// views (shared, not copied).
    pub fn image(&self) -> Image {
        let inner = self.read_inner();
        let dirs = inner
            .dirs
            .iter()
            .map(|(name, d)| DirImage {
                name: name.clone(),
                meta: d.meta.clone(),
                users: d.users.values().cloned().collect(),
                groups: d.groups.values().cloned().collect(),
                sources: d.sources.values().cloned().collect(),
                admin_tokens: d
                    .admin_tokens
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
                providers: d.providers.values().cloned().collect(),
                retired: inner
                    .retired
                    .get(name)
                    .map(|r| r.iter().copied().collect())
                    .unwrap_or_default(),
            })
            .collect();
        Image {
            next_positions: inner.next_positions.clone(),
            tails: inner.tails.clone(),
            erasures: inner.erasures,
            fold_errors: inner.fold_errors,
            heads: inner
                .dirs
                .keys()
                .map(|name| (name.clone(), inner.chain.head(name)))
                .collect(),
            source_dirs: inner
                .source_dir
                .iter()
                .map(|(s, d)| (s.clone(), d.clone()))
                .collect(),
            dirs,
        }
    }

    /// A store holding what `image` wrote (an image written by [`Image::write_to`]). The
    /// lines are read and parsed on a thread of their own while this one installs them.
    ///
    /// Fails when a line does not parse, the format is another release's, or the body is cut
    /// short or does not add up.
    pub fn read_image(
        mut input: impl BufRead + Send,
    ) -> Result<(MemoryStore, ImageInfo), ImageError> {
        let mut text = String::new();
        if input.read_line(&mut text)? == 0 {
            return Err(ImageError::Shape("the image is empty".into()));
        }
        let header = match parse(1, &text)? {
            Line::Header(h) => h,
            _ => return Err(ImageError::Shape("the first line is not the header".into())),
        };
        if header.format != IMAGE_FORMAT {
            return Err(ImageError::Format(header.format));
        }
        let mut inner = Inner {
            next_positions: header.next_positions.clone(),
            tails: header.tails.clone(),
            erasures: header.erasures,
            fold_errors: header.fold_errors,
            source_dir: header.source_dirs.into_iter().collect(),
            ..Inner::default()
        };
        for (dir, seq, record_id, digest) in header.heads {
            let head = ChainHead {
                seq,
                record_id,
                digest,
            };
            inner.chain.restore(dir, head);
        }
        let mut restore = Restore {
            inner,
            current: None,
            retired: HashMap::new(),
            users: 0,
            groups: 0,
            ended: false,
        };
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            s.spawn(move || parse_lines(input, tx));
            for batch in rx {
                for (n, line) in batch? {
                    if restore.ended {
                        return Err(ImageError::Shape("data after the end line".into()));
                    }
                    restore.take(n, line)?;
                }
            }
            Ok(())
        })?;
        if !restore.ended {
            return Err(ImageError::Shape(
                "the image ends before its end line".into(),
            ));
        }
        let Restore {
            mut inner,
            current,
            retired,
            users,
            groups,
            ..
        } = restore;
        if let Some(done) = current {
            inner.dirs.insert(done.name.clone(), done);
        }
        inner.retired = retired;
        let info = ImageInfo {
            next_positions: header.next_positions,
            tails: header.tails,
            erasures: header.erasures,
            users,
            groups,
        };
        Ok((MemoryStore::from_inner(inner), info))
    }
}

/// Lines parsed per batch handed from the parsing thread to the installing one.
const BATCH: usize = 1024;

/// A line parsed, with its number.
type Parsed = (u64, Line<'static>);

/// Reads and parses the lines after the header into batches for `tx`, until the input ends,
/// a line fails (the batch before it is sent first, then the error), or the receiver is gone.
fn parse_lines(mut input: impl BufRead, tx: SyncSender<Result<Vec<Parsed>, ImageError>>) {
    let mut text = String::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 1u64;
    let failed = loop {
        text.clear();
        match input.read_line(&mut text) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(ImageError::Io(e)),
        }
        n += 1;
        match serde_json::from_str::<Line<'static>>(&text) {
            Ok(line) => batch.push((n, line)),
            Err(error) => break Some(ImageError::Parse { line: n, error }),
        }
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    };
    if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
        return;
    }
    if let Some(e) = failed {
        let _ = tx.send(Err(e));
    }
}

/// Views being installed, line by line, into the store they become.
struct Restore {
    inner: Inner,
    current: Option<Directory>,
    retired: HashMap<String, HashSet<ResourceId>>,
    users: u64,
    groups: u64,
    /// The end line was read (and its counts agreed).
    ended: bool,
}

impl Restore {
    /// Installs line `n`.
    ///
    /// Fails when it does not fit where it is (a view before any directory, a second header,
    /// an end line whose counts disagree).
    fn take(&mut self, n: u64, line: Line<'static>) -> Result<(), ImageError> {
        let dir = match (&line, self.current.as_mut()) {
            (Line::Directory { .. } | Line::End { .. } | Line::Header(_), _) => None,
            (_, Some(dir)) => Some(dir),
            (_, None) => {
                return Err(ImageError::Shape(format!(
                    "line {n}: a view before any directory"
                )))
            }
        };
        match line {
            Line::Header(_) => return Err(ImageError::Shape(format!("line {n}: a second header"))),
            Line::Directory { name, meta } => {
                if let Some(done) = self.current.take() {
                    self.inner.dirs.insert(done.name.clone(), done);
                }
                let mut dir = Directory::new(&name);
                if let Some(meta) = meta.into_owned() {
                    dir.restore_meta(meta);
                }
                self.current = Some(dir);
            }
            Line::User(u) => {
                self.users += 1;
                let view = UserView {
                    id: u.id,
                    owner: u.owner.into_owned(),
                    resource: u.doc.into_owned(),
                    keys: u.keys.into_owned(),
                    password_hash: u.password_hash.into_owned(),
                    data_key: u.data_key.map(KeyId),
                    version: u.version,
                    created: unstamp(n, u.created)?,
                    last_modified: unstamp(n, u.modified)?,
                };
                dir.expect("checked above").restore_user(Arc::new(view));
            }
            Line::Group(g) => {
                self.groups += 1;
                let view = GroupView {
                    id: g.id,
                    owner: g.owner.into_owned(),
                    resource: g.doc.into_owned(),
                    keys: g.keys.into_owned(),
                    members: g.members.into_owned(),
                    version: g.version,
                    created: unstamp(n, g.created)?,
                    last_modified: unstamp(n, g.modified)?,
                };
                dir.expect("checked above").restore_group(Arc::new(view));
            }
            Line::Source(s) => {
                let view = Arc::new(s.into_owned());
                dir.expect("checked above").restore_source(view);
            }
            Line::AdminToken(key, t) => {
                dir.expect("checked above")
                    .restore_admin_token(key, t.into_owned());
            }
            Line::Provider(p) => {
                let view = Arc::new((*p).into_owned());
                dir.expect("checked above").restore_provider(view);
            }
            Line::Retired(id) => {
                let name = dir.expect("checked above").name().to_owned();
                self.retired.entry(name).or_default().insert(id);
            }
            Line::End { users, groups } => {
                if (users, groups) != (self.users, self.groups) {
                    return Err(ImageError::Shape(format!(
                        "the end line counts {users} users and {groups} groups; the image \
                         holds {} and {}",
                        self.users, self.groups
                    )));
                }
                self.ended = true;
            }
        }
        Ok(())
    }
}

fn parse(line: u64, text: &str) -> Result<Line<'_>, ImageError> {
    serde_json::from_str(text).map_err(|error| ImageError::Parse { line, error })
}

impl Image {
    /// How many users and groups the image holds.
    pub fn counts(&self) -> (u64, u64) {
        self.dirs.iter().fold((0, 0), |(u, g), d| {
            (u + d.users.len() as u64, g + d.groups.len() as u64)
        })
    }

    /// Writes the image, one JSON value per line.
    ///
    /// Fails when `out` fails.
    pub fn write_to(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut put = |line: &Line<'_>| -> std::io::Result<()> {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")
        };
        put(&Line::Header(Header {
            format: IMAGE_FORMAT,
            next_positions: self.next_positions.clone(),
            tails: self.tails.clone(),
            erasures: self.erasures,
            fold_errors: self.fold_errors,
            heads: self
                .heads
                .iter()
                .map(|(d, h)| (d.clone(), h.seq, h.record_id, h.digest))
                .collect(),
            source_dirs: self.source_dirs.clone(),
        }))?;
        for d in &self.dirs {
            put(&Line::Directory {
                name: Cow::Borrowed(&d.name),
                meta: Cow::Borrowed(&d.meta),
            })?;
            for u in &d.users {
                put(&Line::User(UserLine {
                    id: u.id,
                    owner: Cow::Borrowed(&u.owner),
                    doc: Cow::Borrowed(&u.resource),
                    keys: Cow::Borrowed(&u.keys),
                    password_hash: Cow::Borrowed(&u.password_hash),
                    data_key: u.data_key.map(|k| k.0),
                    version: u.version,
                    created: stamp(&u.created),
                    modified: stamp(&u.last_modified),
                }))?;
            }
            for g in &d.groups {
                put(&Line::Group(GroupLine {
                    id: g.id,
                    owner: Cow::Borrowed(&g.owner),
                    doc: Cow::Borrowed(&g.resource),
                    keys: Cow::Borrowed(&g.keys),
                    members: Cow::Borrowed(&g.members),
                    version: g.version,
                    created: stamp(&g.created),
                    modified: stamp(&g.last_modified),
                }))?;
            }
            for s in &d.sources {
                put(&Line::Source(Cow::Borrowed(s.as_ref())))?;
            }
            for (k, t) in &d.admin_tokens {
                put(&Line::AdminToken(*k, Cow::Borrowed(t)))?;
            }
            for p in &d.providers {
                put(&Line::Provider(Box::new(Cow::Borrowed(p.as_ref()))))?;
            }
            for id in &d.retired {
                put(&Line::Retired(*id))?;
            }
        }
        let (users, groups) = self.counts();
        put(&Line::End { users, groups })?;
        out.flush()
    }
}

#[cfg(test)]
mod tests;
