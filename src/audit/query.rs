//! An audit search, parsed once from the request: time range, a SCIM filter over event fields,
//! a keyword, the order, the page size and the cursor; and its run over the index, which
//! starts from the narrowest list the filter allows (one resource's, actor's, token's or
//! request's events) and merges partitions by time.

use super::index::{Entry, Interner, PartitionIndex};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use roster_events::fold_case;
use roster_projections::filter::{self, AttrPath, Attributes, Filter, Op};
use serde_json::{json, Value};
use std::borrow::Cow;

/// The most events one page holds.
pub const MAX_LIMIT: usize = 1000;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 100;
/// How many events that do not match one page of a search passes over at most, unless
/// configured otherwise (`audit_scan_limit`): a filter that matches rarely and no list narrows
/// (`client.ip`, a keyword) would otherwise walk the whole history in one request. A page that
/// stops there is shorter than its limit, possibly empty, and has a cursor to go on from.
pub const SCAN_LIMIT: usize = 1_000_000;

/// The event fields a filter can name (`attr` or `attr.sub`), case-insensitively.
pub const FIELDS: &[&str] = &[
    "type",
    "time",
    "position",
    "partition",
    "directory",
    "actor.kind",
    "actor.id",
    "token",
    "source",
    "resource.type",
    "resource.id",
    "resource.version",
    "name",
    "correlationId",
    "client.ip",
    "client.userAgent",
    "client.tokenId",
];

/// Why a search was refused (400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("invalid filter: {0}")]
    Filter(String),
    #[error("{0}")]
    Value(String),
    #[error("the cursor is not one this server gave for this search")]
    Cursor,
}

/// A parsed audit search.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub filter: Option<Filter>,
    /// Folded to lower case.
    pub keyword: Option<String>,
    pub descending: bool,
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// The raw parameters, as they come in a query string.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The earliest time (RFC 3339), inclusive.
    pub since: Option<String>,
    /// The latest time (RFC 3339), exclusive.
    pub until: Option<String>,
    /// A SCIM filter over the events' fields (`type`, `time`, `actor.kind`, `actor.id`,
    /// `token`, `source`, `directory`, `resource.type`, `resource.id`, `name`,
    /// `correlationId`, `client.ip`, ...).
    pub filter: Option<String>,
    /// Keyword search over the target's name at the time of the event.
    pub q: Option<String>,
    /// `ascending` (the default) or `descending`.
    #[serde(rename = "sortOrder")]
    #[param(rename = "sortOrder")]
    pub sort_order: Option<String>,
    /// Events per page, 1 to 1000 (100 unless given).
    pub limit: Option<String>,
    /// The cursor of the next page (from `next` or the `Link` header).
    pub after: Option<String>,
}

fn time(name: &str, s: &str) -> Result<i64, QueryError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| QueryError::Value(format!("{name} must be an RFC 3339 time: {e}")))
}

impl Search {
    /// Parses and checks every parameter.
    ///
    /// Fails with what is wrong with the first bad one.
    pub fn parse(p: &SearchParams, partitions: usize) -> Result<Search, QueryError> {
        let filter = match p.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(f) => {
                let f = filter::parse(f).map_err(|e| QueryError::Filter(e.0))?;
                check_paths(&f)?;
                Some(keyed(f)?)
            }
            None => None,
        };
        let descending = match p.sort_order.as_deref() {
            None => false,
            Some(s) if s.eq_ignore_ascii_case("ascending") => false,
            Some(s) if s.eq_ignore_ascii_case("descending") => true,
            Some(s) => {
                return Err(QueryError::Value(format!(
                    "sortOrder must be ascending or descending, not {s:?}"
                )))
            }
        };
        let limit = match p.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(QueryError::Value(format!(
                        "limit must be a number from 1 to {MAX_LIMIT}, not {s:?}"
                    )))
                }
            },
        };
        let after = match &p.after {
            Some(c) => {
                let c = Cursor::decode(c).ok_or(QueryError::Cursor)?;
                if c.descending != descending || c.next.len() != partitions {
                    return Err(QueryError::Cursor);
                }
                Some(c)
            }
            None => None,
        };
        Ok(Search {
            since_ms: p.since.as_deref().map(|s| time("since", s)).transpose()?,
            until_ms: p.until.as_deref().map(|s| time("until", s)).transpose()?,
            filter,
            keyword: p
                .q
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(fold_case),
            descending,
            limit,
            after,
        })
    }
}

