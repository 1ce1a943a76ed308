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
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::WrongState(format!("path with NUL: {}", p.display())))
}

fn os_err(what: impl Into<String>) -> Error {
    Error::io(what, std::io::Error::last_os_error())
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
/// removed by the next import.
const STAGING_PREFIX: &str = "berth-layer-";

static TMP_SERIAL: AtomicU64 = AtomicU64::new(0);

impl ObjectWriter {
    pub fn new(repo: &Path) -> Result<ObjectWriter> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let open_dir =
            |p: &Path| File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e));
        let (tmp, objects) = (repo.join("tmp"), repo.join("objects"));
        remove_stale_staging(&tmp);
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
        rustix::fs::flock(&staging_dir, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("lock {}", staging.display()), e.into()))?;
        Ok(ObjectWriter {
            tmp_dir: open_dir(&tmp)?,
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
            // SAFETY: renameat between our own dir fds with valid C strings.
            let rc = unsafe {
                libc::renameat(
                    self.staging_dir.as_raw_fd(),
                    from.as_ptr(),
                    self.objects_dir.as_raw_fd(),
                    to.as_ptr(),
                )
            };
            if rc != 0 {
                let dest = self.object_path(&checksum);
                return Err(os_err(format!("move object into {}", dest.display())));
            }
        }
        self.published = true;
        let _ = std::fs::remove_dir(&self.staging);
        Ok(())
    }

    /// `CHECKSUM.file`, relative to the staging directory.
    fn staged_name(checksum: &str) -> CString {
        CString::new(format!("{checksum}.file")).expect("hex")
    }

    /// `XX/REST.file` for a checksum, relative to `objects/`.
    fn relative_path(checksum: &str) -> CString {
        CString::new(format!("{}/{}.file", &checksum[..2], &checksum[2..])).expect("hex")
    }

    /// The file type and size of what is stored under `checksum`, if anything.
    fn stored(&self, checksum: &str) -> Option<(libc::mode_t, u64)> {
        let rel = Self::relative_path(checksum);
        // SAFETY: fstatat into a stack buffer on our own dir fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::fstatat(
                self.objects_dir.as_raw_fd(),
                rel.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        (rc == 0).then_some((st.st_mode & libc::S_IFMT, st.st_size as u64))
    }

    fn object_path(&self, checksum: &str) -> PathBuf {
        self.objects
            .join(OsStr::from_bytes(Self::relative_path(checksum).as_bytes()))
    }

    fn ensure_prefix_dir(&self, checksum: &str) -> Result<()> {
        let prefix = CString::new(&checksum[..2]).expect("hex");
        // SAFETY: mkdirat on our own dir fd with a valid C string.
        if unsafe { libc::mkdirat(self.objects_dir.as_raw_fd(), prefix.as_ptr(), 0o755) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::AlreadyExists {
                let dir = self.objects.join(&checksum[..2]);
                return Err(Error::io(format!("create {}", dir.display()), err));
            }
        }
        Ok(())
    }

    /// Writes a regular file object of `size` bytes read from `content`; returns its
    /// checksum. The content is hashed as it is written.
    pub fn regular(&mut self, meta: &Meta, size: u64, content: &mut impl Read) -> Result<String> {
        // SAFETY: openat on our own dir fd; the fd is owned right after.
        let fd = unsafe {
            libc::openat(
                self.tmp_dir.as_raw_fd(),
                c".".as_ptr(),
                libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(os_err(format!(
                "create a temporary file in {}",
                self.tmp.display()
            )));
        }
        // SAFETY: fd was just returned by openat and is not owned elsewhere.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
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
            Some((libc::S_IFREG, len)) if len == size => {}
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
        if matches!(self.stored(&checksum), Some((libc::S_IFLNK, _))) {
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
        let c = cstr(&tmp)?;
        // SAFETY: valid C string; lchown does not follow the link.
        if unsafe { libc::lchown(c.as_ptr(), meta.uid, meta.gid) } != 0 {
            return Err(os_err(format!("chown {}", tmp.display())));
        }
        set_xattrs(meta, &tmp.display().to_string(), |name, value| {
            // SAFETY: valid C strings, pointer and length.
            unsafe { libc::lsetxattr(c.as_ptr(), name, value.as_ptr().cast(), value.len(), 0) }
        })?;
        self.staged.push(checksum.clone());
        Ok(checksum)
    }
}

impl ObjectWriter {
    /// Gives the anonymous file its owner, mode, xattrs and mtime 0, and links it into the
    /// staging directory.
    fn link_regular(&mut self, file: &File, meta: &Meta, checksum: &str) -> Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: syscalls on an fd we own; chown first, as it clears set-id bits.
        unsafe {
            if libc::fchown(fd, meta.uid, meta.gid) != 0 {
                return Err(os_err("chown object"));
            }
            if libc::fchmod(fd, meta.mode & 0o7777) != 0 {
                return Err(os_err("chmod object"));
            }
        }
        set_xattrs(meta, "object", |name, value| {
            // SAFETY: our fd, a valid C string, pointer and length.
            unsafe { libc::fsetxattr(fd, name, value.as_ptr().cast(), value.len(), 0) }
        })?;
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: two valid timespecs.
        if unsafe { libc::futimens(fd, [zero, zero].as_ptr()) } != 0 {
            return Err(os_err("set object mtime"));
        }
        let name = Self::staged_name(checksum);
        // SAFETY: AT_EMPTY_PATH links the anonymous file itself (root has the capability
        // it needs); both fds and strings are valid.
        let rc = unsafe {
            libc::linkat(
                fd,
                c"".as_ptr(),
                self.staging_dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // The layer holds the same content twice: staged already, same bytes.
            if err.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(Error::io(
                    format!("link object into {}", self.staging.display()),
                    err,
                ));
            }
            return Ok(());
        }
        self.staged.push(checksum.to_string());
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
        let free =
            rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
        if free {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Applies `meta`'s xattrs with `set(name, value)` (an `*setxattr` call returning 0 or -1).
fn set_xattrs(
    meta: &Meta,
    what: &str,
    set: impl Fn(*const libc::c_char, &[u8]) -> libc::c_int,
) -> Result<()> {
    for (name, value) in &meta.xattrs {
        let n = CString::new(name.clone())
            .map_err(|_| Error::WrongState("xattr name with NUL".into()))?;
        if set(n.as_ptr(), value) != 0 {
            return Err(os_err(format!("set xattr on {what}")));
        }
    }
    Ok(())
}

/// Flushes the objects written so far to disk before a commit refers to them.
pub fn sync(repo: &Path) -> Result<()> {
    let dir = File::open(repo).map_err(|e| Error::io(format!("open {}", repo.display()), e))?;
    // SAFETY: syncfs on an fd we own.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(os_err("sync the repository's filesystem"));
    }
    Ok(())
}
