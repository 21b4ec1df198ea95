//! The one builder of test configs, for the unit tests here and the integration tests in
//! `tests/` and `userspace/tests/`: it writes the TOML model (`[server]`, zones, sites with
//! their controllers, virtual servers, pools, wide IPs, regions, topology, agents, answers)
//! so that no test carries its own copy of those sections.
//!
//! Always compiled (it only builds strings), hidden from the docs: a feature flag could let a
//! `cargo test` leave tests out without saying so.
//!
//! Kept as literal TOML on purpose: the parser's own tests (`config/mod.rs`'s `GOOD`,
//! `config/gslb_tests.rs`, `config/agents.rs`'s `[agents]` section, `agent/config_tests.rs`,
//! `metrics/file_tests.rs`), where the text itself is what is tested (a key misspelt, a
//! value out of range, the error that names it), and the metrics files and agent configs
//! the netns tests write (`[[vs]]`, `[[edns]]`), which are not this config. Zone files are
//! not the model either (`tests/src/zone.rs`, the dns tests' zones), nor is
//! `balance/fixtures.rs`, which builds `Model` values directly for the balancing tables.
//!
//! ```
//! use xgslb::test_model::TestModel;
//! let text = TestModel::new(&["198.18.0.2:53"])
//!     .demo_zone()
//!     .site("a", "lb", &[("one", "198.18.1.1"), ("two", "198.18.1.2")])
//!     .pool("p", &["one", "two"], "ratio")
//!     .wideip("app.example.test.", &["p"])
//!     .with("when_all_down = \"servfail\"")
//!     .toml();
//! assert!(text.contains("[[wideip]]\nname = \"app.example.test.\""));
//! ```
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use crate::config::Config;

/// The demo zone (config/example.test.zone), copied beside a written config that names it.
const DEMO_ZONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/example.test.zone");

/// A config being written: the single tables (`[server]`, `[balancer]`, `[agents]`) and,
/// after them, the arrays of tables in the order they were added.
#[derive(Clone, Debug)]
pub struct TestModel {
    /// Each single table's name and its key lines, `[server]` first.
    tables: Vec<(String, String)>,
    /// `[[...]]` sections; `with` adds keys to the last one.
    body: String,
    demo_zone: bool,
    /// The HTTP endpoint's token, written to `http.token` next to the config.
    http_token: Option<String>,
}

impl TestModel {
    /// A config whose `[server]` listens on `listen` (address:port each).
    pub fn new(listen: &[&str]) -> Self {
        Self {
            tables: vec![("server".into(), format!("listen = {}\n", list(listen)))],
            body: String::new(),
            demo_zone: false,
            http_token: None,
        }
    }

    /// A config for a daemon run without root: listening on 127.0.0.1 (any port), XDP off,
    /// its control socket at `control`, the demo zone.
    pub fn loopback(control: &Path) -> Self {
        let socket = format!("control_socket = {:?}", control.display().to_string());
        Self::new(&["127.0.0.1:0"])
            .set("server", "xdp_mode = \"off\"")
            .set("server", &socket)
            .demo_zone()
    }

