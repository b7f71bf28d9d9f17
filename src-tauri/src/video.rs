//! Pictures for the tiles: the room's video sink keeps each peer's newest picture; the view
//! says what size each tile is; a pump renders each new picture once, at its tile's size, as
//! RGBA in a small binary packet for the view's canvas. Pictures never travel as JSON.
//!
//! Tiles are named by the peer id (its camera) or `PEER/screen` (its shared screen).
//!
//! Packet: `1` (version), the tile name's length (u8) and bytes, width and height (u16 little
//! endian), then width x height x 4 bytes of RGBA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fast_image_resize::images::Image;
use fast_image_resize::{PixelType, ResizeAlg, ResizeOptions, Resizer};
use plenum_media::{Content, VideoFrame, VideoSink, VideoSource};

/// The largest tile picture sent (a tile never needs more).
const MAX_SIDE: u32 = 1920;

#[derive(Default)]
struct State {
    /// Each tile's newest picture and its sequence number.
    latest: HashMap<String, (u64, Arc<VideoFrame>)>,
    /// The sequence number last rendered per peer.
    rendered: HashMap<String, u64>,
    /// The size each tile is shown at, in device pixels.
    sizes: HashMap<String, (u32, u32)>,
    next: u64,
}

/// Shared between the room's video sink and the pump.
#[derive(Clone, Default)]
pub struct VideoTiles {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for VideoTiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTiles").finish_non_exhaustive()
    }
}

impl VideoTiles {
    /// The sink to give the room.
    pub fn sink(&self) -> Box<dyn VideoSink> {
        Box::new(self.clone())
    }

    /// The sizes tiles are shown at now (peers not listed get no pictures).
    pub fn set_sizes(&self, sizes: impl IntoIterator<Item = (String, u32, u32)>) {
        if let Ok(mut state) = self.state.lock() {
            state.sizes = sizes
                .into_iter()
                .filter(|(_, w, h)| *w >= 2 && *h >= 2)
                .map(|(peer, w, h)| (peer, (w.min(MAX_SIDE), h.min(MAX_SIDE))))
                .collect();
            // A tile that changed size wants its picture again.
            state.rendered.clear();
        }
    }

    /// Whether `tile` has a picture.
    pub fn shows(&self, tile: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.latest.contains_key(tile))
    }

    /// Forgets a peer's picture (it left or stopped its video).
    pub fn forget(&self, peer: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.latest.remove(peer);
            state.rendered.remove(peer);
        }
    }

    /// Forgets everything (the call ended).
    pub fn clear(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::default();
        }
    }

    /// Packets for every picture not rendered yet, each at its tile's size.
    pub fn render_new(&self, resizer: &mut Resizer) -> Vec<Vec<u8>> {
        let work: Vec<(String, Arc<VideoFrame>, (u32, u32))> = {
            let Ok(mut state) = self.state.lock() else {
                return Vec::new();
            };
            let state = &mut *state;
            let mut work = Vec::new();
            for (peer, (seq, frame)) in &state.latest {
                let Some(size) = state.sizes.get(peer) else {
                    continue;
                };
                if state.rendered.get(peer) == Some(seq) {
                    continue;
                }
                state.rendered.insert(peer.clone(), *seq);
                work.push((peer.clone(), frame.clone(), *size));
            }
            work
        };
        work.into_iter()
            .filter_map(|(peer, frame, size)| packet(resizer, &peer, &frame, size))
            .collect()
    }
}

impl VideoSink for VideoTiles {
    fn frame(&mut self, peer: &str, lane: Content, frame: VideoFrame) {
        self.show(tile_name(peer, lane), frame);
    }
}

impl VideoTiles {
    /// The newest picture for a tile.
    pub fn show(&self, tile: String, frame: VideoFrame) {
        if let Ok(mut state) = self.state.lock() {
            state.next += 1;
            let seq = state.next;
            state.latest.insert(tile, (seq, Arc::new(frame)));
        }
    }

