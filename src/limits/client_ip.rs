//! The client's address, for per-IP limits: the TCP peer, or, when the peer is one of the
//! `TRUSTED_PROXIES`, the last hop of `X-Forwarded-For` (the address that proxy saw; any
//! earlier entries were written by the client and prove nothing).

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    sync::Arc,
};

use poem::{Endpoint, Middleware, Request};

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`/{p}` is not a prefix length (0 to {max})"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(IpNet::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address for a request from `peer` carrying `forwarded_for`.
    pub fn resolve(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> IpAddr {
        let peer = peer
            .map(|p| p.to_canonical())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if !self.trusts(peer) {
            return peer;
        }
        forwarded_for
            .and_then(|h| h.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
            .map_or(peer, |ip| ip.to_canonical())
    }
}

/// The resolved client address, in every request's extensions (`Data<&ClientIp>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware that resolves [`ClientIp`] once per request.
pub struct ResolveClientIp(pub Arc<TrustedProxies>);

impl<E: Endpoint> Middleware<E> for ResolveClientIp {
    type Output = ResolveClientIpEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ResolveClientIpEndpoint {
            inner,
            trusted: self.0.clone(),
        }
    }
}

pub struct ResolveClientIpEndpoint<E> {
    inner: E,
    trusted: Arc<TrustedProxies>,
}

impl<E: Endpoint> Endpoint for ResolveClientIpEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let ip = self.trusted.resolve(peer, req.header("x-forwarded-for"));
        req.extensions_mut().insert(ClientIp(ip));
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap_or(IpNet {
            addr: ip("0.0.0.0"),
            prefix: 32,
        });
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("fd00::1")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .is_ok_and(|n| n.contains(ip("1.2.3.4")))
        );
        assert!(
            "fd00::/8"
                .parse::<IpNet>()
                .is_ok_and(|n| n.contains(ip("fd12::1")))
        );
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: TrustedProxies = "127.0.0.1, 172.16.0.0/12".parse().unwrap_or_default();
        let xff = Some("6.6.6.6, 203.0.113.7");
        // From a trusted proxy: the last hop, never the client-written first entry.
        assert_eq!(
            trusted.resolve(Some(ip("172.18.0.5")), xff),
            ip("203.0.113.7")
        );
        // From anyone else: the peer.
        assert_eq!(
            trusted.resolve(Some(ip("198.51.100.1")), xff),
            ip("198.51.100.1")
        );
        // A garbled header from a trusted proxy: the peer.
        assert_eq!(
            trusted.resolve(Some(ip("127.0.0.1")), Some("junk")),
            ip("127.0.0.1")
        );
        assert_eq!(
            TrustedProxies::default().resolve(Some(ip("127.0.0.1")), xff),
            ip("127.0.0.1")
        );
    }
}
