//! The `/etc` 3-way merge of a finalization, done in the new deployment's own checkout: what
//! the administrator changed in the booted deployment's `/etc`, against its image default
//! (`usr/etc`), is applied to the new deployment's `/etc`, which holds the new image's
//! default. This is what ostree's finalizer does (`merge_configuration_from`, private to
//! libostree); the alternative, deploying the commit again, checks out the whole tree twice.
//!
//! The rules are ostree's:
//! - a change is an entry whose type, content, mode or owner differs (xattrs are copied but
//!   not compared: SELinux labels differ between `usr/etc` and `etc`);
//! - removed entries are removed from the new `/etc`;
//! - changed and added entries are copied with mode, owner, xattrs and modification time,
//!   replacing what the new default has there; their parent directories are created as the
//!   administrator's are, and existing ones take the administrator's attributes;
//! - a directory is never replaced by a file or the other way round silently: the merge
//!   fails (ostree: "Modified config file newly defaults to directory").
//! - special files (FIFOs, sockets, devices) are left out, as ostree does.

use crate::error::{Error, Result};
use crate::fsutil::{copy_attributes, copy_tree_missing};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Paths relative to `/etc`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub modified: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub added: Vec<PathBuf>,
}

/// Merges the changes made in `merge_root`'s `etc` (against its `usr/etc`) into
/// `new_root`'s `etc`. Both are deployment directories.
pub fn merge(merge_root: &Path, new_root: &Path) -> Result<Changes> {
    let current = merge_root.join("etc");
    let changes = diff(&merge_root.join("usr/etc"), &current)?;
    apply(&changes, &current, &new_root.join("etc"))?;
    Ok(changes)
}

/// What changed from `orig` (an image's default) to `current` (as the administrator left it).
pub fn diff(orig: &Path, current: &Path) -> Result<Changes> {
    let mut changes = Changes::default();
    diff_dir(orig, current, Path::new(""), &mut changes)?;
    Ok(changes)
}

fn diff_dir(orig: &Path, current: &Path, rel: &Path, changes: &mut Changes) -> Result<()> {
    let in_orig = names(&orig.join(rel))?;
    let in_current = names(&current.join(rel))?;
    for name in &in_orig {
        let path = rel.join(name);
        let a = lstat(&orig.join(&path))?;
        let Some(b) = lstat_if_exists(&current.join(&path))? else {
            changes.removed.push(path);
            continue;
        };
        if a.file_type() != b.file_type() {
            changes.modified.push(path);
            continue;
        }
        if differs(&orig.join(&path), &a, &current.join(&path), &b)? {
            changes.modified.push(path.clone());
        }
        if a.is_dir() {
            diff_dir(orig, current, &path, changes)?;
        }
    }
    for name in in_current.difference(&in_orig) {
        let path = rel.join(name);
        if lstat(&current.join(&path))?.is_dir() {
            // Each entry too, as ostree lists them: the new default may have the directory.
            changes.added.push(path.clone());
            add_all(current, &path, changes)?;
        } else {
            changes.added.push(path);
        }
    }
    Ok(())
}

fn add_all(current: &Path, rel: &Path, changes: &mut Changes) -> Result<()> {
    for name in names(&current.join(rel))? {
        let path = rel.join(name);
        let is_dir = lstat(&current.join(&path))?.is_dir();
        changes.added.push(path.clone());
        if is_dir {
            add_all(current, &path, changes)?;
        }
    }
    Ok(())
}

/// Same type assumed. Content for files, target for links, and mode and owner for all.
fn differs(a_path: &Path, a: &Metadata, b_path: &Path, b: &Metadata) -> Result<bool> {
    if a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() {
        return Ok(true);
    }
    if a.file_type().is_symlink() {
        return Ok(read_link(a_path)? != read_link(b_path)?);
    }
    if a.is_file() {
        return Ok(a.len() != b.len() || !same_content(a_path, b_path)?);
    }
    Ok(false)
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba, a)?;
        let nb = read_full(&mut fb, &mut bb, b)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        }
    }
    Ok(n)
}

