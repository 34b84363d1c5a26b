//! TLS to PostgreSQL, with libpq's `sslmode` meanings, over rustls: `disable` (plain), `prefer`
//! (TLS if the server offers it, else plain; the certificate not checked), `require` (TLS; the
//! certificate not checked, unless a root certificate is given, which makes it `verify-ca`),
//! `verify-ca` (the chain must lead to a trusted root; any name) and `verify-full` (and name
//! the host connected to). The roots are the given PEM file's certificates, or else the web
//! PKI roots bundled with Roster. A client certificate and key, when given, are offered for
//! `cert` authentication.

use crate::store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, every value of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgSslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// How to secure connections to PostgreSQL.
#[derive(Clone, Debug, Default)]
pub struct PgTls {
    /// The mode; `None` keeps the one the URL gives (`sslmode=disable|prefer|require`, or
    /// `prefer`).
    pub mode: Option<PgSslMode>,
    /// PEM file of the CA certificates the server's certificate must lead to.
    pub root_cert: Option<PathBuf>,
    /// PEM files of a client certificate chain and its key, offered to the server.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// How the server's certificate is checked.
enum Check {
    /// Not at all: the connection is encrypted against eavesdroppers only.
    Nothing,
    /// The chain must lead to a root; the name is not checked.
    Chain(RootCertStore),
    /// The chain, and the host's name in it.
    Full(RootCertStore),
}

/// The mode tokio-postgres negotiates with, and the connector that does the TLS.
///
/// Fails when a file cannot be read or holds nothing usable.
pub(super) fn connector(
    tls: &PgTls,
    url_mode: SslMode,
) -> Result<(SslMode, MakeRustlsConnect), StoreError> {
    let mode = tls.mode.unwrap_or(match url_mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Require => PgSslMode::Require,
        _ => PgSslMode::Prefer,
    });
    let roots = || -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        match &tls.root_cert {
            Some(path) => {
                for cert in certificates(path, "postgres_ssl_root_cert")? {
                    roots
                        .add(cert)
                        .map_err(|e| bad(path, "postgres_ssl_root_cert", &e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(roots)
    };
    let (negotiate, check) = match mode {
        PgSslMode::Disable => (SslMode::Disable, Check::Nothing),
        PgSslMode::Prefer => (SslMode::Prefer, Check::Nothing),
        PgSslMode::Require if tls.root_cert.is_none() => (SslMode::Require, Check::Nothing),
        PgSslMode::Require | PgSslMode::VerifyCa => (SslMode::Require, Check::Chain(roots()?)),
        PgSslMode::VerifyFull => (SslMode::Require, Check::Full(roots()?)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked(provider.clone())),
        Check::Chain(roots) => Arc::new(AnyName(webpki(roots, &provider)?)),
        Check::Full(roots) => webpki(roots, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Settings(format!("PostgreSQL TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config =
        match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "postgres_ssl_cert")?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| bad(key, "postgres_ssl_key", &e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| bad(key, "postgres_ssl_key", &e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(StoreError::Settings(
                "a PostgreSQL client certificate needs both postgres_ssl_cert and postgres_ssl_key"
                    .into(),
            )),
        };
    Ok((negotiate, MakeRustlsConnect::new(config)))
}

fn bad(path: &Path, setting: &str, why: &str) -> StoreError {
    StoreError::Settings(format!("{setting} {}: {why}", path.display()))
}

fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, setting, &e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, setting, &e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(path, setting, "no CERTIFICATE section in the file"));
    }
    Ok(certs)
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| StoreError::Settings(format!("PostgreSQL TLS roots: {e}")))
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: the certificate is not checked (the handshake's
/// signatures still are, so the session is with the holder of the certificate's key).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
