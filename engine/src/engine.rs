//! The engine's front door: one [`Engine`] per sysroot, with every operation berthd offers.

use crate::assessment;
use crate::blobcache::BlobCache;
use crate::config::Config;
use crate::deployments::{self as deps, NewDeployment, BERTH_GROUP};
use crate::error::{Context as _, Error, Result};
use crate::imgref::ImageRef;
use crate::import;
use crate::layout::LayoutTrust;
use crate::oci;
use crate::progress::{Cancel, Phase, Progress, ProgressFn};
use crate::source::{FetchedImage, Source};
use crate::status::{self, CachedUpdate};
use crate::trust::{self, Verification};
use crate::{fsutil, kargs, space};
use ostree::gio;
use ostree::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// (source digest, manifest digest, version, created) of a deployed image.
type KnownImage = (String, String, Option<String>, Option<String>);

const CACHED_UPDATE: &str = "ostree/berth/cached-update.json";
/// Room a new deployment needs besides its kernel: the copied `/etc` and boot entries.
const DEPLOY_OVERHEAD: u64 = 8 << 20;
/// A first deployment's own need beyond the imported image, guessed before the image is
/// here (the boot entries, `/etc`); the kernel's copy in /boot is checked at deploy time, and
/// the import's watchdog keeps the filesystem from filling meanwhile.
pub(crate) const INSTALL_DEPLOY_GUESS: u64 = DEPLOY_OVERHEAD;

#[derive(Clone)]
pub struct Engine {
    pub(crate) sysroot: PathBuf,
    pub(crate) config: Arc<Config>,
    pub(crate) cache_dir: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub image: String,
    pub update_available: bool,
    pub manifest_digest: String,
    pub version: Option<String>,
    pub created: Option<String>,
    /// Bytes a pull would really download (layers not imported or cached yet).
    pub download_bytes: u64,
    pub layers: usize,
    pub layers_to_download: usize,
    /// The image offered failed its boot assessment here: not an update a routine update
    /// installs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_bad: Option<assessment::FailedUpdate>,
    /// How the signature policy let the image in (None: nothing new was looked at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pulled {
    pub commit: String,
    pub manifest_digest: String,
    pub version: Option<String>,
    pub downloaded_bytes: u64,
    pub imported_layers: usize,
    /// How the signature policy let the image in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    /// Fetch and import now; stage later with `from_downloaded`.
    pub download_only: bool,
    /// Stage the update fetched earlier by a download-only update, without the network.
    pub from_downloaded: bool,
    /// What an administrator approved beyond a routine update.
    pub approved: Approval,
}

/// What only an administrator may approve: routine and automatic updates get neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Approval {
    /// Stage an image older (by its created time) than the booted one.
    pub downgrade: bool,
    /// Read an OCI layout that a user other than root could have changed.
    pub any_layout_owner: bool,
    /// Deploy an image the signature policy accepts without a signature while the booted
    /// one was verified by a key (its own polkit action, asked for explicitly every time).
    pub unverified: bool,
}

/// What a deployment of an image is for.
struct Intent {
    download_only: bool,
    approved: Approval,
    /// An update (routine, automatic or root's) passes over an image that failed its boot
    /// assessment here; a switch installs what the administrator named.
    skip_known_bad: bool,
}

impl Intent {
    fn update(opts: UpdateOptions) -> Intent {
        Intent {
            download_only: opts.download_only,
            approved: opts.approved,
            skip_known_bad: true,
        }
    }
}

impl Approval {
    /// A switch, or root's own command: the administrator chose the image.
    pub const ADMIN: Approval = Approval {
        downgrade: true,
        any_layout_owner: true,
        unverified: false,
    };

