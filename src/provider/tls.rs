//! A provider's TLS settings at the edges: applied from the admin API's `tls` object (the
//! certificates checked, the client key sealed on the way in), shown back without the key, and
//! made into the rustls configuration of the provider's HTTP client (a private CA bundle
//! trusted besides the web PKI roots, a client certificate for mutual TLS; the key opened only
//! there); and the handshake of Roster's own that says why a remote closed a connection.

use super::settings::TlsSettings;
use crate::sealing::SecretKey;
use roster_events::{ProviderTls, Sealed};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A PEM text given: None when absent, null or empty (which clears it).
fn pem(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

/// The TLS settings from an admin request's `tls` object; fields it leaves out keep their
/// `old` value, and null or "" clears one. The client key may be left out to keep the old one.
///
/// Fails with a message for the operator when a certificate or key does not parse, or a
/// client certificate comes without its key.
pub fn apply_settings(
    t: &TlsSettings,
    old: &ProviderTls,
    key: &SecretKey,
) -> Result<ProviderTls, String> {
    let keep = |given: &Option<Option<String>>, old: &Option<String>| match given {
        Some(v) => pem(v),
        None => old.clone(),
    };
    let ca_bundle = keep(&t.ca_bundle, &old.ca_bundle);
    let client_cert = keep(&t.client_cert, &old.client_cert);
    if let Some(pem) = &ca_bundle {
        roots(pem)?;
    }
    let new_key = t.client_key.as_ref().and_then(pem);
    let client_key = match (&client_cert, new_key) {
        (None, Some(_)) => return Err("tls.client_key needs tls.client_cert".into()),
        (None, None) => None,
        (Some(cert), Some(pem)) => {
            identity(cert, &pem)?;
            Some(key.seal(&pem))
        }
        (Some(_), None) if matches!(t.client_key, Some(None)) => {
            return Err("tls.client_cert needs tls.client_key".into())
        }
        // The key kept must still make an identity with the certificate given.
        (Some(cert), None) => {
            let sealed = old
                .client_key
                .clone()
                .ok_or_else(|| String::from("tls.client_cert needs tls.client_key"))?;
            identity(cert, &open(&sealed, key)?)?;
            Some(sealed)
        }
    };
    Ok(ProviderTls {
        ca_bundle,
        client_cert,
        client_key,
    })
}

/// The certificates of a PEM text.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.client_cert does not parse: {e}"))?;
    if certs.is_empty() {
        return Err("tls.client_cert holds no certificate".into());
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS #8, PKCS #1 or SEC 1).
fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("tls.client_key does not parse: {e}"))
}

/// Checks that a client certificate and a key parse and belong together (rustls compares the
/// key's public half with the certificate's).
fn identity(cert: &str, key: &str) -> Result<(), String> {
    builder(None)?
        .with_client_auth_cert(certificates(cert)?, private_key(key)?)
        .map(drop)
        .map_err(|e| format!("tls.client_cert and tls.client_key do not make an identity: {e}"))
}

/// The web PKI roots, and the certificates of a CA bundle.
fn roots(ca_bundle: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut given = 0;
    for cert in CertificateDer::pem_slice_iter(ca_bundle.as_bytes()) {
        let cert = cert.map_err(|e| format!("tls.ca_bundle does not parse: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls.ca_bundle does not parse: {e}"))?;
        given += 1;
    }
    if given == 0 {
        return Err("tls.ca_bundle holds no certificate".into());
    }
    Ok(roots)
}

/// A configuration trusting the web PKI roots (so that a token endpoint on a public CA keeps
/// working) and those of `ca_bundle`, waiting for its client authentication.
fn builder(
    ca_bundle: Option<&str>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, String> {
    let mut trusted = rustls::RootCertStore::empty();
    trusted.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_bundle {
        trusted.roots.extend(roots(pem)?.roots);
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(trusted),
    )
}

/// The TLS configuration of a provider's HTTP client: its CA bundle trusted besides the web
/// PKI roots, and its client certificate, the key opened with `key`.
///
/// Fails when the key does not open with this server's key or a PEM no longer parses.
pub fn client_config(tls: &ProviderTls, key: &SecretKey) -> Result<Arc<ClientConfig>, String> {
    let builder = builder(tls.ca_bundle.as_deref())?;
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(sealed)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(&open(sealed, key)?)?)
            .map_err(|e| format!("tls.client_cert: {e}"))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Why the remote at `url` ends a connection made with `config`, in rustls's words, found by a
/// handshake of Roster's own and a wait for what the remote sends first. A server that wants
/// a client certificate it did not get says so only after a TLS 1.3 handshake has completed
/// on the client's side (`received fatal alert: CertificateRequired`), and when that alert
/// comes before a request is sent, the HTTP client reports only that the connection closed.
/// None when the handshake succeeds and the remote then waits, or no connection is made.
pub async fn diagnose(url: &reqwest::Url, config: Arc<ClientConfig>) -> Option<String> {
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default()?;
    let wait = Duration::from_secs(3);
    let tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .ok()?
        .ok()?;
    let name = ServerName::try_from(host).ok()?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = match tokio::time::timeout(wait, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Some(e.to_string()),
        Err(_) => return None,
    };
    match tokio::time::timeout(wait, tls.read(&mut [0u8; 1])).await {
        Ok(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

fn open(sealed: &Sealed, key: &SecretKey) -> Result<String, String> {
    key.open(sealed)
        .map(|s| s.expose().to_owned())
        .map_err(|e| format!("tls.client_key: {e}"))
}
