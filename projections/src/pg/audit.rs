//! The audit projection in PostgreSQL (`audit_events`, migrations/V8): its rows written by the
//! incremental fold in the views' own transaction ([`PgStore::fold_audit`]) and by a rebuild
//! while it folds the log ([`AuditLoader`]), both with the memory index's rules
//! ([`crate::audit`]); and the reads an audit search, a history and a point-in-time read make.

use super::PgStore;
use crate::audit::{
    begins, kind_of, parse_resource_type, resource_type_name, ActorKind, Facts, Lineage,
};
use crate::store::{LogEntry, StoreError};
use roster_events::{ChainState, Record, ResourceType, EVENT_TYPES};
use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

/// A resource's name and last document entry, as the audit projection keeps them.
type Known = Lineage<String, i64>;

/// The columns of `audit_events` after `gen`, in table order.
const COLUMNS: &str = "log_partition, entry, position, event, time_ms, type, resource_type, \
    resource, version, actor_kind, actor, directory, source, token, ip, user_agent, \
    correlation, name, document, previous, max_time_ms";

/// The types of [`COLUMNS`] (with `gen` first), for a binary COPY.
const COPY_TYPES: [Type; 22] = [
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::INT2,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::UUID,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
];

/// Where a partition's audit rows go on from: the entry of its next event, and the latest
/// time among its events so far (each row's `max_time_ms`, migrations/V11), as `positions`
/// keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Reached {
    pub next_entry: i64,
    pub max_time_ms: i64,
}

impl Default for Reached {
    fn default() -> Self {
        Reached {
            next_entry: 0,
            max_time_ms: i64::MIN,
        }
    }
}

impl Reached {
    /// What `positions` holds: no time before the partition's first event.
    pub fn of(next_entry: i64, max_time_ms: Option<i64>) -> Reached {
        Reached {
            next_entry,
            max_time_ms: max_time_ms.unwrap_or(i64::MIN),
        }
    }

    /// Past the events of `record`.
    pub fn past(&mut self, record: &Record) {
        for env in &record.events {
            self.step(env.time.timestamp_millis());
        }
    }

    /// Past one event at `time_ms`; returns its entry.
    fn step(&mut self, time_ms: i64) -> i64 {
        let this = self.next_entry;
        self.next_entry += 1;
        self.max_time_ms = self.max_time_ms.max(time_ms);
        this
    }

    /// The latest time, as `positions` holds it.
    pub fn max_time(&self) -> Option<i64> {
        (self.max_time_ms != i64::MIN).then_some(self.max_time_ms)
    }
}

/// Rows to insert, one vector per column.
#[derive(Default)]
struct Columns {
    partition: Vec<i32>,
    entry: Vec<i64>,
    position: Vec<i64>,
    event: Vec<i16>,
    time_ms: Vec<i64>,
    kind: Vec<&'static str>,
    resource_type: Vec<&'static str>,
    resource: Vec<Uuid>,
    version: Vec<i64>,
    actor_kind: Vec<&'static str>,
    actor: Vec<Option<String>>,
    directory: Vec<String>,
    source: Vec<Option<String>>,
    token: Vec<Option<String>>,
    ip: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    correlation: Vec<i64>,
    name: Vec<Option<String>>,
    document: Vec<bool>,
    previous: Vec<Option<i64>>,
    max_time_ms: Vec<i64>,
}

