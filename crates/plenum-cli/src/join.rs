//! `plenum join`: a headless peer. With `--json`, stdout is JSON lines (events) and stdin
//! takes JSON-line commands; docs/cli.md describes both.

use plenum_proto::overlay::TopologySpec;
use std::net::{IpAddr, SocketAddr};

use plenum::{IceServer, Room, RoomConfig, RoomError, RoomEvent, Target, TreeTarget};
use plenum_proto::PeerId;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, clap::Args)]
pub(crate) struct JoinArgs {
    /// Signaling server URL (ws://host:port), or several (ws://a,ws://b: servers of one
    /// NATS cluster, tried in turn when the one in use fails).
    #[arg(
        long,
        required_unless_present_any = ["invite", "signal"],
        conflicts_with_all = ["invite", "signal"]
    )]
    server: Option<String>,
    /// Signal through a NATS server (nats://host:port, JetStream on) with no Plenum server.
    #[arg(long, conflicts_with = "invite")]
    signal: Option<String>,
    /// Room name.
    #[arg(long, required_unless_present = "invite", conflicts_with = "invite")]
    room: Option<String>,
    /// An invite link (plenum://join?server=...&room=...) instead of --server and --room.
    #[arg(long)]
    invite: Option<String>,
    /// Display name.
    #[arg(long, default_value = "peer")]
    name: String,
    /// Room password.
    #[arg(long)]
    password: Option<String>,
    /// A room token (`plenum token`), for servers started with --token-secret-file.
    #[arg(long)]
    token: Option<String>,
    /// This peer's key file (created if missing); the peer id derives from the key. Without
    /// it, a fresh key (and id) for this run.
    #[arg(long)]
    identity: Option<std::path::PathBuf>,
    /// Which ICE candidates to use: all, or relay (through TURN only).
    #[arg(long, default_value = "all", value_parser = ["all", "relay"])]
    ice_transport: String,
    /// JSON lines on stdout and stdin.
    #[arg(long)]
    json: bool,
    /// Local IP to gather candidates on (repeatable; default 127.0.0.1 and all interfaces).
    #[arg(long = "bind-ip")]
    bind_ip: Vec<IpAddr>,
    /// STUN server URL (repeatable).
    #[arg(long)]
    stun: Vec<String>,
    /// TURN server URL (repeatable; with --turn-user and --turn-credential).
    #[arg(long)]
    turn: Vec<String>,
    /// TURN user name.
    #[arg(long, default_value = "")]
    turn_user: String,
    /// TURN credential.
    #[arg(long, default_value = "")]
    turn_credential: String,
    /// Audio to publish: none, sine:FREQ, file:PATH.wav, mic or mic:NAME.
    #[arg(long, default_value = "none")]
    audio: String,
    /// Record what this peer hears (the mix of every peer) to a WAV file.
    #[arg(long)]
    record_audio: Option<std::path::PathBuf>,
    /// Play what this peer hears on an output device: `default` or a name from `plenum devices`.
    #[arg(long, conflicts_with = "record_audio")]
    speaker: Option<String>,
    /// Video to publish: none, testsrc[:WIDTHxHEIGHT[@FPS]] or camera[:NAME][@WIDTHxHEIGHT[@FPS]].
    #[arg(long, default_value = "none")]
    video: String,
    /// Share a screen beside the video: the primary monitor, or a monitor by name or index,
    /// or window:TITLE (see `plenum devices`).
    #[arg(long, num_args = 0..=1, default_missing_value = "default", value_name = "MONITOR")]
    screen: Option<String>,
    /// Pictures per second a shared screen is captured at.
    #[arg(long, default_value_t = plenum_media::screen::DEFAULT_SCREEN_FPS, value_parser = clap::value_parser!(u32).range(1..=60))]
    screen_fps: u32,
    /// Video bitrate in kbit/s (default: from the picture size, 640x360 at 30 fps ~700).
    #[arg(long, value_parser = clap::value_parser!(u32).range(30..=20_000))]
    video_bitrate: Option<u32>,
    /// Audio (Opus) bitrate in kbit/s (default 32).
    #[arg(long, value_parser = clap::value_parser!(u32).range(6..=510))]
    audio_bitrate: Option<u32>,
    /// Save the pictures received from every peer as PNG files in this directory.
    #[arg(long)]
    save_frames: Option<std::path::PathBuf>,
    /// Pictures saved per second and peer with --save-frames.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    save_frames_per_second: u32,
    /// Leave microphone echo cancellation off (on by default; synthetic sources never have it).
    #[arg(long)]
    no_echo_cancellation: bool,
    /// Leave microphone noise suppression off (on by default).
    #[arg(long)]
    no_noise_suppression: bool,
    /// Drop this percentage of arriving audio packets (a diagnostic: hear FEC and concealment
    /// at work).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    simulate_audio_loss: u8,
    /// The overlay to create the room with: `mesh` (every peer links to every other),
    /// `cells` (cells of peers joined by bridges, for large rooms), `tree` (a broadcast
    /// tree under one root), `relay` (a few neighbours each, messages relayed) or `host`
    /// (everyone links to one host, which relays; a new host takes over when it goes). A
    /// room that exists keeps its own.
    #[arg(long, value_enum, default_value_t = TopologyArg::Mesh)]
    topology: TopologyArg,
    /// Most peers per cell with --topology cells (default: chosen from the room's size).
    #[arg(long, requires = "topology", value_parser = clap::value_parser!(u16).range(3..=1024))]
    cell_size: Option<u16>,
    /// Links between each pair of neighbouring cells with --topology cells.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    bridges_per_edge: u16,
    /// Most children per peer with --topology tree.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_degree: u16,
    /// Most children of the root with --topology tree, if not --max-degree (a presenter
    /// whose viewers link to it alone up to that many).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    root_degree: Option<u16>,
    /// Most direct neighbours per peer with --topology relay.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_neighbours: u16,
    /// Claim the tree's root (with --secret); while a root is there, stand by to take over.
    #[arg(long, requires = "secret")]
    root: bool,
    /// The tree's root secret: the first claim sets it, a claim with another is refused.
    #[arg(long, requires = "root")]
    secret: Option<String>,
    /// What we do in the room: `publisher`, `viewer` (links to publishers only, never to
    /// another viewer) or `both` (the default, or the role an invite names).
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// JSON we present with our offers and answers, for the other side's check.
    #[arg(long, value_parser = parse_json)]
    credentials: Option<Value>,
    /// Link only to peers presenting exactly this JSON as credentials; others get
    /// `not_verified` and no link (and the refusal is logged).
    #[arg(long, value_parser = parse_json)]
    accept_credentials: Option<Value>,
    /// Messages sent to everyone while nobody else is in the room wait for the first peer,
    /// at most this many (the oldest dropped beyond, with `queue_overflow`).
    #[arg(long, default_value_t = 10)]
    queue_size: usize,
    /// A viewer whose publishers are all gone tries them again every this many seconds...
    #[arg(long, default_value_t = 30.0)]
    ping_interval: f64,
    /// ...this many times, then reports `publishers_gone` (a publisher that returns is
    /// linked again).
    #[arg(long, default_value_t = 10)]
    ping_attempts: u32,
    /// With --topology host: JSON every peer of the room receives with our arrival
    /// (`init_data` events), peers that join later too.
    #[arg(long, value_parser = parse_json)]
    init_data: Option<Value>,
    /// Both sides of a new link send offers at once (exercises collision handling).
    #[arg(long, hide = true)]
    both_initiate: bool,
    /// Publish even if our token does not grant it, as a modified client could (tests the
    /// other peers' enforcement).
    #[arg(long, hide = true)]
    publish_without_grant: bool,
    /// Read the stamp of each test-pattern picture received and report its glass-to-glass
    /// latency (`stamp_latency_ms` in `stats`, the pictures since the last one).
    #[arg(long, hide = true)]
    stamp_latency: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TopologyArg {
    Mesh,
    Cells,
    Tree,
    Relay,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    Publisher,
    Viewer,
    Both,
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// A JSON-line command on stdin.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum Command {
    Send {
        channel: String,
        data: Value,
        #[serde(default)]
        to: Option<To>,
    },
    Ping {
        peer: String,
    },
    Peers {},
    Stats {},
    Leave {},
    /// Switch the published audio (same forms as --audio) without leaving.
    Audio {
        source: String,
    },
    /// Switch the published video (same forms as --video; none stops it) without leaving.
    Video {
        source: String,
    },
    /// Share a screen (same forms as --screen, or default) or stop sharing (none).
    Screen {
        source: String,
    },
    Mute {},
    Unmute {},
    /// Broadcast to every peer of the room over the overlay.
    MeshSend {
        data: Value,
    },
    /// Broadcast along the tree's edges (a tree room).
    TreeBroadcast {
        data: Value,
    },
    /// Send to tree neighbours: "parent", "children" or a neighbour's id.
    TreeSend {
        to: String,
        data: Value,
    },
    /// At a tree's root: whose voice the stage carries (null: nobody's).
    Stage {
        peer: Option<String>,
    },
    /// Raise (or lower) our hand: to a tree's root, or for a seat on a cells room's stage.
    Hand {
        #[serde(default = "raised")]
        raised: bool,
    },
    /// Present in a cells room (our camera and screen to every cell), or stop.
    Present {
        #[serde(default = "raised")]
        on: bool,
    },
    /// List our direct links.
    Links {},
    /// Share our state with linked peers (merged into the last when `merge`).
    SetState {
        state: Value,
        #[serde(default)]
        merge: bool,
    },
    /// Send to a peer of a relay network, relayed if it is not a neighbour.
    RelaySend {
        to: String,
        data: Value,
    },
    /// Form a direct link in a relay network (negotiated over the network).
    Connect {
        peer: String,
    },
    /// Close a direct link in a relay network.
    Disconnect {
        peer: String,
    },
    /// Write these bytes (hex) as they are on the link to a peer: for tests of the other
    /// side's checks. Not documented for users.
    Raw {
        peer: String,
        hex: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum To {
    One(String),
    Many(Vec<String>),
}

struct Out {
    json: bool,
    /// With `--stamp-latency`: the glass-to-glass latency of each picture received since
    /// the last `stats`.
    stamps: Option<crate::video::Latencies>,
}

impl Out {
    fn event(&self, value: Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }

    fn error(&self, code: &str, message: impl Into<String>) {
        let message = message.into();
        self.event(
            json!({"event": "error", "code": code, "message": message}),
            || format!("! {code}: {message}"),
        );
    }
}

fn ice_servers(args: &JoinArgs) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !args.stun.is_empty() {
        servers.push(IceServer {
            urls: args.stun.clone(),
            username: String::new(),
            credential: String::new(),
        });
    }
    if !args.turn.is_empty() {
        servers.push(IceServer {
            urls: args.turn.clone(),
            username: args.turn_user.clone(),
            credential: args.turn_credential.clone(),
        });
    }
    servers
}

/// Decodes a received payload for printing: JSON if it is JSON, else text, else its size.
fn payload_value(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or_else(|_| match std::str::from_utf8(data) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({"binary_bytes": data.len()}),
    })
}