/// Refuses attribute paths that are not event fields: a typo would otherwise match nothing.
fn check_paths(f: &Filter) -> Result<(), QueryError> {
    let known = |p: &AttrPath| {
        let name = match &p.sub {
            Some(sub) => format!("{}.{sub}", p.attr),
            None => p.attr.clone(),
        };
        p.schema.is_none() && FIELDS.iter().any(|f| f.eq_ignore_ascii_case(&name))
    };
    match f {
        Filter::Compare { path, .. } | Filter::Present(path) if known(path) => Ok(()),
        Filter::Compare { path, .. } | Filter::Present(path) => Err(QueryError::Filter(format!(
            "{path} is not an event field; fields: {}",
            FIELDS.join(", ")
        ))),
        Filter::And(a, b) | Filter::Or(a, b) => check_paths(a).and(check_paths(b)),
        Filter::Not(a) => check_paths(a),
        Filter::ValuePath { path, .. } => Err(QueryError::Filter(format!(
            "{path}[...]: event fields are not multi-valued"
        ))),
    }
}

/// The filter with each request id compared replaced by its key, as the index keeps request
/// ids ([`super::index::correlation_key`]); only `eq`, `ne` and `pr` can compare them.
fn keyed(f: Filter) -> Result<Filter, QueryError> {
    let is_request = |p: &AttrPath| p.is("correlationId");
    Ok(match f {
        Filter::Compare { path, op, value } if is_request(&path) => match (op, value) {
            (Op::Eq | Op::Ne, Value::String(s)) => Filter::Compare {
                path,
                op,
                value: Value::from(format!("{:016x}", super::index::correlation_key(Some(&s)))),
            },
            _ => {
                return Err(QueryError::Filter(
                    "correlationId is compared with eq or ne and a string".into(),
                ))
            }
        },
        Filter::And(a, b) => Filter::And(Box::new(keyed(*a)?), Box::new(keyed(*b)?)),
        Filter::Or(a, b) => Filter::Or(Box::new(keyed(*a)?), Box::new(keyed(*b)?)),
        Filter::Not(a) => Filter::Not(Box::new(keyed(*a)?)),
        other => other,
    })
}

/// Where a search goes on: for each partition, the entry to go on from (ascending: the first
/// not yet shown; descending: one past the last not yet shown).
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    pub descending: bool,
    pub next: Vec<u32>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let order = if self.descending { "d" } else { "a" };
        let next: Vec<String> = self.next.iter().map(u32::to_string).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{order}:{}", next.join(",")))
    }

    fn decode(s: &str) -> Option<Cursor> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (order, next) = raw.split_once(':')?;
        let descending = match order {
            "a" => false,
            "d" => true,
            _ => return None,
        };
        let next = next
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        Some(Cursor { descending, next })
    }
}

/// One event a search found: its partition and its entry there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub partition: u32,
    pub entry: u32,
}

/// One page of a search: the events in order, and the cursor of the next page if there may
/// be more.
#[derive(Debug)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub next: Option<Cursor>,
    /// Where a search in this order goes on once more events are appended (for following
    /// the log): set even when this page is the last for now.
    pub resume: Cursor,
}

/// What a walk over one partition found next.
pub(super) enum Next<T> {
    /// Its next match.
    Match(T),
    /// It has no more.
    End,
    /// The page's scan limit ran out before either was known.
    Stopped,
}

impl<T> Next<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Next<U> {
        match self {
            Next::Match(t) => Next::Match(f(t)),
            Next::End => Next::End,
            Next::Stopped => Next::Stopped,
        }
    }
}

/// One round of merging partitions: which walk's next match (at its time) comes first in the
/// search's order, unless a walk stopped.
#[derive(Default)]
pub(super) struct Round {
    best: Option<(usize, i64)>,
    stopped: bool,
}

/// How a round ends a page, or which walk's match it shows next.
pub(super) enum Outcome {
    /// Walk `i`'s next match comes first.
    Show(usize),
    /// No walk has another match.
    Done,
    /// A walk whose next match is not known yet may have one before the best: the page ends
    /// here, and its cursor goes on where each walk is.
    Stopped,
}

