//! The sysroot's deployments: which one is booted, staged, the rollback; staging (real on a
//! booted ostree host, emulated elsewhere), the emulated reboot, rollback, pinning, pruning.
//!
//! Emulation: on a sysroot that is not the running system, a staged deployment is written as
//! a non-default deployment marked `[berth] staged=true` in its origin, and the "booted"
//! deployment is recorded in `ostree/berth/emulated-booted`. [`emulated_reboot`] does what
//! ostree's finalization and a reboot would: staged becomes default, default becomes booted.

use crate::bootflush;
use crate::error::{Context as _, Error, Result};
use crate::faults;
use crate::imgref::ImageRef;
use crate::trust::Verification;
use ostree::gio;
use ostree::glib;
use ostree::prelude::*;
use std::path::{Path, PathBuf};

pub const BERTH_GROUP: &str = "berth";
const EMULATED_BOOTED: &str = "ostree/berth/emulated-booted";

pub fn open(path: &Path) -> Result<ostree::Sysroot> {
    let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(path)));
    sysroot
        .load(gio::Cancellable::NONE)
        .ctx(|| format!("load sysroot {}", path.display()))?;
    Ok(sysroot)
}

/// Holds the sysroot lock for the duration of a change.
pub struct Locked<'a>(&'a ostree::Sysroot);

