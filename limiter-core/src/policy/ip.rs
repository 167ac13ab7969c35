//! IP networks: client networks (what IP-keyed limits count), the bypass allow-list, and its
//! index.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP address or network in CIDR notation: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`.
///
/// The address must be the network's first address (`10.0.0.1/8` is rejected as a likely typo
/// for `10.0.0.0/8`).
///
/// ```
/// use limiter_core::policy::IpNet;
///
/// let net: IpNet = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.20.30.40".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// assert_eq!("192.0.2.7".parse::<IpNet>()?.to_string(), "192.0.2.7");
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// The NAT64 well-known prefix `64:ff9b::/96` (RFC 6052): its addresses carry an IPv4 client
/// in their last 32 bits.
const NAT64: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;

/// The address a client is counted by: an IPv4-mapped (`::ffff:192.0.2.1`) or NAT64
/// (`64:ff9b::192.0.2.1`) IPv6 address is the IPv4 client it carries, in keys and in the
/// allow-list alike; any other address is itself.
pub fn client_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if u128::from(v6) >> 32 == NAT64 >> 32 => {
            // The shift leaves the low 32 bits, which fit.
            IpAddr::V4(Ipv4Addr::from(
                u32::try_from(u128::from(v6) & 0xffff_ffff).unwrap_or(0),
            ))
        }
        ip => ip.to_canonical(),
    }
}

impl IpNet {
    /// The client network that `ip` counts as: its [`client_address`] masked to `ipv4_prefix`
    /// or `ipv6_prefix` bits (prefixes past the family's width count as the whole address).
    ///
    /// ```
    /// use limiter_core::policy::IpNet;
    ///
    /// let net = IpNet::client("2001:db8:1:2:aaaa::1".parse().unwrap(), 32, 64);
    /// assert_eq!(net.to_string(), "2001:db8:1:2::/64");
    /// let mapped = IpNet::client("::ffff:192.0.2.7".parse().unwrap(), 32, 64);
    /// assert_eq!(mapped.to_string(), "192.0.2.7");
    /// ```
    pub fn client(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpNet {
        let addr = client_address(ip);
        let prefix = if addr.is_ipv4() {
            ipv4_prefix
        } else {
            ipv6_prefix
        }
        .min(max_prefix(addr));
        IpNet { addr, prefix }.first()
    }

    /// The network `addr/prefix`; an error if the prefix is too long for the address family or
    /// `addr` has bits set past the prefix. An IPv4-mapped or NAT64 network of at least 96 bits
    /// (`::ffff:10.0.0.0/104`) is the IPv4 network it carries (`10.0.0.0/8`), as its clients
    /// are counted.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpNet, String> {
        let (addr, prefix) = match (client_address(addr), addr) {
            (IpAddr::V4(v4), IpAddr::V6(_)) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            _ => (addr, prefix),
        };
        let max = max_prefix(addr);
        if prefix > max {
            return Err(format!(
                "prefix length {prefix} is too long for {} (expected 0 to {max})",
                family(addr)
            ));
        }
        let net = IpNet { addr, prefix };
        let first = net.first_address();
        if first != addr {
            return Err(format!(
                "{addr} has bits set after the first {prefix}; did you mean {first}/{prefix}?"
            ));
        }
        Ok(net)
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for a single address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network. IPv4-mapped and NAT64 IPv6 addresses count as their IPv4
    /// address ([`client_address`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = client_address(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == bits(self.addr)
            }
            _ => false,
        }
    }

    fn first_address(&self) -> IpAddr {
        let masked = mask(self.addr, self.prefix);
        match self.addr {
            // The mask keeps an IPv4 address within 32 bits.
            IpAddr::V4(_) => IpAddr::V4(u32::try_from(masked).unwrap_or(0).into()),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(masked)),
        }
    }

    /// The same prefix from the network's first address.
    fn first(self) -> IpNet {
        IpNet {
            addr: self.first_address(),
            prefix: self.prefix,
        }
    }
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The first `prefix` bits of `addr`, the rest cleared.
fn mask(addr: IpAddr, prefix: u8) -> u128 {
    let width = u32::from(max_prefix(addr));
    let host_bits = width.saturating_sub(u32::from(prefix));
    let value = bits(addr);
    if host_bits >= 128 {
        0
    } else {
        value >> host_bits << host_bits
    }
}

const EXPECTED: &str = "expected an IP address such as 192.0.2.7 or 2001:db8::1, \
                        or a network such as 10.0.0.0/8 or 2001:db8::/32";

impl FromStr for IpNet {
    type Err = String;

