//! The Kafka log: one topic with a fixed partition count, written with librdkafka's idempotent
//! producer (`acks=all`) and read with plain (group-less) consumers.
//!
//! Each record is one Kafka message, keyed by its directory, sent to the partition Roster
//! computes itself ([`roster_events::partition_of`]), so a directory lives in exactly one
//! partition whatever client wrote it. Correctness needs only produce, fetch and idempotence:
//! no transactions, no offset commits (the projection store keeps its own positions), no
//! watermark queries. Several Roster processes may write to one topic; the
//! directory-sequence rule decides which records are valid (docs/adr/0005).
//!
//! This module owns the librdkafka configuration, topic creation at start, the health of the
//! connection (writers answer 503 at once while no broker is reachable), and the mapping of
//! delivery outcomes to `Unavailable` (nothing written) or `Unknown` (maybe written).

mod context;
mod oauth;
mod options;
mod security;
mod topic;

use super::{EventLog, LogError};
use async_trait::async_trait;
pub(crate) use context::KafkaContext;
pub(crate) use oauth::tokens as oauth_tokens;
pub(crate) use options::client_configs;
pub use options::KafkaOptions;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use roster_events::chain::{body_digest, Digest, Encoded};
use roster_events::Record;
use roster_projections::LogEntry;
pub(crate) use security::Refusals;
pub use security::{KafkaProtocol, KafkaSecurity, OAuthClient, SaslMechanism, SecurityError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
pub(crate) use topic::{ensure as ensure_topic, TopicSpec};

/// How long a read waits for a first message after positioning a consumer (the broker's first
/// answer takes a round trip or more).
const POSITION_WAIT: Duration = Duration::from_millis(500);
/// How long a read of a positioned consumer waits for a first message: not at all. The
/// consumer fetches in the background; a read takes what has arrived, and followers read
/// again on their interval (or at once when this process appends).
const READ_WAIT: Duration = Duration::ZERO;
/// How often followers read again for records other processes append.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(20);
/// How long a partition that never reported its end (a broker that sends no end-of-partition)
/// must have given nothing new before it is taken as caught up.
const QUIET_FOR_END: Duration = Duration::from_millis(1500);
/// How many records appended by this process are kept per partition for followers.
const RECENT_MAX: usize = 16_384;
/// Records this process appended to one partition, by position, with their body digests.
type Recent = BTreeMap<u64, (Arc<Record>, Digest)>;

/// How far back from a position a read looks for the record batch that holds it (see
/// `read_blocking`): more records than a producer puts in one batch (librdkafka's
/// `batch.num.messages` is 10,000).
const BATCH_MAX: u64 = 65_536;

/// How far ahead of its consumer a reader may skip (over records served from `recent`)
/// without positioning the consumer again.
const SKIP_MAX: u64 = RECENT_MAX as u64;

/// One partition's consumer and where it stands.
struct Reader {
    consumer: BaseConsumer<KafkaContext>,
    /// The offset the consumer delivers next, or None when it must be positioned again.
    next: Option<u64>,
    /// The position at which the broker last said the partition ended.
    eof_at: Option<u64>,
    /// Since when reads at `next` have found nothing.
    quiet_since: Option<Instant>,
}

/// The Kafka event log.
pub struct KafkaLog {
    side: Arc<Side>,
    partitions: u32,
    /// The producer in use. Replaced by a fresh one when librdkafka reports a fatal error
    /// (an idempotent producer that was fenced or lost track of its sequence numbers never
    /// produces again); sending through a new producer is safe under the chain rule.
    producer: Arc<Mutex<ProducerSlot>>,
    producer_config: ClientConfig,
    readers: Vec<Arc<Mutex<Option<Reader>>>>,
    closed: AtomicBool,
    probe: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct ProducerSlot {
    /// Counts replacements, so that concurrent appends replace a failed producer only once.
    generation: u64,
    producer: FutureProducer<KafkaContext>,
}

/// What reads share with the log (reads run on blocking threads).
struct Side {
    topic: String,
    /// Per partition: records this process appended, by position.
    recent: Vec<Mutex<Recent>>,
    config: ClientConfig,
    /// Operators' properties, applied on top of each client's defaults.
    properties: BTreeMap<String, String>,
    context: KafkaContext,
    ends: Vec<watch::Sender<u64>>,
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("{context}: {e}"))
}

impl KafkaLog {
    /// Connects to the brokers, creating the topic if it is missing and allowed, and checks
    /// its partition count. While no broker answers it logs why and keeps trying: a Roster
    /// started before its brokers comes up when they do, instead of crash-looping.
    ///
    /// Fails when the topic is missing and cannot be created, or has another partition count
    /// than configured.
    pub async fn open(options: KafkaOptions) -> Result<KafkaLog, LogError> {
        if options.partitions == 0 {
            return Err(LogError::Unavailable(
                "kafka partitions must be at least 1".into(),
            ));
        }
        let (config, mut producer_config) =
            client_configs(&options, "roster").map_err(|e| LogError::Unavailable(e.to_string()))?;
        if options.security.credentials_in_clear() {
            tracing::warn!(
                "kafka_security_protocol = sasl_plaintext: the SASL credentials and every record \
                 cross the network in clear; use sasl_ssl beyond a trusted network"
            );
        }
        let oauth = oauth_tokens(&options.security)
            .await
            .map_err(LogError::Unavailable)?;
        let context = KafkaContext::quiet(oauth).gating_health();
        producer_config.set("batch.num.messages", "10000");
        producer_config.extend(options.properties.clone());
        let producer: FutureProducer<KafkaContext> = producer_config
            .clone()
            .create_with_context(context.clone())
            .map_err(|e| unavailable("configuring the Kafka producer", e))?;

        let mismatch = format!(
            ": directories are placed by the partition count, so it must match the topic \
             (set kafka_partitions to the topic's count; Roster is configured for {})",
            options.partitions
        );
        let spec = topic::TopicSpec {
            name: &options.topic,
            what: "the event topic",
            brokers: &options.brokers,
            security: &options.security,
            partitions: options.partitions,
            replication: options.replication,
            create: options.create_topic,
            // The topic is the system of record: keep every record forever.
            configs: &[("retention.ms", "-1")],
            advice: "infinite retention (retention.ms=-1)",
            mismatch_advice: &mismatch,
        };
        let partitions = topic::ensure(&producer, &config, &spec, context.refusals()).await?;
        // The brokers answered: whatever the client reported while they were away is over.
        context.healthy.store(true, Ordering::SeqCst);
        let ends = (0..partitions).map(|_| watch::channel(0).0).collect();
        let readers = (0..partitions).map(|_| Arc::default()).collect();
        let log = KafkaLog {
            side: Arc::new(Side {
                topic: options.topic.clone(),
                recent: (0..partitions).map(|_| Mutex::default()).collect(),
                config,
                properties: options.properties.clone(),
                context,
                ends,
            }),
            partitions,
            producer: Arc::new(Mutex::new(ProducerSlot {
                generation: 0,
                producer,
            })),
            producer_config,
            readers,
            closed: AtomicBool::new(false),
            probe: Mutex::new(None),
        };
        log.start_probe();
        Ok(log)
    }

    /// Checks reachability once a second: the error callback marks the log unhealthy when
    /// every broker is down; a metadata answer marks it healthy again.
    fn start_probe(&self) {
        let slot = self.producer.clone();
        let healthy = self.side.context.healthy.clone();
        let topic = self.side.topic.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let producer = slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .producer
                    .clone();
                let topic = topic.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_secs(2))
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if ok && !healthy.swap(true, Ordering::SeqCst) {
                    tracing::info!("Kafka reachable again: writes resume");
                } else if !ok && healthy.swap(false, Ordering::SeqCst) {
                    tracing::warn!(
                        "Kafka metadata request failed: writes answer 503 until it answers"
                    );
                }
            }
        });
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// The producer in use and its generation.
    fn producer(&self) -> (u64, FutureProducer<KafkaContext>) {
        let slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        (slot.generation, slot.producer.clone())
    }

    /// Replaces the producer of `generation` if librdkafka has declared it dead.
    fn replace_if_fatal(&self, generation: u64, producer: &FutureProducer<KafkaContext>) {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return;
        };
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if slot.generation != generation {
            return;
        }
        match self
            .producer_config
            .create_with_context(self.side.context.clone())
        {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "the Kafka producer failed fatally; replaced it with a new one");
                slot.generation += 1;
                slot.producer = fresh;
            }
            Err(e) => tracing::error!(error = %e, "could not replace the failed Kafka producer"),
        }
    }
}

