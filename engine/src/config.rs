//! Berth's configuration: `/etc/berth/berth.toml` (or `--config FILE`) between drop-ins.
//! Read in this order, later files winning key by key (tables merge, other values replace):
//! `/usr/lib/berth/berth.toml.d/*.toml` (the image's defaults), then berth.toml, then
//! `/etc/berth/berth.toml.d/*.toml` (the administrator's; Configure over D-Bus writes
//! `90-configure.toml` there). Each file is checked on its own first, so an error names the
//! file, the line and the key.
//!
//! ```toml
//! insecure-registries = ["127.0.0.1:5000"]  # plain HTTP allowed only for these
//! auth-file = "/etc/ostree/auth.json"        # default: /run/ostree/auth.json, then /etc/ostree/auth.json
//! cache-dir = "/var/cache/berth"             # default: SYSROOT/ostree/berth/cache
//! download-concurrency = 3                   # layers fetched at once
//! retries = 4                                # attempts after a transient registry error
//! signature-policy = "/etc/containers/policy.json"   # containers-policy.json(5), the default
//! registries-d = "/etc/containers/registries.d"       # where GPG signatures live, the default
//! scheduled-drift-check = true               # `berth verify` with the automatic-update timer
//!
//! [limits]                                   # against hostile registries and layouts
//! max-layers = 500                           # layers in one image
//! max-layer-entries = 4000000                # tar entries in one layer
//! max-layer-bytes = 34359738368              # uncompressed bytes of one layer (32 GiB)
//! max-tar-header-bytes = 1048576             # one GNU long name or PAX header
//!
//! [health]                                   # boot assessment of a new deployment
//! tries = 3                                  # boots it gets to pass; 0: no boot counting
//! check-timeout = 300                        # seconds one health.d check may run
//!
//! [automatic]                                # berthd's scheduler (see automatic.rs)
//! policy = "apply"                           # off, check, download, apply
//! reboot-windows = ["Mon-Fri 02:00-05:00"]
//!
//! [reboot-coordination]                      # the fleet's reboot semaphore (coordination.rs)
//! endpoints = ["https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"]
//! group = "web"
//! max-concurrent = 2
//! ```

mod automatic;
mod coordination;

pub use automatic::{Automatic, Policy, Window};
pub use coordination::Coordination;

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";
/// The image's defaults.
pub const VENDOR_DROPIN_DIR: &str = "/usr/lib/berth/berth.toml.d";
/// The drop-in Configure writes, in the administrator's directory.
pub const CONFIGURE_DROPIN: &str = "90-configure.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default = "default_concurrency")]
    pub download_concurrency: usize,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub health: Health,
    /// containers-policy.json(5); default [`DEFAULT_SIGNATURE_POLICY`].
    #[serde(default)]
    pub signature_policy: Option<PathBuf>,
    /// containers-registries.d(5); default [`DEFAULT_REGISTRIES_D`].
    #[serde(default)]
    pub registries_d: Option<PathBuf>,
    /// Whether the automatic-update timer also checks the booted deployment for drift.
    #[serde(default = "default_true")]
    pub scheduled_drift_check: bool,
    #[serde(default)]
    pub automatic: Automatic,
    #[serde(default)]
    pub reboot_coordination: Option<Coordination>,
}

pub const DEFAULT_SIGNATURE_POLICY: &str = "/etc/containers/policy.json";
pub const DEFAULT_REGISTRIES_D: &str = "/etc/containers/registries.d";

/// Boot assessment: how many boots an update gets to prove itself, and how long one of
/// its health checks may take before it counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Health {
    pub tries: u32,
    pub check_timeout: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            tries: crate::bootcount::DEFAULT_TRIES,
            check_timeout: 300,
        }
    }
}

