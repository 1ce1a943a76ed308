//! The last configuration that was good, merged from all its files and kept in the
//! sysroot, so a bad file found at start does not stop berthd (it says why in ConfigError).

use berth_engine::Config;
use std::path::Path;

const FILE: &str = "ostree/berth/last-good-config.toml";

pub fn keep(sysroot: &Path, merged: &str) {
    let path = sysroot.join(FILE);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == merged) {
        return;
    }
    if !sysroot.join("ostree/repo").is_dir() {
        // Not a sysroot (yet): nothing to keep it in.
        return;
    }
    if let Err(e) = berth_engine::write_atomic(&path, merged.as_bytes()) {
        tracing::warn!("cannot keep the configuration in {}: {e}", path.display());
    }
}

pub fn load(sysroot: &Path) -> Option<Config> {
    let text = std::fs::read_to_string(sysroot.join(FILE)).ok()?;
    Config::parse(&text).ok()
}