fn error_code(error: &RoomError) -> &'static str {
    match error {
        RoomError::LinkFailed { .. } => "link_failed",
        RoomError::Malformed { .. } => "malformed_message",
        RoomError::QueueOverflow { .. } | RoomError::WaitingOverflow { .. } => "queue_overflow",
        RoomError::Signaling { .. } => "signaling_refused",
        RoomError::SignalingLost(_) => "signaling_lost",
        RoomError::IdentityMismatch { .. } => "identity_mismatch",
        RoomError::TurnFailed { .. } => "turn_failed",
        RoomError::AudioSource(_) => "audio_device",
        RoomError::Unreachable { .. } => "unreachable",
        RoomError::NotVerified { .. } => "not_verified",
        RoomError::PublishersGone { .. } => "publishers_gone",
        RoomError::VideoSource(_) => "video_device",
        RoomError::ScreenSource(_) => "screen_capture",
        RoomError::EventsLagged { .. } => "events_lagged",
        RoomError::LinkStalled { .. } => "link_stalled",
        _ => "room_error",
    }
}

pub(crate) async fn run(args: JoinArgs) -> anyhow::Result<i32> {
    let stamps = args.stamp_latency.then(crate::video::Latencies::default);
    let out = Out {
        json: args.json,
        stamps: stamps.clone(),
    };
    let mut role = args.role.map(|role| match role {
        RoleArg::Publisher => plenum::Role::Publisher,
        RoleArg::Viewer => plenum::Role::Viewer,
        RoleArg::Both => plenum::Role::Both,
    });
    let (server, room) = match &args.invite {
        Some(link) => match plenum::Invite::parse(link) {
            Ok(invite) => {
                role = role.or(invite.role);
                (invite.server, invite.room.as_str().to_owned())
            }
            Err(e) => {
                out.error("bad_invite", e.to_string());
                return Ok(2);
            }
        },
        // clap requires both when there is no invite.
        None => (
            args.server
                .clone()
                .or_else(|| args.signal.clone())
                .unwrap_or_default(),
            args.room.clone().unwrap_or_default(),
        ),
    };
    let identity = match &args.identity {
        Some(path) => match plenum::Identity::load_or_create(path) {
            Ok(identity) => identity,
            Err(e) => {
                out.error("bad_identity_file", e.to_string());
                return Ok(2);
            }
        },
        None => plenum::Identity::generate(),
    };
    let key = identity.public().encode();
    let transport = match args.ice_transport.as_str() {
        "relay" => plenum::IceTransport::Relay,
        _ => plenum::IceTransport::All,
    };
    let mut builder = RoomConfig::builder(&room, &args.name)
        .server(&server)
        .password(args.password.clone())
        .identity(identity)
        .token(args.token.clone())
        .ice_transport(transport)
        .ice_servers(ice_servers(&args))
        .simulate_audio_loss(args.simulate_audio_loss)
        .video_bitrate(args.video_bitrate)
        .audio_bitrate(args.audio_bitrate)
        .voice_processing(plenum_media::ProcessingConfig {
            echo_cancellation: !args.no_echo_cancellation,
            noise_suppression: !args.no_noise_suppression,
        })
        .mesh(|m| m.both_initiate(args.both_initiate))
        .topology(match args.topology {
            TopologyArg::Mesh => TopologySpec::Mesh,
            TopologyArg::Cells => {
                TopologySpec::cells(args.cell_size).with_bridges_per_edge(args.bridges_per_edge)
            }
            TopologyArg::Tree => TopologySpec::Tree {
                max_degree: args.max_degree,
                root_degree: args.root_degree,
            },
            TopologyArg::Relay => TopologySpec::relay(args.max_neighbours),
            TopologyArg::Host => TopologySpec::Host {},
        })
        .root_secret(args.secret.clone().filter(|_| args.root))
        .init_data(args.init_data.clone())
        .role(role.unwrap_or_default())
        .credentials(args.credentials.clone())
        .verify(args.accept_credentials.clone().map(plenum::Verify::exactly))
        .queue_size(args.queue_size)
        .reconnect_pings(
            std::time::Duration::from_secs_f64(args.ping_interval.clamp(0.1, 86_400.0)),
            args.ping_attempts,
        )
        .publish_without_grant(args.publish_without_grant);
    if !args.bind_ip.is_empty() {
        builder = builder.udp_bind(
            args.bind_ip
                .iter()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect(),
        );
    }
    let config = match builder.build() {
        Ok(config) => config,
        Err(e) => {
            out.error("bad_config", e.to_string());
            return Ok(2);
        }
    };
    let (room, mut events) = match Room::join(config).await {
        Ok(joined) => joined,
        Err(plenum::JoinError::Refused { code, message }) => {
            out.error(code.as_str(), message);
            return Ok(2);
        }
        Err(e) => {
            out.error("join_failed", e.to_string());
            return Ok(2);
        }
    };
    out.event(
        json!({
            "event": "joined", "peer": room.id(), "room": room.name(), "key": key,
            "grants": room.grants(),
        }),
        || format!("* joined {} as {} ({})", room.name(), args.name, room.id()),
    );
    if let Some(path) = &args.record_audio {
        match plenum_media::WavRecorder::create(path) {
            Ok(recorder) => {
                if room.set_audio_sink(Some(Box::new(recorder))).await.is_err() {
                    return Ok(0);
                }
            }
            Err(e) => out.error("audio_file", format!("{}: {e}", path.display())),
        }
    }
    if let Some(name) = &args.speaker {
        let wanted = (name != "default").then_some(name.as_str());
        match plenum_media::Speaker::open(wanted) {
            Ok(speaker) => {
                if room.set_audio_sink(Some(Box::new(speaker))).await.is_err() {
                    return Ok(0);
                }
            }
            // Like a missing microphone: said, and the call goes on without it.
            Err(e) => out.error("audio_device", e.to_string()),
        }
    }
    let mut sink: Option<Box<dyn plenum_media::VideoSink>> = None;
    if let Some(dir) = &args.save_frames {
        match crate::video::FrameSaver::new(dir.clone(), args.save_frames_per_second) {
            Ok(saver) => sink = Some(Box::new(saver)),
            Err(e) => out.error("video_file", format!("{}: {e}", dir.display())),
        }
    }
    if let Some(latencies) = stamps {
        sink = Some(Box::new(crate::video::StampLatency::new(latencies, sink)));
    }
    if sink.is_some() {
        room.set_video_sink(sink);
    }
    // A source that cannot be opened is reported; the peer stays in the room without it.
    set_audio(&out, &room, &args.audio).await;
    set_video(&out, &room, &args.video).await;
    if let Some(target) = &args.screen {
        set_screen(&out, &room, target, args.screen_fps).await;
    }

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => print_event(&out, event),
                None => return Ok(0),
            },
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let leave = if args.json {
                        handle_json_command(&out, &room, &line).await
                    } else {
                        handle_text_command(&out, &room, &line).await
                    };
                    if leave {
                        // Completes the recording before the process ends.
                        let _ = room.set_audio_sink(None).await;
                        room.leave().await;
                        out.event(json!({"event": "left"}), || "* left".into());
                        return Ok(0);
                    }
                }
                // End of input does not leave: the peer stays in the room.
                Ok(None) => stdin_open = false,
                Err(e) => {
                    out.error("bad_command", format!("stdin: {e}"));
                    stdin_open = false;
                }
            },
        }
    }
}

