//! Builds the web pages a signaling server hands out into the binary: every file of the
//! interface's build (`ui/dist`, made by `scripts/ui.sh`) but the desktop app's own
//! `index.html`. Without a build the list is empty and the server says so at `/r/ROOM`.
//! Text files (scripts, styles, pages, SVG) are also gzipped here, once, for clients that
//! accept it: the guest page's scripts shrink to a third.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let dist = manifest.join("../../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("out dir"));
    let entries: String = files
        .iter()
        .filter(|(path, _)| path != "/index.html")
        .enumerate()
        .map(|(i, (path, file))| {
            let gzip = gzipped(Path::new(file), &out_dir.join(format!("{i}.gz"))).map_or_else(
                || "None".to_owned(),
                |gz| format!("Some(include_bytes!({gz:?}))"),
            );
            format!("    ({path:?}, include_bytes!({file:?}), {gzip}),\n")
        })
        .collect();
    std::fs::write(
        out_dir.join("site.rs"),
        format!("pub(crate) const SITE_FILES: &[SiteFile] = &[\n{entries}];\n"),
    )
    .expect("write site.rs");
}

/// Writes `file` gzipped to `out` if it is text and that makes it smaller; the path written.
fn gzipped(file: &Path, out: &Path) -> Option<String> {
    use std::io::Write;
    let text = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("js" | "css" | "html" | "svg" | "json" | "txt" | "map")
    );
    if !text {
        return None;
    }
    let body = std::fs::read(file).ok()?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&body).ok()?;
    let gz = encoder.finish().ok()?;
    if gz.len() >= body.len() {
        return None;
    }
    std::fs::write(out, gz).ok()?;
    Some(out.to_string_lossy().into_owned())
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
