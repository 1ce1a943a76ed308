//! Every error a Berth client can meet, in plain words with what to do next. berthd's own
//! message (English, as the journal has it) stays available as the details.

use crate::fl;

/// An error as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What happened, in a few words.
    pub title: String,
    /// What it means and what to do next.
    pub advice: String,
}

/// Sizes as people read them: "1.5 GB", "340 kB" (decimal units, like GNOME).
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        fl!("size-gb", size = format!("{:.1}", b / 1e9))
    } else if b >= 1e6 {
        fl!("size-mb", size = format!("{:.1}", b / 1e6))
    } else if b >= 1e3 {
        fl!("size-kb", size = format!("{:.0}", b / 1e3))
    } else {
        fl!("size-bytes", size = bytes.to_string())
    }
}

/// A transaction's phase (`Phase`, `Progress`) in words.
pub fn phase(phase: &str) -> String {
    match phase {
        "queued" => fl!("phase-queued"),
        "checking" => fl!("phase-checking"),
        "downloading" => fl!("phase-downloading"),
        "importing" => fl!("phase-importing"),
        "staging" => fl!("phase-staging"),
        "cleanup" => fl!("phase-cleanup"),
        "verifying" => fl!("phase-verifying"),
        "done" => fl!("phase-done"),
        _ => fl!("phase-working"),
    }
}

/// The amounts in berthd's NoSpace message: "need N bytes, M available".
fn space_amounts(message: &str) -> Option<(u64, u64)> {
    let rest = message.split("need ").nth(1)?;
    let needed = rest.split(' ').next()?.parse().ok()?;
    let available = rest.split(", ").nth(1)?.split(' ').next()?.parse().ok()?;
    Some((needed, available))
}

/// The version in berthd's UpdateRolledBack message: "Update to VERSION failed ...".
fn rolled_back_version(message: &str) -> Option<&str> {
    message.strip_prefix("Update to ")?.split(' ').next()
}

/// `error_name`: a full D-Bus error name; `message`: the error's message.
pub fn explain(error_name: &str, message: &str) -> Explanation {
    let short = error_name
        .strip_prefix("org.berth.Berth1.Error.")
        .unwrap_or(error_name);
    let (title, advice) = match short {
        "Network" => (fl!("error-network"), fl!("error-network-advice")),
        "RegistryUnauthorized" => (fl!("error-unauthorized"), fl!("error-unauthorized-advice")),
        "RegistryForbidden" => (fl!("error-forbidden"), fl!("error-forbidden-advice")),
        "ImageNotFound" => (
            fl!("error-image-not-found"),
            fl!("error-image-not-found-advice"),
        ),
        "InvalidReference" => (
            fl!("error-invalid-reference"),
            fl!("error-invalid-reference-advice"),
        ),
        "InvalidConfiguration" => (
            fl!("error-invalid-configuration"),
            fl!("error-invalid-configuration-advice"),
        ),
        "BadManifest" | "Unsupported" | "DigestMismatch" | "CorruptLayer" => {
            (fl!("error-bad-image"), fl!("error-bad-image-advice"))
        }
        "HostileLayer" => (
            fl!("error-hostile-image"),
            fl!("error-hostile-image-advice"),
        ),
        "NotBootable" => (fl!("error-not-bootable"), fl!("error-not-bootable-advice")),
        "NotTrusted" => (fl!("error-not-trusted"), fl!("error-not-trusted-advice")),
        "Downgrade" => (fl!("error-downgrade"), fl!("error-downgrade-advice")),
        "NoSpace" => {
            let advice = match space_amounts(message) {
                Some((needed, available)) => fl!(
                    "error-no-space-advice-amounts",
                    needed = size(needed),
                    available = size(available),
                    missing = size(needed.saturating_sub(available))
                ),
                None => fl!("error-no-space-advice"),
            };
            (fl!("error-no-space"), advice)
        }
        "Cancelled" => (fl!("error-cancelled"), fl!("error-cancelled-advice")),
        "WrongState" => (fl!("error-wrong-state"), fl!("error-wrong-state-advice")),
        "Busy" => (fl!("error-busy"), fl!("error-busy-advice")),
        "Interrupted" => (fl!("error-interrupted"), fl!("error-interrupted-advice")),
        "UpdateRolledBack" => (
            match rolled_back_version(message) {
                Some(version) => fl!("error-update-rolled-back-version", version = version),
                None => fl!("error-update-rolled-back"),
            },
            fl!("error-update-rolled-back-advice"),
        ),
        "HealthCheckFailed" => (
            fl!("error-health-check-failed"),
            fl!("error-health-check-failed-advice"),
        ),
        "RebootBlocked" => (
            fl!("error-reboot-blocked"),
            fl!("error-reboot-blocked-advice"),
        ),
        "NotAuthorized"
        | "org.freedesktop.DBus.Error.AccessDenied"
        | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => (
            fl!("error-not-authorized"),
            fl!("error-not-authorized-advice"),
        ),
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoReply"
        | "org.freedesktop.DBus.Error.Disconnected" => {
            (fl!("error-unreachable"), fl!("error-unreachable-advice"))
        }
        _ => (fl!("error-failed"), fl!("error-failed-advice")),
    };
    Explanation { title, advice }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_names_the_amounts() {
        let e = explain(
            "org.berth.Berth1.Error.NoSpace",
            "not enough free space in /sysroot: need 3000000000 bytes, 1000000000 available",
        );
        assert!(e.advice.contains("3.0 GB"), "{}", e.advice);
        assert!(e.advice.contains("1.0 GB"), "{}", e.advice);
        assert!(e.advice.contains("2.0 GB"), "{}", e.advice);
    }

    #[test]
    fn a_rollback_names_the_version() {
        let e = explain(
            "org.berth.Berth1.Error.UpdateRolledBack",
            "Update to 2.1 failed its health checks and was rolled back: check x failed",
        );
        assert!(e.title.contains("2.1"), "{}", e.title);
    }

    #[test]
    fn every_berth_error_has_its_own_words() {
        let generic = explain("org.berth.Berth1.Error.Failed", "").title;
        for short in [
            "Network",
            "RegistryUnauthorized",
            "NoSpace",
            "NotBootable",
            "Interrupted",
            "NotAuthorized",
            "Busy",
            "Downgrade",
            "NotTrusted",
            "RebootBlocked",
            "UpdateRolledBack",
            "HealthCheckFailed",
        ] {
            let e = explain(&format!("org.berth.Berth1.Error.{short}"), "");
            assert_ne!(e.title, generic, "{short}");
            assert!(!e.advice.is_empty(), "{short}");
        }
    }
}
