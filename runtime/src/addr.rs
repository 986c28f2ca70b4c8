//! Socket addresses from what the caller has, with host-name lookups kept off the workers.
//!
//! std's [`ToSocketAddrs`](std::net::ToSocketAddrs) resolves a host name with `getaddrinfo`,
//! which blocks its thread for as long as the resolver takes (a timeout against an unreachable
//! DNS server is seconds): on a worker, that stalls every coroutine on it. coact's sockets take
//! this crate's [`ToSocketAddrs`] instead, implemented for the same types as std's. Addresses
//! written as numbers (`"127.0.0.1:80"`, `("::1", 80)`, a `SocketAddr`) are parsed in place; a
//! host name is looked up on the runtime's [offload pool](crate::offload), so only the calling
//! coroutine waits.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::offload::offload;

/// The addresses one of coact's sockets is bound or connected to: std's `ToSocketAddrs`, for
/// the same types, with host names looked up without blocking the worker (see
/// [`lookup_host`]). Sealed: it cannot be implemented outside coact.
pub trait ToSocketAddrs: sealed::Sealed {}

/// The addresses `addr` stands for, looking a host name up on the runtime's offload pool (only
/// the calling coroutine waits; a plain thread does the lookup itself).
///
/// ```
/// use coact_runtime::net::lookup_host;
///
/// coact_runtime::run(|| {
///     let addrs: Vec<_> = lookup_host("localhost:7000").unwrap().collect();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7000));
///     let literal: Vec<_> = lookup_host(("10.1.2.3", 9)).unwrap().collect();
///     assert_eq!(literal, ["10.1.2.3:9".parse().unwrap()]);
/// });
/// ```
pub fn lookup_host<A: ToSocketAddrs>(addr: A) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    addr.resolve()
}

pub(crate) mod sealed {
    use super::*;

    /// The lookup itself; `ToSocketAddrs` only names the types that have it.
    pub trait Sealed {
        /// The addresses, looked up off the worker if it takes a host name.
        fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>>;
    }
}

use sealed::Sealed;

/// One address, as the iterator every lookup returns.
fn one(a: SocketAddr) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    Ok(vec![a].into_iter())
}

/// Looks `host` and `port` up with std's resolver on the offload pool.
fn lookup(host: &str, port: u16) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    let host = host.to_owned();
    offload(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map(|it| it.collect::<Vec<_>>().into_iter())
    })
}

/// `"host:port"` (or a literal address) as std reads it: the port after the last colon.
fn resolve_str(s: &str) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return one(a);
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port value"))?;
    resolve_host(host, port)
}

/// A host (name or literal IP) and a port.
fn resolve_host(host: &str, port: u16) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    match host.parse::<IpAddr>() {
        Ok(ip) => one(SocketAddr::new(ip, port)),
        Err(_) => lookup(host, port),
    }
}

macro_rules! literal {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl ToSocketAddrs for $t {}
        impl Sealed for $t {
            fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
                let $v = self;
                one($e)
            }
        }
    )*};
}

literal! {
    SocketAddr => |a| *a;
    SocketAddrV4 => |a| SocketAddr::V4(*a);
    SocketAddrV6 => |a| SocketAddr::V6(*a);
    (IpAddr, u16) => |a| SocketAddr::new(a.0, a.1);
    (Ipv4Addr, u16) => |a| SocketAddr::new(IpAddr::V4(a.0), a.1);
    (Ipv6Addr, u16) => |a| SocketAddr::new(IpAddr::V6(a.0), a.1);
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        resolve_str(self)
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        resolve_str(self)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        resolve_host(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        resolve_host(&self.0, self.1)
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        let v: Vec<SocketAddr> = self.into();
        Ok(v.into_iter())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: Sealed + ?Sized> Sealed for &T {
    fn resolve(&self) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        (**self).resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all<A: ToSocketAddrs>(a: A) -> io::Result<Vec<SocketAddr>> {
        lookup_host(a).map(Iterator::collect)
    }

    #[test]
    // `&v4` on purpose: the impl for references is under test.
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn literals_are_read_as_std_reads_them() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(all("127.0.0.1:80").unwrap(), [v4]);
        assert_eq!(all("[::1]:80").unwrap(), [v6]);
        assert_eq!(all(String::from("127.0.0.1:80")).unwrap(), [v4]);
        assert_eq!(all(("127.0.0.1", 80)).unwrap(), [v4]);
        assert_eq!(all(("::1", 80)).unwrap(), [v6]);
        assert_eq!(all((String::from("::1"), 80)).unwrap(), [v6]);
        assert_eq!(all(v4).unwrap(), [v4]);
        assert_eq!(all(&v4).unwrap(), [v4]);
        assert_eq!(all((Ipv4Addr::LOCALHOST, 80)).unwrap(), [v4]);
        assert_eq!(all((Ipv6Addr::LOCALHOST, 80)).unwrap(), [v6]);
        assert_eq!(all((v4.ip(), 80)).unwrap(), [v4]);
        assert_eq!(all(&[v4, v6][..]).unwrap(), [v4, v6]);
    }

    #[test]
    fn malformed_addresses_are_clear_errors() {
        for bad in ["127.0.0.1", "localhost", "127.0.0.1:port", "host:99999"] {
            let e = all(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_looked_up_as_std_looks_them_up() {
        let ours = all("localhost:80").unwrap();
        let std: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
            .unwrap()
            .collect();
        assert_eq!(ours, std);
        assert!(!ours.is_empty());
    }
}
