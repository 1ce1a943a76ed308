//! Settings changed over the bus (Configure), kept next to the configuration file so they
//! live in /etc: merged on update, gone after a factory reset.

use crate::bus_error::BusError;
use std::path::{Path, PathBuf};

/// off: nothing automatic; check: look for updates; download: also download them;
/// apply: also stage them for the next boot.
pub const AUTOMATIC_POLICIES: &[&str] = &["off", "check", "download", "apply"];
const DEFAULT_POLICY: &str = "off";

pub fn path_for(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("/etc/berth"))
        .join("automatic-updates")
}

/// The stored policy; a missing or unreadable file means the default.
pub fn load(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| AUTOMATIC_POLICIES.contains(&s.as_str()))
        .unwrap_or_else(|| DEFAULT_POLICY.to_string())
}

pub fn validate(policy: &str) -> Result<(), BusError> {
    if AUTOMATIC_POLICIES.contains(&policy) {
        Ok(())
    } else {
        Err(BusError::invalid_args(format!(
            "automatic-updates must be one of {}, not {policy:?}",
            AUTOMATIC_POLICIES.join(", ")
        )))
    }
}

pub fn store(path: &Path, policy: &str) -> Result<(), BusError> {
    validate(policy)?;
    berth_engine::write_atomic(path, format!("{policy}\n").as_bytes())
        .map_err(|e| BusError::failed(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusal() {
        let dir = std::env::temp_dir().join(format!("berth-settings-{}", std::process::id()));
        let p = path_for(&dir.join("berth.toml"));
        assert_eq!(load(&p), "off");
        store(&p, "download").unwrap();
        assert_eq!(load(&p), "download");
        assert!(store(&p, "sometimes").is_err());
        assert_eq!(load(&p), "download");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
