//! Network edges: parsing etcd-style URLs into socket addresses the gRPC server binds.
//! Sockets themselves come from tonic (real or madsim-tonic); this module keeps URL handling
//! in one place.

use std::net::SocketAddr;

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
    let port: u16 = port.parse().map_err(|_| format!("invalid port in URL: {url}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "localhost" | "" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h.parse().map_err(|_| format!("expected IP in URL for binding ({url})"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_urls() {
        assert_eq!(parse_listen_url("http://localhost:2379").unwrap().port(), 2379);
        assert_eq!(
            parse_listen_url("http://127.0.0.1:12379/").unwrap().to_string(),
            "127.0.0.1:12379"
        );
        assert!(parse_listen_url("127.0.0.1:2379").is_err());
        assert!(parse_listen_url("http://127.0.0.1").is_err());
    }
}
