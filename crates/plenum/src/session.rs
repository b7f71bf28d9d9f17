//! The signaling session: the `hello` / `join` handshake that proves our identity, and
//! coming back after the server connection drops (backoff with jitter, resume token).

use std::time::Duration;

use plenum_proto::identity::join_message;
use plenum_proto::overlay::TopologySpec;
use plenum_proto::signal::{ClientToServer, ErrorCode, IceServerInfo, PeerSummary, ServerToClient};
use plenum_proto::token::Grants;
use plenum_proto::{PROTOCOL_VERSION, PeerId};
use plenum_signal::{SignalConnection, SignalEvent};
use tokio::sync::mpsc;

use crate::config::RoomConfig;
use crate::types::JoinError;

/// First wait before reconnecting; doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the server said when it admitted us.
#[derive(Debug)]
pub(crate) struct Welcome {
    pub(crate) me: PeerId,
    pub(crate) peers: Vec<PeerSummary>,
    pub(crate) grants: Grants,
    pub(crate) ice_servers: Vec<IceServerInfo>,
    pub(crate) resume: String,
    pub(crate) topology: TopologySpec,
}

/// Waits for `hello`, sends our signed `join` (resuming `resume` if given), and waits for
/// the welcome.
pub(crate) async fn handshake(
    config: &RoomConfig,
    signal: &mut SignalConnection,
    resume: Option<String>,
) -> Result<Welcome, JoinError> {
    let work = async {
        let challenge = loop {
            match next(signal).await? {
                ServerToClient::Hello { challenge, .. } => break challenge,
                ServerToClient::Error { code, message, .. } => {
                    return Err(JoinError::Refused { code, message });
                }
                _ => continue,
            }
        };
        let join = ClientToServer::Join {
            version: PROTOCOL_VERSION,
            room: config.room.clone(),
            name: config.name.clone(),
            password: config.password.clone(),
            key: config.identity.public().encode(),
            proof: config
                .identity
                .sign(&join_message(&challenge, config.room.as_str())),
            token: config.token.clone(),
            resume,
            topology: (config.topology != TopologySpec::Mesh).then(|| config.topology.clone()),
            root: config.root_secret.clone(),
            role: config.role,
            mesh_only: false,
        };
        signal
            .tx
            .send(join)
            .await
            .map_err(|_| JoinError::Closed("driver stopped".into()))?;
        loop {
            match next(signal).await? {
                ServerToClient::Welcome {
                    peer,
                    peers,
                    grants,
                    ice_servers,
                    resume,
                    topology,
                    ..
                } => {
                    return Ok(Welcome {
                        me: peer,
                        peers,
                        grants,
                        ice_servers,
                        resume,
                        topology,
                    });
                }
                ServerToClient::Error { code, message, .. } => {
                    return Err(JoinError::Refused { code, message });
                }
                _ => continue,
            }
        }
    };
    tokio::time::timeout(config.join_timeout, work)
        .await
        .map_err(|_| JoinError::Timeout(config.join_timeout))?
}

async fn next(signal: &mut SignalConnection) -> Result<ServerToClient, JoinError> {
    match signal.rx.recv().await {
        Some(SignalEvent::Frame(frame)) => Ok(frame),
        Some(SignalEvent::Closed { reason }) => Err(JoinError::Closed(reason)),
        None => Err(JoinError::Closed("driver stopped".into())),
    }
}

/// One attempt: connect and handshake.
async fn attempt(
    config: &RoomConfig,
    resume: Option<String>,
) -> Result<(SignalConnection, Welcome), JoinError> {
    let mut signal = config.signal.connect().await?;
    let welcome = handshake(config, &mut signal, resume).await?;
    Ok((signal, welcome))
}

/// Whether an error is worth another attempt (the server is away) or final (it refused us).
fn transient(error: &JoinError) -> bool {
    match error {
        JoinError::Refused { code, .. } => {
            matches!(code, ErrorCode::Internal | ErrorCode::RateLimited)
        }
        _ => true,
    }
}

fn is_taken(error: &JoinError) -> bool {
    matches!(
        error,
        JoinError::Refused {
            code: ErrorCode::PeerIdTaken,
            ..
        }
    )
}

/// Backoff with full jitter: a random wait in `[d/2, d]`, `d` doubling per attempt.
fn jittered(attempt: u32) -> Duration {
    use rand::Rng;
    let d = BACKOFF_START
        .saturating_mul(1 << attempt.min(8))
        .min(BACKOFF_MAX);
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Joins, retrying while the server cannot be reached until the join timeout has passed
/// (a server restarting while we start is not a failure). Refusals end it at once.
pub(crate) async fn connect(config: &RoomConfig) -> Result<(SignalConnection, Welcome), JoinError> {
    let deadline = crate::clock::now() + config.join_timeout;
    let mut tries = 0;
    loop {
        match attempt(config, None).await {
            Ok(joined) => return Ok(joined),
            Err(e) if transient(&e) && crate::clock::now() < deadline => {
                let wait =
                    jittered(tries).min(deadline.saturating_duration_since(crate::clock::now()));
                tracing::debug!(error = %e, ?wait, "signaling not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The outcome of a background reconnection.
pub(crate) type Reconnected = Result<(SignalConnection, Welcome), JoinError>;

/// Reconnects in the background until it succeeds or the server refuses us; the result
/// goes to `done`. Abort the task to stop trying.
pub(crate) fn reconnect(
    config: RoomConfig,
    resume: String,
    done: mpsc::Sender<Reconnected>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = crate::clock::now();
        let mut tries = 0;
        loop {
            tokio::time::sleep(jittered(tries)).await;
            tries += 1;
            match attempt(&config, Some(resume.clone())).await {
                // Our old connection is still held open at the server (half-open after a
                // lost welcome): it will notice and let us back in.
                Err(e) if transient(&e) || is_taken(&e) => {
                    tracing::debug!(error = %e, tries, "signaling still away");
                }
                result => {
                    if result.is_ok() {
                        tracing::info!(tries, after = ?started.elapsed(), "signaling back");
                    }
                    let _ = done.send(result).await;
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 0..20 {
            let d = jittered(attempt);
            let cap = BACKOFF_START
                .saturating_mul(1 << attempt.min(8))
                .min(BACKOFF_MAX);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} vs {cap:?}"
            );
        }
        assert_eq!(
            BACKOFF_START.saturating_mul(1 << 8).min(BACKOFF_MAX),
            BACKOFF_MAX
        );
    }

    #[test]
    fn refusals_are_final_and_outages_are_not() {
        assert!(transient(&JoinError::Closed("x".into())));
        assert!(transient(&JoinError::Timeout(Duration::from_secs(1))));
        let refused = |code| JoinError::Refused {
            code,
            message: String::new(),
        };
        assert!(!transient(&refused(ErrorCode::BadPassword)));
        assert!(!transient(&refused(ErrorCode::TokenExpired)));
        assert!(transient(&refused(ErrorCode::Internal)));
    }
}
