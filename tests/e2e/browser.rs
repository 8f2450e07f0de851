//! A real browser for the page's tests: headless Chromium from Debian's packages, driven
//! over W3C WebDriver by chromedriver (both installed by `.ci/run`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::free_port;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, serving WebDriver sessions.
pub struct Driver {
    child: Child,
    url: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Driver {
    pub fn start() -> Driver {
        let (driver, browser) = ("/usr/bin/chromedriver", "/usr/bin/chromium");
        assert!(
            std::path::Path::new(driver).exists() && std::path::Path::new(browser).exists(),
            "the page's tests need Chromium and chromedriver: apt-get install chromium chromium-driver (.ci/run does)"
        );
        jitguard::install_crypto_provider();
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        };
        crate::cluster::eventually("chromedriver is ready", Duration::from_secs(30), || {
            d.send(reqwest::Method::GET, "/status", None)
                .is_ok_and(|v| v["value"]["ready"] == true)
        });
        d
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.runtime.block_on(async {
            let mut request = self.http.request(method, format!("{}{path}", self.url));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let value: Value = response.json().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(value)
            } else {
                Err(format!("{status}: {value}"))
            }
        })
    }

    /// A browser of its own (its own profile, so its own cookies), as one person's.
    pub fn session(&self) -> Session<'_> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let created = self
            .send(reqwest::Method::POST, "/session", Some(capabilities))
            .unwrap();
        Session {
            driver: self,
            id: created["value"]["sessionId"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.driver
            .send(method, &format!("/session/{}{path}", self.id), body)
            .map(|v| v["value"].clone())
    }

    pub fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .unwrap();
    }

    pub fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn element(&self, css: &str) -> Option<String> {
        self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(String::from))
    }

    /// The element's visible text; empty when there is no such element.
    pub fn text(&self, css: &str) -> String {
        self.element(css)
            .and_then(|id| {
                self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                    .ok()
            })
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn click(&self, css: &str) {
        let id = self
            .element(css)
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()));
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .unwrap();
    }

    #[track_caller]
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self
            .element(css)
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()));
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .unwrap();
    }

    /// Polls (reloading the page each time when `reload`) until `check` holds.
    #[track_caller]
    pub fn until(&self, what: &str, reload: bool, mut check: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !check(self) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: not within 60 s; the page:\n{}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(300));
            if reload {
                let _ = self.call(reqwest::Method::POST, "/refresh", Some(json!({})));
            }
        }
    }

    /// A PNG of the window, saved to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let data = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.driver.send(
            reqwest::Method::DELETE,
            &format!("/session/{}", self.id),
            None,
        );
    }
}
