//! The target guard: a subscription URL's host is resolved and EVERY address checked, at
//! creation and before each delivery; the delivery then connects only to the addresses that
//! were checked (the caller pins them), which defeats DNS rebinding. This module must never
//! let a non-global address through unless the configuration allows private targets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Why a target was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// Not an absolute http(s) URL with a host.
    #[error("{0}")]
    BadUrl(String),
    /// The host did not resolve.
    #[error("the host `{host}` does not resolve: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// An address is not a public one.
    #[error(
        "the host `{host}` resolves to {addr}, a {kind} address; webhook targets must be public (webhooks.allow_private_targets is false)"
    )]
    NotGlobal {
        /// The host.
        host: String,
        /// The offending address.
        addr: IpAddr,
        /// What kind of address it is.
        kind: &'static str,
    },
}

/// A target that passed the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The host name (`None` for an IP literal: nothing to resolve, nothing to pin).
    pub host: Option<String>,
    /// Every address the host resolved to; all were checked.
    pub addrs: Vec<SocketAddr>,
}

/// Parses a target URL: absolute, `http` or `https`, with a host and without credentials.
pub fn parse(url: &str) -> Result<Url, GuardError> {
    let parsed =
        Url::parse(url).map_err(|e| GuardError::BadUrl(format!("`{url}` is not a URL: {e}")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(GuardError::BadUrl(format!(
            "the URL scheme must be http or https (got `{}`)",
            parsed.scheme()
        )));
    }
    if parsed.host().is_none() {
        return Err(GuardError::BadUrl("the URL has no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GuardError::BadUrl(
            "the URL must not carry credentials; receivers verify the signature instead".into(),
        ));
    }
    Ok(parsed)
}

/// Resolves the URL's host and checks every address (unless `allow_private`).
pub async fn check(url: &Url, allow_private: bool) -> Result<Checked, GuardError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let (host, addrs) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (None, vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(url::Host::Ipv6(ip)) => (None, vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(url::Host::Domain(name)) => {
            let name = name.to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| GuardError::Unresolvable {
                    host: name.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            if addrs.is_empty() {
                return Err(GuardError::Unresolvable {
                    host: name,
                    reason: "no address".into(),
                });
            }
            (Some(name), addrs)
        }
        None => return Err(GuardError::BadUrl("the URL has no host".into())),
    };
    if !allow_private {
        for a in &addrs {
            if let Some(kind) = non_global(a.ip()) {
                return Err(GuardError::NotGlobal {
                    host: url.host_str().unwrap_or_default().to_string(),
                    addr: a.ip(),
                    kind,
                });
            }
        }
    }
    Ok(Checked { host, addrs })
}

/// What kind of non-global address `ip` is, or `None` for a public one.
pub fn non_global(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => non_global_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "\"this network\""),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved or broadcast"),
    ];
    RANGES
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map(|(_, _, kind)| *kind)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn non_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address it carries.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_global_v4(v4);
    }
    let s = ip.segments();
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return non_global_v4(v4);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return non_global_v4(v4);
    }
    const RANGES: &[([u16; 8], u32, &str)] = &[
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (private)"),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
        (
            [0x2001, 0, 0, 0, 0, 0, 0, 0],
            23,
            "IETF protocol assignment",
        ),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
    ];
    if let Some((_, _, kind)) = RANGES.iter().find(|(net, bits, _)| in_v6(ip, *net, *bits)) {
        return Some(kind);
    }
    // Only 2000::/3 is allocated as global unicast.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some("reserved");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ng(s: &str) -> Option<&'static str> {
        non_global(s.parse().unwrap())
    }

    #[test]
    fn non_global_addresses_are_named_and_public_ones_pass() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "\"this network\""),
            ("255.255.255.255", "reserved or broadcast"),
            ("224.0.0.1", "multicast"),
            ("203.0.113.9", "documentation"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique local (private)"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a00:1", "private"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(ng(addr), Some(kind), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(ng(addr), None, "{addr}");
        }
    }

    #[test]
    fn only_absolute_http_urls_without_credentials_are_accepted() {
        assert!(parse("https://example.com/hook").is_ok());
        assert!(parse("ftp://example.com/").is_err());
        assert!(parse("/relative").is_err());
        assert!(parse("https://user:pw@example.com/").is_err());
    }
}
