//! Berth's configuration file (`/etc/berth/berth.toml`, or `--config FILE`).
//!
//! ```toml
//! insecure-registries = ["127.0.0.1:5000"]  # plain HTTP allowed only for these
//! auth-file = "/etc/ostree/auth.json"        # default: /run/ostree/auth.json, then /etc/ostree/auth.json
//! cache-dir = "/var/cache/berth"             # default: SYSROOT/ostree/berth/cache
//! download-concurrency = 3                   # layers fetched at once
//! retries = 4                                # attempts after a transient registry error
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
}

fn default_concurrency() -> usize {
    3
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
        Ok(cfg)
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
    }
}