/// The stream id of a publication, or an error line (`not_permitted` for a viewer).
fn published(out: &Out, result: Result<String, plenum::PublishError>) -> Option<String> {
    match result {
        Ok(stream) => Some(stream),
        Err(e @ plenum::PublishError::NotPermitted) => {
            out.error("not_permitted", e.to_string());
            None
        }
        Err(plenum::PublishError::Closed) => None,
    }
}

async fn set_audio(out: &Out, room: &Room, spec: &str) {
    match crate::audio::source(spec) {
        Ok(Some(source)) => {
            if let Some(stream) =
                published(out, room.add_stream(source, json!({"source": spec})).await)
            {
                out.event(
                    json!({"event": "audio", "source": spec, "stream": stream}),
                    || format!("* publishing audio: {spec}"),
                );
            }
        }
        Ok(None) => {
            if let Some(stream) = room.audio_stream() {
                let _ = room.remove_stream(&stream).await;
            }
        }
        Err((code, message)) => out.error(code, message),
    }
}

async fn set_video(out: &Out, room: &Room, spec: &str) {
    match crate::video::source(spec) {
        Ok(Some(source)) => {
            if let Some(stream) = published(
                out,
                room.add_video_stream(source, json!({"source": spec})).await,
            ) {
                out.event(
                    json!({"event": "video", "source": spec, "stream": stream}),
                    || format!("* publishing video: {spec}"),
                );
            }
        }
        Ok(None) => {
            if let Some(stream) = room.video_stream() {
                let _ = room.remove_stream(&stream).await;
            }
        }
        Err((code, message)) => out.error(code, message),
    }
}

