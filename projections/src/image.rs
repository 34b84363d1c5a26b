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

    /// A store holding what `image` wrote (an image written by [`Image::write_to`]).
    ///
    /// Fails when a line does not parse, the format is another release's, or the body is cut
    /// short or does not add up.
    pub fn read_image(mut input: impl BufRead) -> Result<(MemoryStore, ImageInfo), ImageError> {
        let mut text = String::new();
        let mut line_no = 0u64;
        let mut next_line = |text: &mut String| -> Result<bool, ImageError> {
            text.clear();
            line_no += 1;
            Ok(input.read_line(text)? > 0)
        };
        if !next_line(&mut text)? {
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
        let (mut users, mut groups) = (0u64, 0u64);
        let mut current: Option<Directory> = None;
        let mut retired: HashMap<String, HashSet<ResourceId>> = HashMap::new();
        let mut n = 1u64;
        loop {
            if !next_line(&mut text)? {
                return Err(ImageError::Shape(
                    "the image ends before its end line".into(),
                ));
            }
            n += 1;
            let line = parse(n, &text)?;
            let dir = match (&line, current.as_mut()) {
                (Line::Directory { .. } | Line::End { .. } | Line::Header(_), _) => None,
                (_, Some(dir)) => Some(dir),
                (_, None) => {
                    return Err(ImageError::Shape(format!(
                        "line {n}: a view before any directory"
                    )))
                }
            };
            match line {
                Line::Header(_) => {
                    return Err(ImageError::Shape(format!("line {n}: a second header")))
                }
                Line::Directory { name, meta } => {
                    if let Some(done) = current.take() {
                        inner.dirs.insert(done.name.clone(), done);
                    }
                    let mut dir = Directory::new(&name);
                    if let Some(meta) = meta.into_owned() {
                        dir.restore_meta(meta);
                    }
                    current = Some(dir);
                }
                Line::User(u) => {
                    users += 1;
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
                    groups += 1;
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
                    retired.entry(name).or_default().insert(id);
                }
                Line::End {
                    users: u,
                    groups: g,
                } => {
                    if (u, g) != (users, groups) {
                        return Err(ImageError::Shape(format!(
                            "the end line counts {u} users and {g} groups; the image holds \
                             {users} and {groups}"
                        )));
                    }
                    break;
                }
            }
        }
        if let Some(done) = current.take() {
            inner.dirs.insert(done.name.clone(), done);
        }
        if next_line(&mut text)? {
            return Err(ImageError::Shape("data after the end line".into()));
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
