//! Datagrams over a relay network, shaped like [`tokio::net::UdpSocket`]: code written
//! against [`DatagramSocket`] runs over UDP and over a relay room unchanged, with peer ids
//! where UDP has socket addresses.
//!
//! ```no_run
//! # async fn demo(room: plenum::Room, events: plenum::RoomEvents) -> std::io::Result<()> {
//! use plenum::datagram::{DatagramSocket, RelaySocket};
//! let socket = RelaySocket::new(room, events);
//! let mut buf = [0u8; 1500];
//! let (len, from) = socket.recv_from(&mut buf).await?;
//! socket.send_to(&buf[..len], &from).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::sync::Mutex;

use crate::PeerId;
use crate::room::{Room, RoomEvents};
use crate::types::{RoomError, RoomEvent};

/// A socket that sends and receives datagrams to and from addresses of its kind.
pub trait DatagramSocket {
    /// Whom a datagram goes to or comes from.
    type Addr: Clone + Send + Sync + std::fmt::Debug;

    /// Sends `buf` to `to`; returns the bytes sent.
    fn send_to(
        &self,
        buf: &[u8],
        to: &Self::Addr,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Waits for a datagram; copies it into `buf` (cut to its length, as UDP does) and
    /// returns its length and sender.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, Self::Addr)>> + Send;

    /// This socket's own address.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    type Addr = SocketAddr;

    fn send_to(
        &self,
        buf: &[u8],
        to: &SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        tokio::net::UdpSocket::send_to(self, buf, *to)
    }

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

/// Datagrams through a relay room: `send_to` is [`Room::relay_send`], `recv_from` the
/// room's [`RoomEvent::RelayMessage`]s, the address a peer id. It owns the room's events:
/// others are dropped, except that a target found unreachable fails the next `recv_from`
/// (UDP would say nothing; this says so) and a closed room ends it.
#[derive(Debug)]
pub struct RelaySocket {
    room: Room,
    events: Mutex<RoomEvents>,
}

impl RelaySocket {
    /// A socket over a joined relay room and its events.
    pub fn new(room: Room, events: RoomEvents) -> Self {
        Self {
            room,
            events: Mutex::new(events),
        }
    }

    /// The room underneath.
    pub fn room(&self) -> &Room {
        &self.room
    }
}

impl DatagramSocket for RelaySocket {
    type Addr = PeerId;

    async fn send_to(&self, buf: &[u8], to: &PeerId) -> io::Result<usize> {
        self.room
            .relay_send(to.clone(), buf.to_vec())
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, PeerId)> {
        let mut events = self.events.lock().await;
        loop {
            match events.recv().await {
                Some(RoomEvent::RelayMessage { from, data, .. }) => {
                    let len = data.len().min(buf.len());
                    buf[..len].copy_from_slice(&data[..len]);
                    return Ok((len, from));
                }
                Some(RoomEvent::Error(RoomError::Unreachable { peer })) => {
                    return Err(io::Error::new(
                        io::ErrorKind::HostUnreachable,
                        format!("{peer} is unreachable"),
                    ));
                }
                Some(RoomEvent::Closed) | None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the room is closed",
                    ));
                }
                Some(_) => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerId> {
        Ok(self.room.id().clone())
    }
}