impl Columns {
    /// Adds the rows of one valid record's events, numbering them from `reached` on (which
    /// moves past them).
    fn record(
        &mut self,
        partition: u32,
        position: u64,
        record: &Record,
        reached: &mut Reached,
        known: &mut HashMap<Uuid, Known>,
    ) {
        for (i, env) in record.events.iter().enumerate() {
            let f = Facts::of(env);
            let this = reached.step(f.time_ms);
            let lineage = known.entry(env.resource_id.0).or_default();
            let (name, previous) = lineage.step(this, f.name, f.sets_document);
            self.partition.push(partition as i32);
            self.entry.push(this);
            self.position.push(position as i64);
            self.event.push(i as i16);
            self.time_ms.push(f.time_ms);
            self.kind.push(EVENT_TYPES[usize::from(f.kind)]);
            self.resource_type
                .push(resource_type_name(env.resource_type));
            self.resource.push(env.resource_id.0);
            self.version.push(i64::from(f.version));
            self.actor_kind.push(f.actor_kind.as_str());
            self.actor.push(f.actor.map(str::to_owned));
            self.directory.push(f.directory.to_owned());
            self.source.push(f.source.map(str::to_owned));
            self.token.push(f.token.map(str::to_owned));
            self.ip.push(f.ip);
            self.user_agent.push(f.user_agent.map(str::to_owned));
            // The key's bits, as PostgreSQL has no unsigned 64-bit integer.
            self.correlation.push(f.correlation as i64);
            self.name.push(name);
            self.document.push(f.sets_document);
            self.previous.push(previous);
            self.max_time_ms.push(reached.max_time_ms);
        }
    }

    fn len(&self) -> usize {
        self.entry.len()
    }

    /// Row `i`'s values after `gen`, in [`COLUMNS`] order.
    fn row(&self, i: usize) -> [&(dyn ToSql + Sync); 21] {
        [
            &self.partition[i],
            &self.entry[i],
            &self.position[i],
            &self.event[i],
            &self.time_ms[i],
            &self.kind[i],
            &self.resource_type[i],
            &self.resource[i],
            &self.version[i],
            &self.actor_kind[i],
            &self.actor[i],
            &self.directory[i],
            &self.source[i],
            &self.token[i],
            &self.ip[i],
            &self.user_agent[i],
            &self.correlation[i],
            &self.name[i],
            &self.document[i],
            &self.previous[i],
            &self.max_time_ms[i],
        ]
    }
}

/// The values of `items` once each, in order: a query's array parameter.
fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

impl PgStore {
    /// Writes the audit rows of `admitted` (the valid records of a batch, each with its
    /// partition and position, in log order per partition) in the fold's transaction, each
    /// partition's going on from what `reached` says (as `positions` holds it).
    ///
    /// Fails when the database fails (the transaction, and so the batch, is then not
    /// committed).
    pub(super) async fn fold_audit(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        admitted: &[(u32, u64, &Record)],
        mut reached: HashMap<u32, Reached>,
    ) -> Result<(), StoreError> {
        if admitted.is_empty() {
            return Ok(());
        }
        // The resources with events before this batch: those whose first event here does not
        // begin them (a create names a fresh id).
        let mut first_seen = HashMap::new();
        for env in admitted.iter().flat_map(|(_, _, r)| &r.events) {
            first_seen
                .entry(env.resource_id.0)
                .or_insert_with(|| !begins(env.event.event_type()));
        }
        let resources = distinct(
            first_seen
                .into_iter()
                .filter_map(|(id, older)| older.then_some(id)),
        );
        let mut known: HashMap<Uuid, Known> = HashMap::new();
        if !resources.is_empty() {
            // Each resource's name (carried on its last row) and its last document entry.
            let rows = self
                .query(
                    tx,
                    "SELECT r, \
                       (SELECT name FROM audit_events WHERE gen = $1 AND resource = r \
                         ORDER BY log_partition DESC, entry DESC LIMIT 1), \
                       (SELECT entry FROM audit_events \
                         WHERE gen = $1 AND resource = r AND document \
                         ORDER BY log_partition DESC, entry DESC LIMIT 1) \
                     FROM UNNEST($2::uuid[]) r",
                    &[&gen, &resources],
                )
                .await?;
            known.extend(rows.iter().map(|r| {
                (
                    r.get(0),
                    Known {
                        name: r.get(1),
                        document: r.get(2),
                    },
                )
            }));
        }
        let mut c = Columns::default();
        for (partition, position, record) in admitted {
            let r = reached.entry(*partition).or_default();
            c.record(*partition, *position, record, r, &mut known);
        }
        self.query(
            tx,
            &format!(
                "INSERT INTO audit_events (gen, {COLUMNS}) SELECT $1, * FROM UNNEST(\
                 $2::int4[], $3::int8[], $4::int8[], $5::int2[], $6::int8[], $7::text[], \
                 $8::text[], $9::uuid[], $10::int8[], $11::text[], $12::text[], $13::text[], \
                 $14::text[], $15::text[], $16::text[], $17::text[], $18::int8[], $19::text[], \
                 $20::bool[], $21::int8[], $22::int8[])"
            ),
            &[
                &gen,
                &c.partition,
                &c.entry,
                &c.position,
                &c.event,
                &c.time_ms,
                &c.kind,
                &c.resource_type,
                &c.resource,
                &c.version,
                &c.actor_kind,
                &c.actor,
                &c.directory,
                &c.source,
                &c.token,
                &c.ip,
                &c.user_agent,
                &c.correlation,
                &c.name,
                &c.document,
                &c.previous,
                &c.max_time_ms,
            ],
        )
        .await?;
        // An erased person's name leaves the trail with their key (docs/adr/0014).
        let erased = distinct(
            admitted
                .iter()
                .flat_map(|(_, _, r)| &r.events)
                .filter(|e| matches!(e.event, roster_events::Event::UserErased(_)))
                .map(|e| e.resource_id.0),
        );
        if !erased.is_empty() {
            self.query(
                tx,
                "UPDATE audit_events SET name = NULL \
                 WHERE gen = $1 AND resource = ANY($2) AND name IS NOT NULL",
                &[&gen, &erased],
            )
            .await?;
        }
        Ok(())
    }

