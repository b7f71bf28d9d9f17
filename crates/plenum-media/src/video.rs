//! Video pictures and their synthetic twin: I420 frames, a moving test pattern that stamps
//! a frame counter and a capture time into the picture in blocks big enough to survive lossy
//! coding, reading those stamps back, PSNR, and conversion to RGBA and PNG.

use std::path::Path;

use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

/// A picture in I420: the Y plane, then U, then V, tightly packed (chroma at half width and
/// height, rounded up).
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VideoFrame({}x{})", self.width, self.height)
    }
}

impl VideoFrame {
    /// A black picture.
    pub fn black(width: u32, height: u32) -> Self {
        let luma = (width * height) as usize;
        let mut data = vec![128; plenum_vpx::i420_len(width, height)];
        data[..luma].fill(16);
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps decoded I420 bytes; `None` if they do not fill the size.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == plenum_vpx::i420_len(width, height)).then_some(Self {
            width,
            height,
            data,
        })
    }

    fn chroma_size(&self) -> (usize, usize) {
        (
            (self.width as usize).div_ceil(2),
            (self.height as usize).div_ceil(2),
        )
    }

    /// The size [`Self::half`] makes of a picture of `width` x `height`.
    pub fn half_size(width: u32, height: u32) -> (u32, u32) {
        ((width / 2).max(2) & !1, (height / 2).max(2) & !1)
    }

    /// The size [`Self::three_quarters`] makes of a picture of `width` x `height`.
    pub fn three_quarters_size(width: u32, height: u32) -> (u32, u32) {
        ((width * 3 / 4).max(2) & !1, (height * 3 / 4).max(2) & !1)
    }

    /// The picture at half its width and height (each an even number, at least 2): every
    /// sample the mean of the 2 x 2 it replaces. What a simulcast layer is made from.
    pub fn half(&self) -> VideoFrame {
        let (width, height) = Self::half_size(self.width, self.height);
        self.resampled(width, height, halve)
    }

    /// The picture at three quarters of its width and height (each an even number): every
    /// 4 x 4 block becomes 3 x 3 samples, each the mean of the area it covers. The step
    /// between a simulcast layer and its half (960x540 between 1280x720 and 640x360).
    pub fn three_quarters(&self) -> VideoFrame {
        let (width, height) = Self::three_quarters_size(self.width, self.height);
        self.resampled(width, height, three_quarters)
    }

    /// The picture at `width` x `height`, each plane resampled by `scale`.
    fn resampled(
        &self,
        width: u32,
        height: u32,
        scale: fn(&[u8], usize, usize, &mut [u8], usize, usize),
    ) -> VideoFrame {
        let mut out = VideoFrame::black(width, height);
        let (y, u, v) = self.planes();
        let (cw, ch) = self.chroma_size();
        let (ocw, och) = out.chroma_size();
        let luma = (width * height) as usize;
        let (oy, chroma) = out.data.split_at_mut(luma);
        let (ou, ov) = chroma.split_at_mut(ocw * och);
        scale(
            y,
            self.width as usize,
            self.height as usize,
            oy,
            width as usize,
            height as usize,
        );
        scale(u, cw, ch, ou, ocw, och);
        scale(v, cw, ch, ov, ocw, och);
        out
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..(self.width * self.height) as usize]
    }

    fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = (self.width * self.height) as usize;
        let (cw, ch) = self.chroma_size();
        let (y, chroma) = self.data.split_at(luma);
        let (u, v) = chroma.split_at(cw * ch);
        (y, u, v)
    }

    /// The three planes, writable, as `yuv`'s conversions take them.
    pub(crate) fn planes_mut(&mut self) -> yuv::YuvPlanarImageMut<'_, u8> {
        let (width, height) = (self.width, self.height);
        let (cw, _) = self.chroma_size();
        let (y, chroma) = self.data.split_at_mut((width * height) as usize);
        let (u, v) = chroma.split_at_mut(chroma.len() / 2);
        yuv::YuvPlanarImageMut {
            y_plane: yuv::BufferStoreMut::Borrowed(y),
            y_stride: width,
            u_plane: yuv::BufferStoreMut::Borrowed(u),
            u_stride: cw as u32,
            v_plane: yuv::BufferStoreMut::Borrowed(v),
            v_stride: cw as u32,
            width,
            height,
        }
    }

    /// Copies the luma rows of a picture `stride` bytes wide into the Y plane.
    pub(crate) fn copy_luma(&mut self, bytes: &[u8], stride: usize) {
        let width = self.width as usize;
        for (row, line) in self.data[..width * self.height as usize]
            .chunks_exact_mut(width)
            .enumerate()
        {
            line.copy_from_slice(&bytes[row * stride..][..width]);
        }
    }

    /// The picture as RGBA (BT.601, limited range), 4 bytes a pixel.
    pub fn to_rgba(&self) -> Vec<u8> {
        let (y, u, v) = self.planes();
        let (cw, _) = self.chroma_size();
        let image = YuvPlanarImage {
            y_plane: y,
            y_stride: self.width,
            u_plane: u,
            u_stride: cw as u32,
            v_plane: v,
            v_stride: cw as u32,
            width: self.width,
            height: self.height,
        };
        let mut rgba = vec![0; (self.width * self.height * 4) as usize];
        if let Err(e) = yuv::yuv420_to_rgba(
            &image,
            &mut rgba,
            self.width * 4,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
        ) {
            tracing::warn!(error = ?e, "picture not converted");
        }
        rgba
    }

    /// A picture from RGBA pixels (4 bytes each, rows of `width`); `None` if they do not fill
    /// the size or the size is odd.
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8]) -> Option<Self> {
        if rgba.len() != (width * height * 4) as usize || width % 2 == 1 || height % 2 == 1 {
            return None;
        }
        let mut frame = Self::black(width, height);
        yuv::rgba_to_yuv420(
            &mut frame.planes_mut(),
            rgba,
            width * 4,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            yuv::YuvConversionMode::Balanced,
        )
        .ok()?;
        Some(frame)
    }

    /// Reads a PNG file written by [`Self::save_png`] (or any 8-bit RGBA PNG).
    pub fn load_png(path: &Path) -> std::io::Result<Self> {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut reader = png::Decoder::new(file)
            .read_info()
            .map_err(std::io::Error::other)?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| std::io::Error::other("PNG too large"))?;
        let mut rgba = vec![0; size];
        let info = reader
            .next_frame(&mut rgba)
            .map_err(std::io::Error::other)?;
        if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
            return Err(std::io::Error::other("not an 8-bit RGBA PNG"));
        }
        rgba.truncate(info.buffer_size());
        Self::from_rgba(info.width, info.height, &rgba)
            .ok_or_else(|| std::io::Error::other("odd picture size"))
    }

    /// Writes the picture as a PNG file.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut encoder = png::Encoder::new(file, self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&self.to_rgba())
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    }
}

