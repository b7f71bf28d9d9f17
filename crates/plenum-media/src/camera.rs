//! Cameras: listing them, choosing one by name or index, a size and frame rate, and turning
//! whatever pixel format it gives (MJPEG, YUYV, NV12, RGB, grey) into I420.
//!
//! Devices go through nokhwa (V4L2 on Linux; AVFoundation and Media Foundation behind the
//! same `input-native` feature elsewhere); conversions through `yuv` (SIMD) and `zune-jpeg`.

use crate::capture::CaptureError;
use crate::video::{VideoFrame, VideoSource};

/// A camera this machine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Its index (`0` is the default camera).
    pub index: u32,
    /// The name the system gives it.
    pub name: String,
}

/// What to open: a camera (by index or a case-insensitive part of its name; `None`: the
/// first), and the size and frame rate wanted (the camera's nearest mode is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraRequest {
    pub name: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for CameraRequest {
    fn default() -> Self {
        Self {
            name: None,
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// Pixel formats a camera may give, in the order we prefer them at equal size and rate
/// (cheapest to convert first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PixelFormat {
    Nv12,
    Yuyv,
    Mjpeg,
    Rgb,
    Bgr,
    Gray,
}

/// One mode a camera offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: PixelFormat,
}

/// The mode to ask a camera for: the size nearest the one wanted (by pixel count, larger
/// preferred on a tie), then a rate that reaches the one wanted if any does (the lowest such,
/// else the highest), then the cheapest format.
pub fn choose_mode(modes: &[CameraMode], want: &CameraRequest) -> Option<CameraMode> {
    let area = |m: &CameraMode| i64::from(m.width) * i64::from(m.height);
    let wanted_area = i64::from(want.width) * i64::from(want.height);
    let size = modes
        .iter()
        .min_by_key(|m| ((area(m) - wanted_area).abs(), -area(m)))
        .map(|m| (m.width, m.height))?;
    let at_size = modes.iter().filter(|m| (m.width, m.height) == size);
    at_size
        .min_by_key(|m| {
            let short = m.fps < want.fps;
            let rate = if short {
                i64::from(u32::MAX - m.fps)
            } else {
                i64::from(m.fps)
            };
            (short, rate, m.format)
        })
        .copied()
}

/// Converts one captured picture to I420 (odd sizes lose their last column or row).
pub fn to_i420(
    format: PixelFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<VideoFrame, String> {
    use yuv::{YuvRange, YuvStandardMatrix};
    let (w, h) = (width & !1, height & !1);
    if w == 0 || h == 0 {
        return Err(format!("empty picture {width}x{height}"));
    }
    let short = |needed: usize| {
        (bytes.len() < needed).then(|| {
            format!(
                "{format:?} picture of {width}x{height} needs {needed} bytes, got {}",
                bytes.len()
            )
        })
    };
    let mut frame = VideoFrame::black(w, h);
    let luma = (w * h) as usize;
    match format {
        PixelFormat::Mjpeg => {
            let options = zune_jpeg::zune_core::options::DecoderOptions::default()
                .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGBA);
            let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
                zune_jpeg::zune_core::bytestream::ZCursor::new(bytes),
                options,
            );
            let rgba = decoder
                .decode()
                .map_err(|e| format!("bad MJPEG picture: {e}"))?;
            let (jw, jh) = decoder
                .dimensions()
                .map(|(a, b)| (a as u32, b as u32))
                .ok_or("MJPEG picture without a size")?;
            return crop_rgba(jw, jh, &rgba)
                .ok_or_else(|| format!("MJPEG picture of {jw}x{jh} does not convert"));
        }
        PixelFormat::Nv12 => {
            let plane = (width * height) as usize;
            if let Some(e) = short(plane + width as usize * (h / 2) as usize) {
                return Err(e);
            }
            frame.copy_luma(bytes, width as usize);
            let uv = &bytes[plane..];
            // NV12's chroma is I420's, interleaved: split it (a copy, no colour math).
            let (cw, ch) = ((w / 2) as usize, (h / 2) as usize);
            let (u, v) = frame.data[luma..].split_at_mut(cw * ch);
            for row in 0..ch {
                let line = &uv[row * width as usize..][..cw * 2];
                for (i, pair) in line.chunks_exact(2).enumerate() {
                    u[row * cw + i] = pair[0];
                    v[row * cw + i] = pair[1];
                }
            }
        }
        PixelFormat::Yuyv => {
            if let Some(e) = short((width * height * 2) as usize) {
                return Err(e);
            }
            let packed = yuv::YuvPackedImage {
                yuy: bytes,
                yuy_stride: width * 2,
                width: w,
                height: h,
            };
            yuv::yuyv422_to_yuv420(&mut frame.planes_mut(), &packed)
                .map_err(|e| format!("{e:?}"))?;
        }
        PixelFormat::Rgb | PixelFormat::Bgr => {
            if let Some(e) = short((width * height * 3) as usize) {
                return Err(e);
            }
            let convert = if format == PixelFormat::Rgb {
                yuv::rgb_to_yuv420
            } else {
                yuv::bgr_to_yuv420
            };
            convert(
                &mut frame.planes_mut(),
                bytes,
                width * 3,
                YuvRange::Limited,
                YuvStandardMatrix::Bt601,
                yuv::YuvConversionMode::Balanced,
            )
            .map_err(|e| format!("{e:?}"))?;
        }
        PixelFormat::Gray => {
            if let Some(e) = short((width * height) as usize) {
                return Err(e);
            }
            frame.copy_luma(bytes, width as usize);
        }
    }
    Ok(frame)
}

