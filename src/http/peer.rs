//! Who a request came from, as the audit trail records it with every event the request
//! causes: the token it was authenticated with, the address that connected and the user agent.

use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use roster_events::Client;
use std::net::SocketAddr;

/// The most bytes of a `User-Agent` header recorded.
const MAX_USER_AGENT: usize = 256;

/// The address of the peer a connection came from; `serve` adds it to every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The client of the request in `parts`, authenticated with the token whose id is `token_id`.
pub fn client(parts: &Parts, token_id: Option<String>) -> Client {
    Client {
        token_id,
        ip: parts
            .extensions
            .get::<Peer>()
            .map(|p| p.0.ip().to_canonical()),
        // `to_str` takes visible ASCII only, so any byte is a character boundary.
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .filter(|ua| !ua.is_empty())
            .map(|ua| ua[..ua.len().min(MAX_USER_AGENT)].to_owned()),
    }
}