/// Caps on what one image may make Berth read, hold or write. A real OS image has tens of
/// layers, a few hundred thousand files and a few GiB; the defaults are far above that and
/// far below what would exhaust the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Limits {
    pub max_layers: usize,
    pub max_layer_entries: u64,
    pub max_layer_bytes: u64,
    pub max_tar_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layers: 500,
            max_layer_entries: 4_000_000,
            max_layer_bytes: 32 << 30,
            max_tar_header_bytes: 1 << 20,
        }
    }
}

fn default_concurrency() -> usize {
    3
}
fn default_true() -> bool {
    true
}

fn default_retries() -> u32 {
    4
}

impl Default for Config {
    fn default() -> Self {
        Config {
            insecure_registries: Vec::new(),
            auth_file: None,
            cache_dir: None,
            download_concurrency: default_concurrency(),
            retries: default_retries(),
            limits: Limits::default(),
            health: Health::default(),
            signature_policy: None,
            registries_d: None,
            scheduled_drift_check: true,
            automatic: Automatic::default(),
            reboot_coordination: None,
        }
    }
}

impl Config {
    /// Loads `path` alone, without drop-ins.
    pub fn load(path: &Path) -> Result<Config> {
        Sources::single(path).load()
    }

    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| located(text, &e))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// What serde cannot say about single values.
    fn check(&self) -> std::result::Result<(), String> {
        let cfg = self;
        if cfg.download_concurrency == 0 || cfg.download_concurrency > 16 {
            return Err("download-concurrency must be between 1 and 16".into());
        }
        // A machine that boots a bad update a hundred times has not been protected.
        if cfg.health.tries > 99 {
            return Err("health.tries must be between 0 and 99".into());
        }
        if cfg.health.check_timeout == 0 {
            return Err("health.check-timeout must be at least 1 (seconds)".into());
        }
        Ok(())
    }

    pub fn signature_policy_path(&self) -> PathBuf {
        self.signature_policy
            .clone()
            .unwrap_or_else(|| DEFAULT_SIGNATURE_POLICY.into())
    }

    pub fn registries_d_path(&self) -> PathBuf {
        self.registries_d
            .clone()
            .unwrap_or_else(|| DEFAULT_REGISTRIES_D.into())
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == registry)
    }
}

/// Where the configuration comes from: the main file between two drop-in directories.
#[derive(Debug, Clone)]
pub struct Sources {
    pub main: PathBuf,
    /// The image's drop-ins, read before the main file.
    pub vendor_dir: Option<PathBuf>,
    /// The administrator's drop-ins (`MAIN.d`), read after it.
    pub admin_dir: Option<PathBuf>,
}

impl Sources {
    pub fn new(main: &Path, vendor_dir: &Path) -> Sources {
        Sources {
            main: main.to_path_buf(),
            vendor_dir: Some(vendor_dir.to_path_buf()),
            admin_dir: Some(PathBuf::from(format!("{}.d", main.display()))),
        }
    }

    fn single(main: &Path) -> Sources {
        Sources {
            main: main.to_path_buf(),
            vendor_dir: None,
            admin_dir: None,
        }
    }

    /// The drop-in Configure writes.
    pub fn configure_dropin(&self) -> Option<PathBuf> {
        self.admin_dir.as_ref().map(|d| d.join(CONFIGURE_DROPIN))
    }

