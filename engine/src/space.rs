//! Free-space checks. The whole need of an update (download, import, deployment) is checked
//! before the first byte is fetched, summed per filesystem, so a full disk is reported up
//! front; while layers are written a watchdog stops the import before the filesystem is full
//! (the estimate of what a layer expands to can be wrong), leaving the reserve free.

use crate::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Space kept free on top of what an operation needs, so the system stays usable.
pub const RESERVE: u64 = 8 << 20;

pub fn available(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| {
        Error::io(
            format!("statvfs {}", path.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fails with `NoSpace` unless `path`'s filesystem has `needed` bytes plus the reserve.
pub fn ensure(path: &Path, needed: u64) -> Result<()> {
    ensure_all(&[(path, needed)])
}

/// Like [`ensure`] for several needs at once: needs on the same filesystem add up.
pub fn ensure_all(needs: &[(&Path, u64)]) -> Result<()> {
    let mut per_fs: Vec<(u64, PathBuf, u64)> = Vec::new();
    for (path, bytes) in needs {
        // A directory made later (a first deployment's /boot) lands on its parent's filesystem.
        let existing = path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let dev = std::fs::metadata(existing)
            .map_err(|e| Error::io(format!("stat {}", existing.display()), e))?
            .dev();
        match per_fs.iter_mut().find(|(d, ..)| *d == dev) {
            Some((_, _, total)) => *total = total.saturating_add(*bytes),
            None => per_fs.push((dev, existing.to_path_buf(), *bytes)),
        }
    }
    for (_, path, bytes) in per_fs {
        let avail = available(&path)?;
        let needed = bytes.saturating_add(RESERVE);
        if avail < needed {
            return Err(Error::NoSpace {
                path,
                needed,
                available: avail,
                hint: String::new(),
            });
        }
    }
    Ok(())
}

/// Watches a filesystem while it is written to: fails once less than the reserve is left.
pub struct Watchdog {
    path: PathBuf,
    written_since_check: u64,
}

/// How often the watchdog looks: after this many bytes written. Layers import side by side
/// (up to `download-concurrency`, default 3), each with its own watchdog, so between two looks
/// at most a few MiB, less than the reserve, are written.
const CHECK_EVERY: u64 = 1 << 20;
/// What one entry costs the filesystem at least: a block for its inode and name, and its data
/// rounded up to whole blocks.
const BLOCK: u64 = 4096;
/// Inodes kept free besides the reserve's bytes.
const RESERVE_INODES: u64 = 1024;

impl Watchdog {
    pub fn new(path: &Path) -> Watchdog {
        Watchdog {
            path: path.to_path_buf(),
            written_since_check: 0,
        }
    }

    /// Counts an entry of `bytes` about to be written (any entry: a directory or a link takes
    /// room too): after every MiB, and before any large file, checks that it fits with the
    /// reserve (bytes and inodes) to spare.
    pub fn about_to_write(&mut self, bytes: u64) -> Result<()> {
        let cost = bytes
            .div_ceil(BLOCK)
            .saturating_add(1)
            .saturating_mul(BLOCK);
        self.written_since_check = self.written_since_check.saturating_add(cost);
        if self.written_since_check < CHECK_EVERY {
            return Ok(());
        }
        self.written_since_check = 0;
        let st = rustix::fs::statvfs(&self.path).map_err(|e| {
            Error::io(
                format!("statvfs {}", self.path.display()),
                std::io::Error::from(e),
            )
        })?;
        let avail = st.f_bavail.saturating_mul(st.f_frsize);
        let needed = cost.saturating_add(RESERVE);
        // Filesystems without inode accounting (tmpfs with nr_inodes=0) report none at all.
        let out_of_inodes = st.f_files > 0 && st.f_favail < RESERVE_INODES;
        if avail < needed || out_of_inodes {
            return Err(Error::NoSpace {
                path: self.path.clone(),
                needed,
                available: avail,
                hint: " (the image expands to more than was estimated)".into(),
            });
        }
        Ok(())
    }
}