/// RGBA of any size to I420, dropping an odd last column or row.
pub(crate) fn crop_rgba(width: u32, height: u32, rgba: &[u8]) -> Option<VideoFrame> {
    let (w, h) = (width & !1, height & !1);
    if (w, h) == (width, height) {
        return VideoFrame::from_rgba(width, height, rgba);
    }
    let mut even = Vec::with_capacity((w * h * 4) as usize);
    for row in rgba.chunks_exact((width * 4) as usize).take(h as usize) {
        even.extend_from_slice(&row[..(w * 4) as usize]);
    }
    VideoFrame::from_rgba(w, h, &even)
}

/// An open camera, as a [`VideoSource`].
#[derive(Debug)]
pub struct Camera {
    captured: crate::capture::Captured,
    /// The camera's name and the mode it runs in.
    pub description: String,
}

impl VideoSource for Camera {
    fn next_frame(&mut self, now_ms: u32) -> Option<VideoFrame> {
        self.captured.next_frame(now_ms)
    }

    fn fps(&self) -> u32 {
        self.captured.fps()
    }

    fn take_error(&mut self) -> Option<String> {
        self.captured.take_error()
    }
}

/// Finds the camera a request names among `cameras`.
pub fn find<'a>(
    cameras: &'a [CameraInfo],
    name: Option<&str>,
) -> Result<&'a CameraInfo, CaptureError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return cameras.first().ok_or(CaptureError::NoCamera);
    };
    if cameras.is_empty() {
        return Err(CaptureError::NoCamera);
    }
    let wanted = name.to_lowercase();
    cameras
        .iter()
        .find(|c| c.index.to_string() == name || c.name.to_lowercase() == wanted)
        .or_else(|| {
            cameras
                .iter()
                .find(|c| c.name.to_lowercase().contains(&wanted))
        })
        .ok_or_else(|| CaptureError::NotFound {
            kind: "camera",
            name: name.to_owned(),
            available: crate::capture::available(
                cameras.iter().map(|c| format!("{} ({})", c.name, c.index)),
            ),
        })
}

#[cfg(feature = "camera")]
mod device {
    use nokhwa::utils::{
        ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
        Resolution,
    };

    use super::*;

    const ALL_FORMATS: &[FrameFormat] = &[
        FrameFormat::NV12,
        FrameFormat::YUYV,
        FrameFormat::MJPEG,
        FrameFormat::RAWRGB,
        FrameFormat::RAWBGR,
        FrameFormat::GRAY,
    ];

    fn ours(format: FrameFormat) -> PixelFormat {
        match format {
            FrameFormat::NV12 => PixelFormat::Nv12,
            FrameFormat::YUYV => PixelFormat::Yuyv,
            FrameFormat::MJPEG => PixelFormat::Mjpeg,
            FrameFormat::RAWRGB => PixelFormat::Rgb,
            FrameFormat::RAWBGR => PixelFormat::Bgr,
            FrameFormat::GRAY => PixelFormat::Gray,
        }
    }

    fn theirs(format: PixelFormat) -> FrameFormat {
        match format {
            PixelFormat::Nv12 => FrameFormat::NV12,
            PixelFormat::Yuyv => FrameFormat::YUYV,
            PixelFormat::Mjpeg => FrameFormat::MJPEG,
            PixelFormat::Rgb => FrameFormat::RAWRGB,
            PixelFormat::Bgr => FrameFormat::RAWBGR,
            PixelFormat::Gray => FrameFormat::GRAY,
        }
    }

