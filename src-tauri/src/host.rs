//! "Host on this computer": the signaling server, embedded in the app.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use plenum_signal::{Server, ServerConfig};
use tracing::info;

use crate::types::{CommandError, ErrorKind};

/// The port tried first, so invite links stay the same from one run to the next.
pub const DEFAULT_PORT: u16 = 7878;

/// The embedded signaling server.
#[derive(Debug)]
pub struct Hosted {
    server: Server,
    public_url: String,
}

impl Hosted {
    /// Starts a server on `bind`. With no address, listens on every interface on
    /// [`DEFAULT_PORT`], or any free port if that one is taken.
    pub async fn start(bind: Option<SocketAddr>) -> Result<Self, CommandError> {
        let failed = |e: std::io::Error| {
            CommandError::new(
                ErrorKind::HostFailed,
                format!("cannot start the server: {e}"),
            )
        };
        // Guests from a browser open `/r/ROOM` on this same port.
        let config = || ServerConfig {
            site: plenum_site::site(),
            ..ServerConfig::default()
        };
        let server = match bind {
            Some(addr) => Server::bind(addr, config()).await.map_err(failed)?,
            None => {
                let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                match Server::bind(SocketAddr::new(any, DEFAULT_PORT), config()).await {
                    Ok(server) => server,
                    Err(_) => Server::bind(SocketAddr::new(any, 0), config())
                        .await
                        .map_err(failed)?,
                }
            }
        };
        let addr = server.local_addr();
        let ip = if addr.ip().is_unspecified() {
            lan_address()
        } else {
            addr.ip()
        };
        let public_url = format!("ws://{}", SocketAddr::new(ip, addr.port()));
        info!(%addr, %public_url, "hosting a signaling server");
        Ok(Self { server, public_url })
    }

    /// The URL this app joins through (loopback when listening on every interface).
    pub fn local_url(&self) -> String {
        let addr = self.server.local_addr();
        let ip = if addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            addr.ip()
        };
        format!("ws://{}", SocketAddr::new(ip, addr.port()))
    }

    /// The URL others on the network reach it at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }
}

/// This machine's address on its local network: the source address the kernel would use to
/// reach a public address (a UDP "connect" sends nothing). Loopback when there is no route.
pub fn lan_address() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
