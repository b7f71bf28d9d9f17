fn main() {
    // Each command gets an `allow-<name>` permission, which capabilities/default.json grants
    // to the main window only; a command not listed cannot be invoked at all.
    let commands: &[&str] = include!("src/command_names.rs");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri build step failed");
}
