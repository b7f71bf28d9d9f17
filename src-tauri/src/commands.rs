//! The commands the view invokes: each hands its arguments to [`App`].

use plenum_collab::{BoardChange, Point, Stroke};
use tauri::State;

use crate::app::App;
use crate::types::{AudioDevices, MicState, TileSize, VideoDevices, VideoState};
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
