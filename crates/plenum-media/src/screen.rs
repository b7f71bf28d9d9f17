//! Screens and windows to share: listing them, choosing one, and capturing it at a chosen
//! frame rate as a [`VideoSource`] tuned for screen content (sharpness over motion).
//!
//! Through xcap: X11 (GetImage) and, on Wayland, the desktop portal.

use crate::capture::CaptureError;
use crate::video::{VideoFrame, VideoSource};

/// Pictures per second a shared screen is captured at unless asked otherwise: text stays
/// sharp at the bitrate a camera would use at 30.
pub const DEFAULT_SCREEN_FPS: u32 = 10;

/// Something that can be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenInfo {
    /// `monitor` or `window`.
    pub kind: &'static str,
    /// The system's id for it.
    pub id: u32,
    /// A monitor's name (`DP-1`, `screen`) or a window's title.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The primary monitor (windows: false).
    pub primary: bool,
}

/// What to share: `None` the primary monitor; else a monitor by name or index, or
/// `window:TITLE` (a case-insensitive part of it) or `window:ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenRequest {
    pub target: Option<String>,
    pub fps: u32,
}

impl Default for ScreenRequest {
    fn default() -> Self {
        Self {
            target: None,
            fps: DEFAULT_SCREEN_FPS,
        }
    }
}

/// Picks what `target` names among `screens` (see [`ScreenRequest::target`]).
pub fn find<'a>(
    screens: &'a [ScreenInfo],
    target: Option<&str>,
) -> Result<&'a ScreenInfo, CaptureError> {
    let monitors = || screens.iter().filter(|s| s.kind == "monitor");
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return monitors()
            .find(|s| s.primary)
            .or_else(|| monitors().next())
            .ok_or(CaptureError::NoDisplay("no monitor".to_owned()));
    };
    let (kind, name) = match target.strip_prefix("window:") {
        Some(title) => ("window", title),
        None => ("monitor", target.strip_prefix("monitor:").unwrap_or(target)),
    };
    let of_kind = || screens.iter().filter(move |s| s.kind == kind);
    let wanted = name.to_lowercase();
    let by_index = name
        .parse::<usize>()
        .ok()
        .filter(|_| kind == "monitor")
        .and_then(|i| of_kind().nth(i));
    by_index
        .or_else(|| of_kind().find(|s| s.id.to_string() == name || s.name.to_lowercase() == wanted))
        .or_else(|| of_kind().find(|s| s.name.to_lowercase().contains(&wanted)))
        .ok_or_else(|| CaptureError::NotFound {
            kind,
            name: name.to_owned(),
            available: crate::capture::available(
                of_kind().map(|s| format!("{} ({})", s.name, s.id)),
            ),
        })
}

/// A monitor or window being captured, as a [`VideoSource`].
#[derive(Debug)]
pub struct Screen {
    captured: crate::capture::Captured,
    /// What is shared.
    pub info: ScreenInfo,
}

impl VideoSource for Screen {
    fn next_frame(&mut self, now_ms: u32) -> Option<VideoFrame> {
        self.captured.next_frame(now_ms)
    }

    fn fps(&self) -> u32 {
        self.captured.fps()
    }

    fn content(&self) -> plenum_vpx::Content {
        plenum_vpx::Content::Screen
    }

    fn take_error(&mut self) -> Option<String> {
        self.captured.take_error()
    }
}

/// Whether a display server is there to ask (so that no X library is called without one).
fn display_present() -> Result<(), CaptureError> {
    display_in(|name| std::env::var_os(name))
}