/// Where pictures to send come from: a camera, a screen, or the test pattern.
pub trait VideoSource: Send {
    /// The next picture, captured at `now_ms` (the sender's clock, for the stamp); `None`
    /// when there is nothing new yet.
    fn next_frame(&mut self, now_ms: u32) -> Option<VideoFrame>;

    /// Pictures per second this source delivers.
    fn fps(&self) -> u32;

    /// Camera-like motion or screen-like detail (tunes the encoder).
    fn content(&self) -> plenum_vpx::Content {
        plenum_vpx::Content::Camera
    }

    /// A failure since the last call (a camera unplugged), reported once; the caller stops
    /// using the source.
    fn take_error(&mut self) -> Option<String> {
        None
    }
}

/// Where received pictures go: the app's tiles, a PNG dumper. Called from the network side
/// for every decoded picture: keep it short (hand the picture on, do not block).
pub trait VideoSink: Send {
    /// A picture from `peer`'s camera (`lane` is `Camera`) or shared screen (`Screen`); the
    /// sink owns it from here (no copy is made on the way).
    fn frame(&mut self, peer: &str, lane: plenum_vpx::Content, frame: VideoFrame);
}

impl VideoSource for TestPattern {
    fn next_frame(&mut self, now_ms: u32) -> Option<VideoFrame> {
        Some(self.next_picture(now_ms))
    }

    fn fps(&self) -> u32 {
        self.fps
    }
}

/// Peak signal-to-noise ratio of the luma planes, in dB (`f64::INFINITY` when identical).
pub fn psnr(a: &VideoFrame, b: &VideoFrame) -> f64 {
    if (a.width, a.height) != (b.width, b.height) {
        return 0.0;
    }
    let (ya, yb) = (a.y(), b.y());
    let mse = ya
        .iter()
        .zip(yb)
        .map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2))
        .sum::<f64>()
        / ya.len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64.powi(2) / mse).log10()
}

