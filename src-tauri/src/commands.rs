//! The commands the view invokes: each hands its arguments to [`App`].

use plenum_collab::{BoardChange, Point, Stroke};
use tauri::State;

use crate::app::App;
use crate::types::{AudioDevices, MicState, SocketInfo, TileSize, VideoDevices, VideoState};
use crate::types::{
    ChatLine, CommandError, HostRequest, InviteView, JoinRequest, Joined, Prefs, StrokeStart,
    StrokeStarted,
};

type Result<T> = std::result::Result<T, CommandError>;

#[tauri::command]
pub(crate) fn prefs(app: State<'_, App>) -> Prefs {
    app.prefs()
}

#[tauri::command]
pub(crate) fn launch_request(app: State<'_, App>) -> Result<Option<JoinRequest>> {
    app.launch_request()
}

#[tauri::command]
pub(crate) fn read_invite(app: State<'_, App>, link: String) -> Result<InviteView> {
    app.read_invite(&link)
}

#[tauri::command]
pub(crate) async fn host(app: State<'_, App>, req: HostRequest) -> Result<Joined> {
    app.host(req).await
}

#[tauri::command]
pub(crate) async fn join(app: State<'_, App>, req: JoinRequest) -> Result<Joined> {
    app.join(req).await
}

#[tauri::command]
pub(crate) async fn leave(app: State<'_, App>) -> Result<()> {
    app.leave().await;
    Ok(())
}

#[tauri::command]
pub(crate) async fn send_chat(app: State<'_, App>, text: String) -> Result<ChatLine> {
    app.send_chat(text).await
}

#[tauri::command]
pub(crate) async fn raise_hand(app: State<'_, App>, raised: bool) -> Result<bool> {
    app.raise_hand(raised).await
}

#[tauri::command]
pub(crate) async fn set_stage(app: State<'_, App>, peer: Option<String>) -> Result<()> {
    app.set_stage(peer).await
}

#[tauri::command]
pub(crate) async fn send_cursor(app: State<'_, App>, at: Option<(f32, f32)>) -> Result<()> {
    app.send_cursor(at).await
}

#[tauri::command]
pub(crate) async fn board_begin(app: State<'_, App>, start: StrokeStart) -> Result<StrokeStarted> {
    app.board_begin(start).await
}

#[tauri::command]
pub(crate) async fn board_points(
    app: State<'_, App>,
    seq: u32,
    points: Vec<Point>,
) -> Result<BoardChange> {
    app.board_points(seq, points).await
}

#[tauri::command]
pub(crate) async fn board_end(app: State<'_, App>, seq: u32) -> Result<BoardChange> {
    app.board_end(seq).await
}

#[tauri::command]
pub(crate) async fn board_undo(app: State<'_, App>) -> Result<Option<BoardChange>> {
    app.board_undo().await
}

#[tauri::command]
pub(crate) async fn board_clear(app: State<'_, App>) -> Result<BoardChange> {
    app.board_clear().await
}

#[tauri::command]
pub(crate) async fn board_snapshot(app: State<'_, App>) -> Result<Vec<Stroke>> {
    app.board_snapshot().await
}

#[tauri::command]
pub(crate) async fn set_mic(app: State<'_, App>, on: bool) -> Result<MicState> {
    app.set_mic(on).await
}

#[tauri::command]
pub(crate) fn audio_devices(app: State<'_, App>) -> AudioDevices {
    app.audio_devices()
}

#[tauri::command]
pub(crate) async fn set_devices(
    app: State<'_, App>,
    microphone: Option<String>,
    speaker: Option<String>,
) -> Result<Option<MicState>> {
    app.set_devices(microphone, speaker).await
}

#[tauri::command]
pub(crate) async fn mic_level(app: State<'_, App>) -> Result<Option<f32>> {
    // JSON has no -inf: silence or no microphone is `null`.
    app.mic_level().await.map(|l| l.is_finite().then_some(l))
}

#[tauri::command]
pub(crate) fn video_sizes(app: State<'_, App>, sizes: Vec<TileSize>) {
    app.video_sizes(sizes);
}