fn display_in(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<(), CaptureError> {
    let set = |name| var(name).is_some_and(|v| !v.is_empty());
    if cfg!(target_os = "linux") && !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
        return Err(CaptureError::NoDisplay(
            "neither DISPLAY nor WAYLAND_DISPLAY is set".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(feature = "screen")]
mod device {
    use super::*;

    fn text(e: xcap::XCapError) -> String {
        e.to_string()
    }

    /// Monitors, then windows (minimised and empty ones left out).
    pub fn screens() -> Result<Vec<ScreenInfo>, CaptureError> {
        display_present()?;
        let monitors = xcap::Monitor::all().map_err(|e| CaptureError::NoDisplay(text(e)))?;
        let mut list = Vec::new();
        for m in monitors {
            list.push(ScreenInfo {
                kind: "monitor",
                id: m.id().map_err(|e| CaptureError::NoDisplay(text(e)))?,
                name: m.name().unwrap_or_default(),
                width: m.width().unwrap_or(0),
                height: m.height().unwrap_or(0),
                primary: m.is_primary().unwrap_or(false),
            });
        }
        for w in xcap::Window::all().unwrap_or_default() {
            let (Ok(id), Ok(width), Ok(height)) = (w.id(), w.width(), w.height()) else {
                continue;
            };
            if w.is_minimized().unwrap_or(false) || width < 2 || height < 2 {
                continue;
            }
            list.push(ScreenInfo {
                kind: "window",
                id,
                name: w.title().unwrap_or_default(),
                width,
                height,
                primary: false,
            });
        }
        Ok(list)
    }

    /// Resolves a monitor or window once and returns what captures it, as I420, picture
    /// after picture (no enumeration per picture). Call it on the thread that captures.
    pub fn grabber(info: &ScreenInfo) -> Result<Grabber, String> {
        let capture: Box<dyn Fn() -> xcap::XCapResult<xcap::image::RgbaImage>> =
            if info.kind == "window" {
                let window = xcap::Window::all()
                    .map_err(text)?
                    .into_iter()
                    .find(|w| w.id().ok() == Some(info.id))
                    .ok_or("the window was closed")?;
                Box::new(move || window.capture_image())
            } else {
                let monitor = xcap::Monitor::all()
                    .map_err(text)?
                    .into_iter()
                    .find(|m| m.id().ok() == Some(info.id))
                    .ok_or("the monitor is gone")?;
                Box::new(move || monitor.capture_image())
            };
        Ok(Box::new(move || {
            let image = capture().map_err(text)?;
            let (w, h) = image.dimensions();
            crate::camera::crop_rgba(w, h, image.as_raw())
                .ok_or_else(|| format!("a {w}x{h} picture does not convert"))
        }))
    }

    impl Screen {
        /// Starts capturing what `request` names.
        pub fn open(request: &ScreenRequest) -> Result<Self, CaptureError> {
            let list = screens()?;
            let info = find(&list, request.target.as_deref())?.clone();
            let label = format!("{} {:?}", info.kind, info.name);
            let target = info.clone();
            let captured = crate::capture::spawn(
                &format!("{}{}", info.kind, info.id),
                request.fps,
                plenum_vpx::Content::Screen,
                move || {
                    let unavailable = |reason| CaptureError::Unavailable {
                        name: label.clone(),
                        reason,
                    };
                    let mut grab = grabber(&target).map_err(unavailable)?;
                    // One picture now, so that a display that refuses capture fails here.
                    let mut first = Some(grab().map_err(unavailable)?);
                    Ok(move || match first.take() {
                        Some(picture) => Ok(picture),
                        None => grab(),
                    })
                },
            )?;
            tracing::info!(screen = %info.name, kind = info.kind, fps = request.fps, "screen capture started");
            Ok(Self { captured, info })
        }
    }
}

/// Captures one monitor or window again and again (see [`grabber`]).
pub type Grabber = Box<dyn FnMut() -> Result<VideoFrame, String>>;

#[cfg(feature = "screen")]
pub use device::{grabber, screens};

#[cfg(not(feature = "screen"))]
/// Screens to share: none, in a build without screen capture.
pub fn screens() -> Result<Vec<ScreenInfo>, CaptureError> {
    display_present()?;
    Err(CaptureError::NotBuilt("screen"))
}

#[cfg(not(feature = "screen"))]
/// Captures nothing, in a build without screen capture.
pub fn grabber(_info: &ScreenInfo) -> Result<Grabber, String> {
    Err(CaptureError::NotBuilt("screen").to_string())
}

#[cfg(not(feature = "screen"))]
impl Screen {
    /// Screen capture is not built in: always an error.
    pub fn open(_request: &ScreenRequest) -> Result<Self, CaptureError> {
        Err(CaptureError::NotBuilt("screen"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(id: u32, name: &str, primary: bool) -> ScreenInfo {
        ScreenInfo {
            kind: "monitor",
            id,
            name: name.into(),
            width: 1920,
            height: 1080,
            primary,
        }
    }

    #[test]
    fn targets_name_monitors_and_windows_or_say_what_there_is() {
        let list = vec![
            monitor(40, "DP-1", false),
            monitor(41, "HDMI-1", true),
            ScreenInfo {
                kind: "window",
                id: 7_340_035,
                name: "Quarterly report - Editor".into(),
                width: 800,
                height: 600,
                primary: false,
            },
        ];
        assert_eq!(
            find(&list, None).map(|s| s.id),
            Ok(41),
            "the primary monitor"
        );
        assert_eq!(find(&list, Some("0")).map(|s| s.id), Ok(40), "by index");
        assert_eq!(find(&list, Some("hdmi-1")).map(|s| s.id), Ok(41));
        assert_eq!(
            find(&list, Some("window:report")).map(|s| s.id),
            Ok(7_340_035)
        );
        assert_eq!(
            find(&list, Some("window:7340035")).map(|s| s.id),
            Ok(7_340_035)
        );
        let err = find(&list, Some("VGA-9")).expect_err("absent");
        assert_eq!(
            err.to_string(),
            "no monitor \"VGA-9\"; available: DP-1 (40), HDMI-1 (41)"
        );
        assert!(matches!(find(&[], None), Err(CaptureError::NoDisplay(_))));
    }

    #[test]
    fn without_a_display_capture_says_so() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let err = display_in(env(&[("DISPLAY", "")])).expect_err("empty DISPLAY");
        assert!(matches!(err, CaptureError::NoDisplay(_)), "{err}");
        assert!(display_in(env(&[("DISPLAY", ":99")])).is_ok());
        assert!(display_in(env(&[("WAYLAND_DISPLAY", "wayland-0")])).is_ok());
    }
}
