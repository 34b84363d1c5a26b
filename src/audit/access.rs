//! Refused requests and reads of the audit trail, recorded in the log as audit-only events
//! (`access.refused`, `audit.read`). Both are counted per client over a window
//! ([`super::tally`]): the first of a window is recorded at once, the rest of the window as one
//! record with a count when it ends, so that a flood of bad tokens costs at most two records a
//! window per address (and a bounded number of addresses).
//!
//! A refusal is recorded in the background: the client's 401 does not wait for the log. A read
//! is recorded before it is answered; when the log cannot take the record, the read is
//! refused (503), so that nobody reads the audit trail unrecorded. What a window counted after
//! its first is in memory until the window ends: a crash loses those counts, never a record.

use super::tally::{Aggregate, Tally, TallyKey};
use crate::domain::{Command, Context};
use crate::pipeline::{WriteError, Writers};
use chrono::Utc;
use roster_events::{
    AccessRefused, Actor, AuditRead, Client, Interface, RefusalReason, DEFAULT_DIRECTORY,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The most clients (addresses, tokens) counted apart in one window; past it, new ones are
/// counted together (without an address).
const MAX_KEYS: usize = 1_000;
/// The longest path recorded.
const MAX_PATH: usize = 512;
/// The longest query recorded.
const MAX_QUERY: usize = 2_048;

/// A refused request, as the HTTP edge saw it.
pub struct Refusal {
    pub interface: Interface,
    pub reason: RefusalReason,
    pub status: u16,
    /// The directory the request was for (the source's), if it is known.
    pub directory: Option<String>,
    /// The source whose URL was used, if it exists.
    pub source: Option<String>,
    /// Who was refused: anonymous, or the admin whose action was refused.
    pub actor: Actor,
    pub method: String,
    pub path: String,
    pub detail: Option<String>,
    pub client: Client,
    pub request_id: Option<String>,
}

/// A read of the audit trail by an authenticated admin.
pub struct Read {
    pub admin: String,
    pub path: String,
    pub query: Option<String>,
    pub client: Client,
    pub request_id: Option<String>,
}

/// What refusals are counted by: where, why, and from which address.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RefusalKey {
    directory: String,
    source: Option<String>,
    interface: Interface,
    reason: RefusalReason,
    actor: Actor,
    ip: Option<IpAddr>,
}

impl TallyKey for RefusalKey {
    fn overflow(&self) -> Self {
        RefusalKey {
            ip: None,
            ..self.clone()
        }
    }
}

/// What reads are counted by: which token, from which address, of what.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ReadKey {
    admin: String,
    ip: Option<IpAddr>,
    path: String,
}

impl TallyKey for ReadKey {
    fn overflow(&self) -> Self {
        ReadKey {
            ip: None,
            ..self.clone()
        }
    }
}

/// Records refusals and reads.
pub struct AccessLog {
    writers: Writers,
    refusals: Tally<RefusalKey, Refusal>,
    reads: Tally<ReadKey, Read>,
    window: Duration,
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl AccessLog {
    pub fn new(writers: Writers, window: Duration) -> Arc<Self> {
        Arc::new(AccessLog {
            writers,
            refusals: Tally::new(window, MAX_KEYS),
            reads: Tally::new(window, MAX_KEYS),
            window,
        })
    }

    /// Counts a refused request; the first of its window is recorded in the background.
    pub fn refused(self: &Arc<Self>, r: Refusal) {
        let key = RefusalKey {
            directory: r
                .directory
                .clone()
                .unwrap_or_else(|| DEFAULT_DIRECTORY.to_owned()),
            source: r.source.clone(),
            interface: r.interface,
            reason: r.reason,
            actor: r.actor.clone(),
            ip: r.client.ip,
        };
        let now = Utc::now();
        let Some((key, r)) = self.refusals.note(key, r, now) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let request_id = r.request_id.clone();
            this.record_refusal(&key, Aggregate::one(r, now), request_id)
                .await;
        });
    }

    /// Counts a read of the audit trail; the first of its window is recorded before this
    /// returns.
    ///
    /// Fails when the log cannot take the record.
    pub async fn read(&self, r: Read) -> Result<(), WriteError> {
        let key = ReadKey {
            admin: r.admin.clone(),
            ip: r.client.ip,
            path: r.path.clone(),
        };
        let now = Utc::now();
        let Some((key, r)) = self.reads.note(key, r, now) else {
            return Ok(());
        };
        let request_id = r.request_id.clone();
        self.record_read(&key, Aggregate::one(r, now), request_id)
            .await
    }

    async fn record_refusal(
        &self,
        key: &RefusalKey,
        a: Aggregate<Refusal>,
        request_id: Option<String>,
    ) {
        let s = a.sample;
        let cmd = Command::RecordRefusal(AccessRefused {
            interface: s.interface,
            reason: s.reason,
            status: s.status,
            method: s.method,
            path: cut(&s.path, MAX_PATH),
            detail: s.detail,
            count: a.count,
            first: a.first,
            last: a.last,
        });
        let ctx = Context {
            actor: s.actor,
            source: s.source,
            correlation_id: request_id,
            client: Some(Client {
                ip: key.ip,
                ..s.client
            }),
        };
        if let Err(e) = self.append(&key.directory, cmd, ctx).await {
            tracing::warn!(error = %e, count = a.count, "a refused request could not be recorded");
        }
    }

    async fn record_read(
        &self,
        key: &ReadKey,
        a: Aggregate<Read>,
        request_id: Option<String>,
    ) -> Result<(), WriteError> {
        let s = a.sample;
        let cmd = Command::RecordRead(AuditRead {
            path: cut(&key.path, MAX_PATH),
            query: s.query.map(|q| cut(&q, MAX_QUERY)),
            count: a.count,
            first: a.first,
            last: a.last,
        });
        let ctx = Context {
            actor: Actor::Admin(key.admin.clone()),
            source: None,
            correlation_id: request_id,
            client: Some(Client {
                ip: key.ip,
                ..s.client
            }),
        };
        self.append(DEFAULT_DIRECTORY, cmd, ctx).await
    }

    async fn append(&self, directory: &str, cmd: Command, ctx: Context) -> Result<(), WriteError> {
        let writer = self.writers.get(directory).await?;
        writer.execute_at(cmd, ctx).await.map(|_| ())
    }

    /// Records the aggregates of the windows that ended (all of them when `all`).
    pub async fn flush(&self, all: bool) {
        for (key, a) in self.refusals.due(all) {
            self.record_refusal(&key, a, None).await;
        }
        for (key, a) in self.reads.due(all) {
            if let Err(e) = self.record_read(&key, a, None).await {
                tracing::warn!(error = %e, "reads of the audit trail could not be recorded");
            }
        }
    }

    /// Flushes ended windows until `stop` turns true, then flushes what is left.
    pub fn start(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let every = (self.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.flush(false).await,
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break;
                        }
                    }
                }
            }
            this.flush(true).await;
        })
    }
}
