//! Small filesystem helpers: a file replaced atomically and durably, and a directory tree
//! copied with its owners, modes, xattrs and symlinks (for seeding `/var`, merging `/etc`).

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

/// Copies `src` into `dst`, leaving anything that already exists in `dst` alone. Files keep
/// their modification time; special files (FIFOs, sockets, devices) are left out.
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
            copy_attributes(src, &meta, dst)?;
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
            copy_attributes(src, &meta, dst)?;
        } else if ft.is_file() {
            std::fs::copy(src, dst).ctx(|| format!("copy {}", src.display()))?;
            let mtime = rustix::fs::Timespec {
                tv_sec: meta.mtime(),
                tv_nsec: meta.mtime_nsec(),
            };
            let times = rustix::fs::Timestamps {
                last_access: mtime,
                last_modification: mtime,
            };
            rustix::fs::utimensat(rustix::fs::CWD, dst, &times, rustix::fs::AtFlags::empty())
                .map_err(|e| {
                    crate::Error::io(format!("set the time of {}", dst.display()), e.into())
                })?;
            copy_attributes(src, &meta, dst)?;
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

/// Owner, then mode (a change of owner clears set-id bits), then xattrs, of `src` onto `dst`.
pub fn copy_attributes(src: &Path, meta: &std::fs::Metadata, dst: &Path) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
        .ctx(|| format!("chown {}", dst.display()))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .ctx(|| format!("chmod {}", dst.display()))?;
    }
    copy_xattrs(src, dst)
}

/// All extended attributes (SELinux labels, capabilities, ACLs); nothing where the
/// filesystem has none.
fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    use rustix::fs::{lgetxattr, llistxattr, lsetxattr, XattrFlags};
    use rustix::io::Errno;
    use std::os::unix::ffi::OsStrExt;
    let err = |what: &str, p: &Path, e: Errno| {
        crate::Error::io(format!("{what} {}", p.display()), e.into())
    };
    let mut names = vec![0u8; 64 * 1024];
    let len = match llistxattr(src, &mut names[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(err("list the xattrs of", src, e)),
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        let n =
            lgetxattr(src, name, &mut value[..]).map_err(|e| err("read the xattrs of", src, e))?;
        match lsetxattr(dst, name, &value[..n], XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(err("set the xattrs of", dst, e)),
        }
    }
    Ok(())
}

/// Removes a file if it is there.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(crate::Error::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