impl Round {
    /// Takes what walk `i` found next (a match's time).
    pub(super) fn offer(&mut self, search: &Search, i: usize, next: Next<i64>) {
        match next {
            Next::Match(t) if comes_first(search, t, self.best.map(|(_, b)| b)) => {
                self.best = Some((i, t));
            }
            Next::Match(_) | Next::End => {}
            Next::Stopped => self.stopped = true,
        }
    }

    pub(super) fn outcome(&self) -> Outcome {
        match (self.stopped, self.best) {
            (true, _) => Outcome::Stopped,
            (false, Some((i, _))) => Outcome::Show(i),
            (false, None) => Outcome::Done,
        }
    }
}

/// The entries of one partition a search walks, in its order.
struct Walk<'a> {
    index: &'a PartitionIndex,
    /// Entry numbers to visit, ascending (a posting list), or `None` for every entry.
    list: Option<&'a [u32]>,
    /// Ascending: the next slot to look at; descending: one past it. A slot is an index into
    /// `list` (or an entry number when there is no list).
    slot: usize,
    end: usize,
    descending: bool,
}

impl<'a> Walk<'a> {
    fn new(
        index: &'a PartitionIndex,
        list: Option<&'a [u32]>,
        search: &Search,
        resume: Option<u32>,
    ) -> Walk<'a> {
        let len = list.map_or(index.entries.len(), <[u32]>::len);
        // The slot of the first entry numbered at or above `n`.
        let slot_of = |n: usize| match list {
            Some(l) => l.partition_point(|&e| (e as usize) < n),
            None => n.min(len),
        };
        let first = search
            .since_ms
            .map_or(0, |t| slot_of(index.first_at_or_after(t)));
        let (slot, end) = match (search.descending, resume) {
            (false, Some(n)) => (slot_of(n as usize).max(first), len),
            (false, None) => (first, len),
            (true, Some(n)) => (slot_of(n as usize).max(first), first),
            (true, None) => (len, first),
        };
        Walk {
            index,
            list,
            slot,
            end,
            descending: search.descending,
        }
    }

    fn number(&self, slot: usize) -> u32 {
        self.list.map_or(slot as u32, |l| l[slot])
    }

    /// The next matching entry's number, without moving past it, passing over at most `left`
    /// entries that do not match (and counting them off). A walk that stops has passed over
    /// every entry it counted, so a page that stops has moved its cursor on.
    fn peek(
        &mut self,
        search: &Search,
        strings: &Interner,
        partition: u32,
        left: &mut usize,
    ) -> Next<u32> {
        loop {
            let slot = match self.descending {
                true if self.slot > self.end => self.slot - 1,
                false if self.slot < self.end => self.slot,
                _ => return Next::End,
            };
            let n = self.number(slot);
            let entry = &self.index.entries[n as usize];
            if matches(search, entry, strings, partition) {
                return Next::Match(n);
            }
            let Some(l) = left.checked_sub(1) else {
                return Next::Stopped;
            };
            *left = l;
            self.advance();
        }
    }

    fn advance(&mut self) {
        if self.descending {
            self.slot -= 1;
        } else {
            self.slot += 1;
        }
    }

    /// Where this walk goes on from, as an entry number.
    fn resume(&self) -> u32 {
        if self.descending {
            // One past the next entry to look at.
            if self.slot == 0 {
                0
            } else {
                self.number(self.slot - 1) + 1
            }
        } else if self.slot < self.list.map_or(self.index.entries.len(), <[u32]>::len) {
            self.number(self.slot)
        } else {
            self.index.entries.len() as u32
        }
    }
}

/// The event field `path` names, in lower case (`actor.id`, `correlationid`).
pub(super) fn field_name(path: &AttrPath) -> String {
    match &path.sub {
        Some(sub) => format!("{}.{}", path.attr, sub).to_ascii_lowercase(),
        None => path.attr.to_ascii_lowercase(),
    }
}

