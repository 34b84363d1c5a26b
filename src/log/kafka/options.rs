//! How Roster reaches Kafka: the options an operator sets, and the configuration of every
//! client made from them (the event log's and the data-key topic's).

use super::security::{KafkaSecurity, SecurityError};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where and how to reach Kafka. Not `Debug`: `properties` may hold credentials.
#[derive(Clone)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    pub topic: String,
    /// The topic's partition count: fixed for the life of the topic, since directories are
    /// placed by it. Used when Roster creates the topic, and checked against an existing one.
    pub partitions: u32,
    /// Replication factor used when Roster creates the topic.
    pub replication: i32,
    /// How long the producer keeps trying to deliver one append before giving up.
    pub message_timeout: Duration,
    /// Create the topic at start if it is missing.
    pub create_topic: bool,
    /// TLS and SASL for every client.
    pub security: KafkaSecurity,
    /// Extra librdkafka properties for every client (tuning, or security settings Roster has
    /// no setting of its own for). Never logged.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            brokers: "127.0.0.1:9092".into(),
            topic: "roster-events".into(),
            partitions: 3,
            replication: 1,
            message_timeout: Duration::from_secs(10),
            create_topic: true,
            security: KafkaSecurity::default(),
            properties: BTreeMap::new(),
        }
    }
}

/// The configuration of every client Roster makes (`client_id`, the brokers, TLS and SASL,
/// the operators' properties on top of Roster's defaults, so they can tune them), and of its
/// producers (idempotent, `acks=all`, the message timeout).
///
/// Fails when the security settings do not make sense together or name unreadable files.
pub(crate) fn client_configs(
    options: &KafkaOptions,
    client_id: &str,
) -> Result<(ClientConfig, ClientConfig), SecurityError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in options.security.properties(options.properties.keys())? {
        config.set(key, value);
    }
    config.extend(options.properties.clone());
    let mut producer = config.clone();
    producer
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set(
            "message.timeout.ms",
            options.message_timeout.as_millis().to_string(),
        );
    producer.extend(options.properties.clone());
    Ok((config, producer))
}
