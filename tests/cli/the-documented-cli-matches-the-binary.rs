//! docs/cli.md holds the `plenum` command's contract: every option a subcommand's `--help`
//! lists is in the synopsis, every subcommand the binary has is there, and every event
//! `plenum join --json` prints in a short call is in the events table.

use plenum_e2e::cli as common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{event, serve, spawn_join};
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    std::fs::read_to_string(path).expect("docs/cli.md")
}

/// The synopsis: the first fenced block.
fn synopsis(doc: &str) -> &str {
    let start = doc.find("```\n").expect("a synopsis") + 4;
    let end = start + doc[start..].find("```").expect("its end");
    &doc[start..end]
}

fn help(args: &[&str]) -> String {
    let out = Command::new(common::bin())
        .args(args)
        .arg("--help")
        .output()
        .expect("plenum --help");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The long options a help text lists (but `--help`).
fn options(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '<' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// The subcommands a help text lists (the lines under `Commands:`), but `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_and_option_is_in_the_synopsis() {
    let doc = doc();
    let synopsis = synopsis(&doc);
    let mut commands: Vec<Vec<String>> = Vec::new();
    for sub in subcommands(&help(&[])) {
        let nested = subcommands(&help(&[&sub]));
        if nested.is_empty() {
            commands.push(vec![sub]);
        } else {
            commands.extend(nested.into_iter().map(|n| vec![sub.clone(), n]));
        }
    }
    assert!(commands.len() >= 10, "{commands:?}");
    let mut missing = Vec::new();
    for command in &commands {
        let line = format!("plenum {}", command.join(" "));
        let named = synopsis.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(&line)
        });
        if !named {
            missing.push(line.clone());
        }
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        for option in options(&help(&args)) {
            let listed = synopsis
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == option);
            if !listed {
                missing.push(format!("{line} {option}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/cli.md's synopsis: {missing:#?}"
    );
}

#[test]
fn the_events_of_a_call_are_in_the_events_table() {
    let doc = doc();
    let documented = |name: &str| {
        doc.lines().any(|l| {
            l.starts_with("| `")
                && l.split('|')
                    .nth(1)
                    .is_some_and(|c| c.contains(&format!("`{name}`")))
        })
    };
    let server = serve(&[]);
    let mut a = spawn_join(
        &server.url,
        "contract",
        "a",
        &["--audio", "sine:440", "--video", "testsrc:160x90@10"],
    );
    let mut b = spawn_join(&server.url, "contract", "b", &[]);
    a.expect(LONG, "joined", |v| event(v) == "joined");
    b.expect(LONG, "a's link", |v| event(v) == "peer_join");
    b.expect(LONG, "a's video announced", |v| {
        event(v) == "stream_add" && v["kind"] == "video"
    });
    a.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "hi"}}));
    b.expect(LONG, "a's chat", |v| event(v) == "message");
    for p in [&mut a, &mut b] {
        p.cmd(json!({"cmd": "peers"}));
        p.expect(LONG, "peers", |v| event(v) == "peers");
        p.cmd(json!({"cmd": "stats"}));
        p.expect(LONG, "stats", |v| event(v) == "stats");
        p.cmd(json!({"cmd": "leave"}));
        p.expect(LONG, "left", |v| event(v) == "left");
    }
    let seen: BTreeSet<String> = a
        .seen
        .iter()
        .chain(&b.seen)
        .map(|v| event(v).to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    assert!(seen.len() >= 8, "{seen:?}");
    let undocumented: Vec<&String> = seen.iter().filter(|e| !documented(e)).collect();
    assert!(
        undocumented.is_empty(),
        "events missing from docs/cli.md: {undocumented:?}"
    );
}
