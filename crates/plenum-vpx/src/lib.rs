//! VP8 through the system libvpx: a real-time encoder and a decoder over tightly packed
//! I420 pictures (Y plane, then U, then V; chroma at half width and height, rounded up).
//!
//! VP8 because every WebRTC endpoint decodes it, it is royalty-free, and libvpx is a
//! distribution package; docs/benchmarks.md has the measurement against OpenH264.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};

use vpx_sys as ffi;

/// What went wrong in libvpx.
#[derive(Debug, thiserror::Error)]
pub enum VpxError {
    #[error("libvpx {call} failed: {message}")]
    Codec { call: &'static str, message: String },
    #[error("picture is {got} bytes; {width}x{height} I420 needs {want}")]
    Size {
        width: u32,
        height: u32,
        got: usize,
        want: usize,
    },
    #[error("unsupported size {width}x{height}")]
    Dimensions { width: u32, height: u32 },
}

/// Bytes of a tightly packed I420 picture.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    w * h + 2 * cw * ch
}

/// What is being sent: a camera favours motion, a screen sharpness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    Camera,
    Screen,
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    pub width: u32,
    pub height: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Frames per second the source delivers.
    pub fps: u32,
    pub content: Content,
}

impl EncoderConfig {
    /// The bitrate Plenum picks for a picture size when none is configured: about 0.1 bit per
    /// pixel per frame for cameras, 1.5 times that for screens (text must stay sharp), within
    /// 150 kbit/s..4 Mbit/s.
    pub fn bitrate_for(width: u32, height: u32, fps: u32, content: Content) -> u32 {
        let bits = f64::from(width) * f64::from(height) * f64::from(fps.max(1)) * 0.1;
        let kbps = match content {
            Content::Camera => bits / 1000.0,
            Content::Screen => bits / 1000.0 * 1.5,
        };
        (kbps as u32).clamp(150, 4000)
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

fn check(
    ctx: *mut ffi::vpx_codec_ctx_t,
    call: &'static str,
    err: ffi::vpx_codec_err_t,
) -> Result<(), VpxError> {
    if err == ffi::vpx_codec_err_t::VPX_CODEC_OK {
        return Ok(());
    }
    // SAFETY: vpx_codec_error accepts any context pointer that went through init (or a
    // null one) and returns a static NUL-terminated string.
    let message = unsafe {
        let text = ffi::vpx_codec_error(ctx);
        if text.is_null() {
            format!("{err:?}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    };
    Err(VpxError::Codec { call, message })
}

/// A VP8 real-time encoder: one picture in, at most one frame out, no look-ahead.
pub struct Encoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
    /// Our copy of libvpx's settings, changed and handed back for bitrate changes.
    cfg: ffi::vpx_codec_enc_cfg_t,
    config: EncoderConfig,
    pts: i64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// SAFETY: the libvpx context is owned by this value alone and used through &mut self only.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(config: EncoderConfig) -> Result<Self, VpxError> {
        let (width, height) = (config.width, config.height);
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
            return Err(VpxError::Dimensions { width, height });
        }
        // SAFETY: the interface is a static; config_default fully initialises `cfg`.
        let mut cfg = unsafe {
            let mut cfg = MaybeUninit::<ffi::vpx_codec_enc_cfg_t>::uninit();
            let err =
                ffi::vpx_codec_enc_config_default(ffi::vpx_codec_vp8_cx(), cfg.as_mut_ptr(), 0);
            check(std::ptr::null_mut(), "enc_config_default", err)?;
            cfg.assume_init()
        };
        cfg.g_w = width;
        cfg.g_h = height;
        cfg.g_timebase.num = 1;
        cfg.g_timebase.den = 90_000;
        cfg.rc_target_bitrate = config.bitrate_kbps.max(30);
        cfg.rc_end_usage = ffi::vpx_rc_mode::VPX_CBR;
        cfg.g_lag_in_frames = 0;
        cfg.g_threads = 1;
        cfg.g_error_resilient = 1;
        cfg.rc_dropframe_thresh = match config.content {
            Content::Camera => 30,
            Content::Screen => 0,
        };
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = match config.content {
            Content::Camera => 56,
            Content::Screen => 52,
        };
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        // Keyframes when asked for, and a safety net every 100 s (libwebrtc's 3,000
        // frames). Each keyframe costs twice: it is coded at the coarsest quantizer the
        // budget allows, and the picture after it codes the detail back at once, about six
        // pictures' worth of bits (measured on the test pattern at 960x540, 620 kbit/s: 4 KB,
        // then 15 KB, against 2.5 KB a picture). On a lossy path that burst was a 40-50 ms
        // queue every 10 s, repairs waiting behind it (docs/benchmarks.md).
        cfg.kf_mode = ffi::vpx_kf_mode::VPX_KF_AUTO;
        cfg.kf_max_dist = config.fps.max(1) * 100;
        let mut ctx = Box::new(MaybeUninit::<ffi::vpx_codec_ctx_t>::uninit());
        // SAFETY: `ctx` is writable storage that init fills; `cfg` is a valid config.
        let ctx = unsafe {
            let err = ffi::vpx_codec_enc_init_ver(
                ctx.as_mut_ptr(),
                ffi::vpx_codec_vp8_cx(),
                &cfg,
                0,
                ffi::VPX_ENCODER_ABI_VERSION as c_int,
            );
            check(std::ptr::null_mut(), "enc_init", err)?;
            Box::from_raw(Box::into_raw(ctx).cast::<ffi::vpx_codec_ctx_t>())
        };
        let mut encoder = Self {
            ctx,
            cfg,
            config,
            pts: 0,
        };
        // WebRTC's real-time speed for one core; screens: text-friendly, static areas kept.
        encoder.control(ffi::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int, -8)?;
        encoder.control(
            ffi::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
            1,
        )?;
        encoder.control(
            ffi::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
            0,
        )?;
        // A keyframe at most four pictures' worth of bits: through a narrow path a big one
        // takes long to cross, and the picture is frozen meanwhile.
        encoder.control(
            ffi::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
            400,
        )?;
        if config.content == Content::Screen {
            encoder.control(
                ffi::vp8e_enc_control_id::VP8E_SET_SCREEN_CONTENT_MODE as c_int,
                1,
            )?;
        }
        Ok(encoder)
    }

    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    fn control(&mut self, id: c_int, value: c_int) -> Result<(), VpxError> {
        // SAFETY: the context is initialised; these controls take one int.
        let err = unsafe { ffi::vpx_codec_control_(&mut *self.ctx, id, value) };
        check(&mut *self.ctx, "control", err)
    }

    /// Changes the target bitrate on the fly.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), VpxError> {
        self.cfg.rc_target_bitrate = kbps.max(30);
        // SAFETY: the context is initialised; libvpx copies the settings during the call.
        let err = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &self.cfg) };
        check(&mut *self.ctx, "enc_config_set", err)?;
        self.config.bitrate_kbps = kbps.max(30);
        Ok(())
    }

    /// Encodes one picture (`duration_90k`: its display time in 90 kHz ticks). `None` when
    /// the rate control dropped it.
    pub fn encode(
        &mut self,
        i420: &[u8],
        duration_90k: u32,
        keyframe: bool,
    ) -> Result<Option<Encoded>, VpxError> {
        let (width, height) = (self.config.width, self.config.height);
        let want = i420_len(width, height);
        if i420.len() != want {
            return Err(VpxError::Size {
                width,
                height,
                got: i420.len(),
                want,
            });
        }
        let flags = if keyframe {
            ffi::VPX_EFLAG_FORCE_KF as ffi::vpx_enc_frame_flags_t
        } else {
            0
        };
        let mut image = MaybeUninit::<ffi::vpx_image_t>::uninit();
        // SAFETY: img_wrap only describes `i420` (checked to hold a whole picture of this
        // size, alignment 1 = tightly packed); libvpx reads it during encode and never writes.
        let err = unsafe {
            let wrapped = ffi::vpx_img_wrap(
                image.as_mut_ptr(),
                ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
                width as c_uint,
                height as c_uint,
                1,
                i420.as_ptr().cast_mut(),
            );
            if wrapped.is_null() {
                return Err(VpxError::Dimensions { width, height });
            }
            ffi::vpx_codec_encode(
                &mut *self.ctx,
                image.as_ptr(),
                self.pts,
                c_ulong::from(duration_90k),
                flags,
                c_ulong::from(ffi::VPX_DL_REALTIME),
            )
        };
        self.pts += i64::from(duration_90k);
        check(&mut *self.ctx, "encode", err)?;
        let mut out: Option<Encoded> = None;
        let mut iter: ffi::vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: iterating the context's output; each packet stays valid until the
            // next call into the encoder, and is copied out before that.
            unsafe {
                let packet = ffi::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if packet.is_null() {
                    break;
                }
                if (*packet).kind != ffi::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let frame = (*packet).data.frame;
                let bytes = std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz as usize);
                let key = frame.flags & ffi::VPX_FRAME_IS_KEY != 0;
                match out.as_mut() {
                    Some(o) => o.data.extend_from_slice(bytes),
                    None => {
                        out = Some(Encoded {
                            data: bytes.to_vec(),
                            keyframe: key,
                        })
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised and is destroyed once.
        unsafe {
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// The widest or tallest picture a [`Decoder`] accepts.
pub const MAX_DECODE_SIDE: u32 = 4096;
/// The most pixels a [`Decoder`] accepts in one picture (4096x2304): a keyframe that
/// declares more is refused before libvpx allocates for it.
pub const MAX_DECODE_PIXELS: u64 = 4096 * 2304;

/// The picture size a VP8 keyframe declares (RFC 6386, section 9.1), or `None` for an inter
/// frame or bytes too short to say.
pub fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let [tag, _, _, s0, s1, s2, w0, w1, h0, h1, ..] = *frame else {
        return None;
    };
    // Bit 0 of the frame tag is 0 for a keyframe, which carries a start code and its size.
    if tag & 1 != 0 || [s0, s1, s2] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([w0, w1]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([h0, h1]) & 0x3fff);
    Some((width, height))
}

/// A decoded picture, tightly packed I420.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// A VP8 decoder.
pub struct Decoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

// SAFETY: the libvpx context is owned by this value alone and used through &mut self only.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new() -> Result<Self, VpxError> {
        let mut ctx = Box::new(MaybeUninit::<ffi::vpx_codec_ctx_t>::uninit());
        let cfg = ffi::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: `ctx` is writable storage that init fills.
        let ctx = unsafe {
            let err = ffi::vpx_codec_dec_init_ver(
                ctx.as_mut_ptr(),
                ffi::vpx_codec_vp8_dx(),
                &cfg,
                0,
                ffi::VPX_DECODER_ABI_VERSION as c_int,
            );
            check(std::ptr::null_mut(), "dec_init", err)?;
            Box::from_raw(Box::into_raw(ctx).cast::<ffi::vpx_codec_ctx_t>())
        };
        Ok(Self { ctx })
    }

    /// Decodes one frame; `None` if it produced no picture. Corrupt input is an error, and the
    /// decoder stays usable (the next keyframe restores the picture). A keyframe larger than
    /// [`MAX_DECODE_SIDE`] or [`MAX_DECODE_PIXELS`] is refused with
    /// [`VpxError::Dimensions`] before it is decoded.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<Picture>, VpxError> {
        if let Some((width, height)) = keyframe_size(frame)
            && (width > MAX_DECODE_SIDE
                || height > MAX_DECODE_SIDE
                || u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS)
        {
            return Err(VpxError::Dimensions { width, height });
        }
        let size = c_uint::try_from(frame.len()).map_err(|_| VpxError::Codec {
            call: "decode",
            message: "frame too large".into(),
        })?;
        // SAFETY: libvpx reads `size` bytes of `frame` during the call.
        let err = unsafe {
            ffi::vpx_codec_decode(
                &mut *self.ctx,
                frame.as_ptr(),
                size,
                std::ptr::null_mut(),
                0 as c_long,
            )
        };
        check(&mut *self.ctx, "decode", err)?;
        let mut iter: ffi::vpx_codec_iter_t = std::ptr::null();
        let mut last = None;
        loop {
            // SAFETY: each image stays valid until the next decode call; copied out now.
            unsafe {
                let image = ffi::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if image.is_null() {
                    break;
                }
                last = Some(copy_i420(&*image));
            }
        }
        Ok(last)
    }
}

