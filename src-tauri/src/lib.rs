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
pub mod session;
pub mod types;

use std::process::ExitCode;

use clap::Parser;
use tauri::{Emitter, Manager};
use tokio::sync::mpsc;

pub use app::App;

/// The name of the event carrying [`types::UiEvent`]s to the view.
pub const EVENT: &str = "plenum";

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
            tauri_app.manage(App::new(args, config_dir, ui_tx));
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