    /// Wraps a source we publish so that our own tile shows what it sends (the self view).
    pub fn preview(&self, me: &str, source: Box<dyn VideoSource>) -> Box<dyn VideoSource> {
        Box::new(Preview {
            tile: tile_name(me, source.content()),
            tiles: self.clone(),
            inner: source,
        })
    }
}

/// A source whose pictures also go to our own tile.
struct Preview {
    inner: Box<dyn VideoSource>,
    tiles: VideoTiles,
    tile: String,
}

impl VideoSource for Preview {
    fn next_frame(&mut self, now_ms: u32) -> Option<VideoFrame> {
        let picture = self.inner.next_frame(now_ms)?;
        self.tiles.show(self.tile.clone(), picture.clone());
        Some(picture)
    }

    fn fps(&self) -> u32 {
        self.inner.fps()
    }

    fn content(&self) -> Content {
        self.inner.content()
    }

    fn take_error(&mut self) -> Option<String> {
        self.inner.take_error()
    }
}

/// The tile a peer's camera or screen is drawn in.
pub fn tile_name(peer: &str, lane: Content) -> String {
    match lane {
        Content::Camera => peer.to_owned(),
        Content::Screen => format!("{peer}/screen"),
    }
}

/// The picture scaled to fit `(width, height)` with its aspect kept, as a packet.
fn packet(
    resizer: &mut Resizer,
    peer: &str,
    frame: &VideoFrame,
    (width, height): (u32, u32),
) -> Option<Vec<u8>> {
    let scale = f64::min(
        f64::from(width) / f64::from(frame.width),
        f64::from(height) / f64::from(frame.height),
    )
    .min(1.0);
    let w = ((f64::from(frame.width) * scale) as u32).max(2);
    let h = ((f64::from(frame.height) * scale) as u32).max(2);
    let rgba = frame.to_rgba();
    let pixels = if (w, h) == (frame.width, frame.height) {
        rgba
    } else {
        let src = Image::from_vec_u8(frame.width, frame.height, rgba, PixelType::U8x4).ok()?;
        let mut dst = Image::new(w, h, PixelType::U8x4);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(
            fast_image_resize::FilterType::Bilinear,
        ));
        resizer.resize(&src, &mut dst, &options).ok()?;
        dst.into_vec()
    };
    let id = peer.as_bytes();
    let mut out = Vec::with_capacity(6 + id.len() + pixels.len());
    out.push(1);
    out.push(u8::try_from(id.len()).ok()?);
    out.extend_from_slice(id);
    out.extend_from_slice(&u16::try_from(w).ok()?.to_le_bytes());
    out.extend_from_slice(&u16::try_from(h).ok()?.to_le_bytes());
    out.extend_from_slice(&pixels);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_media::TestPattern;

    #[test]
    fn each_new_picture_is_rendered_once_at_its_tiles_size() {
        let tiles = VideoTiles::default();
        let mut sink = tiles.sink();
        let mut resizer = Resizer::new();
        let mut pattern = TestPattern::new(640, 360);
        sink.frame("ada", Content::Camera, pattern.next_picture(0));
        // No size yet: nothing to render.
        assert!(tiles.render_new(&mut resizer).is_empty());
        tiles.set_sizes([("ada".to_owned(), 320, 320)]);
        let packets = tiles.render_new(&mut resizer);
        assert_eq!(packets.len(), 1);
        let p = &packets[0];
        assert_eq!(p[0], 1);
        assert_eq!(&p[2..5], b"ada");
        let (w, h) = (
            u16::from_le_bytes([p[5], p[6]]),
            u16::from_le_bytes([p[7], p[8]]),
        );
        assert_eq!((w, h), (320, 180), "fits the tile, aspect kept");
        assert_eq!(p.len(), 9 + 320 * 180 * 4);
        // Nothing new: nothing sent; a new picture: sent again.
        assert!(tiles.render_new(&mut resizer).is_empty());
        sink.frame("ada", Content::Camera, pattern.next_picture(33));
        assert_eq!(tiles.render_new(&mut resizer).len(), 1);
        tiles.forget("ada");
        assert!(tiles.render_new(&mut resizer).is_empty());
    }
}
