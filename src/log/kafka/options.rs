//! How Roster reaches Kafka: the options an operator sets, and the configuration of every
//! client made from them (the event log's and the data-key topic's).

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
    /// Extra librdkafka properties for every client (security.protocol, sasl.*, ...). Never
    /// logged.
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
            properties: BTreeMap::new(),
        }
    }
}

/// The configuration of every client Roster makes (`client_id`, the brokers, the operators'
/// properties on top of Roster's defaults, so they can tune them), and of its producers
/// (idempotent, `acks=all`, the message timeout).
pub(crate) fn client_configs(
    options: &KafkaOptions,
    client_id: &str,
) -> (ClientConfig, ClientConfig) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
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
    (config, producer)
}
