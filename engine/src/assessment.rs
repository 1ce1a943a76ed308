//! Boot assessment: an update boots on trial (see [`bootcount`]), the booted system decides
//! whether it is healthy, and a failed update is rolled back for good and remembered.
//!
//! The verdicts, in the order a boot reaches them:
//! - at finalization, [`arm`] gives the new default deployment `health.tries` boots;
//! - early in each boot, [`on_boot`] tells whether this boot is a trial (the caller then pulls
//!   in `boot-complete.target` and its health checks), or whether the bootloader fell back,
//!   in which case the rollback is made permanent and the failed image recorded;
//! - [`mark_good`] after `boot-complete.target` ends the trial; [`note_failure`] when a check
//!   fails says why, for the record the fallback boot writes.
//!
//! The record (`ostree/berth/boot-assessment.json` in the sysroot) outlives deployments and
//! factory resets: it is about images, not about a system's state.

use crate::bootcount::{self, Trial};
use crate::deployments as deps;
use crate::error::{Error, Result};
use crate::import;
use std::path::{Path, PathBuf};

pub const RECORD: &str = "ostree/berth/boot-assessment.json";
/// Failed updates kept in the record; older ones are forgotten.
const KEEP_FAILED: usize = 16;

/// Why an update was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A health check failed or timed out on every try.
    HealthCheckFailed,
    /// The boot never reached `boot-complete.target`: it hung, crashed or lost power.
    BootIncomplete,
    /// An administrator marked the boot bad.
    MarkedBad,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HealthCheckFailed => "health-check-failed",
            Reason::BootIncomplete => "boot-incomplete",
            Reason::MarkedBad => "marked-bad",
        }
    }
}

/// What a failing trial boot noted about itself, for the boot that falls back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub checksum: String,
    pub reason: Reason,
    pub detail: String,
}

/// An update that failed its trial on this machine and was rolled back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedUpdate {
    pub image: Option<String>,
    /// The image's manifest digest: routine updates do not install it again.
    pub digest: Option<String>,
    pub version: Option<String>,
    /// The ostree commit of the failed deployment.
    pub checksum: String,
    pub reason: Reason,
    pub detail: String,
    /// Seconds since the epoch.
    pub time: u64,
    /// The kernel's boot id of the boot that rolled it back.
    pub boot_id: String,
    /// The ostree commit of the deployment that became the default instead.
    #[serde(default)]
    pub rolled_back_to: String,
}

impl FailedUpdate {
    /// One sentence for people: "Update to 3 failed its health checks and was rolled back".
    pub fn summary(&self) -> String {
        let what = self
            .version
            .as_deref()
            .or(self.digest.as_deref())
            .unwrap_or(&self.checksum);
        let why = match self.reason {
            Reason::HealthCheckFailed => "failed its health checks",
            Reason::BootIncomplete => "did not finish booting",
            Reason::MarkedBad => "was marked bad",
        };
        format!(
            "Update to {what} {why} and was rolled back: {}",
            self.detail
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(default)]
    pub pending: Option<Verdict>,
    /// Newest last.
    #[serde(default)]
    pub failed: Vec<FailedUpdate>,
    /// The boot id whose fallback berthd already announced on the bus.
    #[serde(default)]
    pub announced: Option<String>,
}

/// What the running system's boot is, for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum BootState {
    /// No GRUB environment block: the bootloader cannot count tries.
    Unavailable,
    Settled,
    #[serde(rename_all = "camelCase")]
    OnTrial {
        tries_left: u32,
    },
    /// The bootloader fell back; [`on_boot`] makes it permanent.
    FellBack,
}

fn env_path(sysroot: &Path) -> Option<PathBuf> {
    let env = bootcount::env_path(&sysroot.join("boot"));
    env.exists().then_some(env)
}

pub fn load(sysroot: &Path) -> Result<Record> {
    match std::fs::read(sysroot.join(RECORD)) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config {
            path: sysroot.join(RECORD),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(Error::io(
            format!("read {}", sysroot.join(RECORD).display()),
            e,
        )),
    }
}

fn store(sysroot: &Path, record: &Record) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).expect("serializable");
    crate::fsutil::write_atomic(&sysroot.join(RECORD), &json)
}

pub fn state(sysroot: &Path) -> Result<BootState> {
    let Some(env) = env_path(sysroot) else {
        return Ok(BootState::Unavailable);
    };
    Ok(match bootcount::trial(&env)? {
        Trial::Settled => BootState::Settled,
        Trial::OnTrial { tries_left } => BootState::OnTrial { tries_left },
        Trial::FellBack => BootState::FellBack,
    })
}

