//! Who a request came from, as the audit trail records it with every event the request
//! causes: the token it was authenticated with, the client's address (the address that
//! connected, or, behind a trusted proxy, the one the proxies name in `X-Forwarded-For`) and
//! the user agent.

use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::HeaderName;
use ipnet::IpNet;
use roster_events::Client;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The most bytes of a `User-Agent` header recorded.
const MAX_USER_AGENT: usize = 256;

/// The address of the peer a connection came from; `serve` adds it to every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Whether the TLS connection a request came over presented a client certificate that leads to
/// `tls_admin_client_ca`; `serve` adds it to every request over TLS.
#[derive(Clone, Copy, Debug)]
pub struct ClientCertificate {
    pub verified: bool,
}

/// The proxies whose `X-Forwarded-For` is believed (`trusted_proxies`); the router adds it to
/// every request.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpNet>>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with these `X-Forwarded-For` values:
    /// `peer` unless it is a trusted proxy; then, walking the list from its end (the hop
    /// nearest to Roster), the first address that is not a trusted proxy. An entry that is
    /// not an address ends the walk at the last trusted hop: what lies beyond it cannot be
    /// believed.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// The client of the request in `parts`, authenticated with the token whose id is `token_id`.
pub fn client(parts: &Parts, token_id: Option<String>) -> Client {
    let ip = parts.extensions.get::<Peer>().map(|p| {
        let peer = p.0.ip().to_canonical();
        match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => trusted.client_ip(
                peer,
                parts
                    .headers
                    .get_all(X_FORWARDED_FOR)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            None => peer,
        }
    });
    Client {
        token_id,
        ip,
        // `to_str` takes visible ASCII only, so any byte is a character boundary.
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .filter(|ua| !ua.is_empty())
            .map(|ua| ua[..ua.len().min(MAX_USER_AGENT)].to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(Arc::new(nets.iter().map(|n| n.parse().unwrap()).collect()))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let none = trusted(&[]);
        assert_eq!(
            none.client_ip(ip("10.0.0.5"), ["198.51.100.7"].into_iter()),
            ip("10.0.0.5")
        );
        let lb = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            lb.client_ip(ip("10.0.0.5"), ["198.51.100.7"].into_iter()),
            ip("198.51.100.7")
        );
        // Not from the proxy: the header is the client's own word.
        assert_eq!(
            lb.client_ip(ip("203.0.113.1"), ["198.51.100.7"].into_iter()),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_whatever_the_client_wrote_before_it() {
        let lb = trusted(&["10.0.0.0/8", "::1/128"]);
        // The client sent a forged first entry; the proxies appended what they saw.
        let header = ["6.6.6.6, 198.51.100.7, 10.1.2.3"];
        assert_eq!(
            lb.client_ip(ip("10.0.0.5"), header.into_iter()),
            ip("198.51.100.7")
        );
        // Several header lines read as one list.
        assert_eq!(
            lb.client_ip(ip("::1"), ["6.6.6.6", "198.51.100.7, 10.1.2.3"].into_iter()),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            lb.client_ip(ip("10.0.0.5"), ["198.51.100.7, not-an-ip"].into_iter()),
            ip("10.0.0.5")
        );
        // Every hop trusted: the farthest one.
        assert_eq!(
            lb.client_ip(ip("10.0.0.5"), ["10.9.9.9"].into_iter()),
            ip("10.9.9.9")
        );
        // IPv4 mapped into IPv6 counts as IPv4.
        assert_eq!(
            lb.client_ip(ip("::ffff:10.0.0.5"), ["198.51.100.7"].into_iter()),
            ip("198.51.100.7")
        );
    }
}