    /// The files read, in order. A missing main file at the default path means defaults.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files = dropins(self.vendor_dir.as_deref())?;
        if self.main.exists() || self.main != Path::new(DEFAULT_CONFIG_PATH) {
            files.push(self.main.clone());
        }
        files.extend(dropins(self.admin_dir.as_deref())?);
        Ok(files)
    }

    pub fn load(&self) -> Result<Config> {
        self.load_with(None)
    }

    /// Loads with `text` standing in for the file at `path` (a change checked before it
    /// is written), whether or not that file exists yet.
    pub fn load_with(&self, replace: Option<(&Path, &str)>) -> Result<Config> {
        self.load_merged(replace).map(|(c, _)| c)
    }

    /// The configuration and all its files merged into one TOML text (to keep as the last
    /// good one).
    pub fn load_merged(&self, replace: Option<(&Path, &str)>) -> Result<(Config, String)> {
        let mut files = self.files()?;
        if let Some((path, _)) = replace {
            if !files.iter().any(|f| f == path) {
                files.push(path.to_path_buf());
            }
        }
        let mut merged = toml::Table::new();
        for file in &files {
            let err = |reason: String| Error::Config {
                path: file.clone(),
                reason,
            };
            let text = match replace {
                Some((path, text)) if path == file => text.to_string(),
                _ => std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?,
            };
            // Alone first: the error then points into this file.
            Config::parse(&text).map_err(err)?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
            merge(&mut merged, table);
        }
        let whole = |reason: String| Error::Config {
            path: self.main.clone(),
            reason: format!("with its drop-ins: {reason}"),
        };
        let text = toml::to_string(&merged).map_err(|e| whole(e.to_string()))?;
        let cfg: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| whole(e.to_string()))?;
        cfg.check().map_err(whole)?;
        // Keys a drop-in may split across files are checked together.
        if let Some(c) = &cfg.reboot_coordination {
            c.check()
                .map_err(|e| whole(format!("reboot-coordination: {e}")))?;
        }
        Ok((cfg, text))
    }
}

