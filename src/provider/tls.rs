//! A provider's TLS settings at the edges: applied from the admin API's `tls` object (the
//! certificates checked, the client key sealed on the way in), shown back without the key, and
//! applied to the provider's HTTP client (a private CA bundle instead of the web PKI roots, a
//! client certificate for mutual TLS; the key opened only there).

use super::settings::TlsSettings;
use crate::sealing::SecretKey;
use roster_events::{ProviderTls, Sealed};

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
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("tls.ca_bundle does not parse: {e}"))?;
        if certs.is_empty() {
            return Err("tls.ca_bundle holds no certificate".into());
        }
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
        (Some(_), None) => Some(
            old.client_key
                .clone()
                .ok_or_else(|| String::from("tls.client_cert needs tls.client_key"))?,
        ),
    };
    Ok(ProviderTls {
        ca_bundle,
        client_cert,
        client_key,
    })
}

/// The client certificate and its key as one identity.
fn identity(cert: &str, key: &str) -> Result<reqwest::Identity, String> {
    let mut pem = Vec::with_capacity(cert.len() + key.len() + 1);
    pem.extend_from_slice(key.as_bytes());
    pem.push(b'\n');
    pem.extend_from_slice(cert.as_bytes());
    reqwest::Identity::from_pem(&pem)
        .map_err(|e| format!("tls.client_cert and tls.client_key do not make an identity: {e}"))
}

/// `builder` with the provider's CA bundle (trusted besides the web PKI roots, so that a
/// token endpoint on a public CA keeps working) and client certificate, its key opened with
/// `key`.
///
/// Fails when the key does not open with this server's key or a PEM no longer parses.
pub fn apply(
    builder: reqwest::ClientBuilder,
    tls: &ProviderTls,
    key: &SecretKey,
) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = builder;
    if let Some(pem) = &tls.ca_bundle {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("tls.ca_bundle: {e}"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(sealed)) = (&tls.client_cert, &tls.client_key) {
        let pem = open(sealed, key)?;
        builder = builder.identity(identity(cert, &pem)?);
    }
    Ok(builder)
}

fn open(sealed: &Sealed, key: &SecretKey) -> Result<String, String> {
    key.open(sealed)
        .map(|s| s.expose().to_owned())
        .map_err(|e| format!("tls.client_key: {e}"))
}
