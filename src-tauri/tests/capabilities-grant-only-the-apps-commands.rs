//! Least privilege: the main window may call the app's own commands, listen to its events and
//! open http(s) links; nothing else. The content security policy allows only the app's own
//! scripts.

use std::collections::BTreeSet;

use serde_json::Value;

fn read(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON")
}

#[test]
fn capabilities_grant_only_the_apps_commands() {
    let cap = read("capabilities/default.json");
    assert_eq!(cap["windows"], serde_json::json!(["main"]));
    let mut granted = BTreeSet::new();
    for p in cap["permissions"].as_array().expect("a list") {
        match p {
            Value::String(id) => granted.insert(id.clone()),
            Value::Object(o) => {
                let id = o["identifier"].as_str().expect("an identifier");
                assert_eq!(id, "opener:allow-open-url");
                let urls: Vec<&str> = o["allow"]
                    .as_array()
                    .expect("a scope")
                    .iter()
                    .map(|u| u["url"].as_str().expect("url"))
                    .collect();
                assert_eq!(urls, ["https://*", "http://*"]);
                granted.insert(id.to_owned())
            }
            other => panic!("unexpected permission {other}"),
        };
    }
    let mut expected: BTreeSet<String> = plenum_app::bindings::COMMANDS
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    expected.extend(
        [
            "core:event:allow-listen",
            "core:event:allow-unlisten",
            "opener:allow-open-url",
        ]
        .map(String::from),
    );
    assert_eq!(granted, expected);
}

#[test]
fn the_content_security_policy_allows_only_the_apps_own_code() {
    let conf = read("tauri.conf.json");
    let csp = conf["app"]["security"]["csp"].as_str().expect("a CSP");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert_eq!(conf["app"]["security"]["freezePrototype"], true);
}