/// At finalization, before the new boot entries are written: the next boot, of the new
/// default, is a trial of `tries` boots. Without a GRUB environment block there is nothing
/// to arm (the bootloader would not count), and `tries = 0` turns counting off.
pub fn arm(sysroot: &Path, tries: u32) -> Result<bool> {
    match env_path(sysroot) {
        Some(env) if tries > 0 => {
            bootcount::arm(&env, tries)?;
            tracing::info!(tries, "the new deployment boots on trial");
            Ok(true)
        }
        Some(env) => {
            bootcount::disarm(&env)?;
            Ok(false)
        }
        None => Ok(false),
    }
}

/// Ends any trial without a verdict: an administrator chose the deployment that boots next
/// (a rollback, a factory reset), and the bootloader must not undo that by falling back.
pub fn disarm(sysroot: &Path) -> Result<()> {
    match env_path(sysroot) {
        Some(env) => bootcount::disarm(&env),
        None => Ok(()),
    }
}

/// What [`on_boot`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    Unavailable,
    Settled,
    OnTrial {
        tries_left: u32,
    },
    /// The fallback was made permanent and this update recorded as failed.
    RolledBack(FailedUpdate),
    /// A power cut interrupted the last fallback after the rollback was written: the failed
    /// deployment booted again as entry 1. Counting is now off; the next boot is the good one.
    RebootToRollback,
}

/// Early in every boot: the trial state, and after a fallback, the rollback made permanent.
pub fn on_boot(sysroot: &ostree::Sysroot) -> Result<BootOutcome> {
    let path = deps::sysroot_path(sysroot);
    Ok(match state(&path)? {
        BootState::Unavailable => BootOutcome::Unavailable,
        BootState::Settled => BootOutcome::Settled,
        BootState::OnTrial { tries_left } => BootOutcome::OnTrial { tries_left },
        BootState::FellBack => fell_back(sysroot, &path)?,
    })
}

fn fell_back(sysroot: &ostree::Sysroot, path: &Path) -> Result<BootOutcome> {
    let env = env_path(path).expect("a fallback was read from it");
    let booted =
        deps::booted(sysroot).ok_or_else(|| Error::WrongState("no booted deployment".into()))?;
    let default =
        deps::default(sysroot).ok_or_else(|| Error::WrongState("no deployments".into()))?;
    let mut record = load(path)?;
    let interrupted = record.failed.last().is_some_and(|f| {
        f.checksum == booted.csum().as_str() && f.rolled_back_to == default.csum().as_str()
    });
    if interrupted {
        // The rollback is on disk but the counter was not cleared: GRUB booted entry 1,
        // which is now the failed deployment. Without the counter it boots the default.
        bootcount::disarm(&env)?;
        return Ok(BootOutcome::RebootToRollback);
    }
    if default.equal(&booted) {
        // Nothing to roll back: the fallback was already made permanent.
        bootcount::disarm(&env)?;
        return Ok(BootOutcome::Settled);
    }
    let mut failed = describe(sysroot, &default, record.pending.clone())?;
    failed.rolled_back_to = booted.csum().to_string();
    // Order for power cuts: the record first (a cut before the rollback repeats all of this,
    // replacing the entry; the trial's verdict stays until the end), then the rollback (the
    // failed deployment is no longer the default), then the counter.
    if record
        .failed
        .last()
        .is_some_and(|f| f.checksum == failed.checksum && f.rolled_back_to == failed.rolled_back_to)
    {
        record.failed.pop();
    }
    record.failed.push(failed.clone());
    let excess = record.failed.len().saturating_sub(KEEP_FAILED);
    record.failed.drain(..excess);
    store(path, &record)?;
    deps::make_default(sysroot, &booted)?;
    bootcount::disarm(&env)?;
    record.pending = None;
    store(path, &record)?;
    tracing::warn!(
        reason = failed.reason.as_str(),
        "{}; the previous deployment is the default again",
        failed.summary()
    );
    Ok(BootOutcome::RolledBack(failed))
}

