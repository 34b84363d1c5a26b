//! `roster serve`'s flags for TLS and SASL to Kafka, and how they layer over the settings.

use crate::auth::Secret;
use crate::config::Settings;
use crate::log::{KafkaProtocol, SaslMechanism};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct KafkaSecurityArgs {
    /// TLS and SASL to the brokers [default: plaintext].
    #[arg(long, env = "ROSTER_KAFKA_SECURITY_PROTOCOL", value_enum)]
    pub kafka_security_protocol: Option<KafkaProtocol>,
    /// PEM file of the CA certificates the brokers' certificates must lead to [default: the
    /// system's CA bundle].
    #[arg(long, env = "ROSTER_KAFKA_SSL_CA")]
    pub kafka_ssl_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --kafka-ssl-key).
    #[arg(long, env = "ROSTER_KAFKA_SSL_CERT")]
    pub kafka_ssl_cert: Option<PathBuf>,
    /// PEM private key of --kafka-ssl-cert.
    #[arg(long, env = "ROSTER_KAFKA_SSL_KEY")]
    pub kafka_ssl_key: Option<PathBuf>,
    /// Passphrase of an encrypted --kafka-ssl-key (never logged).
    #[arg(long, env = "ROSTER_KAFKA_SSL_KEY_PASSWORD", hide_env_values = true)]
    pub kafka_ssl_key_password: Option<String>,
    /// SASL mechanism (with sasl_ssl or sasl_plaintext).
    #[arg(long, env = "ROSTER_KAFKA_SASL_MECHANISM", value_enum)]
    pub kafka_sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name (an API key on Confluent Cloud).
    #[arg(long, env = "ROSTER_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// SASL password (an API secret on Confluent Cloud; never logged).
    #[arg(long, env = "ROSTER_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    /// OAUTHBEARER: the OpenID Connect token endpoint (https://).
    #[arg(long, env = "ROSTER_KAFKA_OAUTH_TOKEN_URL")]
    pub kafka_oauth_token_url: Option<String>,
    /// OAUTHBEARER: the client id.
    #[arg(long, env = "ROSTER_KAFKA_OAUTH_CLIENT_ID")]
    pub kafka_oauth_client_id: Option<String>,
    /// OAUTHBEARER: the client secret (never logged).
    #[arg(long, env = "ROSTER_KAFKA_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub kafka_oauth_client_secret: Option<String>,
    /// OAUTHBEARER: scopes to ask for, space-separated.
    #[arg(long, env = "ROSTER_KAFKA_OAUTH_SCOPE")]
    pub kafka_oauth_scope: Option<String>,
}

impl KafkaSecurityArgs {
    /// Sets in `s` what these flags give.
    pub fn apply(&self, s: &mut Settings) {
        if let Some(v) = self.kafka_security_protocol {
            s.kafka_security_protocol = v;
        }
        let path = |v: &Option<PathBuf>, to: &mut Option<PathBuf>| {
            if let Some(v) = v {
                *to = Some(v.clone());
            }
        };
        path(&self.kafka_ssl_ca, &mut s.kafka_ssl_ca);
        path(&self.kafka_ssl_cert, &mut s.kafka_ssl_cert);
        path(&self.kafka_ssl_key, &mut s.kafka_ssl_key);
        if let Some(v) = &self.kafka_ssl_key_password {
            s.kafka_ssl_key_password = Some(Secret::new(v.clone()));
        }
        if let Some(v) = self.kafka_sasl_mechanism {
            s.kafka_sasl_mechanism = Some(v);
        }
        if let Some(v) = &self.kafka_sasl_username {
            s.kafka_sasl_username = Some(v.clone());
        }
        if let Some(v) = &self.kafka_sasl_password {
            s.kafka_sasl_password = Some(Secret::new(v.clone()));
        }
        let text = |v: &Option<String>, to: &mut Option<String>| {
            if let Some(v) = v {
                *to = Some(v.clone());
            }
        };
        text(&self.kafka_oauth_token_url, &mut s.kafka_oauth_token_url);
        text(&self.kafka_oauth_client_id, &mut s.kafka_oauth_client_id);
        text(&self.kafka_oauth_scope, &mut s.kafka_oauth_scope);
        if let Some(v) = &self.kafka_oauth_client_secret {
            s.kafka_oauth_client_secret = Some(Secret::new(v.clone()));
        }
    }
}
