//! A content-addressed cache of layer blobs: `DIR/sha256/<hex>` holds only verified blobs,
//! `DIR/partial/<hex>` a download in progress that the next attempt resumes.
//!
//! The cache is root's alone (directories 0700, files 0600): a layer can hold files the image
//! keeps private (0600 keys, shadow), and a lock file others could open would let any user
//! `flock` it and freeze every update.

use crate::error::{Context as _, Error, Result};
use crate::growing::Growing;
use crate::oci::Descriptor;
use crate::progress::{Cancel, Tracker};
use crate::source::Source;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct BlobCache {
    dir: PathBuf,
    /// Held (flock) while this handle may write: one writer per cache, across processes.
    _lock: Option<std::fs::File>,
}

impl BlobCache {
    /// Opens the cache to look at it.
    pub fn open(dir: &Path) -> Result<BlobCache> {
        for d in [dir.to_path_buf(), dir.join("sha256"), dir.join("partial")] {
            private_dir(&d)?;
        }
        Ok(BlobCache {
            dir: dir.to_path_buf(),
            _lock: None,
        })
    }

    /// Opens the cache to download into it or prune it; fails with `Busy` while another
    /// process (or pull) does.
    pub fn open_for_writing(dir: &Path) -> Result<BlobCache> {
        let mut cache = Self::open(dir)?;
        let path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        // Released when the file is closed.
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(Error::Busy(format!(
                "another download is using the blob cache {}",
                dir.display()
            )));
        }
        cache._lock = Some(file);
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn hex(digest: &str) -> &str {
        digest.strip_prefix("sha256:").unwrap_or(digest)
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join("sha256").join(Self::hex(digest))
    }

    fn partial_path(&self, digest: &str) -> PathBuf {
        self.dir.join("partial").join(Self::hex(digest))
    }

    pub fn contains(&self, desc: &Descriptor) -> bool {
        std::fs::metadata(self.path(&desc.digest)).is_ok_and(|m| m.len() == desc.size)
    }

    /// Bytes already downloaded towards `desc` (a finished blob counts whole).
    pub fn cached_bytes(&self, desc: &Descriptor) -> u64 {
        if self.contains(desc) {
            return desc.size;
        }
        std::fs::metadata(self.partial_path(&desc.digest))
            .map(|m| m.len().min(desc.size))
            .unwrap_or(0)
    }