/// Writes `to` (`tw` x `th`) as the 2 x 2 means of `from` (`fw` x `fh`), clamped at edges.
fn halve(from: &[u8], fw: usize, fh: usize, to: &mut [u8], tw: usize, th: usize) {
    for y in 0..th {
        let (r0, r1) = ((2 * y).min(fh - 1), (2 * y + 1).min(fh - 1));
        for x in 0..tw {
            let (c0, c1) = ((2 * x).min(fw - 1), (2 * x + 1).min(fw - 1));
            let sum = u32::from(from[r0 * fw + c0])
                + u32::from(from[r0 * fw + c1])
                + u32::from(from[r1 * fw + c0])
                + u32::from(from[r1 * fw + c1]);
            to[y * tw + x] = ((sum + 2) / 4) as u8;
        }
    }
}

/// Three samples from four: each output sample covers 4/3 of an input sample, so its
/// weights over the four (in quarters) are 3+1, 2+2 and 1+3 by its place in the three.
fn three_quarters(from: &[u8], fw: usize, fh: usize, to: &mut [u8], tw: usize, th: usize) {
    const TAPS: [[(usize, u32); 2]; 3] = [[(0, 3), (1, 1)], [(1, 2), (2, 2)], [(2, 1), (3, 3)]];
    for y in 0..th {
        let rows = TAPS[y % 3].map(|(dy, w)| (((y / 3) * 4 + dy).min(fh - 1), w));
        for x in 0..tw {
            let cols = TAPS[x % 3].map(|(dx, w)| (((x / 3) * 4 + dx).min(fw - 1), w));
            let mut sum = 0u32;
            for (r, wy) in rows {
                for (c, wx) in cols {
                    sum += wy * wx * u32::from(from[r * fw + c]);
                }
            }
            to[y * tw + x] = ((sum + 8) / 16) as u8;
        }
    }
}

/// What the test pattern stamps into each picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frames since the pattern started.
    pub counter: u32,
    /// Capture time in milliseconds on the sender's clock (low 32 bits of Unix time).
    pub capture_ms: u32,
}

/// Bits in a stamp row.
const STAMP_BITS: u32 = 32;
/// Rows: the counter, the capture time, and the counter inverted (a check).
const STAMP_ROWS: u32 = 3;

/// Side of one stamp block: 32 blocks fill at most 80 % of the width.
fn block_size(width: u32) -> u32 {
    (width * 4 / 5 / STAMP_BITS).max(2) & !1
}

/// A moving test pattern: a drifting gradient, a bouncing box and a checker, with a stamp
/// in the top-left corner: three rows of 32 black or white blocks (counter, capture time,
/// counter inverted), each block big enough that VP8 at modest bitrates keeps it readable.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    counter: u32,
}

