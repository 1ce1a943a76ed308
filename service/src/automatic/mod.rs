//! Automatic updates, driven by berthd's own scheduler rather than a systemd timer: the
//! interval, jitter, windows, deadline and backoff are settings that change at runtime
//! (Configure) and are persisted with the last check; a step held back by a condition is
//! retried by itself; and the whole loop runs on the test bus without systemd. berthd stays
//! running while the policy is not `off` (berthd.service is enabled for boot).
//!
//! One step: check; unless the policy stops there, take the image once the rollout lets
//! this machine, download it when the conditions allow, stage it, and reboot into it inside
//! a reboot window when nobody is cut off. Each outcome is in AutomaticStatus, the journal
//! and the AutomaticUpdate signal.

pub mod conditions;
pub mod fleet;
pub mod record;
pub mod rollout;

use crate::daemon::Daemon;
use crate::manager::{check_work, routine_update_work, verify_work, ManagerObject};
use crate::state::{self, Dict};
use crate::transaction::Kind;
use berth_engine::config::{Automatic, Policy};
use berth_engine::{Approval, UpdateOptions};
use conditions::Blocker;
use record::Record;
use std::sync::Arc;
use std::time::Duration;
use zbus::zvariant::Value;

/// Who the scheduler's transactions say started them.
const INITIATOR: &str = "automatic updates";

