//! How Roster's Kafka clients secure their connections: TLS (the brokers' certificates checked
//! against a CA bundle and their names, optionally a client certificate) and SASL (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512, and OAUTHBEARER with tokens from an OpenID Connect token
//! endpoint), from typed settings checked before any connection is made;
//! and the record of a connection refused for security reasons, which stops a start instead
//! of being retried as if the brokers were merely away.

use crate::auth::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// librdkafka's `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum KafkaProtocol {
    /// No TLS, no authentication (the default; for brokers on a trusted network).
    #[default]
    Plaintext,
    /// TLS; with `kafka_ssl_cert` and `kafka_ssl_key`, mutual TLS.
    Ssl,
    /// SASL over a plain connection: credentials and records cross the network in clear.
    SaslPlaintext,
    /// SASL over TLS, what managed Kafka services ask for.
    SaslSsl,
}

impl KafkaProtocol {
    fn tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl)
    }

    fn property(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaProtocol::SaslSsl => "sasl_ssl",
        }
    }
}

/// librdkafka's `sasl.mechanisms`, as far as Roster supports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SaslMechanism {
    /// The password itself is sent (over TLS, so only the broker sees it).
    Plain,
    #[serde(rename = "scram-sha-256")]
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    #[value(name = "scram-sha-512")]
    ScramSha512,
    /// A bearer token from an OpenID Connect token endpoint (client-credentials grant),
    /// fetched and renewed by Roster (`kafka_oauth_*`).
    #[serde(rename = "oauthbearer")]
    #[value(name = "oauthbearer")]
    OAuthBearer,
}

impl SaslMechanism {
    fn property(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The setting's own spelling of this mechanism.
    fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "plain",
            SaslMechanism::ScramSha256 => "scram-sha-256",
            SaslMechanism::ScramSha512 => "scram-sha-512",
            SaslMechanism::OAuthBearer => "oauthbearer",
        }
    }
}

/// The settings of an OpenID Connect client that gets OAUTHBEARER tokens by the
/// client-credentials grant (RFC 6749 §4.4), as given. Not `Debug`: it holds the client
/// secret.
#[derive(Clone, Default)]
pub struct OAuthClient {
    /// The token endpoint (Entra ID, Okta, Keycloak, ...).
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated scopes to ask for.
    pub scope: Option<String>,
}

/// A checked [`OAuthClient`]: what Roster asks the token endpoint for. Not `Debug`.
#[derive(Clone)]
pub struct OAuthGrant {
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
}

impl OAuthClient {
    fn settings(&self) -> [(&'static str, bool); 4] {
        [
            ("kafka_oauth_token_url", self.token_url.is_some()),
            ("kafka_oauth_client_id", self.client_id.is_some()),
            ("kafka_oauth_client_secret", self.client_secret.is_some()),
            ("kafka_oauth_scope", self.scope.is_some()),
        ]
    }

    /// The grant, once every setting it needs is there and the endpoint may be sent the
    /// secret.
    fn grant(&self) -> Result<OAuthGrant, SecurityError> {
        let needs = SecurityError::MechanismNeeds;
        let url = self
            .token_url
            .as_ref()
            .ok_or(needs("kafka_oauth_token_url"))?;
        let client_id = self
            .client_id
            .clone()
            .ok_or(needs("kafka_oauth_client_id"))?;
        let secret = self
            .client_secret
            .as_ref()
            .ok_or(needs("kafka_oauth_client_secret"))?;
        Ok(OAuthGrant {
            token_url: check_token_url(url)?,
            client_id,
            client_secret: Secret::new(secret.clone()),
            scope: self.scope.clone(),
        })
    }
}

/// The client secret is sent to the token endpoint: over TLS, or to this machine only.
fn check_token_url(url: &str) -> Result<url::Url, SecurityError> {
    let refused = || SecurityError::TokenUrl(url.to_owned());
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(refused()),
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(refused()),
    }
}

