//! The Manager's properties, derived from the engine's host status, the last check, the
//! last error and the running transaction. Pure functions: tested without a bus.

use crate::automatic::record::Record;
use berth_dbus::state;
use berth_engine::config::Automatic;
use berth_engine::status::{DeploymentInfo, Host};
use berth_engine::CheckResult;
use std::collections::HashMap;
use zbus::zvariant::{OwnedValue, Value};

pub type Dict = HashMap<String, OwnedValue>;

/// Everything the Manager's properties are computed from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub host: Option<Host>,
    pub last_check: Option<CheckResult>,
    /// The booted and staged image digests when `last_check` ran: a check answers for the
    /// system as it was, so it no longer counts once either changed (a reboot, an update).
    pub last_check_on: (Option<String>, Option<String>),
    /// When a check last succeeded (seconds since the epoch), whoever asked for it.
    pub last_check_time: u64,
    /// (D-Bus error name, message) of the last failed transaction, until one succeeds.
    pub last_error: Option<(String, String)>,
    /// Phase of the running transaction, with its kind.
    pub running: Option<(String, &'static str)>,
    /// The last good `[automatic]` settings, and why the configuration now read is not good.
    pub automatic: Automatic,
    /// The last good `[reboot-coordination]` table.
    pub coordination: Option<berth_engine::config::Coordination>,
    pub config_error: String,
    /// The scheduler's record, what holds its step back now (code, words), this machine's
    /// wariness.
    pub schedule: Record,
    pub blocked: Option<(String, String)>,
    pub wariness: f64,
}

fn owned(v: Value<'_>) -> OwnedValue {
    v.try_to_owned().expect("plain values have no fds")
}

fn deployments(f: &Facts) -> &[DeploymentInfo] {
    f.host
        .as_ref()
        .map_or(&[], |h| h.status.berth.deployments.as_slice())
}

pub fn deployment_dict(d: Option<&DeploymentInfo>) -> Dict {
    let Some(d) = d else {
        return Dict::new();
    };
    let mut m = Dict::new();
    m.insert("index".into(), owned(Value::from(d.index as u32)));
    m.insert("stateroot".into(), owned(Value::from(d.stateroot.as_str())));
    m.insert("checksum".into(), owned(Value::from(d.checksum.as_str())));
    m.insert("serial".into(), owned(Value::from(d.deploy_serial)));
    m.insert("pinned".into(), owned(Value::from(d.pinned)));
    if let Some(kind) = d.unlocked {
        m.insert("unlocked".into(), owned(Value::from(kind)));
    }
    if let Some(drift) = &d.drift {
        let word = if drift.clean { "clean" } else { "drifted" };
        m.insert("drift".into(), owned(Value::from(word)));
        m.insert("drift-summary".into(), owned(Value::from(drift.text())));
        m.insert("drift-checked".into(), owned(Value::from(drift.checked_at)));
        let paths = drift.changed + drift.added + drift.removed;
        m.insert("drift-paths".into(), owned(Value::from(paths as u32)));
        m.insert(
            "drift-corrupt-objects".into(),
            owned(Value::from(drift.corrupt_objects as u32)),
        );
    }
    if let Some(name) = &d.os_name {
        m.insert("os-name".into(), owned(Value::from(name.as_str())));
    }
    if let Some(i) = &d.image {
        m.insert("image".into(), owned(Value::from(i.image.image.as_str())));
        m.insert("digest".into(), owned(Value::from(i.image_digest.as_str())));
        if let Some(v) = &i.version {
            m.insert("version".into(), owned(Value::from(v.as_str())));
        }
        if let Some(t) = &i.timestamp {
            m.insert("timestamp".into(), owned(Value::from(t.as_str())));
        }
        if let Some(v) = &i.verification {
            insert_verification(&mut m, v);
        }
    }
    m
}

/// How the image was let in: `signature` is `signed` or `unverified`, with the keys and
/// identities that signed it, the requirements met and the policy scope.
fn insert_verification(m: &mut Dict, v: &berth_engine::trust::Verification) {
    let kind = if v.is_signed() {
        "signed"
    } else {
        "unverified"
    };
    m.insert("signature".into(), owned(Value::from(kind)));
    m.insert("signature-summary".into(), owned(Value::from(v.summary())));
    m.insert(
        "signature-scope".into(),
        owned(Value::from(v.scope.as_str())),
    );
    m.insert(
        "signature-requirements".into(),
        owned(Value::from(v.requirements.clone())),
    );
    m.insert("signed-by".into(), owned(Value::from(v.keys.clone())));
    m.insert(
        "signed-identities".into(),
        owned(Value::from(v.identities.clone())),
    );
}

