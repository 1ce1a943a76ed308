//! Phased rollout: each machine has a stable wariness in [0, 1) and takes an image only once
//! `created + wariness × rollout-period` has passed, so a fleet takes a new image gradually
//! and a bad one can be withdrawn before most machines have it.

use berth_engine::config::Automatic;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const MACHINE_ID: &str = "/etc/machine-id";

/// The configured wariness, else one derived from the machine id, else the middle.
pub fn wariness(s: &Automatic, machine_id_file: &Path) -> f64 {
    if let Some(w) = s.wariness {
        return w;
    }
    match std::fs::read_to_string(machine_id_file) {
        Ok(id) if !id.trim().is_empty() => from_machine_id(id.trim()),
        _ => 0.5,
    }
}

/// A hash of the machine id (salted, so it says nothing about the id), as a fraction.
pub fn from_machine_id(id: &str) -> f64 {
    let hash = Sha256::digest(format!("berth-rollout:{id}").as_bytes());
    let n = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
    // 53 bits: exactly representable, and strictly below 1.
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// When this machine may take an image created at `created` (RFC 3339); None: now (no
/// period, or no creation time to count from).
pub fn allowed_at(created: Option<&str>, wariness: f64, period: u64) -> Option<u64> {
    if period == 0 {
        return None;
    }
    let created = chrono::DateTime::parse_from_rfc3339(created?)
        .ok()?
        .timestamp();
    let delay = (wariness * period as f64) as i64;
    Some(created.saturating_add(delay).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_spread_and_gate() {
        let a = from_machine_id("0123456789abcdef0123456789abcdef");
        assert_eq!(a, from_machine_id("0123456789abcdef0123456789abcdef"));
        assert!((0.0..1.0).contains(&a));
        // A hundred machine ids spread over the whole range.
        let ws: Vec<f64> = (0..100)
            .map(|i| from_machine_id(&format!("{i:032x}")))
            .collect();
        assert!(ws.iter().filter(|w| **w < 0.5).count() > 30);
        assert!(ws.iter().filter(|w| **w >= 0.5).count() > 30);
        let created = "2026-12-01T00:00:00Z";
        let t0 = 1_796_083_200;
        assert_eq!(allowed_at(Some(created), 0.25, 86_400), Some(t0 + 21_600));
        assert_eq!(allowed_at(Some(created), 0.25, 0), None);
        assert_eq!(allowed_at(None, 0.25, 86_400), None);
        let fixed = Automatic {
            wariness: Some(0.75),
            ..Automatic::default()
        };
        assert_eq!(wariness(&fixed, Path::new("/nonexistent")), 0.75);
        assert_eq!(
            wariness(&Automatic::default(), Path::new("/nonexistent")),
            0.5
        );
    }
}