impl TestPattern {
    /// A pattern of `width` x `height` (at least 80 x 32, even numbers) at 30 fps.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width: width.max(80) & !1,
            height: height.max(32) & !1,
            fps: 30,
            counter: 0,
        }
    }

    /// The same at `fps` pictures per second (1 to 120).
    pub fn with_fps(mut self, fps: u32) -> Self {
        self.fps = fps.clamp(1, 120);
        self
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The next picture, stamped with `capture_ms`.
    pub fn next_picture(&mut self, capture_ms: u32) -> VideoFrame {
        let stamp = Stamp {
            counter: self.counter,
            capture_ms,
        };
        self.counter = self.counter.wrapping_add(1);
        Self::draw(self.width, self.height, stamp)
    }

    /// The picture the pattern makes for `stamp` (what the sender sent for that counter).
    pub fn draw(width: u32, height: u32, stamp: Stamp) -> VideoFrame {
        let mut frame = VideoFrame::black(width, height);
        let (w, h) = (width as usize, height as usize);
        let n = stamp.counter as usize;
        let box_size = h / 4;
        let span_x = w.saturating_sub(box_size).max(1);
        let span_y = h.saturating_sub(box_size).max(1);
        let bx = (n * 7) % (2 * span_x);
        let bx = if bx > span_x { 2 * span_x - bx } else { bx };
        let by = (n * 5) % (2 * span_y);
        let by = if by > span_y { 2 * span_y - by } else { by };
        let luma = &mut frame.data[..w * h];
        for y in 0..h {
            for x in 0..w {
                let gradient = ((x + n * 2) % w * 140 / w + y * 60 / h) as u8;
                let checker = if (x / 32 + y / 32) % 2 == 0 { 20 } else { 0 };
                let inside = (bx..bx + box_size).contains(&x) && (by..by + box_size).contains(&y);
                luma[y * w + x] = if inside { 200 } else { 30 + gradient + checker };
            }
        }
        let (cw, ch) = frame.chroma_size();
        let (u, v) = frame.data[w * h..].split_at_mut(cw * ch);
        for y in 0..ch {
            for x in 0..cw {
                u[y * cw + x] = (96 + (x * 64 / cw)) as u8;
                v[y * cw + x] = (96 + ((y + n) % ch * 64 / ch)) as u8;
            }
        }
        let rows = [stamp.counter, stamp.capture_ms, !stamp.counter];
        let block = block_size(width) as usize;
        // Grey chroma under the stamp: black and white blocks, nothing for colour to smear.
        for plane in [&mut *u, &mut *v] {
            for y in 0..(STAMP_ROWS as usize * block).div_ceil(2).min(ch) {
                plane[y * cw..y * cw + (STAMP_BITS as usize * block).div_ceil(2).min(cw)].fill(128);
            }
        }
        for (r, value) in rows.iter().enumerate() {
            for bit in 0..STAMP_BITS as usize {
                let on = value >> (STAMP_BITS as usize - 1 - bit) & 1 == 1;
                let level = if on { 235 } else { 16 };
                for y in r * block..(r + 1) * block {
                    let row = &mut frame.data[y * w..y * w + w];
                    row[bit * block..(bit + 1) * block].fill(level);
                }
            }
        }
        frame
    }
}

