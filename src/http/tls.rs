//! HTTPS: the server's certificate chain and private key, read from PEM files and checked for
//! changes while Roster runs, so that a renewed certificate is served without a restart. A
//! file that cannot be read or does not hold a matching certificate and key stops start-up
//! with a message that says which and why; after start, a renewal that fails to load is
//! logged and the certificate before it stays in service. TLS 1.2 and 1.3 only, with rustls's
//! default (modern, forward-secret) cipher suites, and HTTP/1.1 offered by ALPN. With an admin
//! client CA, every client is asked for a certificate and one that does not lead to that CA
//! fails the handshake; clients without one still connect (SCIM clients need none), and the
//! admin API refuses their requests.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate chain {path}: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("reading the TLS private key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("reading the admin client CA bundle {path}: {why}")]
    ClientCa { path: PathBuf, why: String },
    #[error("the TLS private key {key} does not belong to the certificate {cert}: {why}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// Where the certificate chain and the key are read from.
#[derive(Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the files looked like when they were last loaded: a change to either is a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    cert: Option<(SystemTime, u64)>,
    key: Option<(SystemTime, u64)>,
}

impl Stamp {
    fn of(files: &TlsFiles) -> Stamp {
        let look = |p: &Path| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        Stamp {
            cert: look(&files.cert),
            key: look(&files.key),
        }
    }
}

/// The certificate in service, swapped when the files change.
#[derive(Debug)]
struct Current {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    served: RwLock<(Stamp, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.served
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .1
                .clone(),
        )
    }
}

impl Current {
    /// Loads the files again if they changed since the last load: true if a new certificate
    /// is in service.
    ///
    /// Fails when changed files do not load (the certificate in service stays).
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = Stamp::of(&self.files);
        if self.served.read().unwrap_or_else(|p| p.into_inner()).0 == stamp {
            return Ok(false);
        }
        let loaded = load(&self.files, &self.provider);
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        // Tried once per change: a broken renewal is reported once, not at every check.
        served.0 = stamp;
        served.1 = loaded?;
        Ok(true)
    }
}

/// Reads the chain and key in `files` and checks that they belong together.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_error = |why: String| TlsError::Certificate {
        path: files.cert.clone(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE section in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        why: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            why: e.to_string(),
        })?;
    Ok(Arc::new(certified))
}

/// Checks client certificates against the CA bundle at `path`; a client without one passes.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let fail = |why: String| TlsError::ClientCa {
        path: path.to_owned(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// The TLS side of the listener: what accepts connections, and what renews its certificate.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl Tls {
    /// Loads the certificate and key in `files`, and the CA bundle admin clients'
    /// certificates must lead to, if any.
    ///
    /// Fails when they cannot be read or do not belong together, or the bundle holds no
    /// certificate.
    pub fn load(files: TlsFiles, admin_client_ca: Option<&Path>) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = Stamp::of(&files);
        let key = load(&files, &provider)?;
        let current = Arc::new(Current {
            files,
            provider: provider.clone(),
            served: RwLock::new((stamp, key)),
        });
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            // Both versions are in the ring provider.
            .expect("the ring provider supports TLS 1.2 and 1.3");
        let builder = match admin_client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
        })
    }

    /// Checks the files every `every` until `stop` is dropped or sends, putting a renewed
    /// certificate in service for the connections that follow.
    pub fn watch(&self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let current = self.current.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let check = current.clone();
                let reloaded = tokio::task::spawn_blocking(move || check.reload_if_changed())
                    .await
                    .unwrap_or(Ok(false));
                match reloaded {
                    Ok(true) => tracing::info!(
                        cert = %current.files.cert.display(),
                        "TLS certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        error = %e,
                        "the changed TLS certificate or key did not load; the one before stays in service"
                    ),
                }
            }
        });
    }
}
