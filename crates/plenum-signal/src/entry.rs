//! Where a connection enters signaling: a registry of this process, or a federation of
//! servers sharing rooms over NATS. Sockets and in-process clients drive both alike.

use tokio::sync::mpsc;

use crate::federation::{Federation, Link};
use crate::hub::{Hub, Outbound};
use crate::registry::ConnId;

/// The way in.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Hub(Hub),
    Federation(Federation),
}

impl Entry {
    /// A new connection; its `hello` goes to `outbound` first.
    pub(crate) async fn open(&self, outbound: mpsc::Sender<Outbound>) -> Option<Session> {
        match self {
            Entry::Hub(hub) => {
                let conn = hub.open(outbound).await?;
                Some(Session::Hub {
                    hub: hub.clone(),
                    conn,
                })
            }
            Entry::Federation(federation) => federation.open(outbound).map(Session::Link),
        }
    }
}

/// One connection, as the task of its socket (or in-process client) drives it.
#[derive(Debug)]
pub(crate) enum Session {
    Hub { hub: Hub, conn: ConnId },
    Link(Link),
}

impl Session {
    /// A text frame from the client; false when the connection should end.
    pub(crate) async fn frame(&mut self, text: String) -> bool {
        match self {
            Session::Hub { hub, conn } => hub.frame(*conn, text).await,
            // Boxed: a routing join awaits the room directory, whose futures would
            // otherwise make every connection's task that much larger.
            Session::Link(link) => Box::pin(link.frame(text)).await,
        }
    }

    /// A frame the shell did not keep (too large, or binary).
    pub(crate) async fn refused(&mut self, len: usize, binary: bool) -> bool {
        match self {
            Session::Hub { hub, conn } => hub.refused(*conn, len, binary).await,
            Session::Link(link) => Box::pin(link.refused(len, binary)).await,
        }
    }

    /// The connection ended.
    pub(crate) async fn closed(self) {
        match self {
            Session::Hub { hub, conn } => hub.closed(conn).await,
            Session::Link(link) => Box::pin(link.closed()).await,
        }
    }
}