    fn layout_trust(self) -> LayoutTrust {
        if self.any_layout_owner {
            LayoutTrust::AnyOwner
        } else {
            LayoutTrust::RootOnly
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum UpdateOutcome {
    /// Booted (or already staged) is the newest.
    NoUpdate {
        manifest_digest: String,
    },
    Downloaded {
        pulled: Pulled,
    },
    Staged {
        pulled: Pulled,
    },
    /// The image failed its boot assessment here before: a routine update does not install
    /// it again (an administrator still can, with switch). A newer image is tried.
    KnownBad {
        failed: assessment::FailedUpdate,
    },
}

#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub removed_images: usize,
    pub removed_layers: usize,
    pub removed_stateroots: Vec<String>,
    pub freed_cache_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    pub stateroot: String,
    pub kargs: Vec<String>,
}

impl Engine {
    pub fn open(sysroot: &Path, config: Config) -> Result<Engine> {
        if !sysroot.join("ostree/repo").is_dir() {
            return Err(Error::WrongState(format!(
                "{} is not an ostree sysroot (no ostree/repo)",
                sysroot.display()
            )));
        }
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| sysroot.join("ostree/berth/cache"));
        Ok(Engine {
            sysroot: sysroot.to_path_buf(),
            config: Arc::new(config),
            cache_dir,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sysroot_path(&self) -> &Path {
        &self.sysroot
    }

    pub(crate) fn repo_path(&self) -> PathBuf {
        self.sysroot.join("ostree/repo")
    }

    fn open_sysroot(&self) -> Result<ostree::Sysroot> {
        deps::open(&self.sysroot)
    }

    /// The image the booted deployment follows.
    pub fn tracked_image(&self) -> Result<ImageRef> {
        let sysroot = self.open_sysroot()?;
        let booted = deps::booted(&sysroot).ok_or_else(|| {
            Error::WrongState("nothing is deployed: install an image first".into())
        })?;
        deps::deployment_image(&booted).ok_or_else(|| {
            Error::WrongState("the booted deployment does not follow an image".into())
        })
    }

    /// Compares the image's current digest with what is booted and staged; downloads only
    /// the manifest and config, and only when the digest changed.
    pub async fn check(&self, image: Option<&ImageRef>) -> Result<CheckResult> {
        let image = match image {
            Some(i) => i.clone(),
            None => self.tracked_image()?,
        };
        // Only reads metadata (never links, FIFOs or more than declared), stages nothing.
        let source = Source::new(&image, &self.config, LayoutTrust::AnyOwner)?;
        let current = retrying(self.config.retries, || source.current_digest()).await?;
        let known = self.known_digests()?;
        if let Some((manifest_digest, version, created)) = known
            .iter()
            .find(|k| k.0 == current || k.1 == current)
            .map(|k| (k.1.clone(), k.2.clone(), k.3.clone()))
        {
            return Ok(CheckResult {
                image: image.to_string(),
                update_available: false,
                manifest_digest,
                version,
                created,
                download_bytes: 0,
                layers: 0,
                layers_to_download: 0,
                known_bad: None,
                verification: None,
            });
        }
        let fetched = retrying(self.config.retries, || source.fetch_image()).await?;
        let verification = self.verify_trust(&source, &image, &fetched).await?;
        self.check_limits(&fetched)?;
        let repo = import::open_repo(&self.repo_path())?;
        let cache = BlobCache::open(&self.cache_dir)?;
        let mut download_bytes = 0u64;
        let mut layers_to_download = 0;
        for (desc, diff_id) in fetched
            .manifest
            .layers
            .iter()
            .zip(&fetched.config.rootfs.diff_ids)
        {
            if import::resolve(&repo, &import::layer_ref(diff_id))?.is_none() {
                download_bytes =
                    crate::pull::add_sizes(download_bytes, desc.size - cache.cached_bytes(desc))?;
                layers_to_download += 1;
            }
        }
        let booted_digest = known.first().map(|k| k.1.clone());
        let known_bad = assessment::known_bad(&self.sysroot, &fetched.manifest_digest)?;
        Ok(CheckResult {
            image: image.to_string(),
            update_available: booted_digest.as_deref() != Some(fetched.manifest_digest.as_str())
                && known_bad.is_none(),
            manifest_digest: fetched.manifest_digest.clone(),
            version: fetched.config.label(oci::VERSION_LABEL).map(str::to_string),
            created: fetched.config.created.clone(),
            download_bytes,
            layers: fetched.manifest.layers.len(),
            layers_to_download,
            known_bad,
            verification: Some(verification),
        })
    }

    /// (source digest, manifest digest, version, created) of booted, then staged.
    fn known_digests(&self) -> Result<Vec<KnownImage>> {
        let sysroot = self.open_sysroot()?;
        let repo = sysroot.repo();
        let mut out = Vec::new();
        for d in [deps::booted(&sysroot), deps::staged(&sysroot)]
            .into_iter()
            .flatten()
        {
            let md = import::commit_metadata(&repo, &d.csum())?;
            if let (Some(src), Some(man)) = (
                import::meta_str(&md, "berth.source-digest"),
                import::meta_str(&md, "berth.manifest-digest"),
            ) {
                out.push((
                    src,
                    man,
                    import::meta_str(&md, "version"),
                    import::meta_str(&md, "berth.created"),
                ));
            }
        }
        Ok(out)
    }

    /// Updates the booted image: pull and stage (or only pull, or stage what was pulled).
    pub async fn update(
        &self,
        opts: UpdateOptions,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<UpdateOutcome> {
        let image = self.tracked_image()?;
        if opts.from_downloaded {
            let cached = self
                .cached_update()?
                .ok_or_else(|| Error::WrongState("no update has been downloaded".into()))?;
            if cached.image != image.to_string() {
                return Err(Error::WrongState(format!(
                    "the downloaded update is for {}, not {image}",
                    cached.image
                )));
            }
            if !opts.approved.downgrade {
                self.refuse_downgrade(cached.version.as_deref(), cached.timestamp.as_deref())?;
            }
            if !opts.approved.unverified {
                if let Some(v) = &cached.verification {
                    self.refuse_trust_downgrade(&image, v)?;
                }
            }
            let pulled = Pulled {
                commit: cached.commit.clone(),
                manifest_digest: cached.manifest_digest.clone(),
                version: cached.version.clone(),
                downloaded_bytes: 0,
                imported_layers: 0,
                verification: cached.verification.clone(),
            };
            self.stage_pulled(&image, &pulled, progress).await?;
            return Ok(UpdateOutcome::Staged { pulled });
        }
        self.deploy_image(&image, Intent::update(opts), progress, cancel)
            .await
    }

    /// Switches to another image: pulled and staged, followed from then on.
    pub async fn switch(
        &self,
        image: &ImageRef,
        allow_unverified: bool,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<UpdateOutcome> {
        self.tracked_image()?;
        let intent = Intent {
            download_only: false,
            approved: Approval {
                unverified: allow_unverified,
                ..Approval::ADMIN
            },
            skip_known_bad: false,
        };
        self.deploy_image(image, intent, progress, cancel).await
    }

    /// Whether a deployment of the image with `created` would go back in time. An image
    /// without a readable created time cannot show it is not older than a booted one that has
    /// one: it counts as going back. (Equal times do not: reproducible builds share one.)
    pub fn is_downgrade(&self, created: Option<&str>) -> Result<bool> {
        let sysroot = self.open_sysroot()?;
        let Some(booted) = deps::booted(&sysroot) else {
            return Ok(false);
        };
        let md = import::commit_metadata(&sysroot.repo(), &booted.csum())?;
        let booted_created = import::meta_str(&md, "berth.created");
        Ok(
            match (
                created.and_then(parse_time),
                booted_created.as_deref().and_then(parse_time),
            ) {
                (Some(new), Some(old)) => new < old,
                (None, Some(_)) => true,
                (_, None) => false,
            },
        )
    }

    /// Checks `image` against the signature policy before anything of it is stored.
    pub(crate) async fn verify_trust(
        &self,
        source: &Source,
        image: &ImageRef,
        fetched: &FetchedImage,
    ) -> Result<Verification> {
        trust::verify_image(&self.config, source, image, &fetched.source_digest).await
    }

    /// An image let in without a signature does not replace one verified by a key unless an
    /// administrator asked for exactly that.
    fn refuse_trust_downgrade(&self, image: &ImageRef, new: &Verification) -> Result<()> {
        if new.is_signed() {
            return Ok(());
        }
        let sysroot = self.open_sysroot()?;
        let booted = deps::booted(&sysroot).and_then(|d| deps::deployment_verification(&d));
        match booted {
            Some(b) if b.is_signed() => Err(Error::NotTrusted(format!(
                "{image} is {}, but the booted image was {}: deploying it needs \
                 allow-unverified (berth switch --allow-unverified) and the \
                 org.berth.berth1.downgrade-trust authorization",
                new.summary(),
                b.summary()
            ))),
            _ => Ok(()),
        }
    }

    fn refuse_downgrade(&self, version: Option<&str>, created: Option<&str>) -> Result<()> {
        if self.is_downgrade(created)? {
            return Err(Error::Downgrade(format!(
                "the image offered ({}, built {}) is older than the booted one: only an \
                 administrator can go back (berth switch, or berth rollback)",
                version.unwrap_or("no version"),
                created.unwrap_or("?"),
            )));
        }
        Ok(())
    }

    async fn deploy_image(
        &self,
        image: &ImageRef,
        intent: Intent,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<UpdateOutcome> {
        let Intent {
            download_only,
            approved,
            skip_known_bad,
        } = intent;
        let source = Source::new(image, &self.config, approved.layout_trust())?;
        report(&progress, Phase::Checking, format!("checking {image}"));
        let fetched = retrying(self.config.retries, || source.fetch_image()).await?;
        // ostree objects are not Send: keep them out of the awaits below.
        let up_to_date = {
            let sysroot = self.open_sysroot()?;
            let same_image = |d: &ostree::Deployment| {
                deps::deployment_image(d).as_ref() == Some(image)
                    && deps::origin_get(d, BERTH_GROUP, "manifest-digest").as_deref()
                        == Some(fetched.manifest_digest.as_str())
            };
            let staged = deps::staged(&sysroot);
            let booted = deps::booted(&sysroot);
            staged.as_ref().or(booted.as_ref()).is_some_and(same_image)
        };
        if up_to_date {
            return Ok(UpdateOutcome::NoUpdate {
                manifest_digest: fetched.manifest_digest,
            });
        }
        let verification = self.verify_trust(&source, image, &fetched).await?;
        if !approved.unverified {
            self.refuse_trust_downgrade(image, &verification)?;
        }
        if skip_known_bad {
            if let Some(failed) = assessment::known_bad(&self.sysroot, &fetched.manifest_digest)? {
                return Ok(UpdateOutcome::KnownBad { failed });
            }
        }
        if !approved.downgrade {
            self.refuse_downgrade(
                fetched.config.label(oci::VERSION_LABEL),
                fetched.config.created.as_deref(),
            )?;
        }
        let deploy_need = if download_only {
            0
        } else {
            self.deploy_estimate()?
        };
        let mut pulled = self
            .pull_fetched(
                &source,
                image,
                &fetched,
                deploy_need,
                progress.clone(),
                cancel,
            )
            .await?;
        pulled.verification = Some(verification);
        if download_only {
            let cached = CachedUpdate {
                image: image.to_string(),
                manifest_digest: pulled.manifest_digest.clone(),
                commit: pulled.commit.clone(),
                version: pulled.version.clone(),
                timestamp: fetched.config.created.clone(),
                base: self.booted_commit()?,
                verification: pulled.verification.clone(),
            };
            let json = serde_json::to_vec_pretty(&cached).expect("serializable");
            crate::fsutil::write_atomic(&self.sysroot.join(CACHED_UPDATE), &json)?;
            return Ok(UpdateOutcome::Downloaded { pulled });
        }
        cancel.check()?;
        self.stage_pulled(image, &pulled, progress).await?;
        Ok(UpdateOutcome::Staged { pulled })
    }

    async fn stage_pulled(
        &self,
        image: &ImageRef,
        pulled: &Pulled,
        progress: ProgressFn,
    ) -> Result<()> {
        report(
            &progress,
            Phase::Staging,
            format!(
                "staging {}",
                pulled.version.as_deref().unwrap_or(&pulled.manifest_digest)
            ),
        );
        let this = self.clone();
        let (image, pulled) = (image.clone(), pulled.clone());
        tokio::task::spawn_blocking(move || this.stage_commit(&image, &pulled))
            .await
            .map_err(|e| Error::WrongState(format!("staging task failed: {e}")))?
    }

    fn stage_commit(&self, image: &ImageRef, pulled: &Pulled) -> Result<()> {
        let sysroot = self.open_sysroot()?;
        let repo = sysroot.repo();
        let booted = deps::booted(&sysroot).ok_or_else(|| {
            Error::WrongState("nothing is deployed: install an image first".into())
        })?;
        let new_kargs = kargs::merge(
            &kargs::deployment_kargs(&booted),
            &kargs::image_kargs(&repo, &booted.csum())?,
            &kargs::image_kargs(&repo, &pulled.commit)?,
        );
        self.ensure_deploy_space(&repo, &pulled.commit)?;
        let origin =
            deps::image_origin(image, &pulled.manifest_digest, pulled.verification.as_ref());
        let osname = booted.osname();
        deps::stage(
            &sysroot,
            &NewDeployment {
                osname: &osname,
                commit: &pulled.commit,
                origin: &origin,
                merge: Some(&booted),
                kargs: &new_kargs,
            },
        )?;
        // Staged now is what comes next: a download made before it is stale (it could be
        // older than this one), whichever it was.
        self.drop_cached_update();
        Ok(())
    }

    fn drop_cached_update(&self) {
        let _ = std::fs::remove_file(self.sysroot.join(CACHED_UPDATE));
    }

    fn booted_commit(&self) -> Result<Option<String>> {
        Ok(deps::booted(&self.open_sysroot()?).map(|d| d.csum().to_string()))
    }

    /// What a new deployment will need, guessed before its image is here: a kernel and
    /// initramfs as large as the booted one's, a copy of the booted `/etc`, boot entries.
    fn deploy_estimate(&self) -> Result<u64> {
        let sysroot = self.open_sysroot()?;
        let Some(booted) = deps::booted(&sysroot) else {
            return Ok(INSTALL_DEPLOY_GUESS);
        };
        let kernel = kernel_size(&sysroot.repo(), &booted.csum())?;
        let etc = fsutil::tree_size(&deps::deployment_dir(&sysroot, &booted).join("etc"));
        Ok(kernel + etc + DEPLOY_OVERHEAD)
    }

    /// A deployment needs room for its kernel and initramfs in /boot and its /etc.
    fn ensure_deploy_space(&self, repo: &ostree::Repo, commit: &str) -> Result<()> {
        let kernel_bytes = kernel_size(repo, commit)?;
        space::ensure_all(&[
            (&self.sysroot.join("boot"), kernel_bytes),
            (&self.sysroot, DEPLOY_OVERHEAD),
        ])
        .map_err(|e| match e {
            Error::NoSpace {
                path,
                needed,
                available,
                ..
            } => Error::NoSpace {
                path,
                needed,
                available,
                hint: "; the image was downloaded and imported and is kept for the next \
                       attempt (`berth cleanup` removes it)"
                    .into(),
            },
            e => e,
        })
    }

    /// The download-only update waiting to be staged. It counts only while the deployment it
    /// was downloaded on is booted and nothing else is staged: once the system moved on, it
    /// could be older than what runs (a downgrade any user could stage).
    pub fn cached_update(&self) -> Result<Option<CachedUpdate>> {
        let cached: CachedUpdate = match std::fs::read(self.sysroot.join(CACHED_UPDATE)) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(c) => c,
                Err(_) => return Ok(None),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read cached update", e)),
        };
        let sysroot = self.open_sysroot()?;
        let booted = deps::booted(&sysroot).map(|d| d.csum().to_string());
        let current =
            cached.base.is_some() && cached.base == booted && deps::staged(&sysroot).is_none();
        Ok(current.then_some(cached))
    }

    /// Rollback: the previous deployment becomes the default; a staged one is discarded.
    pub fn rollback(&self) -> Result<()> {
        let sysroot = self.open_sysroot()?;
        deps::rollback_to_previous(&sysroot)?;
        // The administrator chose what boots: a trial must not fall back to the other one.
        assessment::disarm(&self.sysroot)?;
        self.drop_cached_update();
        Ok(())
    }

    /// Drops a staged deployment; returns whether there was one.
    pub fn discard_staged(&self) -> Result<bool> {
        deps::discard_staged(&self.open_sysroot()?)
    }

    /// Emulated reboot of a sysroot that is not the running system.
    pub fn reboot(&self) -> Result<()> {
        let sysroot = self.open_sysroot()?;
        if deps::is_emulated(&sysroot) && deps::staged(&sysroot).is_some() {
            // As finalization does: with a GRUB environment block the new deployment boots
            // on trial.
            assessment::arm(&self.sysroot, self.config.health.tries)?;
        }
        deps::emulated_reboot(&sysroot).map(|_| ())
    }

    pub fn set_pinned(&self, index: usize, pinned: bool) -> Result<()> {
        let sysroot = self.open_sysroot()?;
        deps::set_pinned(&sysroot, index, pinned)
    }

    /// Prunes deployments nothing needs, images and layers no deployment or cached update
    /// uses, the blob cache, and stateroots replaced by a factory reset that has booted.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        let sysroot = self.open_sysroot()?;
        let removed_stateroots = deps::prune(&sysroot)?;
        let repo = sysroot.repo();
        let mut keep_images: HashSet<String> = sysroot
            .deployments()
            .iter()
            .filter_map(|d| deps::origin_get(d, BERTH_GROUP, "manifest-digest"))
            .map(|d| import::image_ref(&d))
            .collect();
        match self.cached_update()? {
            Some(c) => {
                keep_images.insert(import::image_ref(&c.manifest_digest));
            }
            None => self.drop_cached_update(),
        }
        let refs = repo
            .list_refs(None, gio::Cancellable::NONE)
            .ctx(|| "list refs".into())?;
        let mut keep_layers = HashSet::new();
        let mut report = CleanupReport {
            removed_stateroots,
            ..Default::default()
        };
        for (name, commit) in &refs {
            if !name.starts_with(import::IMAGE_REF_PREFIX) {
                continue;
            }
            if keep_images.contains(name.as_str()) {
                let md = import::commit_metadata(&repo, commit)?;
                let layers: Vec<String> =
                    md.lookup("berth.layers").ok().flatten().unwrap_or_default();
                keep_layers.extend(layers);
            } else {
                repo.set_ref_immediate(None, name, None, gio::Cancellable::NONE)
                    .ctx(|| format!("delete ref {name}"))?;
                report.removed_images += 1;
            }
        }
        for (name, commit) in &refs {
            if name.starts_with(import::LAYER_REF_PREFIX) && !keep_layers.contains(commit.as_str())
            {
                repo.set_ref_immediate(None, name, None, gio::Cancellable::NONE)
                    .ctx(|| format!("delete ref {name}"))?;
                report.removed_layers += 1;
            }
        }
        sysroot
            .cleanup(gio::Cancellable::NONE)
            .ctx(|| "ostree cleanup".into())?;
        report.freed_cache_bytes =
            BlobCache::open_for_writing(&self.cache_dir)?.retain(&HashSet::new())?;
        Ok(report)
    }

    /// Factory reset: a new deployment of the booted image in a fresh stateroot, with the
    /// image's pristine `/etc` and a `/var` seeded only from the image. The old stateroot
    /// stays until the reset system has booted; `cleanup` removes it after that.
    pub fn factory_reset(&self) -> Result<String> {
        let sysroot = self.open_sysroot()?;
        let booted = deps::booted(&sysroot)
            .ok_or_else(|| Error::WrongState("nothing is deployed".into()))?;
        deps::discard_staged(&sysroot)?;
        let old_root = booted.osname().to_string();
        let base = deps::origin_get(&booted, BERTH_GROUP, "factory-base")
            .unwrap_or_else(|| old_root.clone());
        let new_root = (1..)
            .map(|n| format!("{base}-reset{n}"))
            .find(|r| !self.sysroot.join("ostree/deploy").join(r).exists())
            .expect("an unused name");
        let origin = booted
            .origin()
            .ok_or_else(|| Error::WrongState("booted deployment has no origin".into()))?;
        let _ = origin.remove_key(BERTH_GROUP, "staged");
        origin.set_string(BERTH_GROUP, "reset-from", &old_root);
        origin.set_string(BERTH_GROUP, "factory-base", &base);
        self.ensure_deploy_space(&sysroot.repo(), &booted.csum())?;
        sysroot
            .init_osname(&new_root, gio::Cancellable::NONE)
            .ctx(|| format!("create stateroot {new_root}"))?;
        open_stateroot(&self.sysroot, &new_root)?;
        let kargs = kargs::deployment_kargs(&booted);
        let csum = booted.csum();
        let d = deps::deploy_default(
            &sysroot,
            &NewDeployment {
                osname: &new_root,
                commit: &csum,
                origin: &origin,
                merge: None,
                kargs: &kargs,
            },
        )?;
        seed_var(&sysroot, &d)?;
        assessment::disarm(&self.sysroot)?;
        self.drop_cached_update();
        Ok(new_root)
    }

    /// Shutdown-time finalization of the staged update (see
    /// [`deployments::finalize_staged`](crate::deployments::finalize_staged)); the new default
    /// deployment's id, or `None` when nothing was staged.
    pub fn finalize_staged(&self) -> Result<Option<String>> {
        let sysroot = self.open_sysroot()?;
        Ok(deps::finalize_staged(&sysroot, self.config.health.tries)?.map(|d| deps::id(&d)))
    }

    /// Early in every boot (boot assessment): the trial state; after a fallback, the
    /// rollback made permanent and the failed update recorded.
    pub fn assess_boot(&self) -> Result<assessment::BootOutcome> {
        assessment::on_boot(&self.open_sysroot()?)
    }

    /// Whether the booted deployment is on trial, without acting on it.
    pub fn boot_state(&self) -> Result<assessment::BootState> {
        assessment::state(&self.sysroot)
    }

    /// Runs the health checks in `dirs` (see [`crate::health`]) with the configured timeout.
    pub async fn run_health_checks(&self, dirs: &[&Path]) -> Result<usize> {
        let timeout = std::time::Duration::from_secs(self.config.health.check_timeout);
        crate::health::run(dirs, timeout).await
    }

    /// The booted deployment passed: its trial ends. Returns whether one was running.
    pub fn mark_boot_good(&self) -> Result<bool> {
        assessment::mark_good(&self.sysroot)
    }

    /// The booted deployment is bad: the next boot falls back to the previous one.
    pub fn mark_boot_bad(&self, detail: &str) -> Result<()> {
        assessment::mark_bad(&self.open_sysroot()?, detail)
    }

    /// A check failed on this boot; returns whether it is a trial (a reboot tries again).
    pub fn note_boot_failure(&self, reason: assessment::Reason, detail: &str) -> Result<bool> {
        assessment::note_failure(&self.open_sysroot()?, reason, detail)
    }

    /// Whether this sysroot is not the running system (staging and reboot are emulated).
    pub fn is_emulated(&self) -> Result<bool> {
        Ok(deps::is_emulated(&self.open_sysroot()?))
    }

    /// Makes the booted deployment's /usr writable (see [`crate::unlock`]); on the running
    /// system, call it in the host's mount namespace.
    pub fn unlock(&self, kind: crate::unlock::UnlockKind) -> Result<()> {
        crate::unlock::unlock(&self.open_sysroot()?, kind)
    }

    /// At boot: mounts the booted deployment's hotfix overlay on /usr, if it has one.
    pub fn mount_hotfix(&self) -> Result<bool> {
        let sysroot = self.open_sysroot()?;
        match deps::booted(&sysroot) {
            Some(b) => crate::unlock::mount_hotfix(&sysroot, &b),
            None => Ok(false),
        }
    }

    /// Compares deployment `index` (default: the booted one) with its commit and checks the
    /// repository's objects behind it; the report is kept for status.
    pub fn verify(
        &self,
        index: Option<usize>,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<crate::drift::DriftReport> {
        let sysroot = self.open_sysroot()?;
        let d = match index {
            Some(i) => sysroot
                .deployments()
                .into_iter()
                .nth(i)
                .ok_or_else(|| Error::WrongState(format!("no deployment with index {i}")))?,
            None => deps::booted(&sysroot).ok_or_else(|| {
                Error::WrongState("nothing is deployed: install an image first".into())
            })?,
        };
        let report = crate::drift::check(&sysroot, &d, &progress, cancel)?;
        crate::drift::record(&sysroot, &report)?;
        Ok(report)
    }

    pub fn status(&self) -> Result<status::Host> {
        let sysroot = self.open_sysroot()?;
        crate::hoststatus::build(&sysroot, self.cached_update()?)
    }
}

/// Lays down the first deployment of an image into an empty (or absent) directory.
pub async fn install(
    sysroot_path: &Path,
    image: &ImageRef,
    opts: &InstallOptions,
    config: Config,
    progress: ProgressFn,
    cancel: &Cancel,
) -> Result<()> {
    validate_stateroot(&opts.stateroot)?;
    std::fs::create_dir_all(sysroot_path).ctx(|| format!("create {}", sysroot_path.display()))?;
    {
        let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(sysroot_path)));
        sysroot
            .ensure_initialized(gio::Cancellable::NONE)
            .ctx(|| "initialize sysroot".into())?;
        sysroot
            .load(gio::Cancellable::NONE)
            .ctx(|| "load sysroot".into())?;
        if !sysroot.deployments().is_empty() {
            return Err(Error::WrongState(format!(
                "{} already has deployments",
                sysroot_path.display()
            )));
        }
        if !sysroot_path
            .join("ostree/deploy")
            .join(&opts.stateroot)
            .exists()
        {
            sysroot
                .init_osname(&opts.stateroot, gio::Cancellable::NONE)
                .ctx(|| "create stateroot".into())?;
            open_stateroot(sysroot_path, &opts.stateroot)?;
        }
    }
    let engine = Engine::open(sysroot_path, config)?;
    let pulled = engine
        .pull_with_room(image, INSTALL_DEPLOY_GUESS, progress.clone(), cancel)
        .await?;
    report(&progress, Phase::Staging, "deploying".into());
    let (image, opts) = (image.clone(), opts.clone());
    tokio::task::spawn_blocking(move || {
        let sysroot = engine.open_sysroot()?;
        let repo = sysroot.repo();
        let mut all_kargs = opts.kargs.clone();
        for k in kargs::image_kargs(&repo, &pulled.commit)? {
            if !all_kargs.contains(&k) {
                all_kargs.push(k);
            }
        }
        engine.ensure_deploy_space(&repo, &pulled.commit)?;
        let origin = deps::image_origin(
            &image,
            &pulled.manifest_digest,
            pulled.verification.as_ref(),
        );
        let d = deps::deploy_default(
            &sysroot,
            &NewDeployment {
                osname: &opts.stateroot,
                commit: &pulled.commit,
                origin: &origin,
                merge: None,
                kargs: &all_kargs,
            },
        )?;
        seed_var(&sysroot, &d)
    })
    .await
    .map_err(|e| Error::WrongState(format!("deploy task failed: {e}")))?
}

/// Gives a new stateroot's directories the modes ostree means them to have. libostree makes
/// them with `mkdir(0755)`, which the process's umask trims: under berthd's `UMask=0077` the
/// stateroot's `/var` would be root's alone, and every user locked out of `/var` once it boots.
fn open_stateroot(sysroot: &Path, stateroot: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = sysroot.join("ostree/deploy").join(stateroot);
    for (dir, mode) in [
        ("", 0o755),
        ("deploy", 0o755),
        ("var", 0o755),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("var/tmp", 0o1777),
    ] {
        let path = root.join(dir);
        if path.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod {}", path.display()))?;
        }
    }
    Ok(())
}

fn validate_stateroot(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::WrongState(format!(
            "invalid stateroot name {name:?}"
        )))
    }
}

/// Copies the image's `/var` content into the deployment's stateroot `/var` where missing.
fn seed_var(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> Result<()> {
    let src = deps::deployment_dir(sysroot, d).join(import::FACTORY_VAR);
    fsutil::copy_tree_missing(&src, &deps::stateroot_var(sysroot, &d.osname()))
}

fn kernel_size(repo: &ostree::Repo, commit: &str) -> Result<u64> {
    let (root, _) = repo
        .read_commit(commit, gio::Cancellable::NONE)
        .ctx(|| format!("read commit {commit}"))?;
    let modules = root.resolve_relative_path("usr/lib/modules");
    let mut total = 0;
    for k in kargs::list_dir(&modules)? {
        for f in ["vmlinuz", "initramfs.img"] {
            if let Ok(info) = modules.child(k.name()).child(f).query_info(
                "standard::size",
                gio::FileQueryInfoFlags::NONE,
                gio::Cancellable::NONE,
            ) {
                total += info.size() as u64;
            }
        }
    }
    Ok(total)
}

/// An OCI created time (RFC 3339) as a comparable instant.
fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// Runs a registry request again after transient errors, with exponential backoff.
pub(crate) async fn retrying<T, F, Fut>(retries: u32, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < retries => {
                attempt += 1;
                tracing::warn!(attempt, "transient registry error, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt.min(6))).await;
            }
            other => return other,
        }
    }
}

pub(crate) fn report(progress: &ProgressFn, phase: Phase, message: String) {
    progress(&Progress {
        phase,
        bytes_done: 0,
        bytes_total: 0,
        layers_done: 0,
        layers_total: 0,
        message,
    });
}
