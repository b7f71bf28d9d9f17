// The commands the view may invoke; build.rs turns each into an `allow-<name>` permission and
// bindings.rs into the `Command` type of ui/src/bindings.ts.
&[
    "prefs",
    "launch_request",
    "read_invite",
    "host",
    "join",
    "leave",
    "send_chat",
    "send_cursor",
    "board_begin",
    "board_points",
    "board_end",
    "board_undo",
    "board_clear",
    "board_snapshot",
    "set_mic",
    "audio_devices",
    "set_devices",
    "mic_level",
    "video_sizes",
    "video_subscribe",
]