impl Side {
    fn reader(&self) -> Result<Reader, LogError> {
        let mut config = self.config.clone();
        config
            // No group is joined (partitions are assigned by hand) and nothing is committed:
            // the projection store keeps its own positions.
            .set("group.id", "roster")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "100");
        config.extend(self.properties.clone());
        // Each consumer its own end-of-partition notes: readers of followers
        // (`EventLog::follower`) stand at other positions.
        let context = self.context.for_reader();
        let consumer: BaseConsumer<KafkaContext> = config
            .create_with_context(context)
            .map_err(|e| unavailable("configuring a Kafka consumer", e))?;
        Ok(Reader {
            consumer,
            next: None,
            eof_at: None,
            quiet_since: None,
        })
    }

    fn end_of(&self, partition: u32) -> watch::Receiver<u64> {
        match self.ends.get(partition as usize) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(0).1,
        }
    }

    fn assign(&self, reader: &mut Reader, partition: u32, at: u64) -> Result<(), LogError> {
        let mut tpl = TopicPartitionList::new();
        let offset = i64::try_from(at).map_err(|e| unavailable("position", e))?;
        tpl.add_partition_offset(&self.topic, partition as i32, Offset::Offset(offset))
            .map_err(|e| unavailable("positioning a Kafka consumer", e))?;
        reader
            .consumer
            .assign(&tpl)
            .map_err(|e| unavailable("positioning a Kafka consumer", e))?;
        reader.consumer.context().take_eof(partition);
        reader.next = Some(at);
        reader.eof_at = None;
        reader.quiet_since = None;
        Ok(())
    }

    /// Remembers records this process appended, so that followers get them without a fetch.
    fn remember(&self, partition: u32, records: &[Encoded], positions: &[u64]) {
        let Some(recent) = self.recent.get(partition as usize) else {
            return;
        };
        let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        for (r, &position) in records.iter().zip(positions) {
            recent.insert(position, (r.record.clone(), r.digest));
        }
        while recent.len() > RECENT_MAX {
            recent.pop_first();
        }
    }

    fn has_recent(&self, partition: u32, from: u64) -> bool {
        self.recent.get(partition as usize).is_some_and(|r| {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&from)
        })
    }

    /// The records this process appended at `from` and after, without gaps: exactly what the
    /// log holds there (the delivery reports said so). Forgets what lies below `from`.
    fn recent_from(&self, partition: u32, from: u64, max: usize) -> Vec<LogEntry> {
        let Some(recent) = self.recent.get(partition as usize) else {
            return Vec::new();
        };
        let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        let kept = recent.split_off(&from);
        *recent = kept;
        let mut out = Vec::new();
        for (&position, (record, digest)) in recent.iter() {
            if position != from + out.len() as u64 || out.len() >= max {
                break;
            }
            out.push(LogEntry {
                partition,
                position,
                record: record.clone(),
                digest: *digest,
            });
        }
        out
    }

    fn advance_end(&self, partition: u32, end: u64) {
        if let Some(tx) = self.ends.get(partition as usize) {
            tx.send_if_modified(|e| {
                let grew = end > *e;
                if grew {
                    *e = end;
                }
                grew
            });
        }
    }
}

