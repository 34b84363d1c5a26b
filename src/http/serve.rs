//! Accepting connections with every resource a client can hold bounded: at most
//! `max_connections` at once (beyond that, new connections wait in the kernel's backlog), a
//! deadline for the TLS handshake when Roster serves HTTPS (the header deadline), a
//! deadline for each request's header section that starts when the connection is ready for a
//! request (so a client that sends a partial header line and stops, or leaves a keep-alive
//! connection idle, is disconnected when it passes), a deadline for reading a request body,
//! and a bounded header buffer. A connection closes lingering (`linger`), so that a client still
//! sending a refused body reads its answer. Shutting down stops accepting, closes idle connections and
//! lets in-flight requests finish.

use super::linger::Lingering;
use super::peer::ClientCertificate;
use super::Peer;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::Layer;

/// The connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request's header section may take to arrive, counted from when the
    /// connection is ready for the request: also how long a keep-alive connection may idle.
    pub header_timeout: Duration,
    /// How long reading a request's body may take.
    pub body_timeout: Duration,
    /// How long shutting down waits for in-flight requests before closing their connections.
    pub drain_timeout: Duration,
}

/// The most bytes of a request head (request line and headers) held while it is read; a
/// head over it is refused by the HTTP layer itself (431, without a SCIM body). Roster's own
/// limits, below it, answer with SCIM bodies (`guard`).
const MAX_HEAD_BUFFER: usize = 64 * 1024;
/// The most header fields the HTTP layer parses; `guard` refuses more than its own limit.
const MAX_HEAD_FIELDS: usize = 200;

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` completes, then drains.
///
/// Fails only if accepting fails for a reason other than running out of file descriptors or
/// a connection reset before it was accepted (those are waited out).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BUFFER)
        .max_headers(MAX_HEAD_FIELDS);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; waiting before the next");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let _ = stream.set_nodelay(true);
        // Each request knows the address it came from (the audit trail records it).
        let routed = axum::Extension(Peer(peer)).layer(router.clone());
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let stream = Lingering::new(stream);
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    let service = TowerToHyperService::new(routed);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            // Only a certificate the verifier accepted is ever kept.
                            let verified = stream.get_ref().1.peer_certificates().is_some();
                            let cert = ClientCertificate { verified };
                            let service =
                                TowerToHyperService::new(axum::Extension(cert).layer(routed));
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing their connections");
    }
    Ok(())
}

/// Accept errors that say nothing about the listener itself.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 24 || c == 23) // EMFILE, ENFILE
}
