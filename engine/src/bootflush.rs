//! Making what was just written under `/boot` visible to the bootloader.
//!
//! Bootloaders (GRUB, and the VM test's debugfs) read the disk without replaying the
//! filesystem's journal: until the journal is checkpointed they see the old metadata, while the
//! kernel, which replays it, sees the new. ostree 2022.7 (Debian 12) flushes before it swaps
//! `/boot/loader` but not after, and then deletes the old `/ostree/boot.N` links at once. A power
//! cut in between leaves the bootloader on the old entries, whose `ostree=` target the kernel
//! no longer finds: the machine does not boot (ostree#3392, found by Berth's VM power cuts).
//! Berth therefore writes deployment lists without ostree's cleanup, flushes here, then cleans.

use crate::error::{Error, Result};
use std::os::fd::AsRawFd;
use std::path::Path;

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
/// `_IOW('f', 43, __u32)`: write the journal back to its home locations (Linux 5.14+).
const EXT4_IOC_CHECKPOINT: libc::c_ulong = 0x4004_662B;
/// `_IOWR('X', 119, int)` and `_IOWR('X', 120, int)`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// How the filesystem holding a directory was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// ext4: the journal was checkpointed.
    Checkpoint,
    /// A freeze/thaw cycle wrote the journal back (XFS, or ext4 on kernels before 5.14).
    FreezeThaw,
    /// No journal a bootloader could miss (tmpfs, vfat, btrfs...): a plain syncfs.
    Sync,
}

/// Flushes the filesystem holding `boot_dir` so that a bootloader reading the raw disk sees
/// everything written so far.
pub fn flush(boot_dir: &Path) -> Result<Flush> {
    let dir = std::fs::File::open(boot_dir)
        .map_err(|e| Error::io(format!("open {}", boot_dir.display()), e))?;
    let fd = dir.as_raw_fd();
    // The last OS error, named by what failed on which directory.
    let failed = |what: &str| {
        let e = std::io::Error::last_os_error();
        (
            e.raw_os_error(),
            Error::io(format!("{what} {}", boot_dir.display()), e),
        )
    };
    let named = |what: &str, e: rustix::io::Errno| {
        Error::io(format!("{what} {}", boot_dir.display()), e.into())
    };
    let sync = || {
        rustix::fs::syncfs(&dir).map_err(|e| named("syncfs", e))?;
        Ok(Flush::Sync)
    };
    let magic = rustix::fs::fstatfs(&dir)
        .map_err(|e| named("statfs", e))?
        .f_type as i64;
    if magic == EXT4_SUPER_MAGIC {
        let flags: u32 = 0;
        // SAFETY: the ioctl reads one u32 of flags.
        if unsafe { libc::ioctl(fd, EXT4_IOC_CHECKPOINT, &flags) } == 0 {
            return Ok(Flush::Checkpoint);
        }
        match failed("checkpoint") {
            // A kernel before 5.14: the freeze/thaw cycle below does the same.
            (Some(libc::ENOTTY | libc::EINVAL | libc::EOPNOTSUPP), _) => {}
            // ext4 without a journal: nothing a bootloader could miss once synced.
            (Some(libc::ENODEV), _) => return sync(),
            (_, e) => return Err(e),
        }
    } else if magic != XFS_SUPER_MAGIC {
        return sync();
    }
    // Thawed right away; the filesystem is frozen only for the flush itself.
    // SAFETY: plain ioctls on an open fd, no argument read.
    if unsafe { libc::ioctl(fd, FIFREEZE, 0) } != 0 {
        return match failed("freeze") {
            // Someone else froze it, which flushed it; syncfs covers our writes.
            (Some(libc::EBUSY), _) => sync(),
            (_, e) => Err(e),
        };
    }
    if unsafe { libc::ioctl(fd, FITHAW, 0) } != 0 {
        return Err(failed("thaw").1);
    }
    Ok(Flush::FreezeThaw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = flush(Path::new("/nonexistent/berth-boot")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/berth-boot"), "{err}");
    }

    #[test]
    fn any_filesystem_a_test_runs_on_is_flushed() {
        // tmpfs, ext4 with or without a journal (this machine's root has none), overlayfs...
        let dir = tempfile::tempdir().unwrap();
        flush(dir.path()).unwrap();
    }
}