#[tauri::command]
pub(crate) fn video_subscribe(
    pump: State<'_, crate::VideoPump>,
    on_frame: tauri::ipc::Channel<tauri::ipc::InvokeResponseBody>,
) {
    pump.subscribe(on_frame);
}

#[tauri::command]
pub(crate) fn video_devices(app: State<'_, App>) -> VideoDevices {
    app.video_devices()
}

#[tauri::command]
pub(crate) async fn set_camera(app: State<'_, App>, camera: Option<String>) -> Result<VideoState> {
    app.set_camera(camera).await
}

#[tauri::command]
pub(crate) async fn share_screen(
    app: State<'_, App>,
    target: Option<String>,
) -> Result<VideoState> {
    app.share_screen(target).await
}

#[tauri::command]
pub(crate) async fn set_verified(app: State<'_, App>, peer: String, verified: bool) -> Result<()> {
    app.set_verified(peer, verified).await
}

#[tauri::command]
pub(crate) fn picture_socket(socket: State<'_, crate::socket::PictureSocket>) -> SocketInfo {
    SocketInfo {
        url: socket.url.clone(),
        token: socket.token.clone(),
    }
}

/// Sends `count` packets of `bytes` bytes (a picture's worth) to the view over `transport`
/// (`channel`: `on_data`; `socket`: the picture socket), to compare the two paths.
#[tauri::command]
pub(crate) async fn transport_probe(
    socket: State<'_, crate::socket::PictureSocket>,
    transport: String,
    count: u32,
    bytes: u32,
    on_data: tauri::ipc::Channel<tauri::ipc::InvokeResponseBody>,
) -> Result<u32> {
    const MAX_BYTES: u32 = 16 * 1024 * 1024;
    if count > 1000 || bytes > MAX_BYTES {
        return Err(CommandError::bad_input(format!(
            "at most 1000 packets of {MAX_BYTES} bytes"
        )));
    }
    let mut packet = vec![7u8; bytes as usize];
    let mut sent = 0;
    for i in 0..count {
        if let Some(first) = packet.first_mut() {
            *first = i as u8;
        }
        let delivered = match transport.as_str() {
            "channel" => on_data
                .send(tauri::ipc::InvokeResponseBody::Raw(packet.clone()))
                .is_ok(),
            "socket" => socket.send(&packet).await > 0,
            other => {
                return Err(CommandError::bad_input(format!(
                    "unknown transport {other:?}: channel or socket"
                )));
            }
        };
        sent += u32::from(delivered);
    }
    Ok(sent)
}

#[tauri::command]
pub(crate) fn about(handle: tauri::AppHandle) -> crate::types::AboutInfo {
    crate::about(&handle)
}

#[tauri::command]
pub(crate) async fn check_update(handle: tauri::AppHandle) -> Result<crate::types::UpdateView> {
    crate::update::check(&handle).await
}

/// Installs the offered update (the user said yes), then restarts into it.
#[tauri::command]
pub(crate) async fn install_update(handle: tauri::AppHandle, app: State<'_, App>) -> Result<()> {
    crate::update::install(&handle).await?;
    app.leave().await;
    crate::update::restart(&handle)
}

#[tauri::command]
pub(crate) async fn device_check_done(app: State<'_, App>, name: Option<String>) -> Result<()> {
    app.device_check_done(name.as_deref()).await
}

#[tauri::command]
pub(crate) async fn device_check(
    app: State<'_, App>,
    microphone: Option<String>,
    camera: Option<String>,
) -> Result<crate::types::DeviceReport> {
    app.device_check(microphone, camera).await
}

#[tauri::command]
pub(crate) fn device_check_level(app: State<'_, App>) -> f32 {
    app.device_check_level()
}

#[tauri::command]
pub(crate) async fn device_check_stop(app: State<'_, App>) -> Result<()> {
    app.device_check_stop().await;
    Ok(())
}

#[tauri::command]
pub(crate) async fn play_test_sound(app: State<'_, App>, speaker: Option<String>) -> Result<()> {
    app.play_test_sound(speaker).await
}