    /// Downloads `desc` into the cache unless it is there, resuming a partial download and
    /// retrying transient errors with exponential backoff.
    pub async fn fetch(
        &self,
        source: &Source,
        desc: &Descriptor,
        tracker: &Tracker,
        cancel: &Cancel,
        retries: u32,
        growing: &Growing,
    ) -> Result<PathBuf> {
        // When another layer fails, the pull drops this download half-way; the import that
        // follows it must then fail too, not wait for ever.
        struct AbandonUnlessFinished<'a>(&'a Growing);
        impl Drop for AbandonUnlessFinished<'_> {
            fn drop(&mut self) {
                self.0.abandon();
            }
        }
        let _abandon = AbandonUnlessFinished(growing);
        let result = self
            .fetch_retrying(source, desc, tracker, cancel, retries, growing)
            .await;
        growing.finish(result.as_ref().ok().cloned());
        result
    }

    async fn fetch_retrying(
        &self,
        source: &Source,
        desc: &Descriptor,
        tracker: &Tracker,
        cancel: &Cancel,
        retries: u32,
        growing: &Growing,
    ) -> Result<PathBuf> {
        let dest = self.path(&desc.digest);
        if self.contains(desc) {
            return Ok(dest);
        }
        let mut attempt = 0;
        let mut restarted_after_mismatch = false;
        loop {
            cancel.check()?;
            let resuming = self.cached_bytes(desc) > 0;
            match self
                .fetch_once(source, desc, tracker, cancel, growing)
                .await
            {
                Ok(()) => return Ok(dest),
                // A partial download left by a crash or power cut can hold bytes that never
                // reached the disk intact: its digest fails. It is gone now; start over once.
                Err(Error::DigestMismatch { .. }) if resuming && !restarted_after_mismatch => {
                    restarted_after_mismatch = true;
                    tracing::warn!(blob = %desc.digest, "resumed download failed its digest; downloading it again");
                    growing.restarted();
                }
                Err(e) if e.is_transient() && attempt < retries => {
                    attempt += 1;
                    let delay = Duration::from_millis(200 * (1 << attempt.min(6)));
                    tracing::warn!(blob = %desc.digest, attempt, ?delay, "transient registry error, retrying: {e}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_once(
        &self,
        source: &Source,
        desc: &Descriptor,
        tracker: &Tracker,
        cancel: &Cancel,
        growing: &Growing,
    ) -> Result<()> {
        let partial = self.partial_path(&desc.digest);
        let (mut hasher, mut have) = hash_existing(&partial, desc.size)?;
        if have == desc.size && have > 0 {
            // A crash after the last byte but before the rename left the whole blob here.
            // Asking for the bytes after its end would get a 416, which some registries
            // (distribution 2.x) send with the blob's Content-Length and no body: a network
            // error on every retry, and the update could never finish.
            let file =
                std::fs::File::open(&partial).ctx(|| format!("open {}", partial.display()))?;
            return self.seal(desc, &partial, file, hasher, tracker, 0);
        }
        let blob = source.open_blob(desc, have).await?;
        if !blob.from_offset && have > 0 {
            // The source ignored the range request: start over.
            growing.restarted();
            tracker.sub_bytes(have);
            hasher = Sha256::new();
            have = 0;
        }
        // Plain blocking writes (fast, local): a follower may read each byte as soon as
        // `wrote` announces it.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial)
            .ctx(|| format!("open {}", partial.display()))?;
        file.set_len(have)
            .ctx(|| format!("truncate {}", partial.display()))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(have))
            .ctx(|| format!("seek {}", partial.display()))?;
        growing.opened(partial.clone(), have);
        let mut stream = blob.stream;
        while let Some(chunk) = stream.next().await {
            cancel.check()?;
            let chunk = match chunk {
                Ok(c) => c,
                Err(Error::DigestMismatch { .. }) => break, // checked below with the full picture
                Err(e) => return Err(e),
            };
            if have + chunk.len() as u64 > desc.size {
                drop(file);
                let _ = std::fs::remove_file(&partial);
                return Err(Error::DigestMismatch {
                    what: format!("blob {}", desc.digest),
                    expected: format!("{} bytes", desc.size),
                    actual: "more bytes than the manifest declares".into(),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .ctx(|| format!("write {}", partial.display()))?;
            have += chunk.len() as u64;
            growing.wrote(have);
            tracker.add_bytes(chunk.len() as u64);
        }
        if have < desc.size {
            // The connection ended early: keep what we have and let the retry resume.
            return Err(Error::Network {
                registry: "source".into(),
                detail: format!(
                    "blob {} ended after {have} of {} bytes",
                    desc.digest, desc.size
                ),
            });
        }
        self.seal(desc, &partial, file, hasher, tracker, have)
    }

    /// Checks a complete partial download against its digest and moves it into the cache;
    /// one that fails is deleted and the `counted` bytes it added to the progress taken back.
    fn seal(
        &self,
        desc: &Descriptor,
        partial: &Path,
        file: std::fs::File,
        hasher: Sha256,
        tracker: &Tracker,
        counted: u64,
    ) -> Result<()> {
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != desc.digest {
            drop(file);
            let _ = std::fs::remove_file(partial);
            tracker.sub_bytes(counted);
            return Err(Error::DigestMismatch {
                what: format!("blob {}", desc.digest),
                expected: desc.digest.clone(),
                actual,
            });
        }
        file.sync_all()
            .ctx(|| format!("sync {}", partial.display()))?;
        drop(file);
        let dest = self.path(&desc.digest);
        std::fs::rename(partial, &dest).ctx(|| format!("rename into {}", dest.display()))?;
        Ok(())
    }

    /// Removes every blob and partial download not named in `keep`.
    pub fn retain(&self, keep: &std::collections::HashSet<String>) -> Result<u64> {
        let mut freed = 0;
        for sub in ["sha256", "partial"] {
            let dir = self.dir.join(sub);
            for entry in std::fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
                let entry = entry.ctx(|| format!("read {}", dir.display()))?;
                let name = entry.file_name().to_string_lossy().to_string();
                if !keep.contains(&format!("sha256:{name}")) {
                    freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    std::fs::remove_file(entry.path())
                        .ctx(|| format!("remove {}", entry.path().display()))?;
                }
            }
        }
        Ok(freed)
    }
}

/// Creates `dir` as 0700, and takes group and other access away from one made earlier.
fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("create {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(Error::WrongState(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// Hashes what a partial download already holds; a partial larger than the blob is discarded.
fn hash_existing(partial: &Path, size: u64) -> Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut file = match std::fs::File::open(partial) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(Error::io(format!("open {}", partial.display()), e)),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > size {
        drop(file);
        std::fs::remove_file(partial).ctx(|| format!("remove {}", partial.display()))?;
        return Ok((hasher, 0));
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0;
    loop {
        let n = file
            .read(&mut buf)
            .ctx(|| format!("read {}", partial.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        have += n as u64;
    }
    Ok((hasher, have))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_at_a_time() {
        // The test runner's private tmpfs when there is one.
        let base = std::env::var_os("BERTH_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("berth-cache-lock-{}", std::process::id()));
        let first = BlobCache::open_for_writing(&dir).unwrap();
        assert!(matches!(
            BlobCache::open_for_writing(&dir),
            Err(Error::Busy(_))
        ));
        // Readers are not blocked.
        BlobCache::open(&dir).unwrap();
        drop(first);
        BlobCache::open_for_writing(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
