//! A WebDriver client: just the calls the tests use, over plain HTTP.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// W3C's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Session {
    base: String,
    agent: ureq::Agent,
}

impl Session {
    /// Starts the app under tauri-driver at `port` with `args`.
    pub fn start(port: u16, application: &Path, args: &[String]) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application, "args": args}
        }}});
        let root = format!("http://127.0.0.1:{port}");
        let value = post(&agent, &format!("{root}/session"), &caps);
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {value}"))
            .to_owned();
        Self {
            base: format!("{root}/session/{id}"),
            agent,
        }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        post(&self.agent, &format!("{}{path}", self.base), body)
    }

    fn get(&self, path: &str) -> Value {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .expect("webdriver GET");
        let body: Value = resp.body_mut().read_json().expect("webdriver JSON");
        body["value"].clone()
    }

    /// The window's place and size: (x, y, width, height).
    pub fn window_rect(&self) -> (i64, i64, i64, i64) {
        let v = self.get("/window/rect");
        let n = |k: &str| v[k].as_f64().map_or(-1, |f| f.round() as i64);
        (n("x"), n("y"), n("width"), n("height"))
    }

    /// Moves and resizes the window, as a user dragging it would.
    pub fn set_window_rect(&self, (x, y, width, height): (i64, i64, i64, i64)) -> Value {
        self.post(
            "/window/rect",
            &json!({"x": x, "y": y, "width": width, "height": height}),
        )
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self.post("/element", &json!({"using": "css selector", "value": css}));
        v.get(ELEMENT).and_then(Value::as_str).map(str::to_owned)
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.post("/elements", &json!({"using": "css selector", "value": css}));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get(ELEMENT).and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn click(&self, element: &str) {
        let v = self.post(&format!("/element/{element}/click"), &json!({}));
        assert!(v.is_null(), "click failed: {v}");
    }

    pub fn type_text(&self, element: &str, text: &str) {
        let v = self.post(&format!("/element/{element}/value"), &json!({"text": text}));
        assert!(v.is_null(), "typing failed: {v}");
    }

    pub fn clear(&self, element: &str) {
        self.post(&format!("/element/{element}/clear"), &json!({}));
    }

    /// The element's rendered text.
    pub fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .as_str()
            .map(str::to_owned)
    }

    pub fn property(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/property/{name}"))
    }

    /// Runs a script in the page; `arguments` are available to it as `arguments[i]`.
    pub fn execute(&self, script: &str, arguments: Value) -> Value {
        self.post(
            "/execute/sync",
            &json!({"script": script, "args": arguments}),
        )
    }

    /// Runs `script` until it calls its last argument with the result.
    pub fn execute_async(&self, script: &str, arguments: Value) -> Value {
        self.post(
            "/execute/async",
            &json!({"script": script, "args": arguments}),
        )
    }

    /// A pointer drag through `points` (viewport pixels) with the left button held.
    pub fn drag(&self, points: &[(i64, i64)]) {
        let mut actions = vec![];
        for (i, (x, y)) in points.iter().enumerate() {
            actions.push(json!({"type": "pointerMove", "duration": 20, "x": x, "y": y}));
            if i == 0 {
                actions.push(json!({"type": "pointerDown", "button": 0}));
            }
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        let body = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": actions}]});
        let v = self.post("/actions", &body);
        assert!(v.is_null(), "actions failed: {v}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the app; the driver guards stop whatever is left.
        let _ = self.agent.delete(&self.base).call();
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Value {
    let mut resp = agent
        .post(url)
        .send_json(body)
        .unwrap_or_else(|e| panic!("webdriver POST {url}: {e}"));
    let body: Value = resp.body_mut().read_json().expect("webdriver JSON");
    body["value"].clone()
}
