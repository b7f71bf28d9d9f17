//! Builds the web pages a signaling server hands out into the binary: every file of the
//! interface's build (`ui/dist`, made by `scripts/ui.sh`) but the desktop app's own
//! `index.html`. Without a build the list is empty and the server says so at `/r/ROOM`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let dist = manifest.join("../../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let entries: String = files
        .iter()
        .filter(|(path, _)| path != "/index.html")
        .map(|(path, file)| format!("    ({path:?}, include_bytes!({file:?})),\n"))
        .collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("out dir")).join("site.rs");
    std::fs::write(
        out,
        format!("pub(crate) const SITE_FILES: &[(&str, &[u8])] = &[\n{entries}];\n"),
    )
    .expect("write site.rs");
}

/// Every file under `dir`, as (its path from `root` with a leading `/`, its absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let (Ok(relative), Ok(absolute)) = (path.strip_prefix(root), path.canonicalize())
        {
            let web = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((web, absolute.to_string_lossy().into_owned()));
        }
    }
}
