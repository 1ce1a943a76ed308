// Every error a Berth client can meet, in plain words with what to do next: the same
// messages (and the same choice of message per error name) as po/src/explain.rs.
import { _ } from "./l10n.js";
import { size } from "./format.js";

const KEYS = {
    Network: "error-network",
    RegistryUnauthorized: "error-unauthorized",
    RegistryForbidden: "error-forbidden",
    ImageNotFound: "error-image-not-found",
    InvalidReference: "error-invalid-reference",
    InvalidConfiguration: "error-invalid-configuration",
    BadManifest: "error-bad-image",
    Unsupported: "error-bad-image",
    DigestMismatch: "error-bad-image",
    CorruptLayer: "error-bad-image",
    HostileLayer: "error-hostile-image",
    NotBootable: "error-not-bootable",
    NotTrusted: "error-not-trusted",
    Downgrade: "error-downgrade",
    NoSpace: "error-no-space",
    Cancelled: "error-cancelled",
    WrongState: "error-wrong-state",
    Busy: "error-busy",
    Interrupted: "error-interrupted",
    UpdateRolledBack: "error-update-rolled-back",
    HealthCheckFailed: "error-health-check-failed",
    RebootBlocked: "error-reboot-blocked",
    NotAuthorized: "error-not-authorized",
    "org.freedesktop.DBus.Error.AccessDenied": "error-not-authorized",
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired": "error-not-authorized",
    "org.freedesktop.DBus.Error.ServiceUnknown": "error-unreachable",
    "org.freedesktop.DBus.Error.NameHasNoOwner": "error-unreachable",
    "org.freedesktop.DBus.Error.NoReply": "error-unreachable",
    "org.freedesktop.DBus.Error.Disconnected": "error-unreachable",
};

/// The amounts in berthd's NoSpace message: "need N bytes, M available".
function spaceAmounts(message) {
    const m = /need (\d+) bytes, (\d+) available/.exec(message || "");
    return m ? [Number(m[1]), Number(m[2])] : null;
}

/// A failed cockpit.dbus call as { name, message }. Cockpit's own failures (the channel or
/// the bridge gone) carry a `problem` and no D-Bus name: berthd could not be reached.
export function callError(ex) {
    if (ex && ex.name) return { name: ex.name, message: ex.message || "" };
    const problem = (ex && ex.problem) || "";
    return { name: "org.freedesktop.DBus.Error.Disconnected", message: (ex && ex.message) || problem };
}

/// { title, advice } for a D-Bus error name and berthd's message.
export function explain(errorName, message) {
    const short = (errorName || "").replace(/^org\.berth\.Berth1\.Error\./, "");
    const key = Object.hasOwn(KEYS, short) ? KEYS[short] : "error-failed";
    let advice = _(`${key}-advice`);
    const amounts = short === "NoSpace" && spaceAmounts(message);
    if (amounts) {
        const [needed, available] = amounts;
        advice = _("error-no-space-advice-amounts", {
            needed: size(needed),
            available: size(available),
            missing: size(Math.max(0, needed - available)),
        });
    }
    // berthd's UpdateRolledBack message: "Update to VERSION failed ... and was rolled back".
    const rolledBack = short === "UpdateRolledBack" && /^Update to (\S+) /.exec(message || "");
    if (rolledBack) return { title: _("error-update-rolled-back-version", { version: rolledBack[1] }), advice };
    return { title: _(key), advice };
}