/// Copies a libvpx I420 image (strided planes) into a packed picture.
///
/// # Safety
/// `image` must be a valid I420 image returned by libvpx, with live planes.
unsafe fn copy_i420(image: &ffi::vpx_image_t) -> Picture {
    let (w, h) = (image.d_w as usize, image.d_h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = Vec::with_capacity(w * h + 2 * cw * ch);
    for (plane, pw, ph) in [(0, w, h), (1, cw, ch), (2, cw, ch)] {
        let stride = image.stride[plane] as usize;
        for row in 0..ph {
            // SAFETY: libvpx guarantees `ph` rows of `stride >= pw` bytes in each plane.
            let line =
                unsafe { std::slice::from_raw_parts(image.planes[plane].add(row * stride), pw) };
            data.extend_from_slice(line);
        }
    }
    Picture {
        width: image.d_w,
        height: image.d_h,
        data,
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised and is destroyed once.
        unsafe {
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32, n: u32) -> Vec<u8> {
        let mut data = vec![128u8; i420_len(width, height)];
        for y in 0..height {
            for x in 0..width {
                data[(y * width + x) as usize] = (((x + n * 3) / 8 + y / 8) % 2 * 160 + 40) as u8;
            }
        }
        data
    }

    #[test]
    fn frames_round_trip_and_keyframes_come_when_asked() {
        let (w, h) = (320, 180);
        let mut enc = Encoder::new(EncoderConfig {
            width: w,
            height: h,
            bitrate_kbps: 800,
            fps: 30,
            content: Content::Camera,
        })
        .expect("encoder");
        let mut dec = Decoder::new().expect("decoder");
        let mut keys = Vec::new();
        for n in 0..30 {
            let src = picture(w, h, n);
            let frame = enc
                .encode(&src, 3000, n == 20)
                .expect("encode")
                .expect("a frame");
            keys.push(frame.keyframe);
            let out = dec.decode(&frame.data).expect("decode").expect("a picture");
            assert_eq!((out.width, out.height), (w, h));
            let err: f64 = src[..(w * h) as usize]
                .iter()
                .zip(&out.data)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                / f64::from(w * h);
            let psnr = 10.0 * (255.0f64.powi(2) / err.max(1e-9)).log10();
            assert!(psnr > 30.0, "frame {n}: {psnr:.1} dB");
        }
        assert!(keys[0] && keys[20], "{keys:?}");
        assert_eq!(keys.iter().filter(|k| **k).count(), 2, "{keys:?}");
    }

    #[test]
    fn a_lower_bitrate_makes_smaller_frames() {
        let (w, h) = (320, 180);
        let mut enc = Encoder::new(EncoderConfig {
            width: w,
            height: h,
            bitrate_kbps: 1500,
            fps: 30,
            content: Content::Camera,
        })
        .expect("encoder");
        // Noise: every bit the rate control allows is spent.
        let noisy = |n: u32| -> Vec<u8> {
            let mut state = 0x9e37_79b9_u32 ^ n.wrapping_mul(0x85eb_ca6b);
            (0..i420_len(w, h))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                })
                .collect()
        };
        let bytes = |enc: &mut Encoder, from: u32| -> usize {
            // Frames the rate control drops count as zero bytes; the first third settles.
            (from..from + 60)
                .map(|n| enc.encode(&noisy(n), 3000, false).expect("encode"))
                .skip(20)
                .map(|f| f.map_or(0, |f| f.data.len()))
                .sum()
        };
        let high = bytes(&mut enc, 0);
        enc.set_bitrate(150).expect("bitrate");
        assert_eq!(enc.config().bitrate_kbps, 150);
        let low = bytes(&mut enc, 60);
        assert!(
            low * 3 < high,
            "{low} bytes at 150 kbit/s vs {high} at 1500"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        let mut enc = Encoder::new(EncoderConfig {
            width: 64,
            height: 64,
            bitrate_kbps: 100,
            fps: 30,
            content: Content::Screen,
        })
        .expect("encoder");
        assert!(matches!(
            enc.encode(&[0; 10], 3000, false),
            Err(VpxError::Size { .. })
        ));
        let mut dec = Decoder::new().expect("decoder");
        assert!(dec.decode(&[0xff; 37]).is_err());
        // Still decodes a real frame afterwards.
        let frame = enc
            .encode(&picture(64, 64, 0), 3000, true)
            .expect("encode")
            .expect("frame");
        assert!(dec.decode(&frame.data).expect("decode").is_some());
        assert!(
            Encoder::new(EncoderConfig {
                width: 0,
                height: 64,
                bitrate_kbps: 100,
                fps: 30,
                content: Content::Camera
            })
            .is_err()
        );
    }

    #[test]
    fn a_keyframe_declaring_a_huge_picture_is_refused_before_decoding() {
        let mut enc = Encoder::new(EncoderConfig {
            width: 64,
            height: 48,
            bitrate_kbps: 100,
            fps: 30,
            content: Content::Camera,
        })
        .expect("encoder");
        let key = enc
            .encode(&picture(64, 48, 0), 3000, true)
            .expect("encode")
            .expect("frame");
        assert_eq!(keyframe_size(&key.data), Some((64, 48)));
        // The same keyframe, its header saying 16000x16000 (a forged 256 Mpx picture).
        let mut forged = key.data.clone();
        forged[6..8].copy_from_slice(&16_000u16.to_le_bytes());
        forged[8..10].copy_from_slice(&16_000u16.to_le_bytes());
        let mut dec = Decoder::new().expect("decoder");
        assert!(matches!(
            dec.decode(&forged),
            Err(VpxError::Dimensions {
                width: 16_000,
                height: 16_000
            })
        ));
        // At the bound on one side but over the area: refused too.
        forged[6..8].copy_from_slice(&4096u16.to_le_bytes());
        forged[8..10].copy_from_slice(&4096u16.to_le_bytes());
        assert!(matches!(
            dec.decode(&forged),
            Err(VpxError::Dimensions { .. })
        ));
        // The decoder goes on with real frames.
        assert!(dec.decode(&key.data).expect("decode").is_some());
        // Inter frames and scraps declare nothing.
        let inter = enc
            .encode(&picture(64, 48, 1), 3000, false)
            .expect("encode")
            .expect("frame");
        assert_eq!(keyframe_size(&inter.data), None);
        assert_eq!(keyframe_size(&[0x10, 0, 0]), None);
    }
}