async fn set_screen(out: &Out, room: &Room, target: &str, fps: u32) {
    match crate::video::screen(target, fps) {
        Ok(Some(source)) => {
            let metadata = json!({"type": "screen", "source": target});
            if let Some(stream) = published(out, room.add_video_stream(source, metadata).await) {
                out.event(
                    json!({"event": "screen", "source": target, "stream": stream}),
                    || format!("* sharing screen: {target}"),
                );
            }
        }
        Ok(None) => {
            if let Some(stream) = room.screen_stream() {
                let _ = room.remove_stream(&stream).await;
                out.event(
                    json!({"event": "screen", "source": "none", "stream": stream}),
                    || "* screen sharing stopped".into(),
                );
            }
        }
        Err((code, message)) => out.error(code, message),
    }
}

fn print_event(out: &Out, event: RoomEvent) {
    match event {
        RoomEvent::StreamAdded { peer, stream, kind, metadata, muted } => out.event(
            json!({"event": "stream_add", "peer": peer, "stream": stream, "kind": kind, "metadata": metadata, "muted": muted}),
            || format!("* {peer} publishes {kind} ({stream})"),
        ),
        RoomEvent::StreamRemoved { peer, stream } => out.event(
            json!({"event": "stream_remove", "peer": peer, "stream": stream}),
            || format!("* {peer} stopped {stream}"),
        ),
        RoomEvent::StreamMuted { peer, stream, muted } => out.event(
            json!({"event": "stream_muted", "peer": peer, "stream": stream, "muted": muted}),
            || format!("* {peer} {} {stream}", if muted { "muted" } else { "unmuted" }),
        ),
        RoomEvent::Speaking { peer, speaking } => out.event(
            json!({"event": "speaking", "peer": peer, "speaking": speaking}),
            || format!("* {peer} {}", if speaking { "speaks" } else { "is quiet" }),
        ),
        RoomEvent::PeerJoin { peer, name } => out.event(
            json!({"event": "peer_join", "peer": peer, "name": name}),
            || format!("* {name} joined ({peer})"),
        ),
        RoomEvent::PeerLeave { peer } => out
            .event(json!({"event": "peer_leave", "peer": peer}), || {
                format!("* {peer} left")
            }),
        RoomEvent::Message {
            channel,
            from,
            data,
        } => {
            let value = payload_value(&data);
            let text = value.get("text").and_then(Value::as_str).map(str::to_owned);
            out.event(
                json!({"event": "message", "channel": channel, "from": from, "data": value}),
                || match text {
                    Some(text) if channel.as_str() == "chat" => format!("<{from}> {text}"),
                    _ => format!("[{channel}] {from}: {value}"),
                },
            )
        }
        RoomEvent::Error(error) => out.error(error_code(&error), error.to_string()),
        RoomEvent::Closed => out.event(json!({"event": "closed"}), || "* room closed".into()),
        RoomEvent::SignalingResumed => out.event(json!({"event": "signaling_resumed"}), || {
            "* signaling connection back; session resumed".into()
        }),
        RoomEvent::LinkDown { peer } => out.event(json!({"event": "link_down", "peer": peer}), || {
            format!("* link to {peer} down")
        }),
        RoomEvent::LinkUp { peer } => out.event(json!({"event": "link_up", "peer": peer}), || {
            format!("* link to {peer} up")
        }),
        RoomEvent::TreeState { parent, children, depth, is_root, root, root_name, subtree } => out.event(
            json!({"event": "tree_state", "parent": parent, "children": children, "depth": depth, "is_root": is_root, "root": root, "root_name": root_name, "subtree": subtree}),
            || match (is_root, &parent) {
                (true, _) => format!("* tree root with {} children", children.len()),
                (false, Some(p)) => format!("* in the tree under {p} at depth {}, {} children", depth.unwrap_or(0), children.len()),
                (false, None) => "* looking for a parent in the tree".into(),
            },
        ),
        RoomEvent::Host { peer, is_self } => out.event(
            json!({"event": "host", "peer": peer, "is_self": is_self}),
            || match is_self {
                true => "* we are the host".into(),
                false => format!("* linked to the host {peer}"),
            },
        ),
        RoomEvent::Synced { in_sync } => out.event(
            json!({"event": "synced", "in_sync": in_sync}),
            || match in_sync {
                true => "* in step with the host".into(),
                false => "* no host: messages wait".into(),
            },
        ),
        RoomEvent::InitData { peer, data } => out.event(
            json!({"event": "init_data", "peer": peer, "data": data}),
            || format!("* {peer} joined with {data}"),
        ),
        RoomEvent::State { peer, state } => out.event(
            json!({"event": "state", "peer": peer, "state": state}),
            || format!("* {peer}: {state}"),
        ),
        RoomEvent::MemberJoined { peer, peers } => out.event(
            json!({"event": "member_joined", "peer": peer, "peers": peers}),
            || format!("* {peer} entered the room ({} peers)", peers.len()),
        ),
        RoomEvent::MemberLeft { peer, peers } => out.event(
            json!({"event": "member_left", "peer": peer, "peers": peers}),
            || format!("* {peer} left the room ({} peers)", peers.len()),
        ),
        RoomEvent::RelayState { neighbours } => out.event(
            json!({"event": "relay_state", "neighbours": neighbours}),
            || format!("* {} relay neighbours", neighbours.len()),
        ),
        RoomEvent::RelayMessage { from, hops, data } => {
            let value = payload_value(&data);
            out.event(
                json!({"event": "relay_message", "from": from, "data": value, "hops": hops}),
                || format!("[relay] {from}: {value}"),
            )
        }
        RoomEvent::Hand { peer, name, raised } => out.event(
            json!({"event": "hand", "peer": peer, "name": name, "raised": raised}),
            || match raised {
                true => format!("* {name} ({peer}) raised a hand"),
                false => format!("* {name} ({peer}) lowered a hand"),
            },
        ),
        RoomEvent::Stage { speaker, name } => out.event(
            json!({"event": "stage", "speaker": speaker, "name": name}),
            || match (&speaker, &name) {
                (Some(p), Some(name)) => format!("* {name} ({p}) is on stage"),
                (Some(p), None) => format!("* {p} is on stage"),
                (None, _) => "* nobody is on stage".into(),
            },
        ),
        RoomEvent::Seats { seats, presenter } => {
            let shown: Vec<String> = seats
                .iter()
                .map(|s| s.as_ref().map_or("-".into(), |s| s.name.to_string()))
                .collect();
            let presents = presenter
                .as_ref()
                .map_or(String::new(), |p| format!("; {} presents", p.name));
            out.event(
                json!({"event": "seats", "seats": seats, "presenter": presenter}),
                || format!("* on stage: {}{presents}", shown.join(", ")),
            )
        }
        RoomEvent::TreeLink { peer, edge } => out.event(
            json!({"event": edge.as_str(), "peer": peer}),
            || format!("* {} {peer}", edge.as_str().replace('_', " ")),
        ),
        RoomEvent::TreeMessage { origin, from, from_parent, hops, data } => {
            let value = payload_value(&data);
            out.event(
                json!({"event": "tree_message", "from": origin, "via": from, "data": value, "hops": hops, "from_parent": from_parent}),
                || format!("[tree] {origin}: {value}"),
            )
        }
        RoomEvent::MeshState(state) => {
            let bridges: Vec<Value> = state
                .bridges
                .iter()
                .map(|(peer, cell)| json!({"peer": peer, "cell": cell}))
                .collect();
            out.event(
                json!({"event": "mesh_state", "cell_id": state.cell, "cells": state.cells,
                       "cell_size": state.cell_size, "is_bridge": state.is_bridge,
                       "bridges": bridges, "epoch": state.epoch}),
                || format!("* cell {} of {} ({} peers, {} bridges)", state.cell, state.cells, state.cell_size, state.bridges.len()),
            )
        }
        RoomEvent::MeshPeer { peer, cell } => out.event(
            json!({"event": "mesh_peer_state", "peer": peer, "cell": cell}),
            || format!("* {peer} is in cell {cell}"),
        ),
        RoomEvent::MeshMessage { from, data, hops } => {
            let value = payload_value(&data);
            out.event(
                json!({"event": "mesh_message", "from": from, "data": value, "hops": hops}),
                || format!("[mesh] {from}: {value}"),
            )
        }
        other => tracing::debug!(?other, "unprinted event"),
    }
}

