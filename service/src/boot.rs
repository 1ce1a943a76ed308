//! Boot assessment as systemd runs it (units in dbus/): berthd's early-boot, health-check and
//! failed-boot commands. The engine decides (berth_engine::assessment); this module starts
//! and reports.
//!
//! - `berth-boot-assess.service`, every boot: [`assess`]. On a trial boot it starts
//!   `berth-boot-good.service`, which requires `boot-complete.target`: that pulls in the
//!   health checks ordered before it, and arms the target's job timeout, so a boot that
//!   never completes is rebooted into its next try. Normal boots pull in nothing.
//! - `berth-health-check.service`, before `boot-complete.target`: [`health_check`].
//! - `berth-boot-failed.service`, on the check's failure: [`failed`] says whether to reboot.

use anyhow::{Context, Result};
use berth_engine::assessment::{BootOutcome, BootState, Reason};
use berth_engine::{health, Engine};
use std::path::Path;
use std::process::Command;

/// The unit that marks a trial boot good once `boot-complete.target` is reached.
const GOOD_UNIT: &str = "berth-boot-good.service";

pub fn assess(engine: &Engine) -> Result<()> {
    match engine.assess_boot()? {
        BootOutcome::Unavailable => {
            tracing::info!(
                "boot assessment: the bootloader counts no boots (no GRUB environment block)"
            )
        }
        BootOutcome::Settled => tracing::info!("boot assessment: nothing on trial"),
        BootOutcome::OnTrial { tries_left } => {
            tracing::info!(tries_left, "boot assessment: this boot is a trial");
            systemctl(&["start", "--no-block", GOOD_UNIT])?;
        }
        BootOutcome::RolledBack(failed) => {
            // The log line of record; the engine logged the details.
            println!("{}", failed.summary());
        }
        BootOutcome::RebootToRollback => {
            tracing::warn!(
                "boot assessment: the failed update booted again after an interrupted \
                 fallback; rebooting into the previous deployment"
            );
            systemctl(&["reboot", "--no-block"])?;
        }
    }
    Ok(())
}

pub async fn health_check(engine: &Engine) -> Result<()> {
    let dirs: Vec<&Path> = health::DIRS.iter().map(Path::new).collect();
    match engine.run_health_checks(&dirs).await {
        Ok(n) => {
            tracing::info!("health checks: {n} passed");
            Ok(())
        }
        Err(e) => {
            let detail = match &e {
                berth_engine::Error::HealthCheckFailed(d) => d.clone(),
                other => other.to_string(),
            };
            tracing::error!("health checks: {detail}");
            if let Err(note) = engine.note_boot_failure(Reason::HealthCheckFailed, &detail) {
                tracing::warn!("cannot record the failure: {note}");
            }
            Err(e.into())
        }
    }
}

/// Whether this boot is a trial, so that rebooting at once tries again (or falls back).
pub fn failed(engine: &Engine) -> Result<bool> {
    let on_trial = matches!(engine.boot_state()?, BootState::OnTrial { .. });
    if on_trial {
        tracing::warn!("boot assessment: this trial boot failed; rebooting into the next try");
    } else {
        tracing::warn!("boot assessment: a check failed, but this boot is no trial: not rebooting");
    }
    Ok(on_trial)
}

fn systemctl(args: &[&str]) -> Result<()> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .with_context(|| format!("run systemctl {}", args.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "systemctl {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}