    /// Adds the key line `line` (`key = value`, value in TOML) to the single table `table`
    /// (`server`, `balancer`, `agents`).
    pub fn set(mut self, table: &str, line: &str) -> Self {
        let lines = match self.tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, lines)) => lines,
            None => {
                self.tables.push((table.into(), String::new()));
                &mut self.tables.last_mut().expect("just pushed").1
            }
        };
        lines.push_str(line);
        lines.push('\n');
        self
    }

    /// Requires `token` on the HTTP endpoint: `server.http_token_file = "http.token"`, the
    /// file written (owner-only) with the config.
    pub fn http_token(mut self, token: &str) -> Self {
        self.http_token = Some(token.to_owned());
        self.set("server", "http_token_file = \"http.token\"")
    }

    /// Adds the key line `line` to the section added last.
    pub fn with(mut self, line: &str) -> Self {
        self.body.push_str(line);
        self.body.push('\n');
        self
    }

    /// Appends `raw` TOML sections as they are, for the rare key no method writes.
    pub fn section(mut self, raw: &str) -> Self {
        self.body.push_str(raw);
        if !raw.ends_with('\n') {
            self.body.push('\n');
        }
        self
    }

    /// The demo zone `example.test.` from config/example.test.zone (copied by `write`).
    pub fn demo_zone(mut self) -> Self {
        self.demo_zone = true;
        self.zone("example.test.", "example.test.zone")
    }

    /// A `[[zone]]` for `origin` from `file` (relative to the config).
    pub fn zone(mut self, origin: &str, file: &str) -> Self {
        let _ = write!(
            self.body,
            "[[zone]]\norigin = \"{origin}\"\nfile = \"{file}\"\n"
        );
        self
    }

    /// Site `name`, its controller `controller` and, on it, an IPv4 or IPv6 virtual server
    /// on port 80 per (name, address) of `vss`.
    pub fn site(mut self, name: &str, controller: &str, vss: &[(&str, &str)]) -> Self {
        let _ = write!(
            self.body,
            "[[site]]\nname = \"{name}\"\n[[site_server]]\nname = \"{controller}\"\nsite = \"{name}\"\n"
        );
        for (vs, address) in vss {
            self = self.vs(vs, controller, address, 80);
        }
        self
    }

    /// Virtual server `name` on controller `controller` at `address`:`port`.
    pub fn vs(mut self, name: &str, controller: &str, address: &str, port: u16) -> Self {
        let _ = write!(
            self.body,
            "[[virtual_server]]\nname = \"{name}\"\nserver = \"{controller}\"\naddress = \"{address}\"\nport = {port}\n"
        );
        self
    }

    /// Pool `name` of `members` (a virtual server's name, or an inline table written as
    /// it is: `{ vs = "a", ratio = 5 }`), balanced by `preferred` (`""`: the default).
    pub fn pool(mut self, name: &str, members: &[&str], preferred: &str) -> Self {
        let members: Vec<String> = members
            .iter()
            .map(|m| {
                if m.starts_with('{') {
                    (*m).to_owned()
                } else {
                    format!("\"{m}\"")
                }
            })
            .collect();
        let _ = write!(
            self.body,
            "[[pool]]\nname = \"{name}\"\nmembers = [{}]\n",
            members.join(", ")
        );
        if !preferred.is_empty() {
            let _ = writeln!(self.body, "preferred = \"{preferred}\"");
        }
        self
    }

    /// Wide IP `name` (fully qualified) over `pools`.
    pub fn wideip(mut self, name: &str, pools: &[&str]) -> Self {
        let _ = write!(
            self.body,
            "[[wideip]]\nname = \"{name}\"\npools = {}\n",
            list(pools)
        );
        self
    }

    /// Region `name` of the client `prefixes`.
    pub fn region(mut self, name: &str, prefixes: &[&str]) -> Self {
        let _ = write!(
            self.body,
            "[[region]]\nname = \"{name}\"\nprefixes = {}\n",
            list(prefixes)
        );
        self
    }

    /// A topology record: clients of region `ldns` score `score` for `site`.
    pub fn topology(mut self, ldns: &str, site: &str, score: u32) -> Self {
        let _ = write!(
            self.body,
            "[[topology]]\nldns = \"{ldns}\"\nsite = \"{site}\"\nscore = {score}\n"
        );
        self
    }

    /// `[agents]` listening on `listen` (address:port).
    pub fn agents(self, listen: &str) -> Self {
        self.set("agents", &format!("listen = \"{listen}\""))
    }

    /// An agent key: `id`, its secret in `secret_file`, bound to `site` if any.
    pub fn agent_key(mut self, id: u32, secret_file: &str, site: Option<&str>) -> Self {
        let _ = write!(
            self.body,
            "[[agents.key]]\nid = {id}\nsecret_file = \"{secret_file}\"\n"
        );
        if let Some(site) = site {
            let _ = writeln!(self.body, "site = \"{site}\"");
        }
        self
    }

    /// `[peering]`: this EDNS is `name` at `site`, taking peer messages on `listen`.
    pub fn peering(self, name: &str, site: &str, listen: &str) -> Self {
        self.set("peering", &format!("name = \"{name}\""))
            .set("peering", &format!("site = \"{site}\""))
            .set("peering", &format!("listen = \"{listen}\""))
    }

    /// A `[[peer]]` EDNS `name` at `site`, reached at `address`, signing with key `key_id`
    /// whose secret is in `secret_file` (relative to the config).
    pub fn peer(
        mut self,
        name: &str,
        site: &str,
        address: &str,
        key_id: u32,
        secret_file: &str,
    ) -> Self {
        let _ = write!(
            self.body,
            "[[peer]]\nname = \"{name}\"\nsite = \"{site}\"\naddress = \"{address}\"\n\
             key_id = {key_id}\nsecret_file = \"{secret_file}\"\n"
        );
        self
    }

    /// A static answer set `name` with `ttl` over (address, weight) pairs.
    pub fn answer(mut self, name: &str, ttl: u32, addresses: &[(&str, u32)]) -> Self {
        let addresses: Vec<String> = addresses
            .iter()
            .map(|(ip, weight)| format!("{{ ip = \"{ip}\", weight = {weight} }}"))
            .collect();
        let _ = write!(
            self.body,
            "[[answer]]\nname = \"{name}\"\nttl = {ttl}\naddresses = [{}]\n",
            addresses.join(", ")
        );
        self
    }

    /// The config as TOML.
    /// A test's state file is `state.json` beside its config (each test its own, none in
    /// /var/lib/xgslb) unless it names one.
    pub fn toml(&self) -> String {
        let mut tables = self.tables.clone();
        if !tables
            .iter()
            .any(|(t, lines)| t == "balancer" && lines.contains("state_file"))
        {
            let with_state = self.clone().set("balancer", "state_file = \"state.json\"");
            tables = with_state.tables;
        }
        let mut text = String::new();
        for (table, lines) in &tables {
            let _ = write!(text, "[{table}]\n{lines}\n");
        }
        text.push_str(&self.body);
        text
    }

    /// Writes the config to `dir`/xgslb.toml (and the demo zone beside it when it has it);
    /// returns the config's path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        if self.demo_zone {
            std::fs::copy(DEMO_ZONE, dir.join("example.test.zone"))
                .unwrap_or_else(|e| panic!("copy {DEMO_ZONE}: {e}"));
        }
        if let Some(token) = &self.http_token {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join("http.token");
            std::fs::write(&file, token).unwrap_or_else(|e| panic!("write {file:?}: {e}"));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {file:?}: {e}"));
        }
        let path = dir.join("xgslb.toml");
        std::fs::write(&path, self.toml()).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        path
    }

    /// Writes the config to `dir` (see `write`) and loads it.
    pub fn load(&self, dir: &Path) -> Config {
        let path = self.write(dir);
        Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", self.toml()))
    }

    /// The config parsed as if it were /etc/xgslb/xgslb.toml, without touching files.
    pub fn parse(&self) -> Config {
        Config::parse(Path::new("/etc/xgslb/xgslb.toml"), &self.toml())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.toml()))
    }
}

/// `items` as a TOML array of strings.
fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}
