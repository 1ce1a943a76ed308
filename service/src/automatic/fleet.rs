//! Reboot coordination across a fleet (`[reboot-coordination]` in berth.toml): before an
//! automatic reboot the machine takes a slot in its group's semaphore in etcd, and it gives
//! the slot back once the new deployment has booted and is healthy (its trial settled, or no
//! trial at all). The slot's lease covers the reboot; a machine that dies holding it frees
//! it when the lease runs out. Without a slot there is no reboot: an unreachable cluster
//! holds the step back like any condition.

use super::conditions::Blocker;
use super::record::{HeldSlot, Record};
use crate::daemon::Daemon;
use crate::state;
use berth_engine::assessment::BootState;
use berth_engine::config::Coordination;
use berth_engine::rebootlock::{Acquired, RebootLock};
use std::sync::Arc;
use std::time::Duration;

fn lock(c: &Coordination) -> Result<RebootLock, Blocker> {
    let machine_id = std::fs::read_to_string(super::rollout::MACHINE_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if c.id.is_none() && machine_id.is_empty() {
        return Err(Blocker::Coordination(
            "no machine id to name this machine by (set reboot-coordination.id)".into(),
        ));
    }
    RebootLock::new(c, &machine_id).map_err(|e| Blocker::Coordination(e.to_string()))
}

/// Takes a slot to reboot into `target`, noting it in the record before anything reboots;
/// Err is what holds the reboot back.
pub async fn take_slot(d: &Daemon, rec: &mut Record, target: &str) -> Result<(), Blocker> {
    let Some(c) = d.facts().coordination else {
        return Ok(());
    };
    let lock = lock(&c)?;
    match lock.acquire(target).await {
        Ok(Acquired::Slot { lease }) => {
            tracing::info!(
                "reboot coordination: took a reboot slot of group {} as {}",
                lock.group(),
                lock.id()
            );
            rec.reboot_slot = Some(HeldSlot {
                lease,
                group: lock.group().to_string(),
                target: target.to_string(),
            });
            super::record::store(d.engine.sysroot_path(), rec);
            Ok(())
        }
        Ok(Acquired::Full { holders }) => Err(Blocker::RebootSlots {
            group: c.group,
            holders,
        }),
        Err(e) => Err(Blocker::Coordination(e.to_string())),
    }
}

/// A reboot that did not happen: the slot goes back at once.
pub async fn give_back(d: &Daemon, rec: &mut Record) {
    let Some(slot) = rec.reboot_slot.take() else {
        return;
    };
    super::record::store(d.engine.sysroot_path(), rec);
    match d.facts().coordination.as_ref().map(lock) {
        Some(Ok(lock)) => release(&lock, &slot).await,
        Some(Err(b)) => tracing::warn!("reboot coordination: {}", b.message()),
        None => {}
    }
}

/// After a boot with a slot held: keeps it while the new deployment is on trial, and gives
/// it back once the trial settled (or fell back: the machine is up again either way).
pub async fn settle(d: &Arc<Daemon>, rec: &mut Record) {
    let Some(slot) = rec.reboot_slot.clone() else {
        return;
    };
    let Some(c) = d.facts().coordination else {
        tracing::warn!(
            "reboot coordination is no longer configured; the slot of group {} ends with its lease",
            slot.group
        );
        rec.reboot_slot = None;
        return;
    };
    let lock = match lock(&c) {
        Ok(l) => l,
        Err(b) => {
            tracing::warn!("reboot coordination: {}", b.message());
            rec.reboot_slot = None;
            return;
        }
    };
    // Renewed well before it runs out, and the trial's end noticed within seconds.
    let period = Duration::from_secs((c.lease_seconds / 3).clamp(1, 10));
    loop {
        let state = d.engine.boot_state();
        if !matches!(state, Ok(BootState::OnTrial { .. })) {
            break;
        }
        match lock.renew(slot.lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "reboot coordination: the slot's lease ran out before this boot was found \
                     healthy; another machine may reboot meanwhile"
                );
                rec.reboot_slot = None;
                return;
            }
            // The lease may still be alive: the cluster is trying again next period.
            Err(e) => tracing::warn!("reboot coordination: cannot renew the slot: {e}"),
        }
        tokio::time::sleep(period).await;
    }
    let booted = super::digest(state::booted(&d.facts()));
    if booted.as_deref() == Some(slot.target.as_str()) {
        tracing::info!(
            "reboot coordination: the new deployment booted healthy; giving the slot back"
        );
    } else {
        tracing::warn!(
            "reboot coordination: this machine is not on the image it rebooted for (it fell \
             back); giving the slot back"
        );
    }
    release(&lock, &slot).await;
    rec.reboot_slot = None;
}

async fn release(lock: &RebootLock, slot: &HeldSlot) {
    if let Err(e) = lock.release(slot.lease).await {
        // Its lease ends it anyway.
        tracing::warn!(
            "reboot coordination: cannot give the slot back ({e}); it ends with its lease"
        );
    }
}