/// Whether a failed delivery certainly wrote nothing (the broker refused the message itself).
fn certainly_not_written(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::QueueFull
        )
    )
}

fn read_blocking(
    log: &Side,
    slot: &Mutex<Option<Reader>>,
    partition: u32,
    from: u64,
    max: usize,
) -> Result<Vec<LogEntry>, LogError> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(log.reader()?);
    }
    let Some(reader) = slot.as_mut() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    // A consumer just behind `from` (the reader skipped records served from `recent`) goes
    // on and skips them again; anything else is positioned afresh.
    let continues = reader
        .next
        .is_some_and(|next| next <= from && from - next <= SKIP_MAX);
    if continues {
        poll_into(log, reader, partition, from, max, READ_WAIT, &mut out)?;
    } else {
        log.assign(reader, partition, from)?;
        poll_into(log, reader, partition, from, max, POSITION_WAIT, &mut out)?;
        // Some brokers (tansu) answer a fetch that starts inside a record batch with the
        // batches after it, or with nothing at the last one, where Kafka returns the whole
        // batch. Unless the broker said the partition ends at `from` or before (or refused the
        // position), fetch from further back and skip what lies below `from`.
        let mut back = 1;
        while !begins_at(&out, from)
            && from > 0
            && back <= BATCH_MAX
            && reader.next.is_some()
            && reader.eof_at.is_none_or(|end| end > from)
        {
            out.clear();
            let at = from.saturating_sub(back);
            log.assign(reader, partition, at)?;
            poll_into(log, reader, partition, from, max, POSITION_WAIT, &mut out)?;
            if at == 0 {
                break;
            }
            back *= 16;
        }
        if let Some(first) = out.first().filter(|e| e.position != from) {
            reader.next = None;
            return Err(LogError::Corrupt(format!(
                "partition {partition} has no record at position {from} but has records from \
                 {} on: the topic lost records (is retention or compaction set on it?)",
                first.position
            )));
        }
    }
    if out.is_empty() {
        reader.quiet_since.get_or_insert_with(Instant::now);
    } else {
        reader.quiet_since = None;
    }
    if let Some(last) = out.last() {
        log.advance_end(partition, last.position + 1);
    }
    Ok(out)
}