/// `*.toml` in `dir`, by name; a missing directory has none.
fn dropins(dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Config {
                path: dir.into(),
                reason: e.to_string(),
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Key by key: tables merge, anything else is replaced.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A parse error with its line and key: "line 3, key automatic.jitter: invalid type ...".
fn located(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..start].matches('\n').count() + 1;
    let mut table = String::new();
    for l in text[..line_start].lines() {
        let l = l.trim();
        if l.starts_with('[') {
            table = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let key = text[line_start..]
        .lines()
        .next()
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let message = e.message().trim();
    match key {
        Some(k) if table.is_empty() => format!("line {line}, key {k}: {message}"),
        Some(k) => format!("line {line}, key {table}.{k}: {message}"),
        None => format!("line {line}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_in_order_and_errors_name_file_line_key() {
        let dir = std::env::temp_dir().join(format!("berth-config-{}", std::process::id()));
        let vendor = dir.join("vendor");
        let main = dir.join("berth.toml");
        std::fs::create_dir_all(&vendor).unwrap();
        std::fs::create_dir_all(dir.join("berth.toml.d")).unwrap();
        std::fs::write(
            vendor.join("10-image.toml"),
            "[automatic]\npolicy = \"apply\"\njitter = 5\n",
        )
        .unwrap();
        std::fs::write(&main, "retries = 2\n[automatic]\njitter = 7\n").unwrap();
        std::fs::write(
            dir.join("berth.toml.d/50-admin.toml"),
            "[automatic]\nreboot-windows = [\"Sat 01:00-03:00\"]\n",
        )
        .unwrap();
        let sources = Sources::new(&main, &vendor);
        let c = sources.load().unwrap();
        assert_eq!(c.retries, 2);
        assert_eq!(
            c.automatic.policy,
            Policy::Apply,
            "the image's default stays"
        );
        assert_eq!(c.automatic.jitter, 7, "berth.toml wins over the image");
        assert_eq!(c.automatic.reboot_windows.len(), 1);
        let bad = dir.join("berth.toml.d/60-bad.toml");
        std::fs::write(&bad, "# fleet\n[automatic]\n\ncheck-interval = \"soon\"\n").unwrap();
        let e = sources.load().unwrap_err().to_string();
        assert!(e.contains("60-bad.toml"), "{e}");
        assert!(e.contains("line 4, key automatic.check-interval"), "{e}");
        std::fs::write(&bad, "[automatic]\nwariness = 1.5\n").unwrap();
        let e = sources.load().unwrap_err().to_string();
        assert!(
            e.contains("line 2, key automatic.wariness") && e.contains("below 1"),
            "{e}"
        );
        std::fs::write(&bad, "[automatic]\npolicy = \"sometimes\"\n").unwrap();
        let e = sources.load().unwrap_err().to_string();
        assert!(
            e.contains("key automatic.policy") && e.contains("apply"),
            "{e}"
        );
        // What Configure checks before it writes.
        let c = sources
            .load_with(Some((&bad, "[automatic]\npolicy = \"check\"\n")))
            .unwrap();
        assert_eq!(c.automatic.policy, Policy::Check);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_and_rejects() {
        let c = Config::parse("insecure-registries = [\"127.0.0.1:5000\"]\nretries = 2\n").unwrap();
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(!c.is_insecure("quay.io"));
        assert_eq!((c.retries, c.download_concurrency), (2, 3));
        assert!(Config::parse("unknown-key = 1").is_err());
        assert!(Config::parse("download-concurrency = 0").is_err());
        let c = Config::parse("[limits]\nmax-layers = 7\n").unwrap();
        assert_eq!(c.limits.max_layers, 7);
        assert_eq!(
            c.limits.max_layer_entries,
            Limits::default().max_layer_entries
        );
        assert!(Config::parse("[limits]\nmax-layerz = 7\n").is_err());
        assert_eq!(Config::default().health.tries, 3);
        let c = Config::parse("[health]\ntries = 1\ncheck-timeout = 20\n").unwrap();
        assert_eq!((c.health.tries, c.health.check_timeout), (1, 20));
        assert!(Config::parse("[health]\ntries = 100\n").is_err());
        assert!(Config::parse("[health]\ncheck-timeout = 0\n").is_err());
    }

    #[test]
    fn reboot_coordination_is_checked_per_key_and_across_drop_ins() {
        let dir = std::env::temp_dir().join(format!("berth-coord-{}", std::process::id()));
        let vendor = dir.join("vendor");
        std::fs::create_dir_all(&vendor).unwrap();
        std::fs::create_dir_all(dir.join("berth.toml.d")).unwrap();
        let main = dir.join("berth.toml");
        std::fs::write(&main, "").unwrap();
        let sources = Sources::new(&main, &vendor);
        assert!(sources.load().unwrap().reboot_coordination.is_none());
        // The image names the cluster, the administrator the group: merged key by key.
        std::fs::write(
            vendor.join("10-fleet.toml"),
            "[reboot-coordination]\nendpoints = [\"https://etcd1:2379\"]\n",
        )
        .unwrap();
        let admin = dir.join("berth.toml.d/50-fleet.toml");
        std::fs::write(&admin, "[reboot-coordination]\ngroup = \"web\"\n").unwrap();
        let c = sources.load().unwrap().reboot_coordination.unwrap();
        assert_eq!(c.endpoints, ["https://etcd1:2379"]);
        assert_eq!((c.group.as_str(), c.max_concurrent), ("web", 1));
        assert_eq!(c.lease_seconds, 1800);
        for (text, says) in [
            ("group = \"a/b\"", "key reboot-coordination.group"),
            (
                "endpoints = [\"etcd1:2379\"]",
                "not an http:// or https:// URL",
            ),
            (
                "max-concurrent = 0",
                "key reboot-coordination.max-concurrent",
            ),
            ("lease-seconds = 1", "outlast a reboot"),
            ("id = \"..\"", "key reboot-coordination.id"),
            (
                "cert-file = \"/c.pem\"",
                "cert-file and key-file go together",
            ),
        ] {
            std::fs::write(&admin, format!("[reboot-coordination]\n{text}\n")).unwrap();
            let e = sources.load().unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        // Without the image's endpoints the table names no cluster.
        std::fs::remove_file(vendor.join("10-fleet.toml")).unwrap();
        std::fs::write(&admin, "[reboot-coordination]\ngroup = \"web\"\n").unwrap();
        let e = sources.load().unwrap_err().to_string();
        assert!(e.contains("names no etcd member"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