    /// The cameras this machine has (an empty list when it has none).
    pub fn cameras() -> Vec<CameraInfo> {
        match nokhwa::query(ApiBackend::Auto) {
            Ok(list) => list
                .into_iter()
                .filter_map(|c| {
                    Some(CameraInfo {
                        index: c.index().as_index().ok()?,
                        name: c.human_name(),
                    })
                })
                .collect(),
            Err(e) => {
                tracing::info!(error = %e, "cameras not listed");
                Vec::new()
            }
        }
    }

    impl Camera {
        /// Opens the camera `request` names at its nearest mode and starts capturing.
        pub fn open(request: &CameraRequest) -> Result<Self, CaptureError> {
            let list = cameras();
            let info = find(&list, request.name.as_deref())?.clone();
            let request = request.clone();
            let label = format!("{} ({})", info.name, info.index);
            let unavailable = {
                let label = label.clone();
                move |reason: String| CaptureError::Unavailable {
                    name: label.clone(),
                    reason,
                }
            };
            let (mode_tx, mode_rx) = std::sync::mpsc::sync_channel(1);
            let captured = crate::capture::spawn(
                &format!("camera{}", info.index),
                request.fps,
                plenum_vpx::Content::Camera,
                move || {
                    let any = RequestedFormat::with_formats(RequestedFormatType::None, ALL_FORMATS);
                    let mut camera = nokhwa::Camera::new(CameraIndex::Index(info.index), any)
                        .map_err(|e| unavailable(e.to_string()))?;
                    let modes: Vec<CameraMode> = camera
                        .compatible_camera_formats()
                        .map_err(|e| unavailable(e.to_string()))?
                        .into_iter()
                        .map(|f| CameraMode {
                            width: f.width(),
                            height: f.height(),
                            fps: f.frame_rate(),
                            format: ours(f.format()),
                        })
                        .collect();
                    let mode = choose_mode(&modes, &request)
                        .ok_or_else(|| unavailable("it offers no picture format".to_owned()))?;
                    let exact = CameraFormat::new(
                        Resolution::new(mode.width, mode.height),
                        theirs(mode.format),
                        mode.fps,
                    );
                    camera
                        .set_camera_requset(RequestedFormat::with_formats(
                            RequestedFormatType::Exact(exact),
                            ALL_FORMATS,
                        ))
                        .map_err(|e| unavailable(e.to_string()))?;
                    camera
                        .open_stream()
                        .map_err(|e| unavailable(e.to_string()))?;
                    let _ = mode_tx.send(mode);
                    Ok(move || {
                        let buffer = camera.frame().map_err(|e| e.to_string())?;
                        let size = buffer.resolution();
                        to_i420(
                            ours(buffer.source_frame_format()),
                            size.width(),
                            size.height(),
                            buffer.buffer(),
                        )
                    })
                },
            )?;
            let description = match mode_rx.try_recv() {
                Ok(m) => format!("{label} {}x{}@{} {:?}", m.width, m.height, m.fps, m.format),
                Err(_) => label,
            };
            tracing::info!(camera = %description, "camera open");
            Ok(Self {
                captured,
                description,
            })
        }
    }
}

#[cfg(feature = "camera")]
pub use device::cameras;

#[cfg(not(feature = "camera"))]
/// The cameras this machine has: none, in a build without camera support.
pub fn cameras() -> Vec<CameraInfo> {
    Vec::new()
}

