//! Small filesystem helpers: a file replaced atomically and durably, and a directory tree
//! copied with its owners, modes and symlinks (for seeding `/var`).

use crate::error::{Context as _, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `data` so that a crash or power cut leaves the old file or the new
/// one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("sync {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename {}", path.display()))
}

/// Copies `src` into `dst`, leaving anything that already exists in `dst` alone.
pub fn copy_tree_missing(src: &Path, dst: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::io(format!("stat {}", src.display()), e)),
    };
    let exists = std::fs::symlink_metadata(dst).is_ok();
    let ft = meta.file_type();
    if ft.is_dir() {
        if !exists {
            std::fs::create_dir(dst).ctx(|| format!("create {}", dst.display()))?;
            set_owner_mode(dst, &meta)?;
        }
        for entry in std::fs::read_dir(src).ctx(|| format!("read {}", src.display()))? {
            let entry = entry.ctx(|| format!("read {}", src.display()))?;
            copy_tree_missing(&entry.path(), &dst.join(entry.file_name()))?;
        }
    } else if !exists {
        if ft.is_symlink() {
            let target = std::fs::read_link(src).ctx(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&target, dst)
                .ctx(|| format!("symlink {}", dst.display()))?;
            std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
                .ctx(|| format!("chown {}", dst.display()))?;
        } else if ft.is_file() {
            std::fs::copy(src, dst).ctx(|| format!("copy {}", src.display()))?;
            set_owner_mode(dst, &meta)?;
        }
    }
    Ok(())
}

/// Bytes of the regular files under `dir` (0 if it cannot be read): an estimate of what a
/// copy of it needs.
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn set_owner_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .ctx(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .ctx(|| format!("chmod {}", path.display()))
}
