//! Serving gRPC on a bound listener until shutdown. Client listeners accept the URL-shaped
//! `:authority` etcdctl sends (see `authority_fix`). An `https://` listener runs the TLS
//! handshake of each connection in a task of its own (a slow client never holds up the
//! others), then checks the certificate against the listener's rules
//! ([`admit`](crate::io::tls::admit)) before serving it.

use std::future::Future;

use super::Listener;
#[cfg(not(madsim))]
use crate::io::tls::rustls::ServerTls;

/// How long a TLS handshake may take.
#[cfg(not(madsim))]
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The TLS of a listener (production only; the simulator serves plain connections).
#[cfg(not(madsim))]
pub type ListenerTls = Option<ServerTls>;
/// The TLS of a listener (production only; the simulator serves plain connections).
#[cfg(madsim)]
pub type ListenerTls = Option<NoTls>;

/// The simulator's stand-in for a listener's TLS: there is none.
#[cfg(madsim)]
#[derive(Clone, Debug)]
pub enum NoTls {}

/// Serves `router` on `listener` until `shutdown` completes. `clients`: a client listener
/// (etcdctl's `:authority` accepted); `tls`: the listener's TLS, for an `https://` URL.
pub async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clients: bool,
    tls: ListenerTls,
) -> Result<(), tonic::transport::Error> {
    #[cfg(not(madsim))]
    {
        use crate::io::authority_fix::AuthorityFix;

        if let Some(tls) = tls {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let accepting = tokio::spawn(accept_tls(listener, tls, !clients, tx));
            let incoming =
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
                );
            let served = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            accepting.abort();
            return served;
        }
        if clients {
            let incoming = futures::stream::unfold(listener, |listener| async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let conn = AuthorityFix::new(stream);
                            return Some((Ok::<_, std::io::Error>(conn), listener));
                        }
                        // Out of file descriptors and the like: back off, keep listening.
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            crate::io::clock::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            return router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
        }
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
    #[cfg(madsim)]
    {
        let _ = (clients, tls);
        router.serve_with_shutdown(listener, shutdown).await
    }
}

/// A TLS connection being served.
#[cfg(not(madsim))]
type TlsConn =
    crate::io::authority_fix::AuthorityFix<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// Accepts connections, runs each handshake in its own task, and hands the connections that
/// pass the listener's rules to the server.
#[cfg(not(madsim))]
async fn accept_tls(
    listener: Listener,
    tls: ServerTls,
    peer: bool,
    tx: tokio::sync::mpsc::Sender<std::io::Result<TlsConn>>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept: {e}");
                crate::io::clock::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, tx, info) = (acceptor.clone(), tx.clone(), tls.info.clone());
        tokio::spawn(async move {
            let handshake = crate::io::clock::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let conn = match handshake.await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::info!(%remote, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let names = conn
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(crate::io::tls::rustls::cert_names)
                .unwrap_or_default();
            if let Err(e) = crate::io::tls::admit(&names, Some(remote.ip()), &info, peer) {
                tracing::warn!(%remote, "rejected a TLS connection: {e}");
                return;
            }
            let _ = tx
                .send(Ok(crate::io::authority_fix::AuthorityFix::new(conn)))
                .await;
        });
    }
}
