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

/// How often the watchdog looks: after this many bytes written.
const CHECK_EVERY: u64 = 4 << 20;

impl Watchdog {
    pub fn new(path: &Path) -> Watchdog {
        Watchdog {
            path: path.to_path_buf(),
            written_since_check: 0,
        }
    }

    /// Counts `bytes` about to be written: after every few MiB, and before any large write,
    /// checks that they fit with the reserve to spare. Between checks at most
    /// `CHECK_EVERY` (less than the reserve) is written, so the filesystem never fills up.
    pub fn about_to_write(&mut self, bytes: u64) -> Result<()> {
        self.written_since_check = self.written_since_check.saturating_add(bytes);
        if self.written_since_check < CHECK_EVERY {
            return Ok(());
        }
        self.written_since_check = 0;
        let avail = available(&self.path)?;
        let needed = bytes.saturating_add(RESERVE);
        if avail < needed {
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