/// How every Kafka client of this process secures its connections. Not `Debug`: it holds
/// the SASL password and the key's passphrase.
#[derive(Clone, Default)]
pub struct KafkaSecurity {
    pub protocol: KafkaProtocol,
    /// PEM file of the CA certificates the brokers' certificates must lead to. Unset: the
    /// system's CA bundle.
    pub ca: Option<PathBuf>,
    /// PEM files of this client's certificate and its key, for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The passphrase of an encrypted `key`.
    pub key_password: Option<String>,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// Where OAUTHBEARER tokens come from.
    pub oauth: OAuthClient,
}

/// A combination of security settings Roster refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(
        "{0} is set but kafka_security_protocol = {1}, which does not use TLS: set it to ssl or \
         sasl_ssl (Roster never sends in clear what was configured for TLS)"
    )]
    TlsUnused(&'static str, &'static str),
    #[error(
        "{0} is set but kafka_security_protocol = {1}, which does not use SASL: set it to \
         sasl_ssl (or sasl_plaintext)"
    )]
    SaslUnused(&'static str, &'static str),
    #[error("kafka_security_protocol = {0} needs {1}")]
    Missing(&'static str, &'static str),
    #[error("kafka_sasl_mechanism = oauthbearer needs {0}")]
    MechanismNeeds(&'static str),
    #[error("{0} is set but kafka_sasl_mechanism = {1}, which does not use it")]
    MechanismUnused(&'static str, &'static str),
    #[error(
        "kafka_oauth_token_url must be an https:// URL (http:// only to this machine), not \
         {0:?}: the client secret is sent to it"
    )]
    TokenUrl(String),
    #[error("mutual TLS needs both kafka_ssl_cert and kafka_ssl_key; only {0} is set")]
    HalfPair(&'static str),
    #[error("{setting} ({path}): {reason}")]
    File {
        setting: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "kafka_properties sets {0}, which the kafka_security_protocol, kafka_ssl_* and \
         kafka_sasl_* settings own: set it there instead"
    )]
    Overridden(String),
}

/// The librdkafka properties the typed settings own (an operator's `kafka_properties` may not
/// set them too).
const OWNED: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.config",
];

/// Checks that a PEM file named by a setting can be read and holds PEM blocks, so that a
/// wrong path is named at start instead of in librdkafka's words at the first connection.
fn check_pem(setting: &'static str, path: &Path) -> Result<(), SecurityError> {
    let fail = |reason: String| SecurityError::File {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(fail("not a PEM file (no -----BEGIN line)".into()));
    }
    Ok(())
}