    /// A loader that writes the audit rows of a rebuild's generation while the rebuild folds
    /// the log (into its table, created empty and detached by [`PgStore::building`]).
    ///
    /// Fails when the database fails or this is not a rebuild's store.
    pub async fn audit_loader(&self) -> Result<AuditLoader, StoreError> {
        let Some(gen) = self.generation() else {
            return Err(StoreError::Conflict("not a rebuild's store".into()));
        };
        let client = self.client().await?;
        let sql = format!("COPY audit_events_g{gen} (gen, {COLUMNS}) FROM STDIN BINARY");
        let sink = self.track(client.copy_in(&sql).await)?;
        Ok(AuditLoader {
            store: self.handle(),
            _client: client,
            writer: Box::pin(BinaryCopyInWriter::new(sink, &COPY_TYPES)),
            gen,
            chain: ChainState::default(),
            next_position: HashMap::new(),
            reached: HashMap::new(),
            known: HashMap::new(),
        })
    }
}

/// The audit rows of a rebuild, folded from the log with the same rules as the incremental
/// fold and copied into the new generation's table as they come.
pub struct AuditLoader {
    store: PgStore,
    /// The connection the COPY runs on.
    _client: deadpool_postgres::Object,
    writer: Pin<Box<BinaryCopyInWriter>>,
    gen: i32,
    chain: ChainState,
    next_position: HashMap<u32, u64>,
    reached: HashMap<u32, Reached>,
    known: HashMap<Uuid, Known>,
}

impl AuditLoader {
    /// Folds consecutive entries of one partition (those already folded are passed over).
    ///
    /// Fails when the database fails.
    pub async fn fold(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let mut c = Columns::default();
        for e in entries {
            let next = self.next_position.entry(e.partition).or_insert(0);
            if e.position < *next {
                continue;
            }
            *next = e.position + 1;
            if !self.chain.admit(&e.record, e.digest) {
                continue;
            }
            let r = self.reached.entry(e.partition).or_default();
            c.record(e.partition, e.position, &e.record, r, &mut self.known);
        }
        for i in 0..c.len() {
            let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(22);
            values.push(&self.gen);
            values.extend(c.row(i));
            let r = self.writer.as_mut().write(&values).await;
            self.store.track(r)?;
        }
        Ok(())
    }