/// Whether `out` begins at `from` (a read must never skip records).
fn begins_at(out: &[LogEntry], from: u64) -> bool {
    out.first().is_some_and(|e| e.position == from)
}

/// Polls `reader` for up to `max` entries at or after `from`, waiting up to `wait` for the
/// first, and stopping early at the end of the partition.
fn poll_into(
    log: &Side,
    reader: &mut Reader,
    partition: u32,
    from: u64,
    max: usize,
    wait: Duration,
    out: &mut Vec<LogEntry>,
) -> Result<(), LogError> {
    let deadline = Instant::now() + wait;
    let mut failed = None;
    while out.len() < max {
        let slice = if out.is_empty() {
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(2))
        } else {
            Duration::ZERO
        };
        match reader.consumer.poll(slice) {
            None => {
                if let Some(end) = reader.consumer.context().take_eof(partition) {
                    reader.eof_at = Some(end);
                    if reader.next.is_none_or(|n| n >= end) {
                        break;
                    }
                }
                // A record this process just appended at `from` is served from memory.
                if !out.is_empty() || Instant::now() >= deadline || log.has_recent(partition, from)
                {
                    break;
                }
            }
            Some(Ok(msg)) => {
                let position = msg.offset() as u64;
                reader.next = Some(position + 1);
                if position < from {
                    continue;
                }
                let payload = msg.payload().unwrap_or_default();
                let record: Record = serde_json::from_slice(payload).map_err(|e| {
                    LogError::Corrupt(format!(
                        "partition {partition} offset {position} does not decode: {e}"
                    ))
                })?;
                out.push(LogEntry {
                    partition,
                    position,
                    record: Arc::new(record),
                    digest: body_digest(payload),
                });
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                reader.eof_at = reader.next;
                break;
            }
            Some(Err(e)) => {
                // Out of range (a position past the end) and fetch errors: nothing to read
                // there now; position again next time.
                reader.next = None;
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
                    return Ok(());
                }
                // Errors queue up while nobody polls (one per failed connection attempt while
                // a broker is down): drain them, and fail only if no record follows.
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) if out.is_empty() => Err(unavailable("reading from Kafka", e)),
        _ => Ok(()),
    }
}