impl KafkaSecurity {
    /// The librdkafka properties for these settings, after checking that they make sense
    /// together, that the files they name are PEM files, and that `operators` (the
    /// `kafka_properties`) does not set any of them as well.
    pub fn properties<'a>(
        &self,
        operators: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<(&'static str, String)>, SecurityError> {
        if self.configured() {
            if let Some(key) = operators.into_iter().find(|k| OWNED.contains(&k.as_str())) {
                return Err(SecurityError::Overridden(key.clone()));
            }
        }
        let protocol = self.protocol.property();
        let tls_settings = [
            ("kafka_ssl_ca", self.ca.is_some()),
            ("kafka_ssl_cert", self.cert.is_some()),
            ("kafka_ssl_key", self.key.is_some()),
            ("kafka_ssl_key_password", self.key_password.is_some()),
        ];
        let credentials = [
            ("kafka_sasl_username", self.sasl_username.is_some()),
            ("kafka_sasl_password", self.sasl_password.is_some()),
        ];
        let oauth = self.oauth.settings();
        let mut sasl_settings = vec![("kafka_sasl_mechanism", self.sasl_mechanism.is_some())];
        sasl_settings.extend(credentials);
        sasl_settings.extend(oauth);
        let mut out = Vec::new();
        if self.protocol != KafkaProtocol::Plaintext {
            out.push(("security.protocol", protocol.to_owned()));
        }
        if self.protocol.tls() {
            match (&self.cert, &self.key) {
                (Some(_), None) => return Err(SecurityError::HalfPair("kafka_ssl_cert")),
                (None, Some(_)) => return Err(SecurityError::HalfPair("kafka_ssl_key")),
                _ => {}
            }
            let ca = match &self.ca {
                Some(path) => {
                    check_pem("kafka_ssl_ca", path)?;
                    path.display().to_string()
                }
                // The system's bundle, wherever this system keeps it (the bundled OpenSSL's
                // own default directory is that of the machine it was built on).
                None => "probe".to_owned(),
            };
            out.push(("ssl.ca.location", ca));
            out.push(("ssl.endpoint.identification.algorithm", "https".to_owned()));
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                check_pem("kafka_ssl_cert", cert)?;
                check_pem("kafka_ssl_key", key)?;
                out.push(("ssl.certificate.location", cert.display().to_string()));
                out.push(("ssl.key.location", key.display().to_string()));
            }
            if let Some(password) = &self.key_password {
                out.push(("ssl.key.password", password.clone()));
            }
        } else if let Some((setting, _)) = tls_settings.iter().find(|(_, set)| *set) {
            return Err(SecurityError::TlsUnused(setting, protocol));
        }
        if self.protocol.sasl() {
            let mechanism = self
                .sasl_mechanism
                .ok_or(SecurityError::Missing(protocol, "kafka_sasl_mechanism"))?;
            out.push(("sasl.mechanisms", mechanism.property().to_owned()));
            // Each mechanism takes its own credentials and refuses the other's.
            let others: &[(&'static str, bool)] = if mechanism == SaslMechanism::OAuthBearer {
                &credentials
            } else {
                &oauth
            };
            if let Some((setting, _)) = others.iter().find(|(_, set)| *set) {
                return Err(SecurityError::MechanismUnused(setting, mechanism.name()));
            }
            if mechanism == SaslMechanism::OAuthBearer {
                // The tokens come from Roster (`ClientContext::generate_oauth_token`).
                self.oauth.grant()?;
                return Ok(out);
            }
            let username = self
                .sasl_username
                .as_ref()
                .ok_or(SecurityError::Missing(protocol, "kafka_sasl_username"))?;
            let password = self
                .sasl_password
                .as_ref()
                .ok_or(SecurityError::Missing(protocol, "kafka_sasl_password"))?;
            out.push(("sasl.username", username.clone()));
            out.push(("sasl.password", password.clone()));
        } else if let Some((setting, _)) = sasl_settings.iter().find(|(_, set)| *set) {
            return Err(SecurityError::SaslUnused(setting, protocol));
        }
        Ok(out)
    }

    /// Whether any of the typed settings differs from its default.
    fn configured(&self) -> bool {
        self.protocol != KafkaProtocol::Plaintext
            || self.ca.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.key_password.is_some()
            || self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
            || self.oauth.settings().iter().any(|(_, set)| *set)
    }

    /// The OAUTHBEARER grant, when that is the mechanism; `properties` has checked it.
    pub fn oauth_grant(&self) -> Result<Option<OAuthGrant>, SecurityError> {
        match (self.protocol.sasl(), self.sasl_mechanism) {
            (true, Some(SaslMechanism::OAuthBearer)) => self.oauth.grant().map(Some),
            _ => Ok(None),
        }
    }

    /// Whether credentials would cross the network in clear (SASL without TLS).
    pub fn credentials_in_clear(&self) -> bool {
        self.protocol == KafkaProtocol::SaslPlaintext
    }
}

/// The last connection a client's brokers refused for security reasons (a TLS handshake that
/// failed, a certificate that did not verify, SASL credentials refused), in librdkafka's
/// words. Shared by the clients of one purpose; read by the start-up wait, which gives up on
/// such a refusal instead of retrying as it does while the brokers are away.
#[derive(Clone, Default)]
pub(crate) struct Refusals(Arc<Mutex<Option<String>>>);