fn parse_peer(out: &Out, id: &str) -> Option<PeerId> {
    match PeerId::new(id) {
        Ok(peer) => Some(peer),
        Err(e) => {
            out.error("bad_command", format!("bad peer id {id:?}: {e}"));
            None
        }
    }
}

/// Runs one JSON command; returns true for `leave`.
async fn handle_json_command(out: &Out, room: &Room, line: &str) -> bool {
    let command: Command = match serde_json::from_str(line) {
        Ok(command) => command,
        Err(e) => {
            out.error("bad_command", format!("{e}: {line}"));
            return false;
        }
    };
    match command {
        Command::Send { channel, data, to } => {
            let channel = match room.channel(&channel) {
                Ok(channel) => channel,
                Err(e) => {
                    out.error("bad_channel", e.to_string());
                    return false;
                }
            };
            let target = match to {
                None => Target::All,
                Some(To::One(id)) => match parse_peer(out, &id) {
                    Some(peer) => Target::One(peer),
                    None => return false,
                },
                Some(To::Many(ids)) => {
                    let peers: Option<Vec<PeerId>> =
                        ids.iter().map(|id| parse_peer(out, id)).collect();
                    match peers {
                        Some(peers) => Target::Many(peers),
                        None => return false,
                    }
                }
            };
            let bytes = serde_json::to_vec(&data).unwrap_or_default();
            if let Err(e) = channel.send(bytes, target).await {
                out.error("send_failed", e.to_string());
            }
        }
        Command::Ping { peer } => {
            let Some(peer) = parse_peer(out, &peer) else {
                return false;
            };
            ping(out, room, peer);
        }
        Command::Peers {} => peers(out, room).await,
        Command::Stats {} => stats(out, room).await,
        Command::Raw { peer, hex } => {
            let Some(peer) = parse_peer(out, &peer) else {
                return false;
            };
            let bytes: Option<Vec<u8>> = (hex.len() % 2 == 0)
                .then(|| {
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| {
                            hex.get(i..i + 2)
                                .and_then(|b| u8::from_str_radix(b, 16).ok())
                        })
                        .collect()
                })
                .flatten();
            match bytes {
                Some(bytes) => {
                    if room.send_raw(peer, bytes).await.is_err() {
                        out.error("closed", "the room is closed");
                    }
                }
                None => out.error("bad_command", format!("not hex: {hex:?}")),
            }
        }
        Command::MeshSend { data } | Command::TreeBroadcast { data } => {
            if room.mesh_send(data.to_string()).await.is_err() {
                out.error("closed", "the room is closed");
            }
        }
        Command::Stage { peer } => {
            let speaker = match peer {
                Some(id) => match parse_peer(out, &id) {
                    Some(peer) => Some(peer),
                    None => return false,
                },
                None => None,
            };
            if let Err(e) = room.set_stage(speaker).await {
                out.error("stage_refused", e.to_string());
            }
        }
        Command::Hand { raised } => {
            if let Err(e) = room.raise_hand(raised).await {
                out.error("hand_refused", e.to_string());
            }
        }
        Command::Present { on } => {
            if let Err(e) = room.present(on).await {
                out.error("present_refused", e.to_string());
            }
        }
        Command::TreeSend { to, data } => {
            let to = match to.as_str() {
                "parent" => TreeTarget::Parent,
                "children" => TreeTarget::Children,
                id => match parse_peer(out, id) {
                    Some(peer) => TreeTarget::Peer(peer),
                    None => return false,
                },
            };
            if let Err(e) = room.tree_send(to, data.to_string()).await {
                out.error("send_failed", e.to_string());
            }
        }
        Command::RelaySend { to, data } => {
            let Some(to) = parse_peer(out, &to) else {
                return false;
            };
            if let Err(e) = room.relay_send(to, data.to_string()).await {
                out.error("send_failed", e.to_string());
            }
        }
        Command::Connect { ref peer } | Command::Disconnect { ref peer } => {
            let up = matches!(command, Command::Connect { .. });
            let Some(peer) = parse_peer(out, peer) else {
                return false;
            };
            let done = if up {
                room.connect(peer).await
            } else {
                room.disconnect(peer).await
            };
            if done.is_err() {
                out.error("closed", "the room is closed");
            }
        }
        Command::SetState { state, merge } => {
            if let Err(e) = room.set_state(state, merge).await {
                out.error("room_closed", e.to_string());
            }
        }
        Command::Links {} => match room.links().await {
            Ok(links) => {
                let list: Vec<Value> = links
                    .iter()
                    .map(|(peer, state)| json!({"peer": peer, "state": state.as_str()}))
                    .collect();
                out.event(json!({"event": "links", "links": list}), || {
                    let lines: Vec<String> = links
                        .iter()
                        .map(|(p, s)| format!("  {p} {}", s.as_str()))
                        .collect();
                    format!("* {} links\n{}", links.len(), lines.join("\n"))
                });
            }
            Err(e) => out.error("room_closed", e.to_string()),
        },
        Command::Leave {} => return true,
        Command::Audio { source } => set_audio(out, room, &source).await,
        Command::Video { source } => set_video(out, room, &source).await,
        Command::Screen { source } => {
            set_screen(out, room, &source, plenum_media::screen::DEFAULT_SCREEN_FPS).await;
        }
        Command::Mute {} | Command::Unmute {} => {
            let muted = matches!(command, Command::Mute {});
            let Some(stream) = room.audio_stream() else {
                out.error("bad_command", "no audio stream to mute");
                return false;
            };
            if room.set_stream_muted(&stream, muted).await.is_ok() {
                out.event(json!({"event": "muted", "muted": muted}), || {
                    format!("* {}", if muted { "muted" } else { "unmuted" })
                });
            }
        }
    }
    false
}

