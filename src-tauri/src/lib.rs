//! The Plenum desktop app: a Tauri shell over the engine.
//!
//! [`App`] holds the state and does what each command asks; `commands.rs` exposes it to the
//! view; [`session`] runs one call; [`types`] is everything that crosses IPC, from which
//! `ui/src/bindings.ts` is generated.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod args;
pub mod bindings;
mod commands;
pub mod host;
pub mod prefs;
pub mod quality;
pub mod session;
pub mod socket;
pub mod types;
pub mod video;

use std::process::ExitCode;

use std::sync::Arc;

use clap::Parser;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{Emitter, Manager};
use tokio::sync::mpsc;

pub use app::App;

/// The name of the event carrying [`types::UiEvent`]s to the view.
pub const EVENT: &str = "plenum";

/// Sends each new tile picture to the view, from a thread of its own (scaling and colour
/// conversion stay off the call's tasks): over the picture socket when the view has opened
/// it (the faster path, docs/benchmarks.md), else over the channel it subscribed with. Raw
/// bytes either way: no JSON, no base64.
pub struct VideoPump {
    channel: Arc<std::sync::Mutex<Option<Channel<InvokeResponseBody>>>>,
}

impl VideoPump {
    /// How often the pump looks for new pictures (faster than any source's frame rate).
    const PERIOD: std::time::Duration = std::time::Duration::from_millis(8);

    fn start(tiles: video::VideoTiles, socket: socket::PictureSocket) -> std::io::Result<Self> {
        let channel: Arc<std::sync::Mutex<Option<Channel<InvokeResponseBody>>>> = Arc::default();
        let shared = Arc::clone(&channel);
        std::thread::Builder::new()
            .name("plenum-video-pump".into())
            .spawn(move || {
                let mut resizer = fast_image_resize::Resizer::new();
                loop {
                    std::thread::sleep(Self::PERIOD);
                    let channel = shared.lock().ok().and_then(|c| c.clone());
                    let on_socket = socket.has_views();
                    if channel.is_none() && !on_socket {
                        continue;
                    }
                    for packet in tiles.render_new(&mut resizer) {
                        if on_socket {
                            socket.offer(&packet);
                        } else if let Some(channel) = &channel
                            && let Err(e) = channel.send(InvokeResponseBody::Raw(packet))
                        {
                            tracing::debug!(error = %e, "picture not delivered to the view");
                        }
                    }
                }
            })?;
        Ok(Self { channel })
    }

    /// Pictures go to `channel` from now on (a reloaded view subscribes again).
    fn subscribe(&self, channel: Channel<InvokeResponseBody>) {
        if let Ok(mut slot) = self.channel.lock() {
            *slot = Some(channel);
        }
    }
}

impl std::fmt::Debug for VideoPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPump").finish_non_exhaustive()
    }
}

/// Runs the app until its window closes.
pub fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = args::Args::parse();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_opener::init())
        .setup(move |tauri_app| {
            let config_dir = tauri_app.path().app_config_dir()?;
            let (ui_tx, mut ui_rx) = mpsc::channel(1024);
            let app = App::new(args, config_dir, ui_tx);
            let socket = tauri::async_runtime::block_on(socket::PictureSocket::bind())?;
            tauri_app.manage(VideoPump::start(app.video.clone(), socket.clone())?);
            tauri_app.manage(socket);
            tauri_app.manage(app);
            let handle = tauri_app.handle().clone();
            tauri::async_runtime::spawn(async move {
                while let Some(event) = ui_rx.recv().await {
                    if let Err(e) = handle.emit(EVENT, event) {
                        tracing::warn!(error = %e, "event not delivered to the view");
                    }
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::prefs,
            commands::launch_request,
            commands::read_invite,
            commands::host,
            commands::join,
            commands::leave,
            commands::send_chat,
            commands::raise_hand,
            commands::send_cursor,
            commands::board_begin,
            commands::board_points,
            commands::board_end,
            commands::board_undo,
            commands::board_clear,
            commands::board_snapshot,
            commands::set_mic,
            commands::audio_devices,
            commands::set_devices,
            commands::mic_level,
            commands::video_sizes,
            commands::video_subscribe,
            commands::video_devices,
            commands::set_camera,
            commands::share_screen,
            commands::set_verified,
            commands::picture_socket,
            commands::transport_probe,
        ])
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "the app could not start");
            return ExitCode::FAILURE;
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::ExitRequested { .. } = event {
            // Say goodbye to the room before the process ends.
            let state = handle.state::<App>();
            tauri::async_runtime::block_on(state.leave());
        }
    });
    ExitCode::SUCCESS
}
