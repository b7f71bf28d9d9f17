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
pub mod devices;
pub mod host;
pub mod prefs;
pub mod quality;
pub mod session;
pub mod socket;
mod stage;
pub mod types;
pub mod update;
pub mod video;

use std::process::ExitCode;

use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_deep_link::DeepLinkExt;
use tauri_plugin_window_state::StateFlags;
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

/// What the About dialog shows.
pub fn about<R: Runtime>(handle: &AppHandle<R>) -> types::AboutInfo {
    let info = handle.package_info();
    types::AboutInfo {
        name: info.name.clone(),
        version: info.version.to_string(),
        licence: env!("CARGO_PKG_LICENSE").to_owned(),
        package: tauri::utils::platform::bundle_type().map(|b| b.to_string()),
    }
}

/// Reads the command line, with the version the app was built as (a release may be built
/// as another version than the workspace's).
fn parse_args(version: &str) -> args::Args {
    // Once per run: clap keeps the version for the process's life.
    let version: &'static str = version.to_owned().leak();
    let matches = args::Args::command().version(version).get_matches();
    args::Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// What the app remembers of its window between runs.
const WINDOW_STATE: StateFlags = StateFlags::SIZE
    .union(StateFlags::POSITION)
    .union(StateFlags::MAXIMIZED);
/// A window moved or resized is remembered once it has been still this long.
const WINDOW_STILL: std::time::Duration = std::time::Duration::from_millis(500);

/// Saves the window's place and size each time it comes to rest after a move or a resize,
/// not only when it is closed: an app ended any other way (logging out, a crash, a kill)
/// opens where it was all the same.
fn save_window_state_when_still<R: Runtime>(app: &AppHandle<R>, window: &tauri::WebviewWindow<R>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tauri_plugin_window_state::AppHandleExt;
    let moves = Arc::new(AtomicU64::new(0));
    let app = app.clone();
    window.on_window_event(move |event| {
        if !matches!(
            event,
            tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_)
        ) {
            return;
        }
        let this = moves.fetch_add(1, Ordering::Relaxed) + 1;
        let (moves, app) = (Arc::clone(&moves), app.clone());
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(WINDOW_STILL).await;
            if moves.load(Ordering::Relaxed) == this
                && let Err(e) = app.save_window_state(WINDOW_STATE)
            {
                tracing::debug!(error = %e, "window state not saved");
            }
        });
    });
}

/// Brings the window up (a second start, or a link, wants the user to see it).
fn raise_window<R: Runtime>(handle: &AppHandle<R>) {
    if let Some(window) = handle.get_webview_window("main") {
        // A desktop that refuses focus leaves the window where it is; nothing else depends on it.
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Hands an invite link opened while the app runs to the view.
fn open_invite<R: Runtime>(handle: &AppHandle<R>, link: &str) {
    let app = handle.state::<App>();
    match app.invited(link) {
        Ok(request) => app.notify(types::UiEvent::Invited { request }),
        Err(e) => tracing::warn!(%link, error = %e, "an invite link that does not name a room"),
    }
}

/// `plenum-app --update check|install`: asks the update server, prints one JSON line, and
/// ends the app (0: up to date or installed; 1: refused or failed).
async fn update_from_command_line<R: Runtime>(handle: AppHandle<R>, mode: args::UpdateArg) {
    let result = match mode {
        args::UpdateArg::Check => update::check(&handle)
            .await
            .map(|view| serde_json::json!({ "update": view })),
        args::UpdateArg::Install => update::install(&handle)
            .await
            .map(|version| serde_json::json!({ "installed": version })),
    };
    let (line, code) = match result {
        Ok(line) => (line, 0),
        Err(e) => (serde_json::json!({ "error": e }), 1),
    };
    println!("{line}");
    handle.exit(code);
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
    let context = tauri::generate_context!();
    let args = parse_args(&context.package_info().version.to_string());
    let update_mode = args.update;
    let mut builder = tauri::Builder::default();
    if update_mode.is_none() {
        // A second start (an invite link clicked while the app runs) hands its command line
        // to this one (the link reaches `on_open_url`) and ends.
        builder = builder
            .plugin(tauri_plugin_single_instance::init(|handle, _argv, _cwd| {
                raise_window(handle);
            }))
            .plugin(
                tauri_plugin_window_state::Builder::new()
                    .with_state_flags(WINDOW_STATE)
                    .build(),
            );
    }
    let result = builder
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(tauri_plugin_opener::init())
        .setup(move |tauri_app| {
            let config_dir = tauri_app.path().app_config_dir()?;
            let (ui_tx, mut ui_rx) = mpsc::channel(1024);
            if let Some(window) = tauri_app.get_webview_window("main") {
                match update_mode {
                    None => save_window_state_when_still(tauri_app.handle(), &window),
                    Some(_) => window.hide()?,
                }
            }
            if let Some(mode) = update_mode {
                tauri::async_runtime::spawn(update_from_command_line(
                    tauri_app.handle().clone(),
                    mode,
                ));
            }
            let app = App::new(args, config_dir, ui_tx);
            let socket = tauri::async_runtime::block_on(socket::PictureSocket::bind())?;
            tauri_app.manage(VideoPump::start(app.video.clone(), socket.clone())?);
            tauri_app.manage(socket);
            tauri_app.manage(app);
            let handle = tauri_app.handle().clone();
            tauri_app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    open_invite(&handle, url.as_str());
                }
            });
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
            commands::set_stage,
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
            commands::about,
            commands::check_update,
            commands::install_update,
            commands::device_check_done,
            commands::device_check,
            commands::device_check_level,
            commands::device_check_stop,
            commands::play_test_sound,
        ])
        .build(context);
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "the app could not start");
            return ExitCode::FAILURE;
        }
    };
    let code = app.run_return(|handle, event| {
        if let tauri::RunEvent::ExitRequested { .. } = event {
            // Say goodbye to the room before the process ends.
            let state = handle.state::<App>();
            tauri::async_runtime::block_on(state.leave());
        }
    });
    if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
