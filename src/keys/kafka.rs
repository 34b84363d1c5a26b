//! Data keys on Kafka, beside the event topic: the topic `<event topic>-keys`, one partition,
//! `cleanup.policy=compact`. Each key is one message keyed by its id, its value the wrapped
//! key; destroying a key produces a tombstone (a message with no value) under the same id.
//! Every Roster process reads the topic from its start and follows it, so a key one replica
//! creates reaches the others; a key is durable (acknowledged by the brokers, `acks=all`)
//! before any record sealed with it is appended, so a reader that meets a record whose key it
//! has not seen waits for the key to arrive ([`super::Keyring::state_waiting`]).
//!
//! Compaction takes a destroyed key's bytes off the brokers' disks once the segment that held
//! it is cleaned (`min.cleanable.dirty.ratio`, `segment.ms`, `delete.retention.ms` bound when;
//! docs/operations.md gives settings). A broker that does not compact (tansu) keeps them: the
//! key then reads as destroyed in Roster, but its bytes stay on the broker.

use super::{KeyError, KeyStore, Known};
use crate::log::{
    client_configs, ensure_topic, oauth_tokens, KafkaContext, KafkaOptions, TopicSpec,
};
use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use roster_events::{KeyId, Sealed};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the topic must have given nothing new before it is taken as read to its end (for
/// brokers that send no end-of-partition).
const QUIET_FOR_END: Duration = Duration::from_millis(1500);
/// How long a poll of the follower waits.
const POLL: Duration = Duration::from_millis(100);

/// The key topic of one deployment.
pub struct KafkaKeys {
    topic: String,
    producer: FutureProducer<KafkaContext>,
    consumer_config: ClientConfig,
    /// The producer's context, for the consumer too (its OAUTHBEARER tokens).
    context: KafkaContext,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    follower: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(format!("{context}: {e}"))
}

impl KafkaKeys {
    /// The key topic beside `options.topic`, created when it is missing and topic creation is
    /// allowed.
    ///
    /// Fails when the topic cannot be made sure of.
    pub async fn open(options: &KafkaOptions) -> Result<KafkaKeys, KeyError> {
        let topic = format!("{}-keys", options.topic);
        let (config, producer_config) = client_configs(options, "roster-keys")
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        let oauth = oauth_tokens(&options.security)
            .await
            .map_err(KeyError::Unavailable)?;
        let context = KafkaContext::quiet(oauth);
        let producer: FutureProducer<KafkaContext> = producer_config
            .create_with_context(context.clone())
            .map_err(|e| unavailable("configuring the key topic's producer", e))?;
        let spec = TopicSpec {
            name: &topic,
            what: "the data-key topic",
            brokers: &options.brokers,
            security: &options.security,
            partitions: 1,
            replication: options.replication,
            create: options.create_topic,
            configs: &[("cleanup.policy", "compact"), ("retention.ms", "-1")],
            advice: "cleanup.policy=compact",
            mismatch_advice: "",
        };
        ensure_topic(&producer, &config, &spec, context.refusals())
            .await
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        let mut consumer_config = config;
        consumer_config
            .set("group.id", "roster-keys")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100");
        consumer_config.extend(options.properties.clone());
        Ok(KafkaKeys {
            topic,
            producer,
            consumer_config,
            context,
            timeout: options.message_timeout,
            stop: Arc::default(),
            follower: Mutex::default(),
        })
    }

    async fn produce(&self, id: KeyId, value: Option<&str>) -> Result<(), KeyError> {
        let key = id.to_string();
        let mut record = FutureRecord::<str, str>::to(&self.topic)
            .key(&key)
            .partition(0);
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| unavailable("writing to the data-key topic", e))
    }
}

/// Reads the key topic from its start into `known`, telling `ready` once it reached the end
/// it had when it began, then follows it until `stop`.
fn follow(
    consumer: BaseConsumer<KafkaContext>,
    topic: String,
    known: Arc<Known>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), KeyError>>,
) {
    let mut ready = Some(ready);
    let mut quiet_since = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let id = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| Uuid::parse_str(k).ok());
                let Some(id) = id else {
                    tracing::warn!(
                        offset = m.offset(),
                        "a message without a key id in {topic}; skipped"
                    );
                    continue;
                };
                let wrapped = m
                    .payload()
                    .map(|p| Sealed(String::from_utf8_lossy(p).into_owned()));
                if let Err(e) = known.learn(KeyId(id), wrapped.as_ref()) {
                    tracing::error!(error = %e, offset = m.offset(), "an unreadable data key in {topic}");
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e));
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "reading the data-key topic"),
            None => {
                if quiet_since.elapsed() >= QUIET_FOR_END {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
            }
        }
    }
}

#[async_trait]
impl KeyStore for KafkaKeys {
    async fn start(&self, known: Arc<Known>) -> Result<(), KeyError> {
        let consumer: BaseConsumer<KafkaContext> = self
            .consumer_config
            .create_with_context(self.context.clone())
            .map_err(|e| unavailable("configuring the key topic's consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Beginning)
            .map_err(|e| unavailable("positioning the key topic's consumer", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| unavailable("positioning the key topic's consumer", e))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (topic, stop) = (self.topic.clone(), self.stop.clone());
        let handle = std::thread::Builder::new()
            .name("roster-keys".into())
            .spawn(move || follow(consumer, topic, known, stop, tx))
            .map_err(|e| unavailable("starting the key topic's reader", e))?;
        *self.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(|e| unavailable("reading the data-key topic", e))?
            .map_err(|_| unavailable("reading the data-key topic", "its reader stopped"))?
    }

    async fn create(&self, keys: &[(KeyId, Sealed)]) -> Result<(), KeyError> {
        let sends = keys.iter().map(|(id, k)| self.produce(*id, Some(&k.0)));
        futures_util::future::try_join_all(sends).await.map(|_| ())
    }

    async fn destroy(&self, id: KeyId) -> Result<(), KeyError> {
        self.produce(id, None).await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn close(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