fn describe(
    sysroot: &ostree::Sysroot,
    d: &ostree::Deployment,
    pending: Option<Verdict>,
) -> Result<FailedUpdate> {
    let checksum = d.csum().to_string();
    let md = import::commit_metadata(&sysroot.repo(), &checksum)?;
    let (reason, detail) = match pending {
        Some(v) if v.checksum == checksum => (v.reason, v.detail),
        _ => (
            Reason::BootIncomplete,
            "no boot reached boot-complete.target before the tries ran out".into(),
        ),
    };
    Ok(FailedUpdate {
        image: deps::deployment_image(d).map(|i| i.to_string()),
        digest: import::meta_str(&md, "berth.manifest-digest"),
        version: import::meta_str(&md, "version"),
        checksum,
        reason,
        detail,
        time: now(),
        boot_id: boot_id(),
        rolled_back_to: String::new(),
    })
}

/// After `boot-complete.target`, or an administrator's word: the booted deployment is good.
/// Returns whether a trial ended.
pub fn mark_good(sysroot: &Path) -> Result<bool> {
    let Some(env) = env_path(sysroot) else {
        return Ok(false);
    };
    let was = bootcount::trial(&env)?;
    if matches!(was, Trial::FellBack) {
        return Ok(false);
    }
    bootcount::bless(&env)?;
    let mut record = load(sysroot)?;
    if record.pending.take().is_some() {
        store(sysroot, &record)?;
    }
    Ok(matches!(was, Trial::OnTrial { .. }))
}

/// A trial boot failed (`reason`, `detail`): noted for the boot that falls back. Returns
/// whether the booted deployment is on trial, that is, whether rebooting tries again (or
/// falls back).
pub fn note_failure(sysroot: &ostree::Sysroot, reason: Reason, detail: &str) -> Result<bool> {
    let path = deps::sysroot_path(sysroot);
    if !matches!(state(&path)?, BootState::OnTrial { .. }) {
        return Ok(false);
    }
    let booted =
        deps::booted(sysroot).ok_or_else(|| Error::WrongState("no booted deployment".into()))?;
    let mut record = load(&path)?;
    record.pending = Some(Verdict {
        checksum: booted.csum().to_string(),
        reason,
        detail: detail.to_string(),
    });
    store(&path, &record)?;
    Ok(true)
}

/// An administrator's verdict that the booted update is bad: the next boot falls back to the
/// previous deployment, which then becomes the default, and the image is recorded as failed.
pub fn mark_bad(sysroot: &ostree::Sysroot, detail: &str) -> Result<()> {
    let path = deps::sysroot_path(sysroot);
    let env = env_path(&path).ok_or_else(|| {
        Error::Unsupported(format!(
            "the bootloader counts no boots here (no {}): use berth rollback",
            bootcount::env_path(&path.join("boot")).display()
        ))
    })?;
    let booted =
        deps::booted(sysroot).ok_or_else(|| Error::WrongState("no booted deployment".into()))?;
    let default =
        deps::default(sysroot).ok_or_else(|| Error::WrongState("no deployments".into()))?;
    if !default.equal(&booted) || deps::staged(sysroot).is_some() {
        return Err(Error::WrongState(
            "another deployment boots next already: only the default one can be marked bad".into(),
        ));
    }
    if deps::rollback(sysroot).is_none() {
        return Err(Error::WrongState(
            "there is no previous deployment to fall back to".into(),
        ));
    }
    let mut record = load(&path)?;
    record.pending = Some(Verdict {
        checksum: booted.csum().to_string(),
        reason: Reason::MarkedBad,
        detail: detail.to_string(),
    });
    store(&path, &record)?;
    // No tries left: GRUB boots entry 1 next and says so with boot_counter=-1.
    bootcount::arm(&env, 0)
}

/// The failed update with this manifest digest, if one failed here.
pub fn known_bad(sysroot: &Path, digest: &str) -> Result<Option<FailedUpdate>> {
    Ok(load(sysroot)?
        .failed
        .into_iter()
        .rev()
        .find(|f| f.digest.as_deref() == Some(digest)))
}

/// The last failure if it was rolled back in this boot and not yet announced; marks it
/// announced.
pub fn take_unannounced(sysroot: &Path) -> Result<Option<FailedUpdate>> {
    let mut record = load(sysroot)?;
    let this_boot = boot_id();
    let Some(last) = record.failed.last().cloned() else {
        return Ok(None);
    };
    if last.boot_id != this_boot || record.announced.as_deref() == Some(this_boot.as_str()) {
        return Ok(None);
    }
    record.announced = Some(this_boot);
    store(sysroot, &record)?;
    Ok(Some(last))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The kernel's id of the running boot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
