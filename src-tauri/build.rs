use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn main() {
    build_ui();
    // Each command gets an `allow-<name>` permission, which capabilities/default.json grants
    // to the main window only; a command not listed cannot be invoked at all.
    let commands: &[&str] = include!("src/command_names.rs");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri build step failed");
}

const UI_SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// Builds ui/dist (which the binary embeds) when the interface's sources are newer than it,
/// so that building the app builds its interface. `PLENUM_SKIP_UI_BUILD=1` turns this off.
fn build_ui() {
    let ui = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../ui");
    for source in UI_SOURCES {
        println!("cargo:rerun-if-changed=../ui/{source}");
    }
    println!("cargo:rerun-if-env-changed=PLENUM_SKIP_UI_BUILD");
    if std::env::var_os("PLENUM_SKIP_UI_BUILD").is_some() {
        return;
    }
    let built = modified(&ui.join("dist/index.html"));
    let newest = UI_SOURCES
        .iter()
        .filter_map(|s| newest_in(&ui.join(s)))
        .max();
    if built.is_some() && built >= newest {
        return;
    }
    let npm = |args: &[&str]| {
        let status = Command::new("npm")
            .args(args)
            .current_dir(&ui)
            .status()
            .unwrap_or_else(|e| panic!("cannot run npm (install Node.js 20+ and npm): {e}"));
        assert!(
            status.success(),
            "`npm {}` in ui/ failed: {status}",
            args.join(" ")
        );
    };
    if !ui.join("node_modules").is_dir() {
        npm(&[
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]);
    }
    npm(&["run", "build"]);
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

fn newest_in(path: &Path) -> Option<SystemTime> {
    if !path.is_dir() {
        return modified(path);
    }
    let entries = std::fs::read_dir(path).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p: PathBuf| newest_in(&p))
        .max()
}