#[cfg(not(feature = "camera"))]
impl Camera {
    /// Cameras are not built in: always an error.
    pub fn open(_request: &CameraRequest) -> Result<Self, CaptureError> {
        Err(CaptureError::NotBuilt("camera"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, fps: u32, format: PixelFormat) -> CameraMode {
        CameraMode {
            width,
            height,
            fps,
            format,
        }
    }

    #[test]
    fn the_nearest_size_then_a_rate_that_reaches_then_the_cheapest_format() {
        let modes = [
            mode(640, 480, 30, PixelFormat::Yuyv),
            mode(1280, 720, 10, PixelFormat::Yuyv),
            mode(1280, 720, 30, PixelFormat::Mjpeg),
            mode(1280, 720, 60, PixelFormat::Mjpeg),
            mode(1920, 1080, 30, PixelFormat::Mjpeg),
        ];
        let want = CameraRequest::default();
        assert_eq!(
            choose_mode(&modes, &want),
            Some(mode(1280, 720, 30, PixelFormat::Mjpeg)),
            "YUYV at 10 fps does not reach 30; 60 is more than needed"
        );
        let small = CameraRequest {
            width: 640,
            height: 360,
            fps: 60,
            ..want.clone()
        };
        assert_eq!(
            choose_mode(&modes, &small),
            Some(mode(640, 480, 30, PixelFormat::Yuyv)),
            "nothing reaches 60 at that size: the highest rate"
        );
        let cheap = [
            mode(640, 480, 30, PixelFormat::Mjpeg),
            mode(640, 480, 30, PixelFormat::Nv12),
        ];
        assert_eq!(
            choose_mode(&cheap, &small).map(|m| m.format),
            Some(PixelFormat::Nv12)
        );
        assert_eq!(choose_mode(&[], &want), None);
    }

    #[test]
    fn cameras_are_found_by_index_or_name_or_said_missing() {
        let list = vec![
            CameraInfo {
                index: 0,
                name: "Integrated Webcam".into(),
            },
            CameraInfo {
                index: 2,
                name: "Logitech C920".into(),
            },
        ];
        assert_eq!(find(&list, None).map(|c| c.index), Ok(0));
        assert_eq!(find(&list, Some("2")).map(|c| c.index), Ok(2));
        assert_eq!(find(&list, Some("c920")).map(|c| c.index), Ok(2));
        let err = find(&list, Some("Brio")).expect_err("absent");
        assert!(err.to_string().contains("Logitech C920 (2)"), "{err}");
        assert_eq!(find(&[], None), Err(CaptureError::NoCamera));
        assert_eq!(find(&[], Some("x")), Err(CaptureError::NoCamera));
    }

    /// A picture in each packed format, made from a known I420 picture with `yuv`'s inverse
    /// conversions where it has them, converts back to nearly the same picture.
    #[test]
    fn every_pixel_format_converts_to_the_same_picture() {
        let source = crate::TestPattern::draw(
            320,
            180,
            crate::Stamp {
                counter: 7,
                capture_ms: 1234,
            },
        );
        let rgba = source.to_rgba();
        let rgb: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        let bgr: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        let (w, h) = (320usize, 180usize);
        let (y, chroma) = source.data.split_at(w * h);
        let (u, v) = chroma.split_at(chroma.len() / 2);
        let mut nv12 = y.to_vec();
        for (a, b) in u.iter().zip(v) {
            nv12.extend([*a, *b]);
        }
        let mut yuyv = Vec::new();
        for row in 0..h {
            for col in (0..w).step_by(2) {
                let c = (row / 2) * (w / 2) + col / 2;
                yuyv.extend([y[row * w + col], u[c], y[row * w + col + 1], v[c]]);
            }
        }
        for (format, bytes, floor) in [
            (PixelFormat::Nv12, &nv12, f64::INFINITY),
            (PixelFormat::Yuyv, &yuyv, 40.0),
            (PixelFormat::Rgb, &rgb, 35.0),
            (PixelFormat::Bgr, &bgr, 35.0),
            (PixelFormat::Gray, &y.to_vec(), f64::INFINITY),
        ] {
            let frame = to_i420(format, 320, 180, bytes).expect("converts");
            let psnr = crate::psnr(&source, &frame);
            assert!(psnr >= floor, "{format:?}: {psnr:.1} dB");
            assert_eq!(
                crate::read_stamp(&frame).map(|s| s.counter),
                Some(7),
                "{format:?}"
            );
        }
        // Odd sizes lose their last column and row; short buffers are refused.
        let odd = to_i420(PixelFormat::Gray, 5, 3, &[100; 15]).expect("odd");
        assert_eq!((odd.width, odd.height), (4, 2));
        let err = to_i420(PixelFormat::Yuyv, 320, 180, &yuyv[..100]).expect_err("short");
        assert!(err.contains("needs 115200 bytes"), "{err}");
    }

    #[test]
    fn mjpeg_pictures_decode_and_broken_ones_are_refused() {
        // A 32x16 baseline JPEG: left half red, right half blue (made with ImageMagick).
        let jpeg = include_bytes!("../tests/data/red-blue-32x16.jpg");
        let frame = to_i420(PixelFormat::Mjpeg, 32, 16, jpeg).expect("decodes");
        assert_eq!((frame.width, frame.height), (32, 16));
        let rgba = frame.to_rgba();
        let pixel = |x: usize, y: usize| &rgba[(y * 32 + x) * 4..][..3];
        assert!(
            pixel(4, 8)[0] > 200 && pixel(4, 8)[2] < 60,
            "{:?}",
            pixel(4, 8)
        );
        assert!(
            pixel(28, 8)[2] > 200 && pixel(28, 8)[0] < 60,
            "{:?}",
            pixel(28, 8)
        );
        let err = to_i420(PixelFormat::Mjpeg, 32, 16, &jpeg[..40]).expect_err("truncated");
        assert!(err.starts_with("bad MJPEG picture"), "{err}");
    }
}
