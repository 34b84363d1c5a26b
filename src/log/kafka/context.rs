//! The context every Kafka client of Roster is made with: librdkafka's logs routed to
//! tracing, whether any broker is reachable, connections refused for security reasons, where
//! partitions ended, and OAUTHBEARER tokens handed to librdkafka when it asks.

use super::oauth::OAuthTokens;
use super::security::Refusals;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Routes librdkafka's logs to tracing, tracks whether any broker is reachable, notes
/// connections refused for security reasons, records where partitions ended (librdkafka
/// reports the end of a partition through the error callback of a plain consumer), and gives
/// librdkafka the process's OAUTHBEARER token.
#[derive(Clone)]
pub(crate) struct KafkaContext {
    pub(super) healthy: Arc<AtomicBool>,
    refusals: Refusals,
    /// Whether this client's broker connections decide `healthy`: only the producer's do,
    /// since writes are what health gates.
    gates_health: bool,
    /// Per partition, the offset at which a consumer last reached its end.
    eof: Arc<Mutex<HashMap<i32, u64>>>,
    /// Where OAUTHBEARER tokens come from, when that is the SASL mechanism.
    oauth: Option<Arc<OAuthTokens>>,
}

impl KafkaContext {
    /// A context whose client does not decide the log's health (the data-key topic's).
    pub(crate) fn quiet(oauth: Option<Arc<OAuthTokens>>) -> KafkaContext {
        KafkaContext {
            healthy: Arc::new(AtomicBool::new(true)),
            refusals: Refusals::default(),
            gates_health: false,
            eof: Arc::default(),
            oauth,
        }
    }

    /// This context, for the client whose broker connections decide the log's health.
    pub(super) fn gating_health(self) -> KafkaContext {
        KafkaContext {
            gates_health: true,
            ..self
        }
    }

    /// A context for one more consumer: the same health, refusals and tokens, its own
    /// end-of-partition notes (readers of followers stand at other positions).
    pub(super) fn for_reader(&self) -> KafkaContext {
        KafkaContext {
            gates_health: false,
            eof: Arc::default(),
            ..self.clone()
        }
    }

    /// The connections this client's brokers refused for security reasons.
    pub(crate) fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    pub(super) fn take_eof(&self, partition: u32) -> Option<u64> {
        self.eof
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(partition as i32))
    }
}

/// The offset in librdkafka's "reached end of partition at offset N" message.
fn eof_offset(reason: &str) -> Option<u64> {
    let rest = reason.split("at offset ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl ClientContext for KafkaContext {
    /// librdkafka asks only when the mechanism is OAUTHBEARER: at a client's start and at 80%
    /// of the token's lifetime.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let Some(tokens) = &self.oauth else {
            return Err("kafka_sasl_mechanism is not oauthbearer".into());
        };
        Ok(tokens.token()?)
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.refusals.note(&error, reason);
        if let KafkaError::PartitionEOF(partition) = error {
            if let Some(offset) = eof_offset(reason) {
                self.eof
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(partition, offset);
            }
            return;
        }
        if self.gates_health && error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
        {
            if self.healthy.swap(false, Ordering::SeqCst) {
                tracing::warn!(%reason, "no Kafka broker reachable: writes answer 503 until one is");
            }
        } else {
            tracing::debug!(%error, %reason, "kafka client error");
        }
    }
}

impl ConsumerContext for KafkaContext {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_end_of_partition_offset_is_read_from_librdkafkas_message() {
        let reason =
            "Fetch from broker 111 reached end of partition at offset 42 (HighwaterMark 42)";
        assert_eq!(super::eof_offset(reason), Some(42));
        assert_eq!(super::eof_offset("no offset here"), None);
    }
}