fn ping(out: &Out, room: &Room, peer: PeerId) {
    let room = room.clone();
    let json = out.json;
    tokio::spawn(async move {
        let out = Out { json, stamps: None };
        match room.ping(&peer).await {
            Ok(rtt) => {
                let rtt_ms = rtt.as_secs_f64() * 1000.0;
                out.event(
                    json!({"event": "pong", "peer": peer, "rtt_ms": rtt_ms}),
                    || format!("* pong from {peer}: {rtt_ms:.3} ms"),
                );
            }
            Err(e) => out.error("ping_failed", e.to_string()),
        }
    });
}

async fn peers(out: &Out, room: &Room) {
    match room.peers().await {
        Ok(list) => {
            let peers: Vec<Value> = list
                .iter()
                .map(|p| {
                    json!({
                        "peer": p.peer, "name": p.name, "state": p.state.as_str(),
                        "path": p.path.map(|path| path.as_str()),
                        "safety_code": p.safety_code,
                        "role": p.role.as_str(), "refused": p.refused,
                    })
                })
                .collect();
            out.event(json!({"event": "peers", "peers": peers}), || {
                let lines: Vec<String> = list
                    .iter()
                    .map(|p| format!("  {} {} {}", p.peer, p.name, p.state.as_str()))
                    .collect();
                format!("* {} peers\n{}", list.len(), lines.join("\n"))
            });
        }
        Err(e) => out.error("room_closed", e.to_string()),
    }
}

