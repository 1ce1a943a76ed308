//! Unlocked deployments: a writable overlay on the booted deployment's `/usr` for local
//! changes, as `ostree admin unlock` makes it.
//!
//! - transient: the overlay's upper layer is thrown away at the next boot (libostree's
//!   "development" unlock on the running system);
//! - hotfix: the upper layer lives in the deployment (`.berth-usr-upper`) and is mounted again
//!   at each boot of it, until an update or a rollback boots another deployment. As ostree
//!   does, the deployment is first cloned as the rollback, so a rollback returns to the image
//!   as built.
//!
//! Berth mounts a hotfix itself, in the booted system (`berth-hotfix.service`, early in each
//! boot), not as ostree does from the initramfs (ostree-prepare-root mounts `.usr-ovl-*`):
//! an initramfs without the overlay module (Debian's dracut leaves it out) would fail to
//! boot the deployment at all, and the machine would stop in an emergency shell.
//!
//! The mount must land in the host's mount namespace (berthd runs the unlock through a unit
//! for that). On an emulated sysroot the overlay goes on the emulated booted deployment's
//! checkout, and the emulated reboot plays the boot's part.

use crate::deployments::{self as deps, Locked};
use crate::error::{Context as _, Error, Result};
use ostree::gio;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Transient overlays of the emulation: `<key>/{upper,work}`.
const EMULATED_TRANSIENT: &str = "ostree/berth/unlocked";
/// A hotfix's overlay directories, inside the deployment (not ostree's `.usr-ovl-*`, which
/// ostree-prepare-root would mount from the initramfs).
const HOTFIX_UPPER: &str = ".berth-usr-upper";
const HOTFIX_WORK: &str = ".berth-usr-work";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockKind {
    Transient,
    Hotfix,
}

impl UnlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnlockKind::Transient => "transient",
            UnlockKind::Hotfix => "hotfix",
        }
    }

    pub fn parse(s: &str) -> Option<UnlockKind> {
        match s {
            "transient" => Some(UnlockKind::Transient),
            "hotfix" => Some(UnlockKind::Hotfix),
            _ => None,
        }
    }
}

/// Whether deployment `d` is unlocked, and how.
pub fn state(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> Option<UnlockKind> {
    use ostree::DeploymentUnlockedState as U;
    match d.unlocked() {
        U::Development | U::Transient => return Some(UnlockKind::Transient),
        U::Hotfix => return Some(UnlockKind::Hotfix),
        _ => {}
    }
    if deps::deployment_dir(sysroot, d).join(HOTFIX_WORK).is_dir() {
        Some(UnlockKind::Hotfix)
    } else if deps::is_emulated(sysroot) && transient_dir(sysroot, d).is_dir() {
        Some(UnlockKind::Transient)
    } else {
        None
    }
}

/// Unlocks the booted deployment. On the running system this must run in the host's mount
/// namespace (the overlay is mounted where it is called).
pub fn unlock(sysroot: &ostree::Sysroot, kind: UnlockKind) -> Result<()> {
    let booted = deps::booted(sysroot)
        .ok_or_else(|| Error::WrongState("nothing is deployed: install an image first".into()))?;
    if let Some(k) = state(sysroot, &booted) {
        return Err(Error::WrongState(format!(
            "the booted deployment is already unlocked ({})",
            k.as_str()
        )));
    }
    let emulated = deps::is_emulated(sysroot);
    let dir = deps::deployment_dir(sysroot, &booted);
    let live_usr = crate::drift::usr_of(sysroot, &booted);
    match kind {
        UnlockKind::Transient if !emulated => sysroot
            .deployment_unlock(
                &booted,
                ostree::DeploymentUnlockedState::Development,
                gio::Cancellable::NONE,
            )
            .ctx(|| "unlock /usr (transient)".into()),
        UnlockKind::Transient => {
            let t = transient_dir(sysroot, &booted);
            let (upper, work) = (t.join("upper"), t.join("work"));
            create_dirs(&[&upper, &work])?;
            mount_overlay(&dir.join("usr"), &live_usr, &upper, &work).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&t);
            })
        }
        UnlockKind::Hotfix => {
            // The clone first: libostree makes /sysroot writable for it. Should the rest
            // fail, a spare rollback of the same commit is all that is left.
            clone_as_rollback(sysroot, &booted)?;
            let (upper, work) = (dir.join(HOTFIX_UPPER), dir.join(HOTFIX_WORK));
            // The deployment's root is sealed (immutable), as ostree leaves it.
            let done = deps::with_unsealed(&dir, || create_dirs(&[&upper, &work]))
                .and_then(|()| mount_overlay(&dir.join("usr"), &live_usr, &upper, &work));
            if done.is_err() {
                // Not unlocked after all: the directories would say it is.
                let _ = deps::with_unsealed(&dir, || {
                    let _ = std::fs::remove_dir_all(&work);
                    let _ = std::fs::remove_dir_all(&upper);
                    Ok(())
                });
            }
            done
        }
    }
}