/// The posting list a filter allows a search to start from, if it names one resource, actor,
/// token or request with `eq` (alone or in an `and`).
fn narrowest<'a>(f: &Filter, index: &'a PartitionIndex, strings: &Interner) -> Option<&'a [u32]> {
    const EMPTY: &[u32] = &[];
    match f {
        Filter::Compare {
            path,
            op: Op::Eq,
            value: Value::String(s),
        } => {
            let field = field_name(path);
            let by_sym = |map: &'a std::collections::HashMap<u32, Vec<u32>>| {
                Some(
                    strings
                        .find(s)
                        .and_then(|sym| map.get(&sym))
                        .map_or(EMPTY, Vec::as_slice),
                )
            };
            match field.as_str() {
                "resource.id" => Some(
                    s.parse::<uuid::Uuid>()
                        .ok()
                        .and_then(|id| index.by_resource.get(&id))
                        .map_or(EMPTY, |r| r.entries.as_slice()),
                ),
                "actor.id" => by_sym(&index.by_actor),
                "token" | "client.tokenid" => by_sym(&index.by_token),
                _ => None,
            }
        }
        Filter::And(a, b) => match (narrowest(a, index, strings), narrowest(b, index, strings)) {
            (Some(x), Some(y)) => Some(if x.len() <= y.len() { x } else { y }),
            (x, y) => x.or(y),
        },
        _ => None,
    }
}

/// Runs `search` over the partitions' indexes, passing over at most `scan_limit` entries that
/// do not match (see [`SCAN_LIMIT`]; at least one).
pub fn run(
    search: &Search,
    partitions: &[&PartitionIndex],
    strings: &Interner,
    scan_limit: usize,
) -> Found {
    let mut walks: Vec<Walk> = partitions
        .iter()
        .enumerate()
        .map(|(p, index)| {
            let list = search
                .filter
                .as_ref()
                .and_then(|f| narrowest(f, index, strings));
            let resume = search.after.as_ref().map(|c| c.next[p]);
            Walk::new(index, list, search, resume)
        })
        .collect();
    let mut hits = Vec::new();
    let mut more = false;
    let mut left = scan_limit.max(1);
    // Bounded: every round shows a hit or ends, and each walk passes over each entry once.
    loop {
        let mut round = Round::default();
        for (p, walk) in walks.iter_mut().enumerate() {
            let next = walk.peek(search, strings, p as u32, &mut left);
            round.offer(
                search,
                p,
                next.map(|n| walk.index.entries[n as usize].time_ms),
            );
        }
        let p = match round.outcome() {
            Outcome::Show(p) => p,
            Outcome::Done => break,
            Outcome::Stopped => {
                more = true;
                break;
            }
        };
        if hits.len() == search.limit {
            more = true;
            break;
        }
        let walk = &mut walks[p];
        let n = walk.number(if walk.descending {
            walk.slot - 1
        } else {
            walk.slot
        });
        walk.advance();
        hits.push(Hit {
            partition: p as u32,
            entry: n,
        });
    }
    let resume = Cursor {
        descending: search.descending,
        next: walks.iter().map(Walk::resume).collect(),
    };
    Found {
        hits,
        next: more.then(|| resume.clone()),
        resume,
    }
}

/// Whether an event at time `t` comes before the best found so far (if any) in the search's
/// order: how partitions are merged.
fn comes_first(search: &Search, t: i64, best: Option<i64>) -> bool {
    match best {
        None => true,
        Some(b) if search.descending => t > b,
        Some(b) => t < b,
    }
}

/// Whether entry `e` of `partition` is one `search` asks for (time range, keyword, filter).
pub(super) fn matches(search: &Search, e: &Entry, strings: &Interner, partition: u32) -> bool {
    if search.since_ms.is_some_and(|t| e.time_ms < t)
        || search.until_ms.is_some_and(|t| e.time_ms > t)
    {
        return false;
    }
    if let Some(q) = &search.keyword {
        let hit = [e.name, e.actor, e.source]
            .into_iter()
            .filter_map(|s| strings.get(s))
            .any(|s| fold_case(s).contains(q.as_str()));
        if !hit {
            return false;
        }
    }
    search.filter.as_ref().is_none_or(|f| {
        f.matches(&EntryFields {
            entry: e,
            strings,
            partition,
        })
    })
}