/// The call's figures as one `stats` event.
async fn stats(out: &Out, room: &Room) {
    let stats = match room.stats().await {
        Ok(stats) => stats,
        Err(e) => return out.error("room_closed", e.to_string()),
    };
    let lane = |lane: plenum_media::Content| match lane {
        plenum_media::Content::Camera => "camera",
        plenum_media::Content::Screen => "screen",
    };
    let links: Vec<Value> = stats
        .links
        .iter()
        .map(|l| {
            let sending: Vec<Value> = l
                .sending
                .iter()
                .map(|(kind, w, h)| json!({"lane": lane(*kind), "width": w, "height": h}))
                .collect();
            json!({
                "peer": l.peer, "estimate_bps": l.estimate_bps, "send_bps": l.send_bps,
                "receive_bps": l.receive_bps,
                "data_send_bps": l.data_send_bps, "data_pace_bps": l.data_pace_bps,
                "rtt_ms": l.rtt.map(|d| d.as_secs_f64() * 1000.0),
                "loss": l.loss, "sent_bytes": l.sent_bytes, "received_bytes": l.received_bytes,
                "retransmitted_bytes": l.retransmitted_bytes, "probe_bytes": l.probe_bytes,
                "retransmissions_refused": l.retransmissions_refused,
                "retransmissions_received": l.retransmissions_received,
                "queue_ms": l.queue.as_secs_f64() * 1000.0,
                "cap_bps": l.cap_bps,
                "sending": sending,
            })
        })
        .collect();
    let video: Vec<Value> = stats
        .video
        .iter()
        .map(|v| {
            json!({
                "peer": v.peer, "lane": lane(v.lane), "frames": v.frames, "fps": v.fps,
                "width": v.width, "height": v.height, "freezes": v.freezes,
                "freeze_total_ms": v.freeze_total.as_millis() as u64,
                "longest_freeze_ms": v.longest_freeze.as_millis() as u64,
            })
        })
        .collect();
    let audio: Vec<Value> = stats
        .audio
        .iter()
        .map(|a| {
            json!({
                "peer": a.peer, "packets": a.packets, "late": a.late,
                "concealed": a.concealed, "recovered": a.recovered,
                "delay_ms": a.delay.as_millis() as u64,
            })
        })
        .collect();
    out.event(
        {
            let mut event = json!({
                "event": "stats", "links": links, "video": video, "audio": audio,
                "forwarded_packets": stats.forwarded_packets,
            });
            if let Some(stamps) = &out.stamps {
                event["stamp_latency_ms"] = json!(stamps.take());
            }
            event
        },
        || {
            let lines: Vec<String> = stats
                .links
                .iter()
                .map(|l| {
                    format!(
                        "  {} estimate {} kbit/s, sending {} kbit/s, receiving {} kbit/s",
                        l.peer.short(),
                        l.estimate_bps / 1000,
                        l.send_bps / 1000,
                        l.receive_bps / 1000
                    )
                })
                .collect();
            format!("* stats\n{}", lines.join("\n"))
        },
    );
}

/// Plain-text mode: a line is a chat message; `/peers`, `/ping ID`, `/leave` are commands.
async fn handle_text_command(out: &Out, room: &Room, line: &str) -> bool {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("/leave") => return true,
        Some("/peers") => peers(out, room).await,
        Some("/ping") => match words.next().and_then(|id| parse_peer(out, id)) {
            Some(peer) => ping(out, room, peer),
            None => out.error("bad_command", "usage: /ping PEER"),
        },
        _ => {
            let chat = match room.channel("chat") {
                Ok(chat) => chat,
                Err(e) => {
                    out.error("bad_channel", e.to_string());
                    return false;
                }
            };
            let data = serde_json::to_vec(&json!({"text": line})).unwrap_or_default();
            if let Err(e) = chat.send(data, Target::All).await {
                out.error("send_failed", e.to_string());
            }
        }
    }
    false
}

/// A hand command without `raised` raises it.
fn raised() -> bool {
    true
}
