//! webrtc-rs alone, for comparison: two peer connections built exactly as a room's links
//! are ([`Link::new`]: the same SCTP message size, send buffer and ICE settings), one data
//! channel with the room's settings (reliable, ordered), and nothing of ours on the path:
//! no envelope, no outbox, no driver, no event queue. `plenum bench rooms` runs it in the
//! same process as the room's own throughput, so the two figures share a machine and a
//! moment.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use plenum_proto::PeerId;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::RTCSessionDescription;

use crate::config::RoomConfig;
use crate::link::{DATA_CHANNEL_LABEL, Link, LinkEvent, LinkEventKind};

/// What [`data_channel_throughput`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    /// Bytes received, all messages whole and in order.
    pub bytes: usize,
    /// Messages received.
    pub messages: usize,
    /// From the first send to the last byte received.
    pub elapsed: Duration,
}

impl Throughput {
    /// Megabits (10^6) per second.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Why the baseline could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// webrtc-rs refused a step.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// A peer id of the pair was refused (a bug).
    #[error("peer id: {0}")]
    Name(String),
    /// The connection or a message did not come in time.
    #[error("{0} did not happen within {1:?}")]
    Timeout(&'static str, Duration),
    /// A message arrived cut or merged.
    #[error("message {0} arrived with another length than was sent")]
    Corrupt(usize),
}

/// How long the connection may take, and how long any one message may.
const PATIENCE: Duration = Duration::from_secs(30);

/// Sends `count` messages of `payload` over a fresh pair of peer connections made with
/// `config` (a room's configuration: its ICE servers and bind addresses), reliable and
/// ordered, and measures how fast they arrive.
pub async fn data_channel_throughput(
    config: &RoomConfig,
    payload: Bytes,
    count: usize,
) -> Result<Throughput, BaselineError> {
    let (a_id, b_id) = (peer_id(1)?, peer_id(2)?);
    let (a_events, mut a_rx) = mpsc::channel(1024);
    let (b_events, mut b_rx) = mpsc::channel(1024);
    let (keyframes, _unused) = mpsc::channel(1);
    let a = Link::new(config, &b_id, 1, a_events, keyframes.clone()).await?;
    let b = Link::new(config, &a_id, 1, b_events, keyframes).await?;
    let init = RTCDataChannelInit {
        ordered: true,
        ..Default::default()
    };
    let sender =
        a.pc.create_data_channel(DATA_CHANNEL_LABEL, Some(init))
            .await?;
    let offer = a.pc.create_offer(None).await?;
    a.pc.set_local_description(offer.clone()).await?;
    b.pc.set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
        .await?;
    let answer = b.pc.create_answer(None).await?;
    b.pc.set_local_description(answer.clone()).await?;
    a.pc.set_remote_description(RTCSessionDescription::answer(answer.sdp)?)
        .await?;

    // Candidates cross as they are gathered; b's data channel arrives as an event.
    let (a_pc, b_pc) = (Arc::clone(&a.pc), Arc::clone(&b.pc));
    let (channel_tx, mut channel_rx) = mpsc::channel::<Arc<dyn DataChannel>>(1);
    let trickle = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(LinkEvent { kind, .. }) = a_rx.recv() => {
                    if let LinkEventKind::Candidate(c) = kind {
                        let _ = b_pc.add_ice_candidate(c).await;
                    }
                }
                Some(LinkEvent { kind, .. }) = b_rx.recv() => match kind {
                    LinkEventKind::Candidate(c) => {
                        let _ = a_pc.add_ice_candidate(c).await;
                    }
                    LinkEventKind::Channel(channel) => {
                        let _ = channel_tx.send(channel).await;
                    }
                    _ => {}
                },
                else => return,
            }
        }
    });
    let result = measure(&sender, &mut channel_rx, payload, count).await;
    trickle.abort();
    a.close();
    b.close();
    result
}

async fn measure(
    sender: &Arc<dyn DataChannel>,
    channels: &mut mpsc::Receiver<Arc<dyn DataChannel>>,
    payload: Bytes,
    count: usize,
) -> Result<Throughput, BaselineError> {
    let receiver = tokio::time::timeout(PATIENCE, channels.recv())
        .await
        .ok()
        .flatten()
        .ok_or(BaselineError::Timeout("the data channel", PATIENCE))?;
    // The sender's own events (open, buffered amount) are drained, as a link's reader does.
    let (open_tx, open_rx) = tokio::sync::oneshot::channel();
    let events = Arc::clone(sender);
    let drain = tokio::spawn(async move {
        let mut open = Some(open_tx);
        while let Some(event) = events.poll().await {
            if matches!(event, DataChannelEvent::OnOpen)
                && let Some(open) = open.take()
            {
                let _ = open.send(());
            }
        }
    });
    let opened = tokio::time::timeout(PATIENCE, open_rx).await;
    if !matches!(opened, Ok(Ok(()))) {
        drain.abort();
        return Err(BaselineError::Timeout("the channel's opening", PATIENCE));
    }
    let expected = payload.len();
    let receive = tokio::spawn(async move {
        let (mut bytes, mut messages) = (0usize, 0usize);
        while messages < count {
            let event = tokio::time::timeout(PATIENCE, receiver.poll()).await;
            match event {
                Ok(Some(DataChannelEvent::OnMessage(message))) => {
                    if message.data.len() != expected {
                        return Err(BaselineError::Corrupt(messages));
                    }
                    bytes += message.data.len();
                    messages += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err(BaselineError::Timeout("a message", PATIENCE)),
            }
        }
        Ok((bytes, messages))
    });
    let started = crate::clock::now();
    for _ in 0..count {
        sender.send(BytesMut::from(&payload[..])).await?;
    }
    let received = receive.await;
    let elapsed = started.elapsed();
    drain.abort();
    let (bytes, messages) = received.map_err(|_| BaselineError::Corrupt(0))??;
    Ok(Throughput {
        bytes,
        messages,
        elapsed,
    })
}

/// Forty hex digits, as every peer id; these two never meet a server.
fn peer_id(n: u8) -> Result<PeerId, BaselineError> {
    PeerId::new(format!("{n:040x}")).map_err(|e| BaselineError::Name(e.to_string()))
}