pub fn booted(f: &Facts) -> Option<&DeploymentInfo> {
    deployments(f).iter().find(|d| d.booted)
}
pub fn staged(f: &Facts) -> Option<&DeploymentInfo> {
    deployments(f).iter().find(|d| d.staged)
}
pub fn rollback(f: &Facts) -> Option<&DeploymentInfo> {
    deployments(f).iter().find(|d| d.rollback)
}

fn digest_of(d: Option<&DeploymentInfo>) -> Option<&str> {
    d.and_then(|d| d.image.as_ref())
        .map(|i| i.image_digest.as_str())
}

/// The booted and staged image digests now, to date a check.
pub fn checked_on(f: &Facts) -> (Option<String>, Option<String>) {
    (
        digest_of(booted(f)).map(str::to_string),
        digest_of(staged(f)).map(str::to_string),
    )
}

/// The newer image the last check found, unless it is already booted or staged, or the
/// system changed since that check.
fn available_update(f: &Facts) -> Option<&CheckResult> {
    let c = f.last_check.as_ref().filter(|c| c.update_available)?;
    if f.last_check_on != checked_on(f) {
        return None;
    }
    let known = [digest_of(booted(f)), digest_of(staged(f))];
    (!known.contains(&Some(c.manifest_digest.as_str()))).then_some(c)
}

/// The BootAssessment property: state (unavailable, settled, on-trial, fell-back),
/// tries-left, and the last update rolled back: failed-version, failed-digest, failed-reason,
/// failed-message, failed-time.
pub fn boot_assessment(f: &Facts) -> Dict {
    use berth_engine::assessment::BootState;
    let mut m = Dict::new();
    let Some(a) = f.host.as_ref().map(|h| &h.status.berth.boot_assessment) else {
        return m;
    };
    let state = match a.state {
        BootState::Unavailable => "unavailable",
        BootState::Settled => "settled",
        BootState::OnTrial { tries_left } => {
            m.insert("tries-left".into(), owned(Value::from(tries_left)));
            "on-trial"
        }
        BootState::FellBack => "fell-back",
    };
    m.insert("state".into(), owned(Value::from(state)));
    if let Some(failed) = &a.last_failure {
        let s = |v: &Option<String>| owned(Value::from(v.clone().unwrap_or_default()));
        m.insert("failed-version".into(), s(&failed.version));
        m.insert("failed-digest".into(), s(&failed.digest));
        m.insert(
            "failed-reason".into(),
            owned(Value::from(failed.reason.as_str())),
        );
        m.insert(
            "failed-message".into(),
            owned(Value::from(failed.summary())),
        );
        m.insert("failed-time".into(), owned(Value::from(failed.time)));
    }
    m
}

pub fn cached_update(f: &Facts) -> Dict {
    let mut m = Dict::new();
    let downloaded = f
        .host
        .as_ref()
        .and_then(|h| h.status.berth.cached_update.as_ref());
    if let Some(c) = downloaded {
        m.insert("image".into(), owned(Value::from(c.image.as_str())));
        m.insert(
            "digest".into(),
            owned(Value::from(c.manifest_digest.as_str())),
        );
        if let Some(v) = &c.version {
            m.insert("version".into(), owned(Value::from(v.as_str())));
        }
        m.insert("download-size".into(), owned(Value::from(0u64)));
        m.insert("downloaded".into(), owned(Value::from(true)));
    } else if let Some(c) = available_update(f) {
        m.insert("image".into(), owned(Value::from(c.image.as_str())));
        m.insert(
            "digest".into(),
            owned(Value::from(c.manifest_digest.as_str())),
        );
        if let Some(v) = &c.version {
            m.insert("version".into(), owned(Value::from(v.as_str())));
        }
        m.insert("download-size".into(), owned(Value::from(c.download_bytes)));
        m.insert("downloaded".into(), owned(Value::from(false)));
    }
    m
}

/// The AutomaticSettings property: every `[automatic]` key with its value in effect.
pub fn automatic_settings(a: &Automatic) -> Dict {
    let mut m = Dict::new();
    let mut put = |k: &str, v: Value<'_>| {
        m.insert(k.into(), owned(v));
    };
    put("policy", Value::from(a.policy.as_str()));
    put("first-check-delay", Value::from(a.first_check_delay));
    put("check-interval", Value::from(a.check_interval));
    put("jitter", Value::from(a.jitter));
    put("retry-interval", Value::from(a.retry_interval));
    put("max-backoff", Value::from(a.max_backoff));
    put("rollout-period", Value::from(a.rollout_period));
    if let Some(w) = a.wariness {
        put("wariness", Value::from(w));
    }
    put("on-metered", Value::from(a.on_metered));
    put("on-battery", Value::from(a.on_battery));
    put(
        "min-battery-percent",
        Value::from(u32::from(a.min_battery_percent)),
    );
    put("min-free-space", Value::from(a.min_free_space));
    let windows: Vec<String> = a
        .reboot_windows
        .iter()
        .map(|w| w.as_str().to_string())
        .collect();
    put("reboot-windows", Value::from(windows));
    put(
        "reboot-deadline-hours",
        Value::from(a.reboot_deadline_hours),
    );
    put("reboot-with-sessions", Value::from(a.reboot_with_sessions));
    m
}

