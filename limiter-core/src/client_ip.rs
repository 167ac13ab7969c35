//! The client's IP address behind proxies: [`TrustedProxies`].
//!
//! A client controls every header it sends, and each proxy *appends* the address it received
//! the request from to `X-Forwarded-For` (or adds an element to RFC 7239 `Forwarded`). So the
//! only entries worth believing are those that trusted proxies appended: the client is the
//! right-most address that is not a trusted proxy, and the headers mean nothing at all when the
//! peer itself is not a trusted proxy. There is deliberately no "left-most" mode: the left-most
//! entry is whatever the client wrote, and trusting it lets anyone rotate past every IP limit
//! (or, with an allow-listed network, past every limit).
//!
//! Pure: header values come in as text, so this works under any HTTP library.

use std::net::{IpAddr, SocketAddr};

use crate::policy::IpNet;

/// Which header trusted proxies write the forwarding chain to.
///
/// Only the configured header is read: a proxy that appends to `X-Forwarded-For` passes a
/// client's forged `Forwarded` header through untouched, so reading both would let the client
/// choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de facto standard).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, in lower case.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding headers are believed, and how the client IP is derived.
///
/// ```
/// use limiter_core::client_ip::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8".parse()?]);
/// let peer = "10.0.0.2".parse().unwrap();
/// // The client wrote "1.1.1.1"; the load balancer appended what it saw, 203.0.113.9.
/// let header = ["1.1.1.1, 203.0.113.9, 10.0.0.1"];
/// assert_eq!(proxies.client_ip(peer, &header), "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
/// // From a peer that is not a trusted proxy the header means nothing.
/// let peer = "198.51.100.7".parse().unwrap();
/// assert_eq!(proxies.client_ip(peer, &header), peer);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trusts proxies in `networks`, which write `X-Forwarded-For`.
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> TrustedProxies {
        TrustedProxies {
            networks: networks.into_iter().collect(),
            header: ForwardedHeader::default(),
        }
    }

    /// Trusts no proxy: the client IP is always the peer address.
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    pub fn header(mut self, header: ForwardedHeader) -> TrustedProxies {
        self.header = header;
        self
    }

    /// The header read.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.header
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(ip))
    }

    /// The client IP of a request from `peer` that carried `lines`: the values of every
    /// instance of the configured header, in the order received.
    ///
    /// - From an untrusted peer: the peer, whatever the headers say.
    /// - From a trusted peer: the chain (the lines joined, as HTTP joins repeated headers) is
    ///   walked from the right past trusted addresses; the first untrusted address is the
    ///   client. When every address is trusted, the left-most one is (a call from inside).
    /// - A malformed or unusable entry where the walk needs an address (`unknown`, an
    ///   obfuscated RFC 7239 node, text that is no address): the peer. Entries left of the
    ///   client are never read: the client wrote them.
    pub fn client_ip(&self, peer: IpAddr, lines: &[&str]) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut found = None;
        for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                // `a, , b` or a trailing comma: list syntax allows empty elements.
                continue;
            }
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_node(entry),
                ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
            };
            let Some(ip) = parsed else {
                return peer;
            };
            found = Some(ip);
            if !self.is_trusted(ip) {
                return ip;
            }
        }
        found.unwrap_or(peer)
    }
}