pub async fn run(d: Arc<Daemon>) {
    let sysroot = d.engine.sysroot_path().to_path_buf();
    let mut rec = record::load(&sysroot);
    let settings = d.reload_settings().await;
    let boot = berth_engine::assessment::boot_id();
    if rec.boot_id != boot || rec.next_run == 0 {
        // A new boot (or the first ever): the first check comes soon after start, whenever
        // the last one was, so a machine that was off catches up.
        rec.boot_id = boot;
        rec.next_run = now() + settings.first_check_delay;
        record::store(&sysroot, &rec);
    }
    d.restore_last_check(rec.last_check);
    let wariness = rollout::wariness(&settings, std::path::Path::new(rollout::MACHINE_ID));
    d.set_schedule(rec, None, wariness).await;
    let mut before = settings;
    loop {
        let settings = d.reload_settings().await;
        let wariness = rollout::wariness(&settings, std::path::Path::new(rollout::MACHINE_ID));
        let mut rec = d.facts().schedule;
        if settings != before {
            if before.policy == Policy::Off {
                // Just turned on: the first step after the first-check delay, as at boot.
                rec.next_run = now() + settings.first_check_delay;
            } else if d.facts().blocked.is_some() {
                // Held back, maybe by what just changed (a window, a floor): look again now.
                rec.next_run = now();
            } else {
                // Other settings: the next step no later than a first check would come.
                rec.next_run = rec.next_run.min(now() + settings.first_check_delay);
            }
            record::store(&sysroot, &rec);
            before = settings.clone();
        }
        if rec.reboot_slot.is_some() {
            // Rebooted (really, or emulated in-process) with the fleet's slot: it goes back
            // once this boot is healthy.
            fleet::settle(&d, &mut rec).await;
            record::store(&sysroot, &rec);
            d.set_schedule(rec.clone(), None, wariness).await;
        }
        if settings.policy == Policy::Off {
            d.set_schedule(rec, None, wariness).await;
            d.wake_scheduler.notified().await;
            continue;
        }
        let wait = rec.next_run.saturating_sub(now());
        if wait > 0 {
            d.set_schedule(rec, d.facts().blocked, wariness).await;
            let _ =
                tokio::time::timeout(Duration::from_secs(wait), d.wake_scheduler.notified()).await;
            continue;
        }
        if d.active().is_some() {
            // Someone's transaction runs: the step waits for it to end.
            let _ = tokio::time::timeout(Duration::from_secs(5), d.wake_scheduler.notified()).await;
            continue;
        }
        let mut step = Step {
            d: &d,
            s: &settings,
            wariness,
            blocked: None,
        };
        step.run(&mut rec).await;
        if step.blocked.is_none() && rec.failures == 0 {
            step.drift_check().await;
        }
        record::store(&sysroot, &rec);
        d.set_schedule(rec, step.blocked, wariness).await;
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Step<'a> {
    d: &'a Arc<Daemon>,
    s: &'a Automatic,
    wariness: f64,
    blocked: Option<(String, String)>,
}

impl Step<'_> {
    async fn run(&mut self, rec: &mut Record) {
        let facts = self.d.facts();
        let staged = digest(state::staged(&facts));
        if staged.is_some() && staged == rec.staged_digest {
            if self.s.policy == Policy::Apply {
                return self.reboot(rec).await;
            }
        } else if staged.is_some() {
            // An administrator staged something: it is theirs to boot; nothing replaces it.
            rec.done(
                now(),
                self.s,
                "a deployment staged by hand waits for a reboot".into(),
            );
            return;
        }
        let check = match self
            .transaction(Kind::Check, "check".into(), check_work(self.d))
            .await
        {
            Ok(v) => v,
            Err((name, message)) => {
                return self.failed(rec, None, "check", &name, &message).await;
            }
        };
        let Ok(mut check) = serde_json::from_value::<CheckFields>(check) else {
            return self
                .failed(rec, None, "check", "Failed", "unreadable check result")
                .await;
        };
        rec.last_check = now();
        // The registry's words: inert before they reach outcomes, the journal and signals.
        check.version = check.version.map(|v| berth_engine::text::outside(&v));
        if let Some(digest) = staged.filter(|s| *s == check.manifest_digest) {
            // Ours, staged already (a reboot was held back): straight to the reboot.
            rec.staged_digest = Some(digest);
            if self.s.policy == Policy::Apply {
                return self.reboot(rec).await;
            }
        }
        let version = check.version.clone().unwrap_or_else(|| "unknown".into());
        if !check.update_available {
            let outcome = if check.known_bad {
                format!("version {version} failed on this machine before; not taking it")
            } else {
                "up to date".to_string()
            };
            return rec.done(now(), self.s, outcome);
        }
        if let Some(why) = rec.refuses(&check.manifest_digest) {
            tracing::info!("automatic updates: not taking version {version}: {why}");
            return rec.done(
                now(),
                self.s,
                format!("not taking version {version}: {why}"),
            );
        }
        if rec.found.as_deref() != Some(check.manifest_digest.as_str()) {
            rec.found = Some(check.manifest_digest.clone());
            tracing::info!("automatic updates: version {version} is available");
            self.event("found", details(&check)).await;
        }
        if self.s.policy == Policy::Check {
            return rec.done(now(), self.s, format!("version {version} is available"));
        }
        let at = rollout::allowed_at(
            check.created.as_deref(),
            self.wariness,
            self.s.rollout_period,
        );
        if let Some(at) = at.filter(|at| *at > now()) {
            let retry = at.min(now() + self.s.check_interval);
            return self
                .block(rec, Blocker::Rollout { at }, retry, details(&check))
                .await;
        }
        let blockers =
            conditions::before_download(&self.d.conn, self.d.engine.sysroot_path(), self.s).await;
        if let Some(b) = blockers.into_iter().next() {
            let retry = now() + self.s.retry_interval;
            return self.block(rec, b, retry, details(&check)).await;
        }
        let downloaded = self
            .d
            .facts()
            .host
            .and_then(|h| h.status.berth.cached_update)
            .is_some_and(|c| c.manifest_digest == check.manifest_digest);
        if !downloaded {
            if let Err((name, message)) = self.routine_update(true).await {
                let digest = check.manifest_digest.clone();
                return self
                    .failed(rec, Some(&digest), "download", &name, &message)
                    .await;
            }
            tracing::info!("automatic updates: version {version} is downloaded");
            self.event("downloaded", details(&check)).await;
        }
        if self.s.policy == Policy::Download {
            return rec.done(now(), self.s, format!("version {version} is downloaded"));
        }
        if let Err((name, message)) = self.routine_update(false).await {
            let digest = check.manifest_digest.clone();
            return self
                .failed(rec, Some(&digest), "stage", &name, &message)
                .await;
        }
        rec.staged_digest = Some(check.manifest_digest.clone());
        rec.staged_at = now();
        tracing::info!("automatic updates: version {version} is staged");
        self.event("staged", details(&check)).await;
        self.reboot(rec).await
    }

    /// The scheduled drift check of the booted deployment, once an interval
    /// (scheduled-drift-check in berth.toml); drift is announced by the check itself.
    async fn drift_check(&self) {
        if !self.d.engine.config().scheduled_drift_check {
            return;
        }
        let facts = self.d.facts();
        let last = state::booted(&facts)
            .and_then(|b| b.drift.as_ref())
            .map_or(0, |d| d.checked_at);
        if now().saturating_sub(last) < self.s.check_interval {
            return;
        }
        let work = verify_work(self.d, None);
        if let Err((name, message)) = self
            .transaction(Kind::Verify, "verify None".into(), work)
            .await
        {
            tracing::warn!("automatic drift check failed ({name}): {message}");
        }
    }

    /// Reboots into what the scheduler staged, when the window and the people allow.
    async fn reboot(&mut self, rec: &mut Record) {
        let facts = self.d.facts();
        let staged = state::staged(&facts);
        let version = staged
            .and_then(|d| d.image.as_ref())
            .and_then(|i| i.version.as_deref())
            .map_or_else(|| "unknown".into(), berth_engine::text::outside);
        let mut info = Dict::new();
        info.insert("version".into(), owned(Value::from(version.as_str())));
        if let Some(d) = &rec.staged_digest {
            info.insert("digest".into(), owned(Value::from(d.as_str())));
        }
        let deadline = self.s.reboot_deadline_hours.saturating_mul(3600);
        let past_deadline = deadline > 0 && now() >= rec.staged_at.saturating_add(deadline);
        let blockers = conditions::before_reboot(&self.d.conn, self.s, past_deadline, now()).await;
        if let Some(b) = blockers.first() {
            let mut retry = now() + self.s.retry_interval;
            if let (Blocker::OutsideWindow { opens: Some(t) }, 1) = (b, blockers.len()) {
                retry = *t;
            }
            if deadline > 0 && !past_deadline {
                retry = retry.min(rec.staged_at + deadline);
            }
            return self.block(rec, b.clone(), retry, info).await;
        }
        let target = rec.staged_digest.clone().unwrap_or_default();
        if let Err(b) = fleet::take_slot(self.d, rec, &target).await {
            let retry = now() + self.s.retry_interval;
            return self.block(rec, b, retry, info).await;
        }
        tracing::info!("automatic updates: rebooting into version {version}");
        self.event("rebooting", info.clone()).await;
        let check_sessions = !(self.s.reboot_with_sessions || past_deadline);
        match self.d.reboot_system(0, check_sessions).await {
            Ok(()) => {
                // Only an emulated reboot comes back here.
                rec.staged_digest = None;
                rec.done(now(), self.s, format!("rebooted into version {version}"));
            }
            Err(e) => {
                fleet::give_back(self.d, rec).await;
                let (name, message) = (e.name().to_string(), e.message().to_string());
                self.failed(rec, None, "reboot", &name, &message).await;
            }
        }
    }

    async fn block(&mut self, rec: &mut Record, b: Blocker, retry: u64, mut info: Dict) {
        let reason = b.message();
        let fresh = self.d.facts().blocked.as_ref().map(|(c, _)| c.as_str()) != Some(b.code());
        if fresh {
            tracing::info!(
                "automatic updates held back: {reason}; trying again at {}",
                conditions::when(retry)
            );
        }
        rec.held(retry, format!("held back: {reason}"));
        self.blocked = Some((b.code().to_string(), reason.clone()));
        if fresh {
            info.insert("code".into(), owned(Value::from(b.code())));
            info.insert("reason".into(), owned(Value::from(reason.as_str())));
            self.event("blocked", info).await;
        }
    }

    async fn failed(
        &mut self,
        rec: &mut Record,
        digest: Option<&str>,
        step: &str,
        name: &str,
        message: &str,
    ) {
        let at = now();
        rec.failed(at, self.s, digest, format!("{step} failed: {message}"));
        tracing::warn!(
            "automatic updates: {step} failed ({name}): {message}; failure {} in a row, next try at {}",
            rec.failures,
            conditions::when(rec.next_run)
        );
        let mut info = Dict::new();
        info.insert("step".into(), owned(Value::from(step)));
        info.insert("error-name".into(), owned(Value::from(name)));
        info.insert("error-message".into(), owned(Value::from(message)));
        info.insert("failures".into(), owned(Value::from(rec.failures)));
        info.insert("next-try".into(), owned(Value::from(rec.next_run)));
        info.insert("backoff".into(), owned(Value::from(rec.next_run - at)));
        if let Some(d) = digest {
            info.insert("digest".into(), owned(Value::from(d)));
        }
        self.event("failed", info).await;
    }

    /// A routine update as berthd's own transaction: the download alone, or staging what
    /// was downloaded. Nobody approves anything beyond routine for the scheduler.
    async fn routine_update(&self, download_only: bool) -> Result<(), (String, String)> {
        let opts = UpdateOptions {
            download_only,
            from_downloaded: !download_only,
            approved: Approval::default(),
        };
        let key = if download_only {
            "automatic download"
        } else {
            "automatic staging"
        };
        let work = routine_update_work(&self.d.engine, opts);
        self.transaction(Kind::Update, key.into(), work)
            .await
            .map(|_| ())
    }

    /// Runs one transaction as berthd's own; Err is (error name, message).
    async fn transaction(
        &self,
        kind: Kind,
        key: String,
        work: crate::daemon::Work,
    ) -> Result<serde_json::Value, (String, String)> {
        let txn = self
            .d
            .start(kind, key, INITIATOR.into(), 0, work)
            .await
            .map_err(|e| (e.name().to_string(), e.message().to_string()))?;
        let outcome = txn.wait().await;
        if outcome.success {
            Ok(serde_json::from_str(&outcome.result).unwrap_or_default())
        } else {
            Err((outcome.error_name, outcome.error_message))
        }
    }

    async fn event(&self, event: &str, details: Dict) {
        let Ok(emitter) =
            zbus::object_server::SignalEmitter::new(&self.d.conn, berth_dbus::MANAGER_PATH)
        else {
            return;
        };
        if let Err(e) = ManagerObject::automatic_update(&emitter, event, details).await {
            tracing::warn!("cannot announce {event}: {e}");
        }
    }
}

/// The parts of a check result the scheduler reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckFields {
    update_available: bool,
    manifest_digest: String,
    version: Option<String>,
    created: Option<String>,
    #[serde(default, deserialize_with = "present")]
    known_bad: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::Deserialize;
    Ok(!serde_json::Value::deserialize(d)?.is_null())
}

fn details(c: &CheckFields) -> Dict {
    let mut m = Dict::new();
    m.insert(
        "digest".into(),
        owned(Value::from(c.manifest_digest.as_str())),
    );
    let version = c.version.as_deref().unwrap_or("unknown");
    m.insert("version".into(), owned(Value::from(version)));
    m
}

fn digest(d: Option<&berth_engine::status::DeploymentInfo>) -> Option<String> {
    d.and_then(|d| d.image.as_ref())
        .map(|i| i.image_digest.clone())
}

fn owned(v: Value<'_>) -> zbus::zvariant::OwnedValue {
    v.try_to_owned().expect("plain values have no fds")
}