    /// Ends the COPY; returns how many rows it wrote.
    ///
    /// Fails when the database refuses the rows.
    pub async fn finish(mut self) -> Result<u64, StoreError> {
        let r = self.writer.as_mut().finish().await;
        self.store.track(r)
    }
}

/// One event as the audit projection holds it.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub partition: u32,
    pub entry: u64,
    pub position: u64,
    pub event: u16,
    pub time_ms: i64,
    /// Index into [`EVENT_TYPES`].
    pub kind: u8,
    pub resource_type: ResourceType,
    pub resource: Uuid,
    pub version: u32,
    pub actor_kind: ActorKind,
    pub actor: Option<String>,
    pub directory: String,
    pub source: Option<String>,
    pub token: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub correlation: u64,
    pub name: Option<String>,
    pub previous: Option<u64>,
}

/// The columns an [`AuditRow`] is read from.
const READ: &str = "log_partition, entry, position, event, time_ms, type, resource_type, \
    resource, version, actor_kind, actor, directory, source, token, ip, user_agent, \
    correlation, name, previous";

fn audit_row(r: &Row) -> Result<AuditRow, StoreError> {
    let bad = |what: &str, v: &str| super::rows::corrupt(format!("audit_events: {what} {v:?}"));
    let kind: &str = r.get(5);
    let resource_type: &str = r.get(6);
    let actor_kind: &str = r.get(9);
    Ok(AuditRow {
        partition: r.get::<_, i32>(0) as u32,
        entry: r.get::<_, i64>(1) as u64,
        position: r.get::<_, i64>(2) as u64,
        event: r.get::<_, i16>(3) as u16,
        time_ms: r.get(4),
        kind: kind_of(kind),
        resource_type: parse_resource_type(resource_type)
            .ok_or_else(|| bad("resource type", resource_type))?,
        resource: r.get(7),
        version: u32::try_from(r.get::<_, i64>(8)).unwrap_or(u32::MAX),
        actor_kind: ActorKind::parse(actor_kind).ok_or_else(|| bad("actor kind", actor_kind))?,
        actor: r.get(10),
        directory: r.get(11),
        source: r.get(12),
        token: r.get(13),
        ip: r.get(14),
        user_agent: r.get(15),
        correlation: r.get::<_, i64>(16) as u64,
        name: r.get(17),
        previous: r.get::<_, Option<i64>>(18).map(|p| p as u64),
    })
}

/// The one list of events a scan walks: a resource's, an actor's, a token's, a request's or an
/// event type's.
#[derive(Clone, Debug, PartialEq)]
pub enum Narrow {
    Resource(Uuid),
    Actor(String),
    Token(String),
    Correlation(u64),
    Type(&'static str),
}

/// One step of a scan through a partition's events, in entry order.
#[derive(Clone, Debug)]
pub struct Scan {
    pub partition: u32,
    /// Only events of this list.
    pub narrow: Option<Narrow>,
    /// Entries at or above this one.
    pub from: u64,
    /// Entries below this one.
    pub below: Option<u64>,
    pub descending: bool,
    pub limit: usize,
}

impl PgStore {
    /// The rows of one scan step.
    ///
    /// Fails when the database fails or holds a row Roster did not write.
    pub async fn audit_scan(&self, scan: &Scan) -> Result<Vec<AuditRow>, StoreError> {
        let client = self.client().await?;
        let gen = self.gen_sql();
        let (narrow, value): (&str, Box<dyn ToSql + Sync + Send>) = match &scan.narrow {
            None => ("true OR $5::text IS NULL", Box::new(None::<String>)),
            Some(Narrow::Resource(id)) => ("resource = $5", Box::new(*id)),
            Some(Narrow::Actor(a)) => ("actor = $5", Box::new(a.clone())),
            Some(Narrow::Token(t)) => ("token = $5", Box::new(t.clone())),
            Some(Narrow::Correlation(c)) => ("correlation = $5", Box::new(*c as i64)),
            Some(Narrow::Type(t)) => ("type = $5", Box::new(*t)),
        };
        let order = if scan.descending { "DESC" } else { "ASC" };
        // Our own fragments only; every value is a parameter.
        let sql = format!(
            "SELECT {READ} FROM audit_events WHERE gen = {gen} AND log_partition = $1 \
             AND entry >= $2 AND entry < $3 AND ({narrow}) ORDER BY entry {order} LIMIT $4"
        );
        let below = scan.below.map_or(i64::MAX, |b| b as i64);
        let rows = self
            .query(
                &client,
                &sql,
                &[
                    &(scan.partition as i32),
                    &(scan.from as i64),
                    &below,
                    &(scan.limit as i64),
                    &*value,
                ],
            )
            .await?;
        rows.iter().map(audit_row).collect()
    }

