//! Who is asking: the TCP peer, or the client our own proxy names in X-Forwarded-For.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The caller's address: the TCP peer, or the address our own proxy appended to
/// X-Forwarded-For when we are told to trust it. The rightmost entry is used because everything
/// to its left was written by the client and can be forged. Entries with a port
/// (`10.9.1.2:41234`, `[2001:db8::1]:443`, as some proxies write them) are understood; an entry
/// that is no address at all (`unknown`) leaves the peer's address.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let last_header = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).next_back();
        if let Some(ip) = last_header.and_then(|v| v.rsplit(',').next()).and_then(forwarded_entry) {
            return ip;
        }
    }
    peer.ip().to_canonical()
}

/// One X-Forwarded-For entry: an address, with or without a port, IPv6 with or without brackets.
fn forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderValue;

    const PROXY: &str = "10.0.0.1:50000";

    fn client(forwarded: &[&str], trust: bool) -> IpAddr {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).expect("a header value"));
        }
        client_address(PROXY.parse().expect("an address"), &headers, trust)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn entries_with_ports_name_the_client_not_the_proxy() {
        assert_eq!(client(&["10.9.1.2:41234"], true), ip("10.9.1.2"));
        assert_eq!(client(&["[2001:db8::1]:443"], true), ip("2001:db8::1"));
        assert_eq!(client(&["[2001:db8::1]"], true), ip("2001:db8::1"));
        assert_eq!(client(&["2001:db8::1"], true), ip("2001:db8::1"));
        assert_eq!(client(&[" 198.51.100.7 "], true), ip("198.51.100.7"));
        assert_eq!(client(&["::ffff:198.51.100.7"], true), ip("198.51.100.7"));
    }

    #[test]
    fn only_the_rightmost_entry_of_the_last_header_counts() {
        assert_eq!(client(&["1.2.3.4, 198.51.100.7:1234"], true), ip("198.51.100.7"));
        assert_eq!(client(&["1.2.3.4", "198.51.100.8"], true), ip("198.51.100.8"));
    }

    #[test]
    fn the_peer_counts_without_trust_or_without_an_address() {
        assert_eq!(client(&["198.51.100.7"], false), ip("10.0.0.1"));
        assert_eq!(client(&["unknown"], true), ip("10.0.0.1"));
        assert_eq!(client(&["198.51.100.7, "], true), ip("10.0.0.1"));
        assert_eq!(client(&[], true), ip("10.0.0.1"));
    }
}
