//! A headless Chromium driven over the W3C WebDriver protocol (Debian's chromium and
//! chromium-driver): chromedriver runs in a network namespace, and each command is one
//! JSON exchange over HTTP/1.1 made from a thread in that namespace. Only what the console
//! test needs: open a page, find elements, click and type,
//! run a script, read the browser's console log, take a screenshot.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::servers::in_ns;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; chromedriver (and the browser with it) ends on drop.
pub struct Browser {
    ns: String,
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver in namespace `ns` on `port` (loopback) and a headless session
    /// with the browser's console log kept. Fails loudly when chromium or chromedriver is
    /// not installed (`cargo xtask setup` installs both).
    pub fn launch(ns: &str, port: u16) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: this test needs Debian's chromium and chromium-driver \
                 (`cargo xtask setup`, or `apt-get install chromium chromium-driver`)"
            );
        }
        let driver = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let mut b = Browser {
            ns: ns.to_owned(),
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.exchange("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1100",
                         format!("--user-data-dir={}", b._profile.path().display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = b.call("POST", "/session", Some(caps));
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {created}"))
            .to_owned();
        b
    }

    /// One HTTP exchange with chromedriver, from its namespace: the JSON body's `value`.
    fn exchange(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (addr, method, path) = (self.addr, method.to_owned(), path.to_owned());
        in_ns(&self.ns, move || -> Result<Value, String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
            let body = read_response(&mut s)?;
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            Ok(v["value"].clone())
        })
        .join()
        .map_err(|_| "the exchange thread panicked".to_owned())?
    }

    /// A WebDriver command that must succeed.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .exchange(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if let Some(error) = v.get("error") {
            panic!("{method} {path}: {error}: {}", v["message"]);
        }
        v
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        );
    }

    /// The elements matching the CSS `selector` (their references).
    pub fn find_all(&self, selector: &str) -> Vec<String> {
        let v = self.call(
            "POST",
            &self.session_path("/elements"),
            Some(json!({"using": "css selector", "value": selector})),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    /// Types `keys` into element `e`.
    pub fn type_into(&self, e: &str, keys: &str) {
        self.call(
            "POST",
            &self.session_path(&format!("/element/{e}/value")),
            Some(json!({"text": keys})),
        );
    }

    /// Clicks element `e`.
    pub fn click(&self, e: &str) {
        self.call(
            "POST",
            &self.session_path(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The browser console's entries since the last read: (level, message).
    pub fn console_log(&self) -> Vec<(String, String)> {
        let v = self.call(
            "POST",
            &self.session_path("/se/log"),
            Some(json!({"type": "browser"})),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("level"), s("message"))
            })
            .collect()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", &self.session_path("/screenshot"), None);
        base64_decode(v.as_str().expect("a base64 screenshot")).expect("valid base64")
    }

    /// Polls `cond` until it holds or `within` passes; false if it never held.
    pub fn wait_for(&self, within: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.exchange("DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An HTTP/1.1 response's body, by its Content-Length (chromedriver keeps the connection
/// open after it).
fn read_response(s: &mut TcpStream) -> Result<String, String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response ended".into());
        }
        all.extend_from_slice(&buf[..n]);
        let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&all[..end]).to_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("no content-length in {head}"))?;
        if all.len() >= end + 4 + length {
            return Ok(String::from_utf8_lossy(&all[end + 4..end + 4 + length]).into_owned());
        }
    }
}

/// Standard base64 (with padding) to bytes; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(
            super::base64_decode("aGVsbG8=").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(super::base64_decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(super::base64_decode("aGV5").as_deref(), Some(&b"hey"[..]));
        assert_eq!(super::base64_decode("a$=="), None);
    }
}
