//! ui/src/bindings.ts is what the Rust types generate.

#[test]
fn bindings_match_the_rust_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
    let generated = plenum_app::bindings::generate();
    if std::env::var_os("PLENUM_WRITE_BINDINGS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run PLENUM_SKIP_UI_BUILD=1 PLENUM_WRITE_BINDINGS=1 cargo test -p plenum-app --test bindings-match-the-rust-types",
        path.display()
    );
    for name in plenum_app::bindings::COMMANDS {
        assert!(
            committed.contains(&format!("\"{name}\"")),
            "command {name} missing"
        );
    }
}
