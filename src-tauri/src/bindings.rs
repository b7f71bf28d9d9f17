//! Generates `ui/src/bindings.ts` from the IPC types. The test
//! `bindings-match-the-rust-types` fails when the committed file is stale; run it with
//! `PLENUM_WRITE_BINDINGS=1` to rewrite the file.

use ts_rs::{Config, TS};

use crate::types::*;
use plenum_collab::{BoardChange, ClearMark, Point, Stroke, StrokeId, Tool};

/// The commands the view may invoke.
pub const COMMANDS: &[&str] = include!("command_names.rs");

/// The text of `ui/src/bindings.ts`.
pub fn generate() -> String {
    let cfg = Config::new().with_large_int("number");
    let decls = [
        JoinRequest::decl(&cfg),
        HostRequest::decl(&cfg),
        RoomShape::decl(&cfg),
        Role::decl(&cfg),
        NetworkView::decl(&cfg),
        NetworkPeer::decl(&cfg),
        StagePeer::decl(&cfg),
        Joined::decl(&cfg),
        RecentRoom::decl(&cfg),
        Prefs::decl(&cfg),
        InviteView::decl(&cfg),
        AboutInfo::decl(&cfg),
        DeviceReport::decl(&cfg),
        UpdateView::decl(&cfg),
        UpdateInfo::decl(&cfg),
        PeerState::decl(&cfg),
        PeerView::decl(&cfg),
        QualityGrade::decl(&cfg),
        LinkQuality::decl(&cfg),
        ReceivedVideo::decl(&cfg),
        ChatLine::decl(&cfg),
        StrokeStart::decl(&cfg),
        StrokeStarted::decl(&cfg),
        UiEvent::decl(&cfg),
        ErrorKind::decl(&cfg),
        CommandError::decl(&cfg),
        AudioDevices::decl(&cfg),
        AudioDevice::decl(&cfg),
        VideoDevices::decl(&cfg),
        VideoChoice::decl(&cfg),
        VideoState::decl(&cfg),
        SocketInfo::decl(&cfg),
        MicState::decl(&cfg),
        TileSize::decl(&cfg),
        Point::decl(&cfg),
        Tool::decl(&cfg),
        StrokeId::decl(&cfg),
        ClearMark::decl(&cfg),
        Stroke::decl(&cfg),
        BoardChange::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/types.rs and plenum-collab by src-tauri/src/bindings.rs.\n\
         // Do not edit: run `PLENUM_WRITE_BINDINGS=1 cargo test -p plenum-app --test \
         bindings-match-the-rust-types`.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str("/** The commands the view may invoke. */\nexport type Command =\n");
    for (i, name) in COMMANDS.iter().enumerate() {
        out.push_str(&format!(
            "  | \"{name}\"{}\n",
            if i + 1 == COMMANDS.len() { ";" } else { "" }
        ));
    }
    out.push_str(&format!(
        "\n/** The event carrying `UiEvent`s. */\nexport const EVENT = \"{}\";\n",
        crate::EVENT
    ));
    out
}