/// The AutomaticStatus property: the scheduler's record (last-check, last-outcome,
/// next-run, failures, staged-at), blocked-reason, wariness, and the group whose reboot slot
/// this machine holds (reboot-slot, only while it holds one).
pub fn automatic_status(f: &Facts) -> Dict {
    let r = &f.schedule;
    let mut m = Dict::new();
    m.insert("last-check".into(), owned(Value::from(r.last_check)));
    m.insert(
        "last-outcome".into(),
        owned(Value::from(r.last_outcome.as_str())),
    );
    let next = if f.automatic.policy == berth_engine::config::Policy::Off {
        0
    } else {
        r.next_run
    };
    m.insert("next-run".into(), owned(Value::from(next)));
    m.insert("failures".into(), owned(Value::from(r.failures)));
    m.insert("staged-at".into(), owned(Value::from(r.staged_at)));
    m.insert("wariness".into(), owned(Value::from(f.wariness)));
    let reason = f.blocked.as_ref().map_or("", |(_, words)| words.as_str());
    m.insert("blocked-reason".into(), owned(Value::from(reason)));
    if let Some(slot) = &r.reboot_slot {
        m.insert(
            "reboot-slot".into(),
            owned(Value::from(slot.group.as_str())),
        );
    }
    m
}

/// The state machine's current state (see the interface XML).
pub fn state(f: &Facts) -> &'static str {
    if let Some((phase, kind)) = &f.running {
        match (phase.as_str(), *kind) {
            // Finished: the state is what it left behind.
            ("done", _) => {}
            ("queued", "check" | "update" | "switch") | ("checking", _) => return state::CHECKING,
            ("queued", "cleanup") | ("cleanup", _) => return state::CLEANING_UP,
            ("queued", "verify") | ("verifying", _) => return state::VERIFYING,
            ("downloading", _) => return state::DOWNLOADING,
            ("importing", _) => return state::IMPORTING,
            _ => return state::STAGING,
        }
    }
    if f.last_error.is_some() {
        return state::ERROR;
    }
    let default_is_not_booted = deployments(f).iter().any(|d| d.default && !d.booted);
    if staged(f).is_some() || default_is_not_booted {
        return state::NEEDS_REBOOT;
    }
    let downloaded = f
        .host
        .as_ref()
        .is_some_and(|h| h.status.berth.cached_update.is_some());
    if downloaded {
        return state::UPDATE_READY;
    }
    if available_update(f).is_some() {
        return state::UPDATE_AVAILABLE;
    }
    state::IDLE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(digest: &str, available: bool) -> CheckResult {
        CheckResult {
            known_bad: None,
            image: "r/os:1".into(),
            update_available: available,
            manifest_digest: digest.into(),
            version: Some("2".into()),
            created: None,
            download_bytes: 42,
            layers: 1,
            layers_to_download: 1,
            verification: None,
        }
    }

    #[test]
    fn state_priorities() {
        let mut f = Facts::default();
        assert_eq!(state(&f), state::IDLE);
        f.last_check = Some(check("sha256:b", true));
        assert_eq!(state(&f), state::UPDATE_AVAILABLE);
        assert_eq!(
            cached_update(&f)
                .get("download-size")
                .map(|v| u64::try_from(v).unwrap()),
            Some(42)
        );
        f.last_error = Some(("org.berth.Berth1.Error.Network".into(), "down".into()));
        assert_eq!(state(&f), state::ERROR);
        f.running = Some(("downloading".into(), "update"));
        assert_eq!(state(&f), state::DOWNLOADING);
        f.running = Some(("importing".into(), "update"));
        assert_eq!(state(&f), state::IMPORTING);
        f.running = None;
        f.last_error = None;
        f.last_check = Some(check("sha256:b", false));
        assert_eq!(state(&f), state::IDLE);
        assert!(cached_update(&f).is_empty());
    }

    #[test]
    fn a_check_made_before_the_system_changed_no_longer_counts() {
        let mut f = Facts {
            last_check: Some(check("sha256:b", true)),
            ..Facts::default()
        };
        assert_eq!(state(&f), state::UPDATE_AVAILABLE);
        // As if the booted deployment changed (a reboot into another image) after the check.
        f.last_check_on = (Some("sha256:older".into()), None);
        assert_eq!(state(&f), state::IDLE);
        assert!(cached_update(&f).is_empty());
    }
}