/// Reads the stamp of a picture made by [`TestPattern`], after any lossy coding; `None` if
/// the picture holds no readable stamp (its check row disagrees).
pub fn read_stamp(frame: &VideoFrame) -> Option<Stamp> {
    let (w, block) = (frame.width as usize, block_size(frame.width) as usize);
    if frame.height as usize <= STAMP_ROWS as usize * block {
        return None;
    }
    let y_plane = frame.y();
    let mut rows = [0u32; STAMP_ROWS as usize];
    for (r, value) in rows.iter_mut().enumerate() {
        for bit in 0..STAMP_BITS as usize {
            // The middle half of the block, away from edges that coding smears.
            let (x0, y0) = (bit * block + block / 4, r * block + block / 4);
            let mut sum = 0u32;
            let mut count = 0u32;
            for y in y0..y0 + block / 2 {
                for x in x0..x0 + block / 2 {
                    sum += u32::from(y_plane[y * w + x]);
                    count += 1;
                }
            }
            *value = (*value << 1) | u32::from(sum / count.max(1) > 125);
        }
    }
    (rows[2] == !rows[0]).then_some(Stamp {
        counter: rows[0],
        capture_ms: rows[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_halved_picture_keeps_its_stamp_and_its_look() {
        let stamp = Stamp {
            counter: 1234,
            capture_ms: 99,
        };
        let full = TestPattern::draw(1280, 720, stamp);
        let half = full.half();
        assert_eq!((half.width, half.height), (640, 360));
        let quarter = half.half();
        assert_eq!((quarter.width, quarter.height), (320, 180));
        assert_eq!(read_stamp(&quarter), Some(stamp));
        // The mean of a flat 2 x 2 is its value; a picture of one grey stays that grey.
        let grey = VideoFrame::black(6, 4).half();
        assert_eq!((grey.width, grey.height), (2, 2));
        assert!(grey.y().iter().all(|&l| l == 16));
        assert!(grey.data[4..].iter().all(|&c| c == 128));
    }

    #[test]
    fn stamps_read_back_after_vp8_at_a_low_bitrate() {
        let (w, h) = (640, 360);
        let mut pattern = TestPattern::new(w, h);
        let mut encoder = plenum_vpx::Encoder::new(plenum_vpx::EncoderConfig {
            width: w,
            height: h,
            bitrate_kbps: 300,
            fps: 30,
            content: plenum_vpx::Content::Camera,
        })
        .expect("encoder");
        let mut decoder = plenum_vpx::Decoder::new().expect("decoder");
        let mut read = 0;
        for i in 0..60u32 {
            let sent = pattern.next_picture(1_000_000 + i * 33);
            let Some(frame) = encoder.encode(&sent.data, 3000, i == 0).expect("encode") else {
                continue;
            };
            let picture = decoder
                .decode(&frame.data)
                .expect("decode")
                .expect("picture");
            let got =
                VideoFrame::from_i420(picture.width, picture.height, picture.data).expect("size");
            let stamp = read_stamp(&got).expect("a readable stamp");
            assert_eq!(stamp.counter, i);
            assert_eq!(stamp.capture_ms, 1_000_000 + i * 33);
            let again = TestPattern::draw(w, h, stamp);
            assert_eq!(again, sent, "the pattern redraws what was sent");
            if i > 10 {
                assert!(
                    psnr(&got, &sent) > 30.0,
                    "frame {i}: {:.1} dB",
                    psnr(&got, &sent)
                );
            }
            read += 1;
        }
        assert!(read >= 55, "{read} of 60 frames came out");
    }

    #[test]
    fn a_picture_at_three_quarters_keeps_its_stamp_and_its_look() {
        let stamp = Stamp {
            counter: 4321,
            capture_ms: 77,
        };
        let full = TestPattern::draw(1280, 720, stamp);
        let three = full.three_quarters();
        assert_eq!((three.width, three.height), (960, 540));
        assert_eq!(read_stamp(&three), Some(stamp));
        let small = TestPattern::draw(640, 360, stamp).three_quarters();
        assert_eq!((small.width, small.height), (480, 270));
        assert_eq!(read_stamp(&small), Some(stamp));
        // An area mean keeps the picture's mean brightness.
        let mean =
            |f: &VideoFrame| f.y().iter().map(|&l| f64::from(l)).sum::<f64>() / f.y().len() as f64;
        assert!(
            (mean(&three) - mean(&full)).abs() < 1.0,
            "{} against {}",
            mean(&three),
            mean(&full)
        );
        // A flat picture stays flat; an odd size is rounded down to even.
        let grey = VideoFrame::black(10, 6).three_quarters();
        assert_eq!((grey.width, grey.height), (6, 4));
        assert!(grey.y().iter().all(|&l| l == 16));
        assert!(grey.data[24..].iter().all(|&c| c == 128));
        // A step from black to white four samples wide lands between them, in order.
        let mut edge = VideoFrame::black(8, 4);
        for row in 0..4 {
            edge.data[row * 8 + 4..row * 8 + 8].fill(235);
        }
        let row: Vec<u8> = edge.three_quarters().y()[..6].to_vec();
        assert_eq!(row, vec![16, 16, 16, 235, 235, 235]);
    }

    #[test]
    fn a_picture_without_a_stamp_reads_as_none() {
        assert_eq!(read_stamp(&VideoFrame::black(640, 360)), None);
        assert_eq!(read_stamp(&VideoFrame::black(16, 16)), None);
    }

    #[test]
    fn rgba_and_png_have_the_pictures_colours() {
        let frame = TestPattern::new(160, 90).next_picture(7);
        let rgba = frame.to_rgba();
        assert_eq!(rgba.len(), 160 * 90 * 4);
        // The first stamp block of counter 0 is black; of the inverted counter, white.
        assert!(rgba[0] < 20 && rgba[3] == 255, "{:?}", &rgba[..4]);
        let white_row = 2 * block_size(160) as usize + 1;
        let px = &rgba[(white_row * 160) * 4..][..4];
        assert!(px[0] > 230, "{px:?}");
        let path = std::env::temp_dir().join(format!("plenum-frame-{}.png", std::process::id()));
        frame.save_png(&path).expect("png");
        let back = VideoFrame::load_png(&path).expect("load");
        std::fs::remove_file(&path).expect("cleanup");
        assert_eq!((back.width, back.height), (160, 90));
        // Through RGB and back: the stamp reads, the picture is near the original.
        assert_eq!(read_stamp(&back).map(|s| s.capture_ms), Some(7));
        assert!(psnr(&back, &frame) > 35.0, "{:.1} dB", psnr(&back, &frame));
        assert_eq!(VideoFrame::from_rgba(3, 2, &[0; 24]), None);
        assert_eq!(VideoFrame::from_rgba(4, 2, &[0; 5]), None);
    }
}