    fn from_str(input: &str) -> Result<IpNet, String> {
        let invalid = |reason: String| format!("invalid IP address or network {input:?}: {reason}");
        let (addr, prefix) = match input.trim().split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim())),
            None => (input.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid(format!("{addr:?} is not an IP address ({EXPECTED})")))?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(p) => p.parse::<u8>().map_err(|_| {
                invalid(format!(
                    "prefix length {p:?} is not a number from 0 to {}",
                    max_prefix(addr)
                ))
            })?,
        };
        IpNet::new(addr, prefix).map_err(invalid)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            // Every keyed request renders its client network: IPv4 without the formatting
            // machinery, digit by digit.
            IpAddr::V4(v4) => {
                let mut text = [0u8; 15];
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text[len] = b'.';
                        len += 1;
                    }
                    let digits = [octet / 100, octet / 10 % 10, octet % 10];
                    let skip = if octet >= 100 {
                        0
                    } else if octet >= 10 {
                        1
                    } else {
                        2
                    };
                    for d in &digits[skip..] {
                        text[len] = b'0' + d;
                        len += 1;
                    }
                }
                // Digits and dots are ASCII.
                f.write_str(std::str::from_utf8(&text[..len]).unwrap_or_default())?;
            }
            IpAddr::V6(v6) => write!(f, "{v6}")?,
        }
        if self.prefix == max_prefix(self.addr) {
            Ok(())
        } else {
            write!(f, "/{}", self.prefix)
        }
    }
}

impl serde::Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IpNet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address or network such as \"10.0.0.0/8\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IpNet, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// An allow-list of networks, indexed so that a lookup costs one hash probe per distinct prefix
/// length, however many networks are listed.
#[derive(Debug, Clone, Default)]
pub(super) struct IpSet {
    v4: Vec<(u8, HashSet<u128>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl IpSet {
    pub(super) fn new(nets: &[IpNet]) -> IpSet {
        let mut v4: HashMap<u8, HashSet<u128>> = HashMap::new();
        let mut v6: HashMap<u8, HashSet<u128>> = HashMap::new();
        for net in nets {
            let by_prefix = if net.addr.is_ipv4() { &mut v4 } else { &mut v6 };
            by_prefix
                .entry(net.prefix)
                .or_default()
                .insert(bits(net.addr));
        }
        let sorted = |m: HashMap<u8, HashSet<u128>>| {
            let mut v: Vec<_> = m.into_iter().collect();
            // Longest prefixes first: single addresses are the most common entries.
            v.sort_by_key(|(prefix, _)| std::cmp::Reverse(*prefix));
            v
        };
        IpSet {
            v4: sorted(v4),
            v6: sorted(v6),
        }
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = client_address(ip);
        let table = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        table
            .iter()
            .any(|(prefix, nets)| nets.contains(&mask(ip, *prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_networks_render_as_std_renders_addresses() {
        for a in 0..=255u8 {
            for b in [0u8, 7, 10, 99, 100, 255] {
                let addr = std::net::Ipv4Addr::new(a, b, b.wrapping_add(a), 255 - a);
                let host = IpNet::client(IpAddr::V4(addr), 32, 64);
                assert_eq!(host.to_string(), addr.to_string());
                let net = IpNet::client(IpAddr::V4(addr), 24, 64);
                let [w, x, y, _] = addr.octets();
                assert_eq!(net.to_string(), format!("{w}.{x}.{y}.0/24"));
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let set = IpSet::new(&[
            "10.0.0.0/8".parse().expect("net"),
            "192.168.1.1".parse().expect("net"),
            "2001:db8::/32".parse().expect("net"),
            "0.0.0.0/0".parse().expect("net"),
        ]);
        assert!(set.contains(ip("10.255.0.1")));
        assert!(set.contains(ip("::ffff:10.0.0.1")));
        assert!(set.contains(ip("2001:db8:ffff::1")));
        assert!(!set.contains(ip("2001:db9::1")));
        let set = IpSet::new(&["192.168.1.1".parse().expect("net")]);
        assert!(set.contains(ip("192.168.1.1")));
        assert!(!set.contains(ip("192.168.1.2")));
        assert!(IpSet::new(&["::/0".parse().expect("net")]).contains(ip("::1")));
    }

    #[test]
    fn malformed_networks_say_what_is_expected() {
        for (input, needle) in [
            (
                "10.0.0.0/33",
                "prefix length 33 is too long for IPv4 (expected 0 to 32)",
            ),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("2001:db8::/129", "too long for IPv6 (expected 0 to 128)"),
            ("10.0.0/8", "\"10.0.0\" is not an IP address"),
            (
                "10.0.0.0/x",
                "prefix length \"x\" is not a number from 0 to 32",
            ),
        ] {
            let e = input.parse::<IpNet>().expect_err(input);
            assert!(e.contains(needle), "{input}: {e}");
        }
    }
}
