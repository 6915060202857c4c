//! Network edges: etcd-style URLs, listeners ([`serve`]: gRPC on a listener, plain or TLS) and
//! connections to other members ([`dial`]). Sockets come from tokio and tonic in production and
//! from madsim in the simulator, where TLS is not simulated.

pub mod dial;
pub mod serve;

use std::net::SocketAddr;

pub use dial::Dialer;
pub use serve::serve_grpc;

/// What a request's handler may learn of the connection it came on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The remote address.
    pub remote: Option<SocketAddr>,
    /// The verified client certificate's names, on a TLS connection that presented one.
    pub cert: Option<super::tls::CertNames>,
}

/// Splits an etcd URL (`http://127.0.0.1:2379`, `unix://...` is not supported) into a socket
/// address. Host names are resolved only for `localhost`, like etcd's listener does.
pub fn parse_listen_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("URL scheme must be http, https, unix, or unixs: {url}"))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("URL address does not have the form \"host:port\": {url}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in URL: {url}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "localhost" | "" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .parse()
            .map_err(|_| format!("expected IP in URL for binding ({url})"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A bound client listener: a real socket, or (in the simulator) the address madsim-tonic binds.
#[cfg(not(madsim))]
pub type Listener = tokio::net::TcpListener;
/// A bound client listener: a real socket, or (in the simulator) the address madsim-tonic binds.
#[cfg(madsim)]
pub type Listener = SocketAddr;

/// Binds `addr` now, so a busy port fails startup instead of a background task.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    #[cfg(not(madsim))]
    {
        tokio::net::TcpListener::bind(addr).await
    }
    #[cfg(madsim)]
    {
        Ok(addr)
    }
}

/// The address a listener is bound to.
pub fn local_addr(l: &Listener) -> std::io::Result<SocketAddr> {
    #[cfg(not(madsim))]
    {
        l.local_addr()
    }
    #[cfg(madsim)]
    {
        Ok(*l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_urls() {
        assert_eq!(
            parse_listen_url("http://localhost:2379").unwrap().port(),
            2379
        );
        assert_eq!(
            parse_listen_url("http://127.0.0.1:12379/")
                .unwrap()
                .to_string(),
            "127.0.0.1:12379"
        );
        assert!(parse_listen_url("127.0.0.1:2379").is_err());
        assert!(parse_listen_url("http://127.0.0.1").is_err());
    }
}
