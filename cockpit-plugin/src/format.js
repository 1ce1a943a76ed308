// How berthd's facts read on the page: sizes, phases, dates, versions.
import { _, locale } from "./l10n.js";

/// "1.5 GB", "340 kB": decimal units, as the desktop app and the CLI print them.
export function size(bytes) {
    if (bytes >= 1e9) return _("size-gb", { size: (bytes / 1e9).toFixed(1) });
    if (bytes >= 1e6) return _("size-mb", { size: (bytes / 1e6).toFixed(1) });
    if (bytes >= 1e3) return _("size-kb", { size: (bytes / 1e3).toFixed(0) });
    return _("size-bytes", { size: String(bytes) });
}

const PHASES = ["queued", "checking", "downloading", "importing", "staging", "cleanup", "verifying", "done"];

export function phase(name) {
    return _(PHASES.includes(name) ? `phase-${name}` : "phase-working");
}

/// The big title while a transaction of `kind` runs in `phaseName`.
export function runningTitle(kind, phaseName) {
    if (kind === "check") return _("hero-checking");
    if (kind === "update" || kind === "switch") {
        return ["downloading", "queued", "checking"].includes(phaseName)
            ? _("hero-downloading")
            : _("hero-installing");
    }
    const titles = {
        rollback: "hero-rolling-back",
        "factory-reset": "hero-resetting",
        cleanup: "hero-cleaning-up",
    };
    return _(titles[kind] || "hero-working");
}

/// The first 12 hex digits of a digest, as every Berth client shows it.
export function shortDigest(digest) {
    if (!digest) return "";
    const hex = digest.includes(":") ? digest.split(":")[1] : digest;
    return hex.slice(0, 12);
}

/// A key as people compare them: a GPG fingerprint's last 16 hex digits (its long key id), a
/// sigstore key id's first 12.
export function shortKey(key) {
    return key.includes(":") ? shortDigest(key) : key.slice(-16);
}

/// "Signed by KEY" or "Not verified" for a deployment; "" when berthd did not record it.
export function signature(d) {
    if (d.signature === "signed") {
        return _("signature-signed", { keys: (d["signed-by"] || []).map(shortKey).join(", ") });
    }
    return d.signature === "unverified" ? _("signature-unverified") : "";
}

/// Local changes to /usr: unlocked, and the last drift check; "" when neither applies.
export function modifications(d) {
    const parts = [];
    if (d.unlocked) parts.push(_("modifications-unlocked", { kind: d.unlocked }));
    if (d.drift === "clean") parts.push(_("modifications-clean"));
    if (d.drift === "drifted") {
        parts.push(_("modifications-drifted", { paths: d["drift-paths"] || 0, corrupt: d["drift-corrupt-objects"] || 0 }));
    }
    return parts.join(" · ");
}

export function version(v, digest) {
    return v || shortDigest(digest) || _("unknown");
}

/// An RFC 3339 build time as a local date ("1 December 2026").
export function date(rfc3339) {
    const d = rfc3339 ? new Date(rfc3339) : null;
    return d && !isNaN(d) ? d.toLocaleDateString(locale, { dateStyle: "long" }) : "";
}

/// Seconds since the epoch as a local date and time.
export function dateTime(seconds) {
    return new Date(seconds * 1000).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

export const POLICIES = ["off", "check", "download", "apply"];

/// berthd's Blocked codes the page words itself; others show berthd's own reason.
const BLOCKED = ["metered", "on-battery", "battery-low", "low-space", "rollout", "outside-window",
    "inhibited", "sessions", "reboot-slots", "coordination"];

/// What holds an automatic step back, in the reader's language.
export function blocked(code, reason) {
    return BLOCKED.includes(code) ? _(`blocked-${code}`) : (reason || code);
}

/// One AutomaticUpdate signal in words, or null for an event the page does not show.
export function automaticEvent(event, details) {
    const d = details || {};
    const v = d.version || _("unknown");
    switch (event) {
    case "found": return _("automatic-event-found", { version: v });
    case "downloaded": return _("automatic-event-downloaded", { version: v });
    case "staged": return _("automatic-event-staged", { version: v });
    case "rebooting": return _("automatic-event-rebooting", { version: v });
    case "blocked": return _("automatic-event-blocked", { reason: blocked(d.code, d.reason) });
    case "failed": return _("automatic-event-failed", { message: d["error-message"] || "" });
    default: return null;
    }
}