/// Applies `changes`, read from `current`, to `new`.
pub fn apply(changes: &Changes, current: &Path, new: &Path) -> Result<()> {
    for rel in &changes.removed {
        remove_any(&new.join(rel))?;
    }
    // Directories copied whole: their entries, also listed, are already there.
    let mut copied: Vec<&Path> = Vec::new();
    for rel in changes.modified.iter().chain(&changes.added) {
        if copied.iter().any(|root| rel.starts_with(root)) {
            continue;
        }
        if copy_change(current, new, rel)? {
            copied.push(rel);
        }
    }
    Ok(())
}

/// Copies one changed entry; returns whether it copied a whole directory.
fn copy_change(current: &Path, new: &Path, rel: &Path) -> Result<bool> {
    let src = current.join(rel);
    let meta = lstat(&src)?;
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dirs(current, new, parent)?;
    }
    let dst = new.join(rel);
    match lstat_if_exists(&dst)? {
        Some(existing) if existing.is_dir() => {
            if meta.is_dir() {
                // Its entries that changed are merged one by one.
                return Ok(false);
            }
            return Err(conflict(
                rel,
                "the new default is a directory, the local one is not",
            ));
        }
        Some(_) => fs::remove_file(&dst).map_err(|e| io(&dst, "remove", e))?,
        None => {}
    }
    copy_tree_missing(&src, &dst)?;
    Ok(meta.is_dir())
}

/// Creates the directories leading to `rel` in `new` as they are in `current`.
fn ensure_dirs(current: &Path, new: &Path, rel: &Path) -> Result<()> {
    let mut prefix = PathBuf::new();
    for part in rel.components() {
        prefix.push(part);
        let (src, dst) = (current.join(&prefix), new.join(&prefix));
        let meta = lstat(&src)?;
        match lstat_if_exists(&dst)? {
            Some(m) if m.is_dir() => {}
            Some(_) => return Err(conflict(&prefix, "the new default is not a directory")),
            None => fs::DirBuilder::new()
                .create(&dst)
                .map_err(|e| io(&dst, "create", e))?,
        }
        copy_attributes(&src, &meta, &dst)?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match lstat_if_exists(path)? {
        None => return Ok(()),
        Some(m) if m.is_dir() => fs::remove_dir_all(path),
        Some(_) => fs::remove_file(path),
    };
    result.map_err(|e| io(path, "remove", e))
}

fn names(dir: &Path) -> Result<BTreeSet<OsString>> {
    fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e| io(dir, "list", e))
}

fn lstat(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).map_err(|e| io(path, "stat", e))
}

fn lstat_if_exists(path: &Path) -> Result<Option<Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, "stat", e)),
    }
}

fn read_link(path: &Path) -> Result<PathBuf> {
    fs::read_link(path).map_err(|e| io(path, "read the link", e))
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("/etc merge: {what} {}", path.display()), e)
}

