//! A minimal W3C WebDriver client: enough to drive a headless Chromium
//! through chromedriver for the dashboard tests (open a page, run a
//! script, click, take a screenshot).
//!
//! Chromium runs with the flags this machine needs (no sandbox as root, no
//! GPU, no background networking: the network is closed) and a fresh
//! profile directory. The session is deleted and chromedriver stopped on
//! drop, so no browser outlives the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary: `CELERIAC_TEST_CHROMIUM`, else `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CELERIAC_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The chromedriver binary: `CELERIAC_TEST_CHROMEDRIVER`, else `chromedriver`.
pub fn chromedriver() -> PathBuf {
    std::env::var_os("CELERIAC_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

/// A browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Browser {
    /// Start chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let chromium = chromium();
        assert!(
            chromium.exists(),
            "{} not found: install Debian's chromium and chromium-driver \
             (scripts/test.sh does), or set CELERIAC_TEST_CHROMIUM",
            chromium.display()
        );
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; install chromium-driver (scripts/test.sh does) \
                     or set CELERIAC_TEST_CHROMEDRIVER",
                    chromedriver().display()
                )
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("celeriac-chromium-")
            .tempdir()
            .expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1400,1100".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args},
        }}});
        let mut browser = Browser {
            driver,
            port,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let answer = browser.call("POST", "/session", capabilities).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| format!("webdriver {method} {path}: {e}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            Err(format!("webdriver {method} {path}: {status} {value}"))
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Open `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.path("/url"), json!({"url": url}))
            .await;
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) and return
    /// its value.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            "POST",
            &self.path("/execute/sync"),
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Run `script` until it returns something truthy; returns that.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                start.elapsed() < limit,
                "not within {limit:?}: {what} (last value {value})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the element matching `css` as a user would (WebDriver's
    /// element click: scrolled into view, hit-tested).
    pub async fn click(&self, css: &str) {
        // The dashboard re-renders rows as updates arrive: an element found
        // just before a re-render is stale, so find it again and retry.
        let mut last = String::new();
        for _ in 0..20 {
            let found = self
                .try_call(
                    "POST",
                    &self.path("/element"),
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            let id = match found {
                Ok(found) => found[ELEMENT].as_str().map(str::to_owned),
                Err(e) => {
                    last = e;
                    None
                }
            };
            if let Some(id) = id {
                match self
                    .try_call(
                        "POST",
                        &self.path(&format!("/element/{id}/click")),
                        json!({}),
                    )
                    .await
                {
                    Ok(_) => return,
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot click {css}: {last}");
    }

    /// The current address.
    pub async fn current_url(&self) -> String {
        self.call("GET", &self.path("/url"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Save a PNG screenshot of the viewport to `path`; prints the path.
    pub async fn screenshot(&self, path: &Path) {
        let data = self
            .call("GET", &self.path("/screenshot"), Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, bytes).expect("write screenshot");
        println!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Delete the session (closes Chromium), without an async runtime.
        if !self.session.is_empty() {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.port
                );
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
