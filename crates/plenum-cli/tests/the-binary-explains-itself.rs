//! The `plenum` binary itself: it names its commands, says its version, and refuses a
//! command it does not have with a clear error and a failing exit code. (The suites that
//! run whole rooms of `plenum` processes are in the workspace's `tests/` crate.)

use std::process::Command;

fn plenum(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(args)
        .output()
        .expect("run plenum");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_names_every_command() {
    let (ok, out, _) = plenum(&["--help"]);
    assert!(ok);
    for command in ["serve", "join", "bench", "sim", "token", "devices"] {
        assert!(
            out.contains(command),
            "--help does not name {command}:\n{out}"
        );
    }
}

#[test]
fn version_is_the_crates() {
    let (ok, out, _) = plenum(&["--version"]);
    assert!(ok);
    assert_eq!(out.trim(), format!("plenum {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn an_unknown_command_is_refused_clearly() {
    let (ok, _, err) = plenum(&["frobnicate"]);
    assert!(!ok);
    assert!(err.contains("frobnicate"), "{err}");
}