fn create_dirs(dirs: &[&Path]) -> Result<()> {
    for d in dirs {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    Ok(())
}

/// What ostree does before a hotfix: the same commit deployed again, right after the booted
/// deployment, so that a rollback boots the image as built.
fn clone_as_rollback(sysroot: &ostree::Sysroot, booted: &ostree::Deployment) -> Result<()> {
    let _lock = Locked::take(sysroot)?;
    let origin = booted
        .origin()
        .ok_or_else(|| Error::WrongState("the booted deployment has no origin".into()))?;
    let kargs = crate::kargs::deployment_kargs(booted);
    let clone = deps::deploy_clone(sysroot, booted, &origin, &kargs)?;
    let mut list = Vec::new();
    for d in sysroot.deployments() {
        let is_booted = d.equal(booted);
        list.push(d);
        if is_booted {
            list.push(deps::same_object(&clone));
        }
    }
    deps::write_deployment_list(sysroot, &list)
}

fn transient_dir(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> PathBuf {
    deps::sysroot_path(sysroot)
        .join(EMULATED_TRANSIENT)
        .join(crate::drift::key(d))
}

/// Mounts an overlay of `lower` with `upper` on `target`.
fn mount_overlay(lower: &Path, target: &Path, upper: &Path, work: &Path) -> Result<()> {
    // The options are a comma-separated list: a path with a comma or colon cannot be named.
    let paths = [lower, upper, work].map(|p| p.to_string_lossy().into_owned());
    if paths.iter().any(|p| p.contains([',', ':', '\\'])) {
        return Err(Error::Unsupported(format!(
            "an overlay cannot name {} (comma, colon or backslash in the path)",
            lower.display()
        )));
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        paths[0], paths[1], paths[2]
    );
    let data = std::ffi::CString::new(data)
        .map_err(|_| Error::Unsupported(format!("{}: NUL in the path", lower.display())))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| {
        Error::io(
            format!("mount an overlay on {}", target.display()),
            e.into(),
        )
    })
}

fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (
        std::fs::metadata(dir),
        dir.parent().map(std::fs::metadata).transpose(),
    ) else {
        return false;
    };
    b.is_some_and(|b| a.dev() != b.dev())
}

/// The emulated reboot's part: every overlay goes, transient ones for good; the deployment
/// that boots gets its hotfix overlay again, as berth-hotfix.service mounts it.
pub fn emulated_boot(sysroot: &ostree::Sysroot, next: &ostree::Deployment) -> Result<()> {
    for d in sysroot.deployments() {
        let usr = deps::deployment_dir(sysroot, &d).join("usr");
        if is_mount_point(&usr) {
            rustix::mount::unmount(&usr, rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| Error::io(format!("unmount {}", usr.display()), e.into()))?;
        }
    }
    let transient = deps::sysroot_path(sysroot).join(EMULATED_TRANSIENT);
    match std::fs::remove_dir_all(&transient) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("remove {}", transient.display()), e));
        }
        _ => {}
    }
    mount_hotfix(sysroot, next).map(|_| ())
}

/// Early in each boot (berth-hotfix.service) and in the emulated one: mounts the booted
/// deployment's hotfix overlay, if it has one and it is not mounted yet. Returns whether it
/// mounted it.
pub fn mount_hotfix(sysroot: &ostree::Sysroot, booted: &ostree::Deployment) -> Result<bool> {
    let dir = deps::deployment_dir(sysroot, booted);
    let work = dir.join(HOTFIX_WORK);
    if !work.is_dir() {
        return Ok(false);
    }
    let target = crate::drift::usr_of(sysroot, booted);
    if is_overlay(&target) {
        return Ok(false);
    }
    mount_overlay(&dir.join("usr"), &target, &dir.join(HOTFIX_UPPER), &work)?;
    Ok(true)
}

fn is_overlay(path: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == OVERLAYFS_SUPER_MAGIC)
}
