//! Bringing an image in: every layer downloaded into the blob cache while it is imported
//! from the growing file, a commit per layer, then the image commit; the room for all of it
//! is checked before the first layer byte.

use crate::blobcache::BlobCache;
use crate::engine::{report, retrying, Engine, Pulled};
use crate::error::{Context as _, Error, Result};
use crate::growing::Growing;
use crate::imgref::ImageRef;
use crate::import::{self, ImageMeta};
use crate::layout::LayoutTrust;
use crate::oci;
use crate::progress::{Cancel, Phase, ProgressFn, Tracker};
use crate::source::{FetchedImage, Source};
use crate::space;
use futures_util::{StreamExt, TryStreamExt};
use std::path::PathBuf;

impl Engine {
    /// Downloads and imports an image (nothing is deployed): root's own command, so a layout
    /// may be anyone's.
    pub async fn pull(
        &self,
        image: &ImageRef,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<Pulled> {
        self.pull_with_room(image, 0, progress, cancel).await
    }

    /// [`pull`](Self::pull), checking first for room for a deployment of `deploy_need` bytes.
    pub(crate) async fn pull_with_room(
        &self,
        image: &ImageRef,
        deploy_need: u64,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<Pulled> {
        let source = Source::new(image, &self.config, LayoutTrust::AnyOwner)?;
        report(
            &progress,
            Phase::Checking,
            format!("fetching manifest of {image}"),
        );
        let fetched = retrying(self.config.retries, || source.fetch_image()).await?;
        let verification = self.verify_trust(&source, image, &fetched).await?;
        let mut pulled = self
            .pull_fetched(&source, image, &fetched, deploy_need, progress, cancel)
            .await?;
        pulled.verification = Some(verification);
        Ok(pulled)
    }

    /// Downloads and imports `fetched`, after checking there is room for it and for a
    /// deployment that needs `deploy_need` bytes (0 when nothing will be deployed).
    pub(crate) async fn pull_fetched(
        &self,
        source: &Source,
        image: &ImageRef,
        fetched: &FetchedImage,
        deploy_need: u64,
        progress: ProgressFn,
        cancel: &Cancel,
    ) -> Result<Pulled> {
        let repo_path = self.repo_path();
        let repo = import::open_repo(&repo_path)?;
        let version = fetched.config.label(oci::VERSION_LABEL).map(str::to_string);
        if let Some(commit) = import::resolve(&repo, &import::image_ref(&fetched.manifest_digest))?
        {
            // Stored under this digest is not proof: its recorded manifest must hash to it.
            if import::stored_manifest_matches(&repo, &commit, &fetched.manifest_digest)? {
                return Ok(Pulled {
                    commit,
                    manifest_digest: fetched.manifest_digest.clone(),
                    version,
                    downloaded_bytes: 0,
                    imported_layers: 0,
                    verification: None,
                });
            }
            tracing::warn!(
                digest = %fetched.manifest_digest,
                "the stored image does not match its manifest digest; importing it again"
            );
        }
        self.check_limits(fetched)?;
        let cache = BlobCache::open_for_writing(&self.cache_dir)?;
        let mut plan = Vec::new();
        let (mut to_download, mut to_import_compressed) = (0u64, 0u64);
        for (i, (desc, diff_id)) in fetched
            .manifest
            .layers
            .iter()
            .zip(&fetched.config.rootfs.diff_ids)
            .enumerate()
        {
            let existing = import::resolve(&repo, &import::layer_ref(diff_id))?;
            if existing.is_none() {
                to_download = add_sizes(to_download, desc.size - cache.cached_bytes(desc))?;
                to_import_compressed = add_sizes(to_import_compressed, desc.size)?;
            }
            plan.push((i, desc.clone(), diff_id.clone(), existing));
        }
        drop(repo);
        // The whole need, before the first byte: the download, the import (layers expand when
        // unpacked; twice the compressed size is a conservative guess; a watchdog stops the
        // import if it was not) and the deployment; needs on one filesystem add up.
        let import_estimate = to_import_compressed.saturating_mul(2);
        space::ensure_all(&[
            (cache.dir(), to_download),
            (&repo_path, import_estimate),
            (&self.sysroot.join("boot"), deploy_need),
        ])?;

        let n_import = plan.iter().filter(|p| p.3.is_none()).count();
        let tracker = Tracker::new(Phase::Downloading, to_download, n_import, progress.clone());
        let concurrency = self.config.download_concurrency;
        let n_layers = plan.len();
        let mut commits: Vec<(usize, String)> = futures_util::stream::iter(plan)
            .map(|(i, desc, diff_id, existing)| {
                let (tracker, cache, cancel, repo_path) =
                    (&tracker, &cache, cancel.clone(), repo_path.clone());
                async move {
                    if let Some(c) = existing {
                        return Ok((i, c));
                    }
                    let layer = LayerJob {
                        desc,
                        diff_id,
                        repo_path,
                        limits: self.config.limits,
                    };
                    let commit = self
                        .fetch_and_import(source, cache, layer, tracker, &cancel)
                        .await?;
                    tracker.layer_done(format!("layer {}/{} imported", i + 1, n_layers));
                    Ok::<_, Error>((i, commit))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await
            .map_err(kept_hint)?;
        commits.sort();
        let layer_commits: Vec<String> = commits.into_iter().map(|(_, c)| c).collect();
        cancel.check()?;
        let f = fetched.clone();
        let image_s = image.to_string();
        let version2 = version.clone();
        let commit = tokio::task::spawn_blocking(move || {
            let repo = import::open_repo(&repo_path)?;
            import::commit_image(
                &repo,
                &layer_commits,
                &ImageMeta {
                    image: &image_s,
                    source_digest: &f.source_digest,
                    manifest_digest: &f.manifest_digest,
                    version: version2.as_deref(),
                    created: f.config.created.as_deref(),
                    manifest_json: &f.manifest_bytes,
                    config_json: &f.config_bytes,
                },
            )
        })
        .await
        .map_err(|e| Error::WrongState(format!("commit task failed: {e}")))??;
        // The layers live in ostree now; their blobs are not needed any more.
        for desc in &fetched.manifest.layers {
            let _ = std::fs::remove_file(cache.path(&desc.digest));
        }
        Ok(Pulled {
            commit,
            manifest_digest: fetched.manifest_digest.clone(),
            version,
            downloaded_bytes: tracker.bytes_done(),
            imported_layers: n_import,
            verification: None,
        })
    }

    /// Downloads one layer into the cache while importing it from the growing file; if the
    /// download had to start over, imports again from the finished blob.
    async fn fetch_and_import(
        &self,
        source: &Source,
        cache: &BlobCache,
        layer: LayerJob,
        tracker: &Tracker,
        cancel: &Cancel,
    ) -> Result<String> {
        let compression = layer.desc.compression()?;
        let growing = Growing::new();
        let import = import_in_background(&layer, compression, growing.reader(cancel), cancel);
        let download = cache.fetch(
            source,
            &layer.desc,
            tracker,
            cancel,
            self.config.retries,
            &growing,
        );
        let (downloaded, imported) = tokio::join!(download, import);
        let blob = downloaded?;
        match imported {
            Err(_) if growing.was_restarted() => {
                let file = std::fs::File::open(&blob).ctx(|| format!("open {}", blob.display()))?;
                import_in_background(&layer, compression, file, cancel).await
            }
            other => other,
        }
    }

    /// Refuses images past the configured limits before anything is downloaded.
    pub(crate) fn check_limits(&self, fetched: &FetchedImage) -> Result<()> {
        let max = self.config.limits.max_layers;
        if fetched.manifest.layers.len() > max {
            return Err(Error::BadManifest(format!(
                "the image has {} layers, more than the {max} allowed (limits.max-layers)",
                fetched.manifest.layers.len()
            )));
        }
        Ok(())
    }
}

/// A `NoSpace` half-way through a pull says what it kept and how to free it.
fn kept_hint(e: Error) -> Error {
    match e {
        Error::NoSpace {
            path,
            needed,
            available,
            hint,
        } => Error::NoSpace {
            path,
            needed,
            available,
            hint: format!(
                "{hint}; layers downloaded or imported so far are kept for the next attempt \
                 (`berth cleanup` frees them)"
            ),
        },
        e => e,
    }
}

/// Sums sizes a manifest declares; sizes that overflow are a lie.
pub(crate) fn add_sizes(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| Error::BadManifest("layer sizes add up past 2^64 bytes".into()))
}

/// Imports a layer from `blob` on a blocking thread.
async fn import_in_background(
    layer: &LayerJob,
    compression: oci::Compression,
    blob: impl std::io::Read + Send + 'static,
    cancel: &Cancel,
) -> Result<String> {
    let (layer, cancel) = (layer.clone(), cancel.clone());
    tokio::task::spawn_blocking(move || {
        import::import_layer(
            &layer.repo_path,
            blob,
            compression,
            &layer.diff_id,
            &layer.limits,
            &cancel,
        )
    })
    .await
    .map_err(|e| Error::WrongState(format!("import task failed: {e}")))?
}

/// One layer to bring in.
#[derive(Clone)]
struct LayerJob {
    desc: oci::Descriptor,
    diff_id: String,
    repo_path: PathBuf,
    limits: crate::Limits,
}
