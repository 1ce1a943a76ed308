//! Unlocked deployments: a writable overlay on the booted deployment's `/usr` for local
//! changes, as `ostree admin unlock` makes it.
//!
//! - transient: the overlay's upper layer is thrown away at the next boot;
//! - hotfix: the upper layer lives in the deployment (`.usr-ovl-upper`) and is mounted again
//!   at each boot of it (ostree-prepare-root does it), until an update or a rollback boots
//!   another deployment. ostree first clones the deployment as the rollback, so a rollback
//!   returns to the image as built.
//!
//! On the running system libostree does it, and the mount must land in the host's mount
//! namespace (berthd runs the unlock through a unit for that). On an emulated sysroot Berth
//! does the same with the emulated booted deployment's checkout, and the emulated reboot
//! plays ostree-prepare-root's part.

use crate::deployments::{self as deps, Locked};
use crate::error::{Context as _, Error, Result};
use ostree::gio;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Transient overlays of the emulation: `<key>/{upper,work}`.
const EMULATED_TRANSIENT: &str = "ostree/berth/unlocked";
/// ostree's hotfix overlay directories, inside the deployment.
const HOTFIX_UPPER: &str = ".usr-ovl-upper";
const HOTFIX_WORK: &str = ".usr-ovl-work";

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
    if !deps::is_emulated(sysroot) {
        return None;
    }
    if deps::deployment_dir(sysroot, d).join(HOTFIX_WORK).is_dir() {
        Some(UnlockKind::Hotfix)
    } else if transient_dir(sysroot, d).is_dir() {
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
    if !deps::is_emulated(sysroot) {
        let how = match kind {
            UnlockKind::Transient => ostree::DeploymentUnlockedState::Development,
            UnlockKind::Hotfix => ostree::DeploymentUnlockedState::Hotfix,
        };
        return sysroot
            .deployment_unlock(&booted, how, gio::Cancellable::NONE)
            .ctx(|| format!("unlock /usr ({})", kind.as_str()));
    }
    let dir = deps::deployment_dir(sysroot, &booted);
    match kind {
        UnlockKind::Transient => {
            let t = transient_dir(sysroot, &booted);
            let (upper, work) = (t.join("upper"), t.join("work"));
            create_dirs(&[&upper, &work])?;
            mount_overlay(&dir.join("usr"), &upper, &work).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&t);
            })
        }
        UnlockKind::Hotfix => {
            let (upper, work) = (dir.join(HOTFIX_UPPER), dir.join(HOTFIX_WORK));
            // The deployment's root is sealed (immutable), as ostree leaves it.
            deps::with_unsealed(&dir, || create_dirs(&[&upper, &work]))?;
            let done = clone_as_rollback(sysroot, &booted)
                .and_then(|()| mount_overlay(&dir.join("usr"), &upper, &work));
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

fn mount_overlay(usr: &Path, upper: &Path, work: &Path) -> Result<()> {
    // The options are a comma-separated list: a path with a comma or colon cannot be named.
    let paths = [usr, upper, work].map(|p| p.to_string_lossy().into_owned());
    if paths.iter().any(|p| p.contains([',', ':', '\\'])) {
        return Err(Error::Unsupported(format!(
            "an overlay cannot name {} (comma, colon or backslash in the path)",
            usr.display()
        )));
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        paths[0], paths[1], paths[2]
    );
    let data = std::ffi::CString::new(data)
        .map_err(|_| Error::Unsupported(format!("{}: NUL in the path", usr.display())))?;
    rustix::mount::mount(
        "overlay",
        usr,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| Error::io(format!("mount an overlay on {}", usr.display()), e.into()))
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
/// that boots gets its hotfix overlay again, as ostree-prepare-root mounts it.
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
    let dir = deps::deployment_dir(sysroot, next);
    if dir.join(HOTFIX_WORK).is_dir() {
        mount_overlay(
            &dir.join("usr"),
            &dir.join(HOTFIX_UPPER),
            &dir.join(HOTFIX_WORK),
        )?;
    }
    Ok(())
}
