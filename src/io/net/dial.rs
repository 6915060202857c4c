//! Dialing other members: a lazily connecting gRPC channel to a peer URL, over TLS for an
//! `https://` URL when peer TLS is configured.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How members connect to each other's peer URLs; cheap to clone.
#[derive(Clone, Default)]
pub struct Dialer {
    /// The TLS client configuration for `https://` peer URLs.
    #[cfg(not(madsim))]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

impl Dialer {
    /// A dialer that uses `tls` for `https://` URLs.
    #[cfg(not(madsim))]
    pub fn with_tls(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> Dialer {
        Dialer { tls }
    }

    /// A lazily connecting channel to `url`.
    pub fn channel(&self, url: &str) -> Result<Channel, String> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("bad peer URL {url}: {e}"))?
            .connect_timeout(Duration::from_secs(1));
        if let Some(rest) = url.strip_prefix("https://") {
            #[cfg(not(madsim))]
            {
                let Some(tls) = self.tls.clone() else {
                    return Err(format!(
                        "peer URL {url} uses https, but peer TLS is not configured"
                    ));
                };
                let host = rest
                    .trim_end_matches('/')
                    .rsplit_once(':')
                    .map_or(rest, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                return Ok(endpoint.connect_with_connector_lazy(TlsConnector { tls, host }));
            }
            #[cfg(madsim)]
            let _ = rest;
        }
        Ok(endpoint.connect_lazy())
    }
}

/// Connects TCP, then TLS, to the URL's host.
#[cfg(not(madsim))]
#[derive(Clone)]
struct TlsConnector {
    tls: std::sync::Arc<rustls::ClientConfig>,
    host: String,
}

#[cfg(not(madsim))]
impl tower::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (tls, host) = (self.tls.clone(), self.host.clone());
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| std::io::Error::other("peer URL without host"))?
                .to_string();
            let tcp = tokio::net::TcpStream::connect(authority).await?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let conn = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(conn))
        })
    }
}
