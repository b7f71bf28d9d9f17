//! The guest client and its assets, built into the binary from the interface's build
//! (`ui/dist`), for `plenum serve` and the app when it hosts: a browser opens `/r/ROOM` on
//! the signaling server's own port and joins with no install.

include!(concat!(env!("OUT_DIR"), "/site.rs"));

/// The site a signaling server hands out.
pub fn site() -> plenum_signal::Site {
    plenum_signal::Site::new(SITE_FILES.iter().copied())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_desktop_apps_own_page_is_left_out() {
        assert!(
            super::SITE_FILES
                .iter()
                .all(|(path, _)| *path != "/index.html")
        );
        assert!(
            super::SITE_FILES
                .iter()
                .all(|(path, _)| path.starts_with('/'))
        );
    }
}