impl Refusals {
    /// Notes a client error if it is a security refusal.
    pub(crate) fn note(&self, error: &rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::RDKafkaErrorCode as Code;
        let what = match error.rdkafka_error_code() {
            Some(Code::SSL) => "the TLS handshake with a Kafka broker failed",
            // The broker ended the connection with a TLS alert (under TLS 1.3 a refused
            // client certificate shows only after the handshake): a decision, not an outage.
            Some(Code::BrokerTransportFailure) if reason.contains("SSL alert") => {
                "the TLS handshake with a Kafka broker failed"
            }
            // Roster's token source had no token to give (kafka_oauth_*).
            Some(Code::Authentication) if reason.contains("OAUTHBEARER token") => {
                "no OAUTHBEARER token could be had from kafka_oauth_token_url"
            }
            Some(Code::Authentication) => "a Kafka broker refused Roster's credentials",
            _ => return,
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{what}: {reason}"));
    }

    /// The last refusal noted, if any.
    pub(crate) fn last(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why the first broker's certificate does not verify against the CA bundle `ca`, in
/// rustls's words ("certificate expired: ...", "certificate not valid for name ...", "invalid
/// peer certificate: UnknownIssuer"), found by a handshake of Roster's own: librdkafka says
/// only "certificate verify failed". None when that handshake succeeds or cannot be made.
pub(crate) async fn diagnose(brokers: &str, ca: &Path) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let first = brokers.split(',').next()?.trim();
    let (host, _) = first.rsplit_once(':')?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).ok()? {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).ok()?;
    let wait = std::time::Duration::from_secs(5);
    let tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect(first))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(wait, connector.connect(name, tcp)).await {
        Ok(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        path
    }

    fn props(s: &KafkaSecurity) -> Result<Vec<(&'static str, String)>, SecurityError> {
        s.properties(&[])
    }

    #[test]
    fn plaintext_sets_nothing_and_refuses_tls_or_sasl_settings() {
        assert!(props(&KafkaSecurity::default()).unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let with_ca = KafkaSecurity {
            ca: Some(pem(dir.path(), "ca.pem")),
            ..Default::default()
        };
        let e = props(&with_ca).unwrap_err().to_string();
        assert!(e.contains("kafka_ssl_ca") && e.contains("plaintext"), "{e}");
        let with_user = KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            sasl_username: Some("roster".into()),
            ..Default::default()
        };
        let e = props(&with_user).unwrap_err().to_string();
        assert!(
            e.contains("kafka_sasl_username") && e.contains("= ssl"),
            "{e}"
        );
    }

    #[test]
    fn ssl_verifies_names_and_uses_the_system_bundle_unless_told() {
        let p = props(&KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            ..Default::default()
        })
        .unwrap();
        assert!(p.contains(&("security.protocol", "ssl".into())));
        assert!(p.contains(&("ssl.ca.location", "probe".into())));
        assert!(p.contains(&("ssl.endpoint.identification.algorithm", "https".into())));
    }

