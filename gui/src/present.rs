//! How berthd's facts read in the window: versions, phases, sizes, dates.

use berth_dbus::model::{short_key, Deployment, Drift, Signature};
use berth_l10n::fl;

/// "Version 2", or the short digest when the image carries no version label.
pub fn version_of(version: Option<&str>, digest: Option<&str>) -> String {
    match (version, digest) {
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => berth_dbus::model::short_digest(d),
        (None, None) => fl!("unknown"),
    }
}

pub fn deployment_version(d: &Deployment) -> String {
    version_of(d.version.as_deref(), d.digest.as_deref())
}

/// "Signed by KEY" or "Not verified"; None when berthd did not record it.
pub fn signature(d: &Deployment) -> Option<String> {
    Some(match d.signature.as_ref()? {
        Signature::Signed { by } => {
            let keys: Vec<String> = by.iter().map(|k| short_key(k)).collect();
            fl!("signature-signed", keys = keys.join(", "))
        }
        Signature::Unverified => fl!("signature-unverified"),
    })
}

/// Local changes to /usr: unlocked, and what the last drift check found; None when neither
/// applies (the image as built, never checked).
pub fn modifications(d: &Deployment) -> Option<String> {
    let unlocked = d
        .unlocked
        .as_deref()
        .map(|kind| fl!("modifications-unlocked", kind = kind));
    let drift = d.drift.as_ref().map(|drift| match drift {
        Drift::Clean => fl!("modifications-clean"),
        Drift::Drifted {
            paths,
            corrupt_objects,
        } => fl!(
            "modifications-drifted",
            paths = i64::from(*paths),
            corrupt = i64::from(*corrupt_objects)
        ),
    });
    match (unlocked, drift) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b).collect::<Vec<_>>().join(" · ")),
    }
}

/// The big title while a transaction of `kind` runs.
pub fn running_title(kind: &str, phase: &str) -> String {
    match (kind, phase) {
        ("check", _) => fl!("hero-checking"),
        ("update" | "switch", "downloading" | "queued" | "checking") => fl!("hero-downloading"),
        ("update" | "switch", _) => fl!("hero-installing"),
        ("rollback", _) => fl!("hero-rolling-back"),
        ("factory-reset", _) => fl!("hero-resetting"),
        ("cleanup", _) => fl!("hero-cleaning-up"),
        _ => fl!("hero-working"),
    }
}

/// "12.3 MB of 24.0 MB" once the total is known.
pub fn bytes(done: u64, total: u64) -> Option<String> {
    (total > 0).then(|| {
        fl!(
            "progress-bytes",
            done = berth_l10n::size(done),
            total = berth_l10n::size(total)
        )
    })
}

/// An RFC 3339 build time as a local date, e.g. "1 December 2026".
pub fn date(rfc3339: &str) -> Option<String> {
    let t = gtk::glib::DateTime::from_iso8601(rfc3339, Some(&gtk::glib::TimeZone::utc())).ok()?;
    let local = t.to_local().ok()?;
    local.format("%-d %B %Y").ok().map(|s| s.to_string())
}

/// What holds an automatic step back, from berthd's Blocked code; berthd's own (English)
/// words for a code this window does not know.
pub fn blocked(code: &str, reason: &str) -> String {
    match code {
        "metered" => fl!("blocked-metered"),
        "on-battery" => fl!("blocked-on-battery"),
        "battery-low" => fl!("blocked-battery-low"),
        "low-space" => fl!("blocked-low-space"),
        "rollout" => fl!("blocked-rollout"),
        "outside-window" => fl!("blocked-outside-window"),
        "inhibited" => fl!("blocked-inhibited"),
        "sessions" => fl!("blocked-sessions"),
        "reboot-slots" => fl!("blocked-reboot-slots"),
        "coordination" => fl!("blocked-coordination"),
        _ => reason.to_string(),
    }
}

/// The toast for one of the scheduler's events; None for events nobody needs to hear of.
pub fn automatic_event(ev: &berth_dbus::AutomaticEvent) -> Option<String> {
    let version = || {
        let v = ev.detail("version");
        if v.is_empty() {
            fl!("unknown")
        } else {
            v.to_string()
        }
    };
    Some(match ev.event.as_str() {
        "found" => fl!("automatic-event-found", version = version()),
        "downloaded" => fl!("automatic-event-downloaded", version = version()),
        "staged" => fl!("automatic-event-staged", version = version()),
        "rebooting" => fl!("automatic-event-rebooting", version = version()),
        "blocked" => fl!(
            "automatic-event-blocked",
            reason = blocked(ev.detail("code"), ev.detail("reason"))
        ),
        "failed" => fl!(
            "automatic-event-failed",
            message = ev.detail("error-message")
        ),
        _ => return None,
    })
}

/// A moment as the window says it: the time today, else the day and the time.
pub fn moment(secs: u64) -> Option<String> {
    let t = gtk::glib::DateTime::from_unix_local(secs as i64).ok()?;
    let now = gtk::glib::DateTime::now_local().ok()?;
    let same_day = t.ymd() == now.ymd();
    let format = if same_day { "%X" } else { "%-d %B, %X" };
    t.format(format).ok().map(|s| s.to_string())
}

/// The policy names `Configure` takes, in the order the window lists them.
pub const POLICIES: [&str; 4] = ["off", "check", "download", "apply"];

pub fn policy_title(policy: &str) -> String {
    match policy {
        "off" => fl!("policy-off"),
        "check" => fl!("policy-check"),
        "download" => fl!("policy-download"),
        "apply" => fl!("policy-apply"),
        other => other.to_string(),
    }
}

pub fn policy_description(policy: &str) -> String {
    match policy {
        "off" => fl!("policy-off-description"),
        "check" => fl!("policy-check-description"),
        "download" => fl!("policy-download-description"),
        "apply" => fl!("policy-apply-description"),
        _ => String::new(),
    }
}
