//! The guest client and its assets, built into the binary from the interface's build
//! (`ui/dist`), for `plenum serve` and the app when it hosts: a browser opens `/r/ROOM` on
//! the signaling server's own port and joins with no install.

/// A built-in file: its path, its body, and its body gzipped (text files, where smaller).
type SiteFile = (&'static str, &'static [u8], Option<&'static [u8]>);

include!(concat!(env!("OUT_DIR"), "/site.rs"));

/// The site a signaling server hands out.
pub fn site() -> plenum_signal::Site {
    plenum_signal::Site::with_gzip(SITE_FILES.iter().copied())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_desktop_apps_own_page_is_left_out() {
        assert!(
            super::SITE_FILES
                .iter()
                .all(|(path, _, _)| *path != "/index.html")
        );
        assert!(
            super::SITE_FILES
                .iter()
                .all(|(path, _, _)| path.starts_with('/'))
        );
    }

    #[test]
    fn scripts_come_gzipped_and_smaller() {
        use std::io::Read;
        for (path, body, gzip) in super::SITE_FILES {
            if !path.ends_with(".js") {
                continue;
            }
            let gzip = gzip.unwrap_or_else(|| panic!("{path} has no gzipped form"));
            assert!(gzip.len() < body.len(), "{path}");
            let mut unzipped = Vec::new();
            flate2::read::GzDecoder::new(gzip)
                .read_to_end(&mut unzipped)
                .expect("gunzip");
            assert_eq!(unzipped.as_slice(), *body, "{path}");
        }
    }
}
