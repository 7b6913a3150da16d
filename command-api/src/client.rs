//! The address a request comes from, for the per-address limits (sign-ups, logins, resets):
//! the peer's, unless the peer is a trusted proxy (the dashboard, a load balancer), whose
//! `X-Forwarded-For` then names the client: its last entry, the one the proxy added. Anyone
//! else's header is ignored, so a client cannot pick the address it is counted under.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use platform::problem::Problem;

use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client's address given the peer, the proxies trusted and the forwarded header.
pub fn client_ip(peer: IpAddr, trusted: &[IpAddr], forwarded: Option<&str>) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    forwarded
        .and_then(|f| f.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| Problem::internal("no peer address: the server runs without it"))?;
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(ClientIp(client_ip(peer, &state.trusted_proxies, forwarded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_only_by_its_own_entry() {
        let (proxy, client, other): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.2".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        // From the proxy: the entry it added (the last), not what the client wrote before it.
        assert_eq!(
            client_ip(proxy, &[proxy], Some("198.51.100.1, 203.0.113.7")),
            client
        );
        // From anyone else: the header is theirs to invent, so it is ignored.
        assert_eq!(client_ip(other, &[proxy], Some("203.0.113.7")), other);
        // A proxy that says nothing, or nonsense: the proxy itself.
        assert_eq!(client_ip(proxy, &[proxy], None), proxy);
        assert_eq!(client_ip(proxy, &[proxy], Some("not an address")), proxy);
    }
}
