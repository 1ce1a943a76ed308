//! Content objects of a `bare` ostree repository, checksummed and written by Berth itself.
//!
//! libostree's own writers hash every byte with GLib's portable SHA-256, which made it the
//! slowest stage of an import; here the hash runs on the CPU's SHA extensions. The format is
//! ostree's: an object is named by sha256(file header, content), where the header is the
//! length-prefixed `(uuuusa(ayay))` variant of uid, gid, mode, rdev, symlink target, xattrs
//! (integers big-endian), and a bare repo keeps it at `objects/XX/REST.file` as a plain
//! file (or symlink) with that owner, mode and xattrs and mtime 0. `ostree fsck` re-hashes
//! every object, so the tests check this against libostree's own definition.

use crate::error::{Error, Result};
use ostree::glib;
use ostree::glib::prelude::*;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, Timestamps, XattrFlags};
use rustix::fs::{Gid, Uid};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Ownership, permissions and extended attributes of one filesystem object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode`, file type bits included.
    pub mode: u32,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn xattrs_variant(xattrs: &[(Vec<u8>, Vec<u8>)]) -> glib::Variant {
    let ty = glib::VariantTy::new("(ayay)").expect("static type");
    glib::Variant::array_from_iter_with_type(
        ty,
        xattrs.iter().map(|(name, value)| {
            // ostree stores names as bytestrings, terminating NUL included.
            let mut n = name.clone();
            n.push(0);
            glib::Variant::tuple_from_iter([
                glib::Variant::array_from_fixed_array(&n),
                glib::Variant::array_from_fixed_array(value),
            ])
        }),
    )
}

/// The bytes ostree hashes before a content object's data.
fn file_header(meta: &Meta, symlink_target: &str) -> Vec<u8> {
    let v = glib::Variant::tuple_from_iter([
        meta.uid.to_be().to_variant(),
        meta.gid.to_be().to_variant(),
        meta.mode.to_be().to_variant(),
        0u32.to_variant(),
        symlink_target.to_variant(),
        xattrs_variant(&meta.xattrs),
    ]);
    let data = v.data();
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    // Padding so the variant starts 8-byte aligned.
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
    out
}

/// The `(uuua(ayay))` directory metadata variant.
pub fn dirmeta(meta: &Meta) -> glib::Variant {
    glib::Variant::tuple_from_iter([
        meta.uid.to_be().to_variant(),
        meta.gid.to_be().to_variant(),
        meta.mode.to_be().to_variant(),
        xattrs_variant(&meta.xattrs),
    ])
}

/// Adds `what` as context to a failed system call.
fn sys_err(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |errno| Error::io(what, errno.into())
}

/// Writes content objects into a bare repo at `repo` (its `objects/` and `tmp/`). Works
/// relative to directory fds: per-object path walks were a visible cost.
/// Writes one layer's content objects. They are linked into a private staging directory
/// (0700, under the repository's `tmp/`) as they are written, and moved into `objects/` only by
/// [`publish`](Self::publish), once the layer's digest has been verified: until then no file
/// of an unverified layer (a setuid binary, say) is reachable through the repository. A
/// writer dropped unpublished removes its staging directory.
pub struct ObjectWriter {
    objects: PathBuf,
    tmp: PathBuf,
    tmp_dir: File,
    objects_dir: File,
    staging: PathBuf,
    staging_dir: File,
    /// Checksums linked into `staging`, to move into `objects/`.
    staged: Vec<String>,
    published: bool,
    /// Scratch space for file content, reused across files.
    buf: Vec<u8>,
}

/// Staging directories are named `berth-layer-PID-N` and locked (`flock`) by their writer for
/// its whole life; one nobody holds was left by a writer that died (a kill, a power cut) and is
/// removed by the next import. A new directory exists unlocked for a moment, between its
/// `mkdir` and its `flock`: writers hold a shared lock on `tmp/` across that moment and the
/// sweep an exclusive one, so a sweep never takes a directory being born for a dead one.
const STAGING_PREFIX: &str = "berth-layer-";

static TMP_SERIAL: AtomicU64 = AtomicU64::new(0);

impl ObjectWriter {
    pub fn new(repo: &Path) -> Result<ObjectWriter> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let open_dir =
            |p: &Path| File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e));
        let (tmp, objects) = (repo.join("tmp"), repo.join("objects"));
        let tmp_dir = open_dir(&tmp)?;
        let lock_tmp = |op| {
            rustix::fs::flock(&tmp_dir, op).map_err(sys_err(format!("lock {}", tmp.display())))
        };
        lock_tmp(FlockOperation::LockExclusive)?;
        remove_stale_staging(&tmp);
        lock_tmp(FlockOperation::LockShared)?;
        let serial = TMP_SERIAL.fetch_add(1, Ordering::Relaxed);
        let staging = tmp.join(format!("{STAGING_PREFIX}{}-{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
        // The mode must not depend on the umask.
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod {}", staging.display()), e))?;
        let staging_dir = open_dir(&staging)?;
        rustix::fs::flock(&staging_dir, FlockOperation::LockExclusive)
            .map_err(sys_err(format!("lock {}", staging.display())))?;
        lock_tmp(FlockOperation::Unlock)?;
        Ok(ObjectWriter {
            tmp_dir,
            objects_dir: open_dir(&objects)?,
            staging_dir,
            staging,
            staged: Vec::new(),
            published: false,
            objects,
            tmp,
            buf: vec![0; 256 << 10],
        })
    }

    /// Moves every staged object into `objects/` (replacing one a power cut left damaged).
    /// Call once the layer's digest is verified; the caller then syncs before committing.
    pub fn publish(mut self) -> Result<()> {
        for checksum in std::mem::take(&mut self.staged) {
            self.ensure_prefix_dir(&checksum)?;
            let from = Self::staged_name(&checksum);
            let to = Self::relative_path(&checksum);
            rustix::fs::renameat(&self.staging_dir, &from, &self.objects_dir, &to).map_err(
                sys_err(format!(
                    "move object into {}",
                    self.object_path(&checksum).display()
                )),
            )?;
        }
        self.published = true;
        let _ = std::fs::remove_dir(&self.staging);
        Ok(())
    }

    /// `CHECKSUM.file`, relative to the staging directory.
    fn staged_name(checksum: &str) -> String {
        format!("{checksum}.file")
    }

    /// `XX/REST.file` for a checksum, relative to `objects/`.
    fn relative_path(checksum: &str) -> String {
        format!("{}/{}.file", &checksum[..2], &checksum[2..])
    }

    /// The file type and size of what is stored under `checksum`, if anything.
    fn stored(&self, checksum: &str) -> Option<(FileType, u64)> {
        let rel = Self::relative_path(checksum);
        let st = rustix::fs::statat(&self.objects_dir, &rel, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some((FileType::from_raw_mode(st.st_mode), st.st_size as u64))
    }

    fn object_path(&self, checksum: &str) -> PathBuf {
        self.objects.join(Self::relative_path(checksum))
    }

    fn ensure_prefix_dir(&self, checksum: &str) -> Result<()> {
        match rustix::fs::mkdirat(
            &self.objects_dir,
            &checksum[..2],
            Mode::from_raw_mode(0o755),
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => {
                let dir = self.objects.join(&checksum[..2]);
                Err(sys_err(format!("create {}", dir.display()))(e))
            }
        }
    }

    /// Writes a regular file object of `size` bytes read from `content`; returns its
    /// checksum. The content is hashed as it is written.
    pub fn regular(&mut self, meta: &Meta, size: u64, content: &mut impl Read) -> Result<String> {
        let fd = rustix::fs::openat(
            &self.tmp_dir,
            ".",
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(sys_err(format!(
            "create a temporary file in {}",
            self.tmp.display()
        )))?;
        let mut file = File::from(fd);
        let mut hasher = Sha256::new();
        hasher.update(file_header(meta, ""));
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            content
                .read_exact(&mut self.buf[..want])
                .map_err(|e| Error::io("read file content", e))?;
            hasher.update(&self.buf[..want]);
            file.write_all(&self.buf[..want])
                .map_err(|e| Error::io("write object", e))?;
            left -= want as u64;
        }
        let checksum = hex::encode(hasher.finalize());
        match self.stored(&checksum) {
            Some((FileType::RegularFile, len)) if len == size => {}
            None => self.link_regular(&file, meta, &checksum)?,
            Some(_) => {
                // Objects are published before the import's single sync: a power cut in
                // between can leave the name on disk and not the data (ext4 commits the name
                // within 5 s, writes the data later), i.e. a short file. Never build on one:
                // the new copy replaces it when the layer is published.
                tracing::warn!(object = %checksum, "replacing a damaged object");
                self.link_regular(&file, meta, &checksum)?;
            }
        }
        Ok(checksum)
    }

    /// Writes a symlink object; returns its checksum.
    pub fn symlink(&mut self, meta: &Meta, target: &str) -> Result<String> {
        let checksum = hex::encode(Sha256::digest(file_header(meta, target)));
        // Anything else under this name is replaced when the layer is published.
        if matches!(self.stored(&checksum), Some((FileType::Symlink, _))) {
            return Ok(checksum);
        }
        let tmp = self
            .staging
            .join(OsStr::from_bytes(Self::staged_name(&checksum).as_bytes()));
        if std::fs::symlink_metadata(&tmp).is_ok() {
            return Ok(checksum); // staged already by this layer
        }
        std::os::unix::fs::symlink(target, &tmp)
            .map_err(|e| Error::io(format!("create symlink {}", tmp.display()), e))?;
        let (uid, gid) = owner(meta)?;
        rustix::fs::chownat(
            rustix::fs::CWD,
            &tmp,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(sys_err(format!("chown {}", tmp.display())))?;
        for (name, value) in &meta.xattrs {
            rustix::fs::lsetxattr(&tmp, name.as_slice(), value, XattrFlags::empty())
                .map_err(sys_err(format!("set xattr on {}", tmp.display())))?;
        }
        self.staged.push(checksum.clone());
        Ok(checksum)
    }
}

impl ObjectWriter {
    /// Gives the anonymous file its owner, mode, xattrs and mtime 0, and links it into the
    /// staging directory.
    fn link_regular(&mut self, file: &File, meta: &Meta, checksum: &str) -> Result<()> {
        // chown first: it clears set-id bits.
        let (uid, gid) = owner(meta)?;
        rustix::fs::fchown(file, Some(uid), Some(gid)).map_err(sys_err("chown object"))?;
        rustix::fs::fchmod(file, Mode::from_raw_mode(meta.mode & 0o7777))
            .map_err(sys_err("chmod object"))?;
        for (name, value) in &meta.xattrs {
            rustix::fs::fsetxattr(file, name.as_slice(), value, XattrFlags::empty())
                .map_err(sys_err("set xattr on object"))?;
        }
        let zero = rustix::fs::Timespec::default();
        let times = Timestamps {
            last_access: zero,
            last_modification: zero,
        };
        rustix::fs::futimens(file, &times).map_err(sys_err("set object mtime"))?;
        // AT_EMPTY_PATH links the anonymous file itself (root has the capability it needs).
        let name = Self::staged_name(checksum);
        match rustix::fs::linkat(file, "", &self.staging_dir, &name, AtFlags::EMPTY_PATH) {
            Ok(()) => self.staged.push(checksum.to_string()),
            // The layer holds the same content twice: staged already, same bytes.
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                let what = format!("link object into {}", self.staging.display());
                return Err(sys_err(what)(e));
            }
        }
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// The owner of an object. -1 is no id: `chown` would read it as "leave unchanged".
fn owner(meta: &Meta) -> Result<(Uid, Gid)> {
    if meta.uid == u32::MAX || meta.gid == u32::MAX {
        return Err(Error::Unsupported(format!(
            "owner {}:{} (-1 is not an id)",
            meta.uid, meta.gid
        )));
    }
    Ok((Uid::from_raw(meta.uid), Gid::from_raw(meta.gid)))
}

/// Removes staging directories whose writer died (a kill, a power cut): those nobody locks.
fn remove_stale_staging(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            continue;
        }
        let Ok(dir) = File::open(e.path()) else {
            continue;
        };
        let free = rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive).is_ok();
        if free {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Flushes the objects written so far to disk before a commit refers to them.
pub fn sync(repo: &Path) -> Result<()> {
    let dir = File::open(repo).map_err(|e| Error::io(format!("open {}", repo.display()), e))?;
    rustix::fs::syncfs(&dir).map_err(sys_err("sync the repository's filesystem"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers created side by side (one per layer) each sweep `tmp/` for dead writers'
    /// directories: none may take another's directory for a dead one while it is being born.
    #[test]
    fn concurrent_writers_keep_their_staging_directories() {
        let repo = tempfile::tempdir().unwrap();
        for dir in ["tmp", "objects"] {
            std::fs::create_dir(repo.path().join(dir)).unwrap();
        }
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..300 {
                        let writer = ObjectWriter::new(repo.path()).unwrap();
                        assert!(writer.staging.is_dir(), "{}", writer.staging.display());
                    }
                });
            }
        });
    }
}
