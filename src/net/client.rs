//! Who a client is, for per-client limits.

use std::net::{IpAddr, Ipv6Addr};

/// The key per-client limits count under: an IPv4 address as is, an IPv6 address by its /64.
///
/// One IPv6 subscriber usually holds a whole /64 and can pick any address in it, so counting
/// single IPv6 addresses would let one client look like 2^64 clients. IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.1`, as dual-stack sockets report IPv4 peers) count as IPv4.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("a valid address")
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip("2001:db8:1:2::"));
        assert_ne!(client_key(ip("2001:db8:1:3::1")), client_key(ip("2001:db8:1:2::1")));
    }

    #[test]
    fn ipv4_and_mapped_ipv4_count_by_address() {
        assert_eq!(client_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(client_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_ne!(client_key(ip("203.0.113.9")), client_key(ip("203.0.113.10")));
    }
}