    /// The first entry of `partition` whose time is at or after `since_ms`, or the
    /// partition's end if none is: the first whose partition's latest time so far reached it,
    /// one probe of `audit_by_time` (migrations/V11).
    ///
    /// Fails when the database fails.
    pub async fn audit_first_since(
        &self,
        partition: u32,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT entry FROM audit_events WHERE gen = {} AND log_partition = $1 \
             AND max_time_ms >= $2 ORDER BY max_time_ms, entry LIMIT 1",
            self.gen_sql()
        );
        let rows = self
            .query(&client, &sql, &[&(partition as i32), &since_ms])
            .await?;
        match rows.first() {
            Some(r) => Ok(r.get::<_, i64>(0) as u64),
            None => self.audit_end(partition).await,
        }
    }

    /// One past the last entry of `partition`.
    ///
    /// Fails when the database fails.
    pub async fn audit_end(&self, partition: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT max(entry) FROM audit_events WHERE gen = {} AND log_partition = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&(partition as i32)]).await?;
        let last: Option<i64> = rows.first().and_then(|r| r.get(0));
        Ok(last.map_or(0, |l| l as u64 + 1))
    }

    /// The rows of `entries` of `partition`, in entry order.
    ///
    /// Fails when the database fails.
    pub async fn audit_entries(
        &self,
        partition: u32,
        entries: &[u64],
    ) -> Result<Vec<AuditRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {READ} FROM audit_events WHERE gen = {} AND log_partition = $1 \
             AND entry = ANY($2) ORDER BY entry",
            self.gen_sql()
        );
        let entries: Vec<i64> = entries.iter().map(|&e| e as i64).collect();
        let rows = self
            .query(&client, &sql, &[&(partition as i32), &entries])
            .await?;
        rows.iter().map(audit_row).collect()
    }

    /// Every event of one resource, in log order.
    ///
    /// Fails when the database fails.
    pub async fn audit_resource(&self, id: Uuid) -> Result<Vec<AuditRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {READ} FROM audit_events WHERE gen = {} AND resource = $1 \
             ORDER BY log_partition, entry",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&id]).await?;
        rows.iter().map(audit_row).collect()
    }

    /// How many events the audit projection holds, and the bytes its table and indexes take
    /// on disk.
    ///
    /// Fails when the database fails.
    pub async fn audit_size(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT (SELECT count(*) FROM audit_events WHERE gen = g), \
               pg_total_relation_size(format('audit_events_g%s', g)::regclass) \
             FROM (SELECT {} AS g) active",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        Ok(rows.first().map_or((0, 0), |r| {
            (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)
        }))
    }

    /// Per partition, the first position the active generation's audit rows cover, where it
    /// is not the log's start (views folded before the audit projection existed).
    ///
    /// Fails when the database fails.
    pub async fn audit_gaps(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT log_partition, first_position FROM audit_coverage WHERE gen = {} \
             AND first_position > 0 ORDER BY log_partition",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect())
    }
}
