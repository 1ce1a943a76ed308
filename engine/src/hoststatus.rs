//! Reads the sysroot into a [`status::Host`].

use crate::deployments as deps;
use crate::error::Result;
use crate::imgref::ImageRef;
use crate::import;
use crate::kargs;
use crate::status::*;
use crate::trust::Verification;

fn image_status(repo: &ostree::Repo, d: &ostree::Deployment) -> Option<ImageStatus> {
    let image = deps::deployment_image(d)?;
    let md = import::commit_metadata(repo, &d.csum()).ok()?;
    let verification = deps::deployment_verification(d);
    Some(ImageStatus {
        image: image_reference(&image, verification.as_ref()),
        version: import::meta_str(&md, "version"),
        timestamp: import::meta_str(&md, "berth.created"),
        image_digest: import::meta_str(&md, "berth.manifest-digest").unwrap_or_default(),
        verification,
    })
}

/// The name a person knows the system by, from the deployment's os-release. The image wrote
/// it, so it is read capped and shown escaped.
fn os_name(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = deps::deployment_dir(sysroot, d).join("usr/lib/os-release");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .filter(|v| !v.is_empty())
    };
    value("PRETTY_NAME")
        .or_else(|| value("NAME"))
        .map(|n| crate::text::outside(&n))
}

fn image_reference(image: &ImageRef, verification: Option<&Verification>) -> ImageReference {
    ImageReference {
        image: image.image_name(),
        transport: image.transport().to_string(),
        signature: verification.map(|v| {
            if v.is_signed() {
                ImageSignature::ContainerPolicy
            } else {
                ImageSignature::Insecure
            }
        }),
    }
}

fn cached_status(c: &CachedUpdate) -> Option<ImageStatus> {
    let image = ImageRef::parse(&c.image).ok()?;
    Some(ImageStatus {
        image: image_reference(&image, c.verification.as_ref()),
        version: c.version.clone(),
        timestamp: c.timestamp.clone(),
        image_digest: c.manifest_digest.clone(),
        verification: c.verification.clone(),
    })
}

/// Status never fails on a damaged environment block or record: it says what it could read.
fn boot_assessment(sysroot: &ostree::Sysroot) -> crate::status::BootAssessment {
    use crate::assessment::{self, BootState};
    let path = deps::sysroot_path(sysroot);
    let state = assessment::state(&path).unwrap_or_else(|e| {
        tracing::warn!("boot assessment: {e}");
        BootState::Unavailable
    });
    let last_failure = match assessment::load(&path) {
        Ok(mut r) => r.failed.pop(),
        Err(e) => {
            tracing::warn!("boot assessment: {e}");
            None
        }
    };
    crate::status::BootAssessment {
        state,
        last_failure,
    }
}

pub fn build(sysroot: &ostree::Sysroot, cached: Option<CachedUpdate>) -> Result<Host> {
    let repo = sysroot.repo();
    let booted = deps::booted(sysroot);
    let staged = deps::staged(sysroot);
    let rollback = deps::rollback(sysroot);
    let default = deps::default(sysroot);
    let is = |x: &Option<ostree::Deployment>, d: &ostree::Deployment| {
        x.as_ref().is_some_and(|x| x.equal(d))
    };
    let entry = |d: &ostree::Deployment| {
        let image = image_status(&repo, d);
        let cached_update = if is(&booted, d) {
            cached
                .as_ref()
                .filter(|c| {
                    image
                        .as_ref()
                        .is_none_or(|i| i.image_digest != c.manifest_digest)
                })
                .and_then(cached_status)
        } else {
            None
        };
        BootEntry {
            image,
            cached_update,
            incompatible: false,
            pinned: d.is_pinned(),
            store: Some("ostreeContainer"),
            ostree: Some(OstreeEntry {
                checksum: d.csum().to_string(),
                deploy_serial: d.deployserial(),
                stateroot: d.osname().to_string(),
            }),
        }
    };
    let drift = crate::drift::load_records(&deps::sysroot_path(sysroot));
    let deployments = sysroot
        .deployments()
        .iter()
        .enumerate()
        .map(|(index, d)| DeploymentInfo {
            index,
            stateroot: d.osname().to_string(),
            checksum: d.csum().to_string(),
            deploy_serial: d.deployserial(),
            image: image_status(&repo, d),
            booted: is(&booted, d),
            staged: deps::is_staged(d),
            rollback: is(&rollback, d),
            default: is(&default, d),
            pinned: d.is_pinned(),
            kernel_args: kargs::deployment_kargs(d),
            os_name: os_name(sysroot, d),
            unlocked: crate::unlock::state(sysroot, d).map(crate::unlock::UnlockKind::as_str),
            drift: drift.get(&crate::drift::key(d)).map(|r| r.summary()),
        })
        .collect();
    let rollback_queued = match (&booted, &default) {
        (Some(b), Some(def)) => !b.equal(def),
        _ => false,
    };
    let spec_image = staged
        .as_ref()
        .or(booted.as_ref())
        .and_then(deps::deployment_image)
        .map(|i| image_reference(&i, None));
    Ok(Host {
        api_version: "org.containers.bootc/v1",
        kind: "BootcHost",
        metadata: Metadata {
            name: "host".into(),
        },
        spec: HostSpec {
            image: spec_image,
            boot_order: if rollback_queued {
                "rollback"
            } else {
                "default"
            },
        },
        status: HostStatus {
            staged: staged.as_ref().map(entry),
            booted: booted.as_ref().map(entry),
            rollback: rollback.as_ref().map(entry),
            rollback_queued,
            kind: booted.as_ref().map(|_| "bootcHost"),
            berth: BerthStatus {
                emulated: deps::is_emulated(sysroot),
                stateroot: booted.as_ref().map(|b| b.osname().to_string()),
                deployments,
                cached_update: cached,
                boot_assessment: boot_assessment(sysroot),
            },
        },
    })
}
