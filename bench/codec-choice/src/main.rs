use std::time::Instant;
use vpx_sys as vpx;
use openh264::encoder::{Encoder, EncoderConfig, BitRate, FrameRate, UsageType, RateControlMode};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;

fn frame(w: usize, h: usize, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; w * h * 3 / 2];
    for y in 0..h { for x in 0..w {
        let t = ((x + n * 4) ^ (y + n * 2)) as u32;
        v[y * w + x] = ((x * 255 / w) as u32 / 2 + (t.wrapping_mul(2654435761) >> 28) * 4 + if (x / 40 + y / 40 + n / 5) % 2 == 0 { 60 } else { 0 }) as u8;
    }}
    for i in w * h..v.len() { v[i] = (128 + (i % 37)) as u8; }
    v
}

fn vp8(w: usize, h: usize, frames: &[Vec<u8>], cpu: i32) -> (f64, usize) {
    unsafe {
        let iface = vpx::vpx_codec_vp8_cx();
        let mut cfg = std::mem::MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::uninit();
        vpx::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0);
        let mut cfg = cfg.assume_init();
        cfg.g_w = w as u32; cfg.g_h = h as u32; cfg.rc_target_bitrate = if w > 700 { 2500 } else { 800 };
        cfg.g_timebase.num = 1; cfg.g_timebase.den = 90000; cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.g_lag_in_frames = 0; cfg.g_threads = 1; cfg.g_error_resilient = 1; cfg.kf_max_dist = 3000;
        let mut ctx = std::mem::MaybeUninit::<vpx::vpx_codec_ctx_t>::uninit();
        assert_eq!(vpx::vpx_codec_enc_init_ver(ctx.as_mut_ptr(), iface, &cfg, 0, vpx::VPX_ENCODER_ABI_VERSION as i32), vpx::vpx_codec_err_t::VPX_CODEC_OK);
        let mut ctx = ctx.assume_init();
        vpx::vpx_codec_control_(&mut ctx, vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as i32, cpu);
        let mut bytes = 0;
        let t = Instant::now();
        for (i, f) in frames.iter().enumerate() {
            let mut img = std::mem::MaybeUninit::<vpx::vpx_image_t>::uninit();
            vpx::vpx_img_wrap(img.as_mut_ptr(), vpx::vpx_img_fmt::VPX_IMG_FMT_I420, w as u32, h as u32, 1, f.as_ptr() as *mut u8);
            let img = img.assume_init();
            assert_eq!(vpx::vpx_codec_encode(&mut ctx, &img, (i * 3000) as i64, 3000, 0, vpx::VPX_DL_REALTIME as u64), vpx::vpx_codec_err_t::VPX_CODEC_OK);
            let mut iter = std::ptr::null();
            loop {
                let pkt = vpx::vpx_codec_get_cx_data(&mut ctx, &mut iter);
                if pkt.is_null() { break; }
                if (*pkt).kind == vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT { bytes += (*pkt).data.frame.sz; }
            }
        }
        let el = t.elapsed().as_secs_f64();
        vpx::vpx_codec_destroy(&mut ctx);
        (frames.len() as f64 / el, bytes as usize)
    }
}

fn h264(w: usize, h: usize, frames: &[Vec<u8>]) -> (f64, usize) {
    let cfg = EncoderConfig::new().bitrate(BitRate::from_bps(if w > 700 { 2_500_000 } else { 800_000 })).max_frame_rate(FrameRate::from_hz(30.0)).usage_type(UsageType::CameraVideoRealTime).rate_control_mode(RateControlMode::Bitrate).num_threads(1);
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), cfg).unwrap();
    let bufs: Vec<YUVBuffer> = frames.iter().map(|f| YUVBuffer::from_vec(f.clone(), w, h)).collect();
    let mut bytes = 0;
    let t = Instant::now();
    for b in &bufs { bytes += enc.encode(b).unwrap().to_vec().len(); }
    (frames.len() as f64 / t.elapsed().as_secs_f64(), bytes)
}

fn main() {
    for (w, h) in [(640, 360), (1280, 720)] {
        let frames: Vec<Vec<u8>> = (0..300).map(|n| frame(w, h, n)).collect();
        for cpu in [-6, -8, -12, -16] { let (fps, b) = vp8(w, h, &frames, cpu); println!("{w}x{h} vp8 cpu{cpu}: {fps:.0} fps, {} kbit/s@30", b * 8 * 30 / 300 / 1000); }
        let (fps, b) = h264(w, h, &frames); println!("{w}x{h} openh264: {fps:.0} fps, {} kbit/s@30", b * 8 * 30 / 300 / 1000);
    }
}