impl KafkaLog {
    /// Reads from the brokers, never from the records this process appended.
    ///
    /// Fails as [`EventLog::read`] does.
    async fn fetch(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        let Some(slot) = self.readers.get(partition as usize).cloned() else {
            return Ok(Vec::new());
        };
        if self.closed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("log closed".into()));
        }
        let side = self.side.clone();
        // Polling blocks: keep it off the async workers.
        tokio::task::spawn_blocking(move || read_blocking(&side, &slot, partition, from, max))
            .await
            .map_err(|e| unavailable("Kafka reader failed", e))?
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        if self.closed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("log closed".into()));
        }
        let partition = self.partition(&first.record.directory);
        if records
            .iter()
            .any(|r| self.partition(&r.record.directory) != partition)
        {
            return Err(LogError::Unavailable(
                "one append must stay within one partition".into(),
            ));
        }
        let (generation, producer) = self.producer();
        let mut deliveries = Vec::with_capacity(records.len());
        for r in &records {
            let message = FutureRecord::to(&self.side.topic)
                .partition(partition as i32)
                .key(r.record.directory.as_bytes())
                .payload(&*r.bytes);
            match producer.send_result(message) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) if deliveries.is_empty() => {
                    self.replace_if_fatal(generation, &producer);
                    return Err(unavailable("queueing a record for Kafka", e));
                }
                Err((e, _)) => {
                    self.replace_if_fatal(generation, &producer);
                    return Err(LogError::Unknown(format!(
                        "queueing a record for Kafka: {e}"
                    )));
                }
            }
        }
        let mut positions = Vec::with_capacity(deliveries.len());
        let mut failure: Option<(KafkaError, bool)> = None;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(d)) => match u64::try_from(d.offset) {
                    Ok(position) => positions.push(position),
                    // A delivery report without an offset (seen from tansu while it was being
                    // killed): the record may be in the log, at a position the report does not
                    // say. The writer finds out from the log, as after a timeout.
                    Err(_) => {
                        failure =
                            Some((KafkaError::MessageProduction(RDKafkaErrorCode::Fail), false))
                    }
                },
                Ok(Err((e, _))) => {
                    let definite = certainly_not_written(&e);
                    let all_definite = failure.as_ref().is_none_or(|f| f.1) && definite;
                    failure = Some((e, all_definite));
                }
                Err(_) => {
                    failure = Some((KafkaError::Canceled, false));
                }
            }
        }
        if failure.is_some() {
            self.replace_if_fatal(generation, &producer);
        }
        match failure {
            None => {
                self.side.remember(partition, &records, &positions);
                if let Some(&last) = positions.iter().max() {
                    self.side.advance_end(partition, last + 1);
                }
                Ok(positions)
            }
            Some((e, true)) if positions.is_empty() => {
                Err(unavailable("Kafka refused the records", e))
            }
            Some((e, _)) => {
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut)
                ) {
                    self.side.context.healthy.store(false, Ordering::SeqCst);
                }
                Err(LogError::Unknown(format!(
                    "delivering records to Kafka: {e}"
                )))
            }
        }
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError> {
        let recent = self.side.recent_from(partition, from, max);
        if !recent.is_empty() {
            return Ok(recent);
        }
        let read = self.fetch(partition, from, max).await?;
        if read.is_empty() {
            // Appended by this process while the consumer was polling.
            return Ok(self.side.recent_from(partition, from, max));
        }
        Ok(read)
    }

    async fn read_as_stored(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        self.fetch(partition, from, max).await
    }

    async fn caught_up(&self, partition: u32, next: u64) -> Result<bool, LogError> {
        let Some(slot) = self.readers.get(partition as usize) else {
            return Ok(true);
        };
        let slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        Ok(slot.as_ref().is_some_and(|r| {
            r.next == Some(next)
                && (r.eof_at.is_some_and(|end| end <= next)
                    || r.quiet_since.is_some_and(|t| t.elapsed() >= QUIET_FOR_END))
        }))
    }

    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        self.side.end_of(partition)
    }

    fn follower(&self) -> Option<Arc<dyn EventLog>> {
        Some(Arc::new(KafkaLog {
            side: self.side.clone(),
            partitions: self.partitions,
            producer: self.producer.clone(),
            producer_config: self.producer_config.clone(),
            readers: (0..self.partitions).map(|_| Arc::default()).collect(),
            closed: AtomicBool::new(self.closed.load(Ordering::SeqCst)),
            // The log this follows probes the brokers for both.
            probe: Mutex::new(None),
        }))
    }

    fn poll_interval(&self) -> Option<Duration> {
        // This process's own appends wake followers through `end`; other processes' records
        // are found by reading again.
        Some(FOLLOW_INTERVAL)
    }

    fn healthy(&self) -> bool {
        self.side.context.healthy.load(Ordering::SeqCst) && !self.closed.load(Ordering::SeqCst)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(probe) = self.probe.lock().unwrap_or_else(|p| p.into_inner()).take() {
            probe.abort();
        }
        let (_, producer) = self.producer();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        for slot in &self.readers {
            slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }
}