impl<'a> Locked<'a> {
    /// Takes the lock; on an emulated sysroot, first pins down which deployment counts as
    /// booted, so that changing the default does not "boot" it before the emulated reboot.
    pub fn take(sysroot: &'a ostree::Sysroot) -> Result<Self> {
        let got = sysroot.try_lock().ctx(|| "lock sysroot".into())?;
        if !got {
            return Err(Error::Busy(
                "another process holds the ostree sysroot lock".into(),
            ));
        }
        let locked = Locked(sysroot);
        if is_emulated(sysroot) && !sysroot_path(sysroot).join(EMULATED_BOOTED).exists() {
            if let Some(b) = booted(sysroot) {
                record_booted(sysroot, &b)?;
            }
        }
        Ok(locked)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

pub fn is_emulated(sysroot: &ostree::Sysroot) -> bool {
    sysroot.booted_deployment().is_none()
}

pub fn id(d: &ostree::Deployment) -> String {
    format!("{} {} {}", d.osname(), d.csum(), d.deployserial())
}

pub(crate) fn sysroot_path(sysroot: &ostree::Sysroot) -> PathBuf {
    sysroot.path().path().unwrap_or_default()
}

pub fn is_staged(d: &ostree::Deployment) -> bool {
    d.is_staged() || origin_get(d, BERTH_GROUP, "staged").as_deref() == Some("true")
}

pub fn origin_get(d: &ostree::Deployment, group: &str, key: &str) -> Option<String> {
    d.origin()?.string(group, key).ok().map(|s| s.to_string())
}

pub fn staged(sysroot: &ostree::Sysroot) -> Option<ostree::Deployment> {
    sysroot
        .staged_deployment()
        .or_else(|| sysroot.deployments().into_iter().find(is_staged))
}

/// The booted deployment: the real one, or the one the emulation recorded (default: first).
pub fn booted(sysroot: &ostree::Sysroot) -> Option<ostree::Deployment> {
    if let Some(b) = sysroot.booted_deployment() {
        return Some(b);
    }
    let deployments = sysroot.deployments();
    let recorded = std::fs::read_to_string(sysroot_path(sysroot).join(EMULATED_BOOTED)).ok();
    if let Some(rec) = recorded {
        if let Some(d) = deployments.iter().find(|d| id(d) == rec.trim()) {
            return Some(same_object(d));
        }
    }
    deployments.into_iter().find(|d| !is_staged(d))
}

/// The deployment that boots next if nothing is staged.
pub fn default(sysroot: &ostree::Sysroot) -> Option<ostree::Deployment> {
    sysroot.deployments().into_iter().find(|d| !is_staged(d))
}

/// The deployment a rollback switches to: the previous one, or, when a rollback is already
/// queued, the default one that will boot next.
pub fn rollback(sysroot: &ostree::Sysroot) -> Option<ostree::Deployment> {
    let booted = booted(sysroot)?;
    sysroot
        .deployments()
        .into_iter()
        .find(|d| !is_staged(d) && !d.equal(&booted) && d.osname() == booted.osname())
}

/// On an emulated sysroot: what a bootloader's choice of `d` looks like to the booted system
/// (tests of the fallback boot the rollback entry this way).
pub fn emulate_boot_of(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> Result<()> {
    if !is_emulated(sysroot) {
        return Err(Error::WrongState(
            "this sysroot is the running system: its bootloader chooses".into(),
        ));
    }
    record_booted(sysroot, d)
}

fn record_booted(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> Result<()> {
    let path = sysroot_path(sysroot).join(EMULATED_BOOTED);
    crate::fsutil::write_atomic(&path, id(d).as_bytes())
}

/// Origin of a deployment made from an image: bootc's key plus Berth's own, with how the
/// signature policy let the image in.
pub fn image_origin(
    image: &ImageRef,
    manifest_digest: &str,
    verification: Option<&Verification>,
) -> glib::KeyFile {
    let kf = glib::KeyFile::new();
    let signed = verification.is_some_and(Verification::is_signed);
    let bootc_ref = match (image, signed) {
        (ImageRef::Registry(_), false) => format!("ostree-unverified-registry:{image}"),
        (ImageRef::Registry(_), true) => format!("ostree-image-signed:docker://{image}"),
        (ImageRef::Layout { .. }, false) => format!("ostree-unverified-image:{image}"),
        (ImageRef::Layout { .. }, true) => format!("ostree-image-signed:{image}"),
    };
    kf.set_string("origin", "container-image-reference", &bootc_ref);
    kf.set_string(BERTH_GROUP, "image", &image.to_string());
    kf.set_string(BERTH_GROUP, "manifest-digest", manifest_digest);
    if let Some(v) = verification {
        let json = serde_json::to_string(v).expect("serializable");
        kf.set_string(BERTH_GROUP, "verification", &json);
    }
    kf
}

/// How the deployment's image was let in, when Berth recorded it.
pub fn deployment_verification(d: &ostree::Deployment) -> Option<Verification> {
    origin_get(d, BERTH_GROUP, "verification").and_then(|s| serde_json::from_str(&s).ok())
}

/// The image reference a deployment follows.
pub fn deployment_image(d: &ostree::Deployment) -> Option<ImageRef> {
    origin_get(d, BERTH_GROUP, "image").and_then(|s| ImageRef::parse(&s).ok())
}

pub struct NewDeployment<'a> {
    pub osname: &'a str,
    pub commit: &'a str,
    pub origin: &'a glib::KeyFile,
    pub merge: Option<&'a ostree::Deployment>,
    pub kargs: &'a [String],
}

fn deploy_tree(sysroot: &ostree::Sysroot, n: &NewDeployment) -> Result<ostree::Deployment> {
    let kargs: Vec<&str> = n.kargs.iter().map(String::as_str).collect();
    let opts = ostree::SysrootDeployTreeOpts {
        override_kernel_argv: Some(&kargs),
        ..Default::default()
    };
    sysroot
        .deploy_tree_with_options(
            Some(n.osname),
            n.commit,
            Some(n.origin),
            n.merge,
            Some(&opts),
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("deploy {}", n.commit))
}

/// Stages a deployment to boot next: real staging on a booted host, emulated elsewhere.
/// A deployment staged earlier is replaced.
pub fn stage(sysroot: &ostree::Sysroot, n: &NewDeployment) -> Result<ostree::Deployment> {
    let _lock = Locked::take(sysroot)?;
    if !is_emulated(sysroot) {
        let kargs: Vec<&str> = n.kargs.iter().map(String::as_str).collect();
        let opts = ostree::SysrootDeployTreeOpts {
            override_kernel_argv: Some(&kargs),
            ..Default::default()
        };
        return sysroot
            .stage_tree_with_options(
                Some(n.osname),
                n.commit,
                Some(n.origin),
                n.merge,
                &opts,
                gio::Cancellable::NONE,
            )
            .ctx(|| format!("stage {}", n.commit));
    }
    discard_staged_locked(sysroot)?;
    // Marked staged in the origin it is deployed with: a process killed at any later point
    // cannot leave it looking like an ordinary (rollback) deployment.
    let origin = glib::KeyFile::new();
    origin
        .load_from_data(&n.origin.to_data(), glib::KeyFileFlags::NONE)
        .ctx(|| "copy origin".into())?;
    origin.set_string(BERTH_GROUP, "staged", "true");
    let d = deploy_tree(
        sysroot,
        &NewDeployment {
            origin: &origin,
            ..*n
        },
    )?;
    let flags = ostree::SysrootSimpleWriteDeploymentFlags::NOT_DEFAULT
        | ostree::SysrootSimpleWriteDeploymentFlags::RETAIN
        | ostree::SysrootSimpleWriteDeploymentFlags::NO_CLEAN;
    sysroot
        .simple_write_deployment(Some(n.osname), &d, n.merge, flags, gio::Cancellable::NONE)
        .ctx(|| "write deployments".into())?;
    flush_then_clean(sysroot, Clean::Full)?;
    Ok(d)
}

/// Writes a deployment as the new default right away (install, factory reset).
pub fn deploy_default(sysroot: &ostree::Sysroot, n: &NewDeployment) -> Result<ostree::Deployment> {
    let _lock = Locked::take(sysroot)?;
    let d = deploy_tree(sysroot, n)?;
    let flags = ostree::SysrootSimpleWriteDeploymentFlags::RETAIN
        | ostree::SysrootSimpleWriteDeploymentFlags::NO_CLEAN;
    sysroot
        .simple_write_deployment(Some(n.osname), &d, n.merge, flags, gio::Cancellable::NONE)
        .ctx(|| "write deployments".into())?;
    flush_then_clean(sysroot, Clean::Full)?;
    Ok(d)
}

/// Finalizes the staged deployment at shutdown, in place of ostree's own finalizer (which
/// then finds nothing staged): the same result, the staged checkout with `/etc` merged from
/// the booted one as it is now ([`crate::etcmerge`]), written as the new default with the
/// booted one as rollback, but with the boot entries flushed before the old ones are deleted.
/// Returns the new default, or `None` when nothing was staged.
/// `tries`: boots the new deployment gets to prove itself (boot assessment; 0: none).
pub fn finalize_staged(
    sysroot: &ostree::Sysroot,
    tries: u32,
) -> Result<Option<ostree::Deployment>> {
    let _lock = Locked::take(sysroot)?;
    match sysroot.staged_deployment() {
        Some(staged) => finalize_locked(sysroot, &staged, tries).map(Some),
        None => Ok(None),
    }
}

/// [`finalize_staged`] for a given staged deployment: the real one, or in tests of the
/// finalization on a sysroot that is not booted, the one the emulation staged.
pub fn finalize(
    sysroot: &ostree::Sysroot,
    staged: &ostree::Deployment,
    tries: u32,
) -> Result<ostree::Deployment> {
    let _lock = Locked::take(sysroot)?;
    finalize_locked(sysroot, staged, tries)
}

fn finalize_locked(
    sysroot: &ostree::Sysroot,
    staged: &ostree::Deployment,
    tries: u32,
) -> Result<ostree::Deployment> {
    let osname = staged.osname().to_string();
    let origin = staged
        .origin()
        .ok_or_else(|| Error::WrongState("the staged deployment has no origin".into()))?;
    // The emulation's mark; a deployment that is finalized is no longer staged.
    let _ = origin.remove_key(BERTH_GROUP, "staged");
    let root = sysroot_path(sysroot);
    let dir = root.join(sysroot.deployment_dirpath(staged));
    tracing::info!(commit = %staged.csum(), "finalize: merging /etc into the staged deployment");
    // In the staged deployment's own checkout (ostree's finalizer does the same): no second
    // checkout of the tree. Should this fail half-way, ostree's finalizer, which runs next,
    // merges the same changes again.
    if let Some(merge) = sysroot.merge_deployment(Some(&osname)) {
        let changes = crate::etcmerge::merge(&root.join(sysroot.deployment_dirpath(&merge)), &dir)?;
        tracing::info!(
            "Copying /etc changes: {} modified, {} removed, {} added",
            changes.modified.len(),
            changes.removed.len(),
            changes.added.len()
        );
    }
    // As ostree's finalizer: units with ConditionNeedsUpdate= run after the reboot.
    let var = root.join("ostree/deploy").join(&osname).join("var");
    for stamp in [dir.join("etc/.updated"), var.join(".updated")] {
        crate::fsutil::remove_if_exists(&stamp)?;
    }
    let real = staged.is_staged();
    let d = if real {
        // ostree's copy carries everything but the staged mark: it is what ostree's
        // finalizer writes.
        #[allow(clippy::disallowed_methods)]
        let copy = staged.clone();
        copy
    } else {
        same_object(staged)
    };
    d.set_origin(Some(&origin));
    sysroot
        .write_origin_file(&d, Some(&origin), gio::Cancellable::NONE)
        .ctx(|| "write origin".into())?;
    seal(&dir)?;
    faults::point(faults::DEPLOYED);
    // Armed before the new entries exist: a power cut before they are flushed boots the old
    // deployment on trial, which passes (it booted before) and so ends the trial.
    crate::assessment::arm(&root, tries)?;
    if real {
        forget_staged(sysroot)?;
    }
    // ostree's finalizer keeps the same deployments: the new one, the booted one, pinned ones
    // and other stateroots.
    let merge = sysroot.merge_deployment(Some(&osname));
    let flags = ostree::SysrootSimpleWriteDeploymentFlags::NO_CLEAN;
    sysroot
        .simple_write_deployment(
            Some(&osname),
            &d,
            merge.as_ref(),
            flags,
            gio::Cancellable::NONE,
        )
        .ctx(|| "write deployments".into())?;
    tracing::info!("finalize: boot entries written");
    flush_then_clean(sysroot, Clean::BootAndDeployments)?;
    tracing::info!("finalize: done");
    Ok(d)
}

/// Where ostree keeps a staged deployment until it is finalized.
const OSTREE_STAGED: &str = "/run/ostree/staged-deployment";

/// The staged deployment is being written as a finalized one: ostree must no longer hold it
/// as staged (its finalizer would finalize it again, and writing a deployment list while it
/// does deletes the staged directory, which is now the new deployment's).
fn forget_staged(sysroot: &ostree::Sysroot) -> Result<()> {
    crate::fsutil::remove_if_exists(Path::new(OSTREE_STAGED))?;
    // ostree reloads only when ostree/deploy changed (its own finalizer bumps it too).
    let deploy = sysroot_path(sysroot).join("ostree/deploy");
    std::fs::File::open(&deploy)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .map_err(|e| Error::io(format!("touch {}", deploy.display()), e))?;
    sysroot
        .load(gio::Cancellable::NONE)
        .ctx(|| "reload sysroot".into())?;
    if sysroot.staged_deployment().is_some() {
        return Err(Error::WrongState(
            "ostree still holds the staged deployment after it was finalized".into(),
        ));
    }
    Ok(())
}

/// Makes a finalized deployment's root immutable, as ostree does (`chattr +i`): nothing can
/// be added to or removed from `/` of the running system by mistake. Filesystems without inode
/// flags (tmpfs) go without.
fn seal(dir: &Path) -> Result<()> {
    set_immutable(dir, true)
}

/// Runs `f` with a sealed deployment root open for changes, sealed again afterwards (as
/// ostree does to add a hotfix's overlay directories).
pub(crate) fn with_unsealed<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    set_immutable(dir, false)?;
    let result = f();
    set_immutable(dir, true)?;
    result
}

fn set_immutable(dir: &Path, on: bool) -> Result<()> {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    use rustix::io::Errno;
    let f =
        std::fs::File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    let result = ioctl_getflags(&f).and_then(|flags| {
        let flags = if on {
            flags | IFlags::IMMUTABLE
        } else {
            flags - IFlags::IMMUTABLE
        };
        ioctl_setflags(&f, flags)
    });
    match result {
        Ok(()) => Ok(()),
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => Ok(()),
        Err(e) => Err(Error::io(format!("seal {}", dir.display()), e.into())),
    }
}

/// Deploys `d`'s commit again with `origin` (its /etc merged from `d`), not yet in the list.
pub(crate) fn deploy_clone(
    sysroot: &ostree::Sysroot,
    d: &ostree::Deployment,
    origin: &glib::KeyFile,
    kargs: &[String],
) -> Result<ostree::Deployment> {
    let osname = d.osname();
    let commit = d.csum();
    deploy_tree(
        sysroot,
        &NewDeployment {
            osname: &osname,
            commit: &commit,
            origin,
            merge: Some(d),
            kargs,
        },
    )
}

/// Writes a new deployment list (boot order), flushing boot entries before cleaning up.
pub(crate) fn write_deployment_list(
    sysroot: &ostree::Sysroot,
    list: &[ostree::Deployment],
) -> Result<()> {
    write_list(sysroot, list)
}

fn write_list(sysroot: &ostree::Sysroot, list: &[ostree::Deployment]) -> Result<()> {
    let opts = ostree::SysrootWriteDeploymentsOpts {
        do_postclean: false,
    };
    sysroot
        .write_deployments_with_options(list, &opts, gio::Cancellable::NONE)
        .ctx(|| "write deployments".into())?;
    flush_then_clean(sysroot, Clean::Full)
}

enum Clean {
    /// Old boot entries and deployment directories, then unreferenced repository objects.
    Full,
    /// Without pruning the repository: quick, for shutdown.
    BootAndDeployments,
}

/// After a new deployment list is written: make the boot entries durable for the bootloader
/// first, and only then let ostree delete the old ones (see [`bootflush`]).
fn flush_then_clean(sysroot: &ostree::Sysroot, clean: Clean) -> Result<()> {
    faults::point(faults::ENTRIES_WRITTEN);
    let boot = sysroot_path(sysroot).join("boot");
    let how = bootflush::flush(&boot)?;
    faults::point(faults::FLUSHED);
    tracing::info!(
        ?how,
        "boot entries flushed to disk; cleaning up the old ones"
    );
    sysroot
        .load(gio::Cancellable::NONE)
        .ctx(|| "reload sysroot".into())?;
    match clean {
        Clean::Full => sysroot.cleanup(gio::Cancellable::NONE),
        Clean::BootAndDeployments => sysroot.prepare_cleanup(gio::Cancellable::NONE),
    }
    .ctx(|| "clean up old deployments".into())?;
    faults::point(faults::CLEANED);
    sysroot
        .load(gio::Cancellable::NONE)
        .ctx(|| "reload sysroot".into())
}

fn discard_staged_locked(sysroot: &ostree::Sysroot) -> Result<bool> {
    let all = sysroot.deployments();
    if !all.iter().any(is_staged) && sysroot.staged_deployment().is_none() {
        return Ok(false);
    }
    let keep: Vec<_> = all.into_iter().filter(|d| !is_staged(d)).collect();
    write_list(sysroot, &keep)?;
    Ok(true)
}

/// Drops a staged deployment; returns whether there was one.
pub fn discard_staged(sysroot: &ostree::Sysroot) -> Result<bool> {
    let _lock = Locked::take(sysroot)?;
    discard_staged_locked(sysroot)
}

/// Makes the rollback deployment the default (or, if that is already queued, the booted one
/// again). A staged deployment is discarded.
pub fn rollback_to_previous(sysroot: &ostree::Sysroot) -> Result<ostree::Deployment> {
    let _lock = Locked::take(sysroot)?;
    let discarded = discard_staged_locked(sysroot)?;
    let booted = booted(sysroot).ok_or_else(|| Error::WrongState("no booted deployment".into()))?;
    let default = default(sysroot).ok_or_else(|| Error::WrongState("no deployments".into()))?;
    let target = if default.equal(&booted) {
        match rollback(sysroot) {
            Some(r) => r,
            // Discarding the staged update was the whole rollback.
            None if discarded => return Ok(booted),
            None => return Err(Error::WrongState("there is no rollback deployment".into())),
        }
    } else {
        booted
    };
    make_default_locked(sysroot, &target)?;
    Ok(target)
}

/// Moves `target` to the front of the deployment list: it boots next and from then on.
pub fn make_default(sysroot: &ostree::Sysroot, target: &ostree::Deployment) -> Result<()> {
    let _lock = Locked::take(sysroot)?;
    make_default_locked(sysroot, target)
}

fn make_default_locked(sysroot: &ostree::Sysroot, target: &ostree::Deployment) -> Result<()> {
    let list = with_first(sysroot.deployments(), target)
        .ok_or_else(|| Error::WrongState(format!("deployment {} is gone", id(target))))?;
    write_list(sysroot, &list)
}

/// `all` reordered so that the deployment equal to `target` comes first. Only ostree's own
/// objects go back to it: it tells the booted deployment (which it refuses to drop) by object
/// identity, so a copy of the booted one, put first after a fallback, would make it refuse.
fn with_first(
    mut all: Vec<ostree::Deployment>,
    target: &ostree::Deployment,
) -> Option<Vec<ostree::Deployment>> {
    let at = all.iter().position(|d| d.equal(target))?;
    let first = all.remove(at);
    all.insert(0, first);
    Some(all)
}

/// Another reference to the same deployment object. ostree's `Deployment::clone` is a deep
/// copy (`ostree_deployment_clone`): equal, but a new object that ostree does not recognize
/// as its booted deployment (clippy.toml forbids it).
pub(crate) fn same_object(d: &ostree::Deployment) -> ostree::Deployment {
    Clone::clone(d)
}

/// What a reboot does on an emulated sysroot: the staged deployment is finalized as the new
/// default (keeping the booted one as rollback, pinned ones and other stateroots), then the
/// default deployment becomes the booted one.
pub fn emulated_reboot(sysroot: &ostree::Sysroot) -> Result<ostree::Deployment> {
    if !is_emulated(sysroot) {
        return Err(Error::WrongState(
            "this sysroot is the running system: reboot it for real".into(),
        ));
    }
    let _lock = Locked::take(sysroot)?;
    if let Some(s) = staged(sysroot) {
        let booted = booted(sysroot);
        let mut list = vec![same_object(&s)];
        for d in sysroot.deployments() {
            let keep = booted.as_ref().is_some_and(|b| d.equal(b))
                || d.is_pinned()
                || Some(d.osname()) != booted.as_ref().map(|b| b.osname());
            if !d.equal(&s) && keep {
                list.push(d);
            }
        }
        let origin = s
            .origin()
            .ok_or_else(|| Error::WrongState("staged deployment has no origin".into()))?;
        let _ = origin.remove_key(BERTH_GROUP, "staged");
        sysroot
            .write_origin_file(&s, Some(&origin), gio::Cancellable::NONE)
            .ctx(|| "write origin".into())?;
        write_list(sysroot, &list)?;
    }
    let next = default(sysroot).ok_or_else(|| Error::WrongState("no deployments".into()))?;
    record_booted(sysroot, &next)?;
    crate::unlock::emulated_boot(sysroot, &next)?;
    Ok(next)
}

pub fn set_pinned(sysroot: &ostree::Sysroot, index: usize, pinned: bool) -> Result<()> {
    let _lock = Locked::take(sysroot)?;
    let d = sysroot
        .deployments()
        .into_iter()
        .nth(index)
        .ok_or_else(|| Error::WrongState(format!("no deployment with index {index}")))?;
    if is_staged(&d) {
        return Err(Error::WrongState(
            "a staged deployment cannot be pinned".into(),
        ));
    }
    sysroot
        .deployment_set_pinned(&d, pinned)
        .ctx(|| "set pinned".into())?;
    sysroot
        .load(gio::Cancellable::NONE)
        .ctx(|| "reload sysroot".into())
}

/// Keeps only the deployments something needs: booted, default, rollback, staged, pinned;
/// the caller then lets ostree delete unused deployment directories and prune the repository.
/// Deployments of stateroots that a factory reset replaced go once the reset one has booted.
pub fn prune(sysroot: &ostree::Sysroot) -> Result<Vec<String>> {
    let _lock = Locked::take(sysroot)?;
    let booted = booted(sysroot);
    let default = default(sysroot);
    let rollback = rollback(sysroot);
    let booted_root = booted.as_ref().map(|b| b.osname().to_string());
    let replaced: Vec<String> = booted
        .as_ref()
        .and_then(|b| origin_get(b, BERTH_GROUP, "reset-from"))
        .into_iter()
        .collect();
    let needed = |d: &ostree::Deployment| {
        [&booted, &default, &rollback]
            .iter()
            .any(|x| x.as_ref().is_some_and(|x| x.equal(d)))
            || is_staged(d)
            || d.is_pinned()
    };
    let mut removed_roots = Vec::new();
    let keep: Vec<_> = sysroot
        .deployments()
        .into_iter()
        .filter(|d| {
            let root = d.osname().to_string();
            if replaced.contains(&root) {
                return d.is_pinned();
            }
            Some(&root) != booted_root.as_ref() || needed(d)
        })
        .collect();
    write_list(sysroot, &keep)?;
    for root in &replaced {
        if !keep.iter().any(|d| d.osname() == root.as_str()) {
            let dir = sysroot_path(sysroot).join("ostree/deploy").join(root);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .ctx(|| format!("remove old stateroot {}", dir.display()))?;
                removed_roots.push(root.clone());
            }
        }
    }
    Ok(removed_roots)
}

pub fn deployment_dir(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> PathBuf {
    sysroot_path(sysroot).join(sysroot.deployment_dirpath(d).as_str())
}

pub fn stateroot_var(sysroot: &ostree::Sysroot, osname: &str) -> PathBuf {
    sysroot_path(sysroot)
        .join("ostree/deploy")
        .join(osname)
        .join("var")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(index: i32, csum: &str) -> ostree::Deployment {
        let d = ostree::Deployment::new(index, "berth", csum, 0, None, index);
        // As loaded from a boot entry (ostree's copy dereferences it).
        d.set_bootconfig(Some(&ostree::BootconfigParser::new()));
        d
    }

    #[test]
    fn the_list_written_back_holds_ostrees_own_objects() {
        let all = vec![deployment(0, "new"), deployment(1, "booted")];
        // What a caller may hold: equal to ostree's booted deployment, another object.
        #[allow(clippy::disallowed_methods)] // the hazard itself
        let copy = all[1].clone();
        assert!(copy.equal(&all[1]) && copy != all[1]);
        let list = with_first(all.clone(), &copy).expect("present");
        assert!(
            list[0] == all[1],
            "the booted deployment must be ostree's object"
        );
        assert!(list[1] == all[0]);
        assert_eq!(list.len(), 2);
        assert!(with_first(all, &deployment(2, "gone")).is_none());
    }

    #[test]
    fn same_object_is_a_reference_not_a_copy() {
        let d = deployment(0, "a");
        assert!(same_object(&d) == d);
    }
}