fn conflict(rel: &Path, why: &str) -> Error {
    Error::WrongState(format!(
        "/etc merge: cannot carry the local /etc/{} over: {why}",
        rel.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// An image's default /etc: `text` in its files (chmodded.conf is the same in both).
    fn image_etc(etc: &Path, text: &str, kept: &str) {
        for name in ["edited.conf", "removed.conf", "untouched.conf"] {
            write(&etc.join(name), text);
        }
        write(&etc.join("chmodded.conf"), "v1 default\n");
        write(&etc.join("dir/kept.conf"), kept);
        symlink("edited.conf", etc.join("link")).unwrap();
    }

    /// A booted deployment (image default v1 in usr/etc, the admin's /etc in etc) and a new
    /// one whose etc is the v2 default.
    fn deployments(dir: &Path) -> (PathBuf, PathBuf) {
        let (old, new) = (dir.join("old"), dir.join("new"));
        image_etc(&old.join("usr/etc"), "v1 default\n", "v1\n");
        image_etc(&old.join("etc"), "v1 default\n", "v1\n");
        let etc = old.join("etc");
        write(&etc.join("edited.conf"), "local edit\n");
        fs::remove_file(etc.join("removed.conf")).unwrap();
        chmod(&etc.join("chmodded.conf"), 0o600);
        write(&etc.join("added/sub/new.conf"), "local addition\n");
        chmod(&etc.join("added/sub"), 0o750);
        write(&etc.join("dir/local.conf"), "local\n");
        fs::remove_file(etc.join("link")).unwrap();
        symlink("untouched.conf", etc.join("link")).unwrap();

        image_etc(&new.join("etc"), "v2 default\n", "v2\n");
        write(&new.join("etc/only-in-v2.conf"), "v2\n");
        (old, new)
    }

    #[test]
    fn diff_finds_what_the_administrator_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, _) = deployments(tmp.path());
        let c = diff(&old.join("usr/etc"), &old.join("etc")).unwrap();
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            c.modified,
            vec![p("chmodded.conf"), p("edited.conf"), p("link")]
        );
        assert_eq!(c.removed, vec![p("removed.conf")]);
        assert_eq!(
            c.added,
            vec![
                p("dir/local.conf"),
                p("added"),
                p("added/sub"),
                p("added/sub/new.conf")
            ]
        );
    }

    #[test]
    fn merge_carries_local_changes_onto_the_new_default() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = deployments(tmp.path());
        merge(&old, &new).unwrap();
        let etc = new.join("etc");
        let read = |s: &str| fs::read_to_string(etc.join(s)).unwrap();
        assert_eq!(read("edited.conf"), "local edit\n");
        assert!(!etc.join("removed.conf").exists());
        assert_eq!(
            read("untouched.conf"),
            "v2 default\n",
            "the new default wins"
        );
        assert_eq!(read("only-in-v2.conf"), "v2\n");
        assert_eq!(mode(&etc.join("chmodded.conf")), 0o600);
        assert_eq!(read("added/sub/new.conf"), "local addition\n");
        assert_eq!(mode(&etc.join("added/sub")), 0o750);
        assert_eq!(read("dir/kept.conf"), "v2\n");
        assert_eq!(read("dir/local.conf"), "local\n");
        assert_eq!(
            fs::read_link(etc.join("link")).unwrap(),
            Path::new("untouched.conf")
        );
        // Merging again changes nothing: the booted /etc is only read.
        merge(&old, &new).unwrap();
        assert_eq!(read("edited.conf"), "local edit\n");
        assert_eq!(
            fs::read_to_string(old.join("etc/edited.conf")).unwrap(),
            "local edit\n"
        );
    }

    #[test]
    fn owners_come_along() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = deployments(tmp.path());
        match std::os::unix::fs::lchown(old.join("etc/untouched.conf"), Some(1234), Some(4321)) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                eprintln!("skipped: changing owners needs root");
                return;
            }
            other => other.unwrap(),
        }
        merge(&old, &new).unwrap();
        let m = fs::metadata(new.join("etc/untouched.conf")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
        assert_eq!(
            fs::read_to_string(new.join("etc/untouched.conf")).unwrap(),
            "v1 default\n",
            "a change of owner is a change: the administrator's file is kept"
        );
    }

    #[test]
    fn a_file_where_the_new_default_has_a_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = deployments(tmp.path());
        fs::remove_file(new.join("etc/edited.conf")).unwrap();
        write(&new.join("etc/edited.conf/part.conf"), "v2\n");
        let err = merge(&old, &new).unwrap_err().to_string();
        assert!(
            err.contains("/etc/edited.conf") && err.contains("directory"),
            "{err}"
        );
    }
}