/// The `for` parameter of one RFC 7239 element (`for=192.0.2.60;proto=http`), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
    })
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`. Anything else (`unknown`, `_hidden`) is `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new([
            "10.0.0.0/8".parse().expect("net"),
            "2001:db8:ffff::/48".parse().expect("net"),
        ])
    }

    #[test]
    fn walks_right_to_left_past_trusted_hops() {
        let p = proxies();
        let peer = ip("10.0.0.1");
        assert_eq!(
            p.client_ip(peer, &["6.6.6.6, 203.0.113.9, 10.1.1.1"]),
            ip("203.0.113.9")
        );
        // Repeated header lines are one list, in order.
        assert_eq!(
            p.client_ip(peer, &["6.6.6.6", "203.0.113.9", "10.1.1.1, 10.2.2.2"]),
            ip("203.0.113.9")
        );
        assert_eq!(p.client_ip(peer, &["[2001:db8::7]:443"]), ip("2001:db8::7"));
        assert_eq!(p.client_ip(peer, &["203.0.113.9:5555"]), ip("203.0.113.9"));
        // Every hop trusted: the left-most, a call from inside.
        assert_eq!(p.client_ip(peer, &["10.9.9.9, 10.1.1.1"]), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(p.client_ip(peer, &[]), peer);
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let p = proxies();
        let peer = ip("198.51.100.1");
        assert_eq!(p.client_ip(peer, &["10.0.0.1"]), peer);
        assert_eq!(TrustedProxies::none().client_ip(peer, &["1.2.3.4"]), peer);
    }

    #[test]
    fn malformed_entries_fall_back_to_the_peer() {
        let p = proxies();
        let peer = ip("10.0.0.1");
        for bad in [
            "garbage",
            "unknown",
            "10.0.0.2, nonsense",
            "999.1.1.1",
            "[::1",
        ] {
            assert_eq!(p.client_ip(peer, &[bad]), peer, "{bad}");
        }
        // Garbage left of the client is the client's own writing and is never read.
        assert_eq!(
            p.client_ip(peer, &["garbage, 203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let p = proxies().header(ForwardedHeader::Forwarded);
        let peer = ip("10.0.0.1");
        assert_eq!(
            p.client_ip(
                peer,
                &["for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.9;by=10.0.0.1"]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(p.client_ip(peer, &["for=unknown"]), peer);
        assert_eq!(p.client_ip(peer, &["for=_hidden"]), peer);
        assert_eq!(p.client_ip(peer, &["proto=https"]), peer);
        assert_eq!(ForwardedHeader::Forwarded.name(), "forwarded");
    }

    fn untrusted_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
        ]
        .prop_filter("untrusted", |ip| !proxies().is_trusted(*ip))
    }

    fn trusted_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::from([10, a, b, c])),
            any::<[u16; 5]>()
                .prop_map(|[a, b, c, d, e]| IpAddr::from([0x2001, 0xdb8, 0xffff, a, b, c, d, e])),
        ]
    }

    /// What an attacker may write: anything, including trusted addresses and garbage.
    fn forged_entry() -> impl Strategy<Value = String> {
        prop_oneof![
            trusted_ip().prop_map(|ip| ip.to_string()),
            untrusted_ip().prop_map(|ip| ip.to_string()),
            "[ -~]{0,20}",
        ]
    }

    fn render(ip: IpAddr, header: ForwardedHeader) -> String {
        match (header, ip) {
            (ForwardedHeader::XForwardedFor, ip) => ip.to_string(),
            (ForwardedHeader::Forwarded, IpAddr::V4(v4)) => format!("for={v4}"),
            (ForwardedHeader::Forwarded, IpAddr::V6(v6)) => format!("for=\"[{v6}]\""),
        }
    }

    proptest! {
        /// An attacker controls everything left of what trusted proxies appended: whatever it
        /// forges, the client found is the address the first trusted proxy saw.
        #[test]
        fn forged_chains_never_move_the_client(
            forged in proptest::collection::vec(forged_entry(), 0..6),
            client in untrusted_ip(),
            hops in proptest::collection::vec(trusted_ip(), 1..4),
            forwarded in any::<bool>(),
            split_lines in any::<bool>(),
        ) {
            let header = if forwarded { ForwardedHeader::Forwarded } else { ForwardedHeader::XForwardedFor };
            let p = proxies().header(header);
            // The first proxy appends the client; each later one appends its own peer (the
            // previous proxy); the last proxy is our peer.
            let (peer, appended) = hops.split_last().expect("one hop at least");
            let mut entries: Vec<String> = forged.iter().map(|f| f.replace(',', " ")).collect();
            entries.push(render(client, header));
            entries.extend(appended.iter().map(|ip| render(*ip, header)));
            let lines: Vec<String> = if split_lines {
                entries
            } else {
                vec![entries.join(", ")]
            };
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            prop_assert_eq!(p.client_ip(*peer, &lines), client);
        }

        /// From an untrusted peer no header changes anything.
        #[test]
        fn untrusted_peers_ignore_every_header(
            forged in proptest::collection::vec(forged_entry(), 0..6),
            peer in untrusted_ip(),
        ) {
            let lines: Vec<&str> = forged.iter().map(String::as_str).collect();
            prop_assert_eq!(proxies().client_ip(peer, &lines), peer);
            prop_assert_eq!(
                proxies().header(ForwardedHeader::Forwarded).client_ip(peer, &lines),
                peer
            );
        }
    }
}
