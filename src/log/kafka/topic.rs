//! A Kafka topic Roster needs, made sure of at start: wait for the brokers, create the topic
//! when it is missing (and creation is allowed), and check its partition count. Used for the
//! event topic and for the data-key topic (`crate::keys::kafka`).

use super::{security, KafkaSecurity, Refusals, SaslMechanism};
use crate::log::LogError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use std::time::Duration;

/// One topic and how Roster wants it.
pub(crate) struct TopicSpec<'a> {
    pub name: &'a str,
    /// What the topic is, for operators' messages ("the event topic").
    pub what: &'a str,
    pub brokers: &'a str,
    /// How the brokers are reached (to explain a certificate that does not verify).
    pub security: &'a KafkaSecurity,
    pub partitions: u32,
    pub replication: i32,
    /// Create the topic when it is missing.
    pub create: bool,
    /// Topic configuration set when Roster creates it.
    pub configs: &'a [(&'a str, &'a str)],
    /// How an operator must configure it when creating it themselves.
    pub advice: &'a str,
    /// What to say after a partition count that does not match.
    pub mismatch_advice: &'a str,
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("{context}: {e}"))
}

/// Waits for the brokers, then makes sure the topic exists with the configured partition
/// count. Returns the partition count.
///
/// Fails when the topic has another partition count, or is missing and cannot be created.
pub(crate) async fn ensure<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    config: &ClientConfig,
    spec: &TopicSpec<'_>,
    refusals: &Refusals,
) -> Result<u32, LogError> {
    let mut delay = Duration::from_millis(250);
    let mut created = false;
    loop {
        let p = producer.clone();
        let name = spec.name.to_owned();
        let metadata = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&name), Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .iter()
                        .find(|t| t.name() == name)
                        .map(|t| (t.error(), t.partitions().len() as u32))
                })
        })
        .await
        .map_err(|e| unavailable("asking Kafka for metadata", e))?;
        match metadata {
            Err(e) => {
                // A broker answered, and refused the connection: retrying will not change
                // that, and a plain connection is never tried instead.
                if let Some(refusal) = refusals.last() {
                    return Err(refused(spec, refusal).await);
                }
                tracing::warn!(
                    brokers = %spec.brokers,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot reach the Kafka brokers; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Ok(Some((None, n))) if n > 0 => {
                if n != spec.partitions {
                    return Err(LogError::Unavailable(format!(
                        "{} {} has {n} partitions but Roster needs {}{}",
                        spec.what, spec.name, spec.partitions, spec.mismatch_advice
                    )));
                }
                return Ok(n);
            }
            Ok(_) if created => {
                // Created, but not yet in the metadata.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => {
                if !spec.create {
                    return Err(LogError::Unavailable(format!(
                        "{} {} does not exist and topic creation is off: create it with {} \
                         partitions and {}",
                        spec.what, spec.name, spec.partitions, spec.advice
                    )));
                }
                create(config, spec).await?;
                created = true;
                tracing::info!(topic = %spec.name, partitions = spec.partitions, "created {}", spec.what);
            }
        }
    }
}

/// The error for a start the brokers refused, with rustls's reason when a certificate did
/// not verify against the configured CA bundle.
async fn refused(spec: &TopicSpec<'_>, refusal: String) -> LogError {
    let mut reason = String::new();
    if let (true, Some(ca)) = (
        refusal.contains("certificate verify failed"),
        &spec.security.ca,
    ) {
        if let Some(why) = security::diagnose(spec.brokers, ca).await {
            reason = format!(" ({why})");
        }
    }
    LogError::Unavailable(format!(
        "{refusal}{reason}; brokers {}: check the kafka_security_protocol, kafka_ssl_*, \
         kafka_sasl_* and kafka_oauth_* settings against what the brokers expect",
        spec.brokers
    ))
}

async fn create(config: &ClientConfig, spec: &TopicSpec<'_>) -> Result<(), LogError> {
    if spec.security.sasl_mechanism == Some(SaslMechanism::OAuthBearer) {
        // rdkafka's admin client never serves the queue librdkafka asks for tokens on, so it
        // could not authenticate.
        return Err(LogError::Unavailable(format!(
            "{} {} is missing, and Roster cannot create topics with kafka_sasl_mechanism = \
             oauthbearer: create it yourself with {} partitions and {}",
            spec.what, spec.name, spec.partitions, spec.advice
        )));
    }
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = config
        .create()
        .map_err(|e| unavailable("configuring the Kafka admin client", e))?;
    let refused = |e: &dyn std::fmt::Display| {
        LogError::Unavailable(format!(
            "creating {} {} failed ({e}); create it yourself with {} partitions and {}, or \
             grant Roster CreateTopics",
            spec.what, spec.name, spec.partitions, spec.advice
        ))
    };
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let partitions = i32::try_from(spec.partitions).map_err(|e| refused(&e))?;
    let mut topic = NewTopic::new(
        spec.name,
        partitions,
        TopicReplication::Fixed(spec.replication),
    );
    for (k, v) in spec.configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| refused(&e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(refused(&code)),
        }
    }
    Ok(())
}
