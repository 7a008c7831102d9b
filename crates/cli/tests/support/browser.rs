//! A real headless Chromium, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ending in a NUL byte, commands on the browser's
//! fd 3, answers and events on its fd 4). No WebSocket, no driver binary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The browser binary: `MTA_STS_CHROMIUM`, else Debian's.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("MTA_STS_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A running browser with one page.
pub struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events received while waiting for answers, oldest first.
    events: Vec<Value>,
    _profile: PathBuf,
}

const STEP: Duration = Duration::from_secs(60);

impl Browser {
    /// Starts Chromium headless with a fresh profile in `profile`, and opens a blank page.
    pub fn start(profile: &Path) -> Browser {
        let chromium = chromium_path();
        assert!(
            chromium.exists(),
            "{} not found: the dashboard browser test needs Debian's chromium (scripts/test.sh installs it)",
            chromium.display()
        );
        std::fs::create_dir_all(profile).unwrap();
        // The shell moves our pipes to fds 3 and 4, where Chromium looks for them.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (send, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop();
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && send.send(value).is_err()
                {
                    return;
                }
            }
        });
        let mut browser = Browser {
            child,
            input,
            messages,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile.to_owned(),
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        browser.page("Page.enable", json!({}));
        browser.page("Runtime.enable", json!({}));
        browser
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + STEP;
        loop {
            let message = self.receive(deadline, method);
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                panic!("chromium: no answer to {waiting_for} in {STEP:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("chromium exited while waiting for {waiting_for}")
            }
        }
    }

    /// A command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    fn wait_for_event(&mut self, name: &str) {
        if let Some(at) = self.events.iter().position(|e| e["method"] == name) {
            self.events.drain(..=at);
            return;
        }
        self.events.clear();
        let deadline = Instant::now() + STEP;
        while self.receive(deadline, name)["method"] != name {}
    }

    /// Opens `url` and waits until the page has loaded.
    pub fn open(&mut self, url: &str) {
        self.events.clear();
        let result = self.page("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "cannot open {url}: {}",
            result["errorText"]
        );
        self.wait_for_event("Page.loadEventFired");
    }

    /// Runs `script` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, script: &str) -> Value {
        let result = self.page(
            "Runtime.evaluate",
            json!({"expression": script, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("script failed: {exception}\n{script}");
        }
        result["result"]["value"].clone()
    }

    /// Runs `script`, which starts a navigation (a form submit), and waits for the new page.
    pub fn eval_and_wait(&mut self, script: &str) {
        self.events.clear();
        self.eval(script);
        self.wait_for_event("Page.loadEventFired");
    }

    /// The page's address now.
    pub fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Sets the viewport: `width` CSS pixels wide, `mobile` for a phone.
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light).
    pub fn color_scheme(&mut self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.page(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        );
    }

    /// Saves a PNG of the whole page at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.page(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert!(data.starts_with(b"\x89PNG"), "screenshot is a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, data).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