/// The RFC 3339 form of a time in milliseconds, as the audit trail shows it.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An entry's fields as a filter sees them.
struct EntryFields<'a> {
    entry: &'a Entry,
    strings: &'a Interner,
    partition: u32,
}

impl Attributes for EntryFields<'_> {
    fn attribute(&self, schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        if schema.is_some() {
            return None;
        }
        let e = self.entry;
        let s = |sym| {
            self.strings
                .get(sym)
                .map(Value::from)
                .unwrap_or(Value::Null)
        };
        let v = match attr.to_ascii_lowercase().as_str() {
            "type" => Value::from(e.event_type()),
            "time" => Value::from(rfc3339(e.time_ms)),
            "position" => Value::from(e.position),
            "partition" => Value::from(self.partition),
            "directory" => s(e.directory),
            "actor" => json!({"kind": e.actor_kind.as_str(), "id": s(e.actor)}),
            "token" => s(e.token),
            "source" => s(e.source),
            "resource" => json!({
                "type": super::render::resource_type(e.resource_type),
                "id": e.resource.to_string(),
                "version": e.version,
            }),
            "name" => s(e.name),
            // Compared as the key the parse put in the filter's place (`keyed`).
            "correlationid" if e.correlation != 0 => Value::from(format!("{:016x}", e.correlation)),
            "client" => json!({"ip": s(e.ip), "userAgent": s(e.user_agent), "tokenId": s(e.token)}),
            _ => return None,
        };
        (v != Value::Null).then_some(Cow::Owned(v))
    }

    fn case_exact(&self, path: &AttrPath) -> bool {
        // Names and user agents compare as SCIM strings do; ids are written one way only (and
        // are looked up exactly in the index's lists).
        let sub = |s: &str| {
            path.sub
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        };
        path.attr.eq_ignore_ascii_case("correlationId")
            || path.attr.eq_ignore_ascii_case("token")
            || sub("tokenId")
            || (path.attr.eq_ignore_ascii_case("actor") && sub("id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::testing::{chained, envelope, user_created};
    use proptest::prelude::*;
    use roster_events::ResourceId;

    /// A partition whose records each create one user, at the given times (ms), in order;
    /// odd-numbered users are written by source `b`, the others by `a`.
    fn partition(p: u32, times: &[i64], strings: &mut Interner) -> PartitionIndex {
        let mut index = PartitionIndex::default();
        let envelopes = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let actor = if i % 2 == 1 { "b" } else { "a" };
                let event = user_created(&format!("u{p}-{i}"));
                envelope(&format!("d{p}"), ResourceId::new(), 1, t, actor, event)
            })
            .collect();
        let entries = chained(p, envelopes);
        index.apply(strings, &entries);
        index
    }

    fn search(filter: Option<&str>, descending: bool, limit: usize) -> Search {
        Search {
            filter: filter.map(|f| filter::parse(f).unwrap()),
            descending,
            limit,
            ..Search::default()
        }
    }

    proptest! {
        /// Paging through a search, in either order and any page size, shows every matching
        /// event exactly once, in the order one page of everything shows them.
        #[test]
        fn pages_cover_every_match_once_in_order(
            a in proptest::collection::vec(0i64..50, 0..30),
            b in proptest::collection::vec(0i64..50, 0..30),
            limit in 1usize..7,
            descending: bool,
            by_actor: bool,
        ) {
            let mut strings = Interner::default();
            let parts = [partition(0, &a, &mut strings), partition(1, &b, &mut strings)];
            let refs: Vec<&PartitionIndex> = parts.iter().collect();
            let filter = by_actor.then_some("actor.id eq \"b\"");
            let all = run(&search(filter, descending, MAX_LIMIT), &refs, &strings, SCAN_LIMIT);
            let want = a.iter().enumerate().filter(|(i, _)| !by_actor || i % 2 == 1).count()
                + b.iter().enumerate().filter(|(i, _)| !by_actor || i % 2 == 1).count();
            prop_assert_eq!(all.hits.len(), want);
            prop_assert!(all.next.is_none());
            let mut paged = Vec::new();
            let mut s = search(filter, descending, limit);
            for _ in 0..100 {
                let page = run(&s, &refs, &strings, SCAN_LIMIT);
                prop_assert!(page.hits.len() <= limit);
                paged.extend(page.hits);
                match page.next {
                    Some(c) => s.after = Some(c),
                    None => break,
                }
            }
            prop_assert_eq!(paged, all.hits.clone());
            // Each partition's events in log order (or its reverse).
            for h in 0..parts.len() as u32 {
                let own: Vec<u32> = all.hits.iter().filter(|x| x.partition == h).map(|x| x.entry).collect();
                let mut sorted = own.clone();
                sorted.sort_unstable();
                if descending {
                    sorted.reverse();
                }
                prop_assert_eq!(own, sorted);
            }
        }

        /// A page stops once it has passed over `scan` events that do not match: pages may be
        /// short or empty, but each moves the cursor on, and following the cursors shows every
        /// match exactly once, in the order one page of everything shows them.
        #[test]
        fn a_scan_limit_shortens_pages_and_following_them_shows_every_match_once(
            a in proptest::collection::vec(0i64..50, 0..30),
            b in proptest::collection::vec(0i64..50, 0..30),
            limit in 1usize..7,
            scan in 1usize..5,
            descending: bool,
        ) {
            let mut strings = Interner::default();
            let parts = [partition(0, &a, &mut strings), partition(1, &b, &mut strings)];
            let refs: Vec<&PartitionIndex> = parts.iter().collect();
            // No list narrows a `ne`: the walks pass over every event of source a.
            let filter = Some("actor.id ne \"a\"");
            let all = run(&search(filter, descending, MAX_LIMIT), &refs, &strings, SCAN_LIMIT);
            let mut paged = Vec::new();
            let mut s = search(filter, descending, limit);
            let mut pages = 0;
            loop {
                pages += 1;
                // Each page shows a match or passes over at least one event.
                prop_assert!(pages <= a.len() + b.len() + 1, "no progress");
                let page = run(&s, &refs, &strings, scan);
                prop_assert!(page.hits.len() <= limit);
                paged.extend(page.hits);
                match page.next {
                    Some(c) => s.after = Some(c),
                    None => break,
                }
            }
            prop_assert_eq!(paged, all.hits);
        }

        /// `since` finds exactly the events at or after it, even when clocks went back.
        #[test]
        fn since_is_exact_with_skewed_clocks(times in proptest::collection::vec(0i64..100, 0..40), since in 0i64..100) {
            let mut strings = Interner::default();
            let part = partition(0, &times, &mut strings);
            let s = Search { since_ms: Some(since), limit: MAX_LIMIT, ..Search::default() };
            let found = run(&s, &[&part], &strings, SCAN_LIMIT);
            let want: Vec<u32> = (0..times.len() as u32).filter(|&i| times[i as usize] >= since).collect();
            let got: Vec<u32> = found.hits.iter().map(|h| h.entry).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_page_that_reaches_its_scan_limit_is_empty_with_a_cursor_past_what_it_read() {
        let mut strings = Interner::default();
        let part = partition(0, &[1; 10], &mut strings);
        // Only the last of ten events matches.
        let s = search(Some("actor.id ne \"a\" and name eq \"u0-9\""), false, 5);
        let first = run(&s, &[&part], &strings, 4);
        assert!(first.hits.is_empty());
        let cursor = first.next.expect("a page that stopped has a cursor");
        assert_eq!(cursor.next, vec![4]);
        let s = Search {
            after: Some(cursor),
            ..s
        };
        let second = run(&s, &[&part], &strings, 4);
        assert!(second.hits.is_empty());
        let s = Search {
            after: second.next,
            ..s
        };
        let third = run(&s, &[&part], &strings, 4);
        let hits: Vec<u32> = third.hits.iter().map(|h| h.entry).collect();
        assert_eq!(hits, vec![9]);
        assert!(third.next.is_none());
    }

    #[test]
    fn a_cursor_survives_its_text_form_and_a_foreign_one_is_refused() {
        let c = Cursor {
            descending: true,
            next: vec![3, 0, 17],
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("bm9wZQ"), None);
        let p = SearchParams {
            after: Some(
                Cursor {
                    descending: false,
                    next: vec![1],
                }
                .encode(),
            ),
            ..Default::default()
        };
        assert_eq!(Search::parse(&p, 2).unwrap_err(), QueryError::Cursor);
    }
}
