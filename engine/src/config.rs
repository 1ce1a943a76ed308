//! Berth's configuration file (`/etc/berth/berth.toml`, or `--config FILE`).
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
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

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
        }
    }
}

impl Config {
    /// Loads `path`; a missing file at the default path means the defaults.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && path == Path::new(DEFAULT_CONFIG_PATH) =>
            {
                return Ok(Config::default())
            }
            Err(e) => {
                return Err(Error::Config {
                    path: path.into(),
                    reason: e.to_string(),
                })
            }
        };
        Config::parse(&text).map_err(|reason| Error::Config {
            path: path.into(),
            reason,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
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
        Ok(cfg)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