    #[test]
    fn mutual_tls_needs_both_files_and_they_must_be_pem() {
        let dir = tempfile::tempdir().unwrap();
        let half = KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            cert: Some(pem(dir.path(), "c.pem")),
            ..Default::default()
        };
        assert!(matches!(props(&half), Err(SecurityError::HalfPair(_))));
        let garbage = dir.path().join("k.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        let bad = KafkaSecurity {
            key: Some(garbage),
            ..half.clone()
        };
        let e = props(&bad).unwrap_err().to_string();
        assert!(
            e.contains("kafka_ssl_key") && e.contains("not a PEM file"),
            "{e}"
        );
        let missing = KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            ca: Some(dir.path().join("absent.pem")),
            ..Default::default()
        };
        assert!(props(&missing)
            .unwrap_err()
            .to_string()
            .contains("kafka_ssl_ca"));
    }

    #[test]
    fn sasl_needs_a_mechanism_and_credentials() {
        let mut s = KafkaSecurity {
            protocol: KafkaProtocol::SaslSsl,
            sasl_username: Some("roster".into()),
            sasl_password: Some("hunter2".into()),
            ..Default::default()
        };
        let e = props(&s).unwrap_err().to_string();
        assert!(e.contains("kafka_sasl_mechanism"), "{e}");
        s.sasl_mechanism = Some(SaslMechanism::ScramSha512);
        let p = props(&s).unwrap();
        assert!(p.contains(&("sasl.mechanisms", "SCRAM-SHA-512".into())));
        assert!(p.contains(&("sasl.password", "hunter2".into())));
        assert!(!s.credentials_in_clear());
    }

    fn oauth() -> KafkaSecurity {
        KafkaSecurity {
            protocol: KafkaProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::OAuthBearer),
            oauth: OAuthClient {
                token_url: Some("https://login.example.com/oauth2/v2.0/token".into()),
                client_id: Some("roster".into()),
                client_secret: Some("s3cret".into()),
                scope: Some("api://kafka/.default".into()),
            },
            ..Default::default()
        }
    }

    #[test]
    fn oauthbearer_takes_an_oidc_client_and_no_password() {
        let p = props(&oauth()).unwrap();
        assert!(p.contains(&("sasl.mechanisms", "OAUTHBEARER".into())));
        // The tokens come from Roster, not from librdkafka's own OIDC client.
        assert!(!p.iter().any(|(k, _)| k.starts_with("sasl.oauthbearer")));
        assert!(!p.iter().any(|(k, _)| k.starts_with("sasl.username")));
        let grant = oauth().oauth_grant().unwrap().unwrap();
        assert_eq!(
            grant.token_url.as_str(),
            "https://login.example.com/oauth2/v2.0/token"
        );
        assert_eq!(grant.client_id, "roster");
        assert_eq!(grant.client_secret.expose(), "s3cret");
        assert_eq!(grant.scope.as_deref(), Some("api://kafka/.default"));
        let scram = KafkaSecurity {
            sasl_mechanism: Some(SaslMechanism::ScramSha256),
            ..KafkaSecurity::default()
        };
        assert!(scram.oauth_grant().unwrap().is_none());

        let with_password = KafkaSecurity {
            sasl_password: Some("x".into()),
            ..oauth()
        };
        let e = props(&with_password).unwrap_err().to_string();
        assert!(
            e.contains("kafka_sasl_password") && e.contains("oauthbearer"),
            "{e}"
        );
        let mut no_secret = oauth();
        no_secret.oauth.client_secret = None;
        let e = props(&no_secret).unwrap_err().to_string();
        assert!(e.contains("kafka_oauth_client_secret"), "{e}");
        let mut scram = oauth();
        scram.sasl_mechanism = Some(SaslMechanism::ScramSha256);
        let e = props(&scram).unwrap_err().to_string();
        assert!(
            e.contains("kafka_oauth_token_url") && e.contains("scram-sha-256"),
            "{e}"
        );
        let mut unused = KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            ..oauth()
        };
        unused.sasl_mechanism = None;
        assert!(matches!(props(&unused), Err(SecurityError::SaslUnused(..))));
    }

    #[test]
    fn the_client_secret_goes_over_tls_or_stays_on_this_machine() {
        for ok in [
            "https://idp.example/token",
            "http://127.0.0.1:8081/token",
            "http://localhost/token",
            "http://[::1]:9/t",
        ] {
            assert!(check_token_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example/token",
            "ftp://x/",
            "not a url",
            "https://",
        ] {
            assert!(
                matches!(check_token_url(bad), Err(SecurityError::TokenUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_typed_settings_own_their_properties() {
        let s = KafkaSecurity {
            protocol: KafkaProtocol::Ssl,
            ..Default::default()
        };
        let theirs = ["ssl.ca.location".to_owned()];
        assert!(matches!(
            s.properties(&theirs),
            Err(SecurityError::Overridden(k)) if k == "ssl.ca.location"
        ));
        // Without the typed settings, kafka_properties may still say everything itself.
        assert!(KafkaSecurity::default()
            .properties(&theirs)
            .unwrap()
            .is_empty());
    }
}
