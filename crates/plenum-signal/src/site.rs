//! The web pages a signaling server hands out beside its WebSocket: the guest client, so a
//! browser joins a room from a link to the server itself (`/r/ROOM`), with no install.
//!
//! The server answers plain HTTP GET and HEAD requests on the same port as the WebSocket
//! (one URL to hand out, one port to open); everything else it answers with an error and
//! closes.

use std::collections::HashMap;
use std::sync::Arc;

/// The path of the guest page among the site's files.
pub const GUEST_PAGE: &str = "/guest.html";

/// The files a server hands out, by path (`/assets/x.js`), built into the binary.
#[derive(Clone, Default)]
pub struct Site {
    files: Arc<HashMap<&'static str, File>>,
}

#[derive(Clone, Copy)]
struct File {
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("files", &self.files.len())
            .finish()
    }
}

/// What a GET of a path answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same body gzipped, for a client that accepts it, where that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// Whether its content never changes under this path (a hashed asset): cached for good.
    pub immutable: bool,
}

impl Site {
    /// A site of these files, each `(path, body)` with `path` starting with `/`.
    pub fn new(files: impl IntoIterator<Item = (&'static str, &'static [u8])>) -> Self {
        Self::with_gzip(files.into_iter().map(|(path, body)| (path, body, None)))
    }

    /// A site of these files, each `(path, body, the body gzipped)`.
    pub fn with_gzip(
        files: impl IntoIterator<Item = (&'static str, &'static [u8], Option<&'static [u8]>)>,
    ) -> Self {
        Self {
            files: Arc::new(
                files
                    .into_iter()
                    .map(|(path, body, gzip)| (path, File { body, gzip }))
                    .collect(),
            ),
        }
    }

    /// Whether the guest page is built in.
    pub fn has_guest_page(&self) -> bool {
        self.files.contains_key(GUEST_PAGE)
    }

    /// The page for `path` (the request target, query included): the guest page for
    /// `/r/ROOM`, a file by its path, or nothing.
    pub fn lookup(&self, target: &str) -> Option<Page> {
        let path = target.split(['?', '#']).next().unwrap_or("");
        let (file, immutable) = match path.strip_prefix("/r/") {
            Some(room) if !room.is_empty() && !room.contains('/') => (GUEST_PAGE, false),
            _ => (path, path.starts_with("/assets/")),
        };
        let found = self.files.get(file)?;
        Some(Page {
            content_type: content_type(file),
            body: found.body,
            gzip: found.gzip,
            immutable,
        })
    }
}

/// The media type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "webmanifest") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("wav") => "audio/wav",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::new([
            (GUEST_PAGE, b"<html>guest</html>".as_slice()),
            ("/assets/guest-1a2b.js", b"console.log(1)".as_slice()),
        ])
    }

    #[test]
    fn a_room_link_gets_the_guest_page_and_assets_their_files() {
        let site = site();
        let page = site.lookup("/r/standup?name=Ada").expect("guest page");
        assert_eq!(page.body, b"<html>guest</html>");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(!page.immutable);
        let script = site.lookup("/assets/guest-1a2b.js").expect("asset");
        assert_eq!(script.content_type, "text/javascript; charset=utf-8");
        assert!(script.immutable);
    }

    #[test]
    fn anything_else_is_not_found() {
        let site = site();
        for target in [
            "/",
            "/r/",
            "/r/a/b",
            "/assets/none.js",
            "/../etc/passwd",
            "",
        ] {
            assert_eq!(site.lookup(target), None, "{target}");
        }
        assert!(!Site::default().has_guest_page());
        assert_eq!(Site::default().lookup("/r/standup"), None);
    }
}
