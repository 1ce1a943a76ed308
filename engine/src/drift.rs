//! Drift: how a deployment's `/usr` differs from the ostree commit it was checked out from,
//! and whether the repository's objects behind it are intact (`ostree fsck` of the commit).
//!
//! Every entry of the commit's `/usr` is compared with what is on disk: type, mode, owner,
//! symlink target, extended attributes and content (ostree's own content checksum, so a file
//! hardlinked to a damaged object counts as changed too). Entries on disk that the commit does
//! not have are added. Where a deployment is unlocked, the disk is its writable overlay.

use crate::deployments as deps;
use crate::error::{Context as _, Error, Result};
use crate::progress::{Cancel, Phase, Progress, ProgressFn};
use ostree::gio;
use ostree::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const RECORD: &str = "ostree/berth/drift.json";

/// What differs on one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aspect {
    Type,
    Content,
    Mode,
    Owner,
    Xattrs,
    SymlinkTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub what: Vec<Aspect>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptObject {
    pub object: String,
    pub detail: String,
}

/// The result of checking one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub stateroot: String,
    pub checksum: String,
    pub deploy_serial: i32,
    /// Seconds since the epoch.
    pub checked_at: u64,
    /// The directory that was compared (the live `/usr` of a booted deployment).
    pub root: String,
    pub entries_checked: u64,
    pub changed: Vec<Change>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub corrupt_objects: Vec<CorruptObject>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.corrupt_objects.is_empty()
    }

    pub fn summary(&self) -> DriftSummary {
        DriftSummary {
            checked_at: self.checked_at,
            clean: self.is_clean(),
            changed: self.changed.len(),
            added: self.added.len(),
            removed: self.removed.len(),
            corrupt_objects: self.corrupt_objects.len(),
        }
    }
}

/// What status shows of the last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftSummary {
    pub checked_at: u64,
    pub clean: bool,
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
    pub corrupt_objects: usize,
}

impl DriftSummary {
    pub fn text(&self) -> String {
        if self.clean {
            return "clean".into();
        }
        format!(
            "{} changed, {} added, {} removed, {} corrupt objects",
            self.changed, self.added, self.removed, self.corrupt_objects
        )
    }
}

/// One entry of the commit's tree, as the commit has it.
struct Expected {
    /// Relative to `/usr`, without a leading slash ("" is `/usr` itself).
    rel: PathBuf,
    kind: gio::FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    /// The content object of a file or symlink.
    object: Option<String>,
}

const ATTRS: &str = "standard::name,standard::type,unix::mode,unix::uid,unix::gid";

/// Checks deployment `d` (its live `/usr` when it is the running system's booted one).
pub fn check(
    sysroot: &ostree::Sysroot,
    d: &ostree::Deployment,
    progress: &ProgressFn,
    cancel: &Cancel,
) -> Result<DriftReport> {
    let repo = sysroot.repo();
    let usr_dir = usr_of(sysroot, d);
    let (root, _) = repo
        .read_commit(&d.csum(), gio::Cancellable::NONE)
        .ctx(|| format!("read commit {}", d.csum()))?;
    let usr = root.child("usr");
    let mut expected = Vec::new();
    list_commit(&usr, PathBuf::new(), &mut expected, cancel)?;
    let objects: BTreeSet<String> = expected.iter().filter_map(|e| e.object.clone()).collect();
    let total = (expected.len() + objects.len()) as u64;
    // Entries and objects are counted as "layers": the bytes fields mean bytes to clients.
    let report = |done: u64, message: &str| {
        progress(&Progress {
            phase: Phase::Verifying,
            bytes_done: 0,
            bytes_total: 0,
            layers_done: done as usize,
            layers_total: total as usize,
            message: message.into(),
        })
    };

    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let known: BTreeSet<&Path> = expected.iter().map(|e| e.rel.as_path()).collect();
    let mut retyped = BTreeSet::new();
    for (i, e) in expected.iter().enumerate() {
        if i % 256 == 0 {
            cancel.check()?;
            report(i as u64, &format!("comparing {}", usr_dir.display()));
        }
        // Below a path that changed its type, the disk has nothing of the commit's tree.
        if e.rel.ancestors().skip(1).any(|a| retyped.contains(a)) {
            continue;
        }
        let disk = usr_dir.join(&e.rel);
        let meta = match std::fs::symlink_metadata(&disk) {
            Ok(m) => m,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                removed.push(shown(&e.rel));
                continue;
            }
            Err(err) => return Err(Error::io(format!("stat {}", disk.display()), err)),
        };
        let what = compare(&repo, e, &disk, &meta)?;
        if what.contains(&Aspect::Type) {
            retyped.insert(e.rel.clone());
        }
        if !what.is_empty() {
            changed.push(Change {
                path: shown(&e.rel),
                what,
            });
        }
    }
    // A removed directory's entries are all removed; say the directory once.
    removed = outermost(removed);

    let mut added = Vec::new();
    list_added(&usr_dir, Path::new(""), &known, &retyped, &mut added)?;

    let mut corrupt_objects = Vec::new();
    let base = expected.len() as u64;
    for (i, object) in objects.iter().enumerate() {
        if i % 256 == 0 {
            cancel.check()?;
            report(base + i as u64, "checking the repository's objects");
        }
        if let Err(e) = repo.fsck_object(ostree::ObjectType::File, object, gio::Cancellable::NONE) {
            corrupt_objects.push(CorruptObject {
                object: object.clone(),
                detail: e.message().to_string(),
            });
        }
    }
    report(total, "done");
    Ok(DriftReport {
        stateroot: d.osname().to_string(),
        checksum: d.csum().to_string(),
        deploy_serial: d.deployserial(),
        checked_at: now(),
        root: usr_dir.display().to_string(),
        entries_checked: expected.len() as u64,
        changed,
        added,
        removed,
        corrupt_objects,
    })
}

/// Where deployment `d`'s `/usr` is seen: the running system's `/usr` for its booted
/// deployment (an unlocked overlay is mounted there), else the deployment's checkout.
pub fn usr_of(sysroot: &ostree::Sysroot, d: &ostree::Deployment) -> PathBuf {
    let is_running = sysroot.booted_deployment().is_some_and(|b| b.equal(d));
    if is_running {
        PathBuf::from("/usr")
    } else {
        deps::deployment_dir(sysroot, d).join("usr")
    }
}

fn list_commit(
    dir: &gio::File,
    rel: PathBuf,
    out: &mut Vec<Expected>,
    cancel: &Cancel,
) -> Result<()> {
    let info = dir
        .query_info(
            ATTRS,
            gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("read the commit's /usr/{}", rel.display()))?;
    out.push(expected(&info, rel.clone(), None));
    cancel.check()?;
    let children = dir
        .enumerate_children(
            ATTRS,
            gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("list the commit's /usr/{}", rel.display()))?;
    while let Some(info) = children
        .next_file(gio::Cancellable::NONE)
        .ctx(|| format!("list the commit's /usr/{}", rel.display()))?
    {
        let child = dir.child(info.name());
        let child_rel = rel.join(info.name());
        if info.file_type() == gio::FileType::Directory {
            list_commit(&child, child_rel, out, cancel)?;
        } else {
            let object = child
                .downcast_ref::<ostree::RepoFile>()
                .map(|f| f.checksum().to_string());
            out.push(expected(&info, child_rel, object));
        }
    }
    Ok(())
}

fn expected(info: &gio::FileInfo, rel: PathBuf, object: Option<String>) -> Expected {
    Expected {
        rel,
        kind: info.file_type(),
        mode: info.attribute_uint32("unix::mode"),
        uid: info.attribute_uint32("unix::uid"),
        gid: info.attribute_uint32("unix::gid"),
        object,
    }
}

fn compare(
    repo: &ostree::Repo,
    e: &Expected,
    disk: &Path,
    meta: &std::fs::Metadata,
) -> Result<Vec<Aspect>> {
    let disk_kind = if meta.is_dir() {
        gio::FileType::Directory
    } else if meta.is_symlink() {
        gio::FileType::SymbolicLink
    } else if meta.is_file() {
        gio::FileType::Regular
    } else {
        gio::FileType::Special
    };
    if disk_kind != e.kind {
        return Ok(vec![Aspect::Type]);
    }
    let mut what = Vec::new();
    let owner_differs = meta.uid() != e.uid || meta.gid() != e.gid;
    // Symlinks' own modes mean nothing to ostree.
    let mode_differs = disk_kind != gio::FileType::SymbolicLink && meta.mode() != e.mode;
    let Some(object) = &e.object else {
        // A directory: its metadata only (its entries are checked one by one).
        if mode_differs {
            what.push(Aspect::Mode);
        }
        if owner_differs {
            what.push(Aspect::Owner);
        }
        return Ok(what);
    };
    let actual = ostree::checksum_file_at(
        rustix::fs::CWD.as_raw_fd(),
        disk,
        None,
        ostree::ObjectType::File,
        ostree::ChecksumFlags::NONE,
        gio::Cancellable::NONE,
    )
    .ctx(|| format!("checksum {}", disk.display()))?;
    if actual.as_str() == object {
        return Ok(what);
    }
    // The checksum covers everything; find out which parts differ.
    let (content, info, xattrs) = repo
        .load_file(object, gio::Cancellable::NONE)
        .ctx(|| format!("load object {object}"))?;
    if mode_differs {
        what.push(Aspect::Mode);
    }
    if owner_differs {
        what.push(Aspect::Owner);
    }
    if disk_kind == gio::FileType::SymbolicLink {
        let target = std::fs::read_link(disk).ctx(|| format!("read link {}", disk.display()))?;
        let want = info.symlink_target().unwrap_or_default();
        if target != want {
            what.push(Aspect::SymlinkTarget);
        }
    } else if let Some(content) = content {
        if !same_content(content, disk)? {
            what.push(Aspect::Content);
        }
    }
    if xattrs_of(disk)? != expected_xattrs(&xattrs) {
        what.push(Aspect::Xattrs);
    }
    if what.is_empty() {
        // Nothing Berth can name differs, yet ostree's checksum does.
        what.push(Aspect::Content);
    }
    what.sort();
    Ok(what)
}

fn same_content(expected: gio::InputStream, disk: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(disk).ctx(|| format!("open {}", disk.display()))?;
    let mut want = expected.into_read();
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut want, &mut a).ctx(|| "read the commit's object".into())?;
        let m = read_full(&mut file, &mut b).ctx(|| format!("read {}", disk.display()))?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

fn xattrs_of(path: &Path) -> Result<Xattrs> {
    let ctx = || format!("read extended attributes of {}", path.display());
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(path, &mut names).map_err(|e| Error::io(ctx(), e.into()))?;
    let mut out = Xattrs::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).expect("split at NUL");
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value)
            .map_err(|e| Error::io(ctx(), e.into()))?;
        value.truncate(len);
        out.insert(name.to_vec(), value);
    }
    Ok(out)
}

/// ostree's `a(ayay)`, names NUL-terminated.
fn expected_xattrs(v: &ostree::glib::Variant) -> Xattrs {
    let mut out = Xattrs::new();
    for pair in v.iter() {
        let name = pair
            .child_value(0)
            .fixed_array::<u8>()
            .unwrap_or_default()
            .to_vec();
        let value = pair
            .child_value(1)
            .fixed_array::<u8>()
            .unwrap_or_default()
            .to_vec();
        let name = name.strip_suffix(&[0]).map(<[u8]>::to_vec).unwrap_or(name);
        out.insert(name, value);
    }
    out
}

fn list_added(
    usr: &Path,
    rel: &Path,
    known: &BTreeSet<&Path>,
    retyped: &BTreeSet<PathBuf>,
    out: &mut Vec<String>,
) -> Result<()> {
    let dir = usr.join(rel);
    let entries = std::fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))?;
    let mut names: Vec<_> = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .ctx(|| format!("list {}", dir.display()))?;
    names.sort();
    for name in names {
        let child = rel.join(&name);
        if !known.contains(child.as_path()) {
            // A new directory is one addition, with everything in it.
            out.push(shown(&child));
            continue;
        }
        let is_dir = std::fs::symlink_metadata(usr.join(&child)).is_ok_and(|m| m.is_dir());
        if is_dir && !retyped.contains(&child) {
            list_added(usr, &child, known, retyped, out)?;
        }
    }
    Ok(())
}

fn outermost(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let inside = out.last().is_some_and(|o| {
            p.strip_prefix(o.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        if !inside {
            out.push(p);
        }
    }
    out
}

fn shown(rel: &Path) -> String {
    let p = Path::new("/usr").join(rel);
    crate::text::outside(&p.to_string_lossy())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The last report of each deployment, as berthd recorded it.
pub fn load_records(sysroot_path: &Path) -> BTreeMap<String, DriftReport> {
    std::fs::read(sysroot_path.join(RECORD))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Keeps `report` as its deployment's last one; records of deployments that are gone go.
pub fn record(sysroot: &ostree::Sysroot, report: &DriftReport) -> Result<()> {
    let path = deps::sysroot_path(sysroot);
    let mut all = load_records(&path);
    let live: BTreeSet<String> = sysroot.deployments().iter().map(key).collect();
    all.retain(|k, _| live.contains(k));
    all.insert(report_key(report), report.clone());
    let json = serde_json::to_vec_pretty(&all).expect("serializable");
    crate::fsutil::write_atomic(&path.join(RECORD), &json)
}

pub fn key(d: &ostree::Deployment) -> String {
    format!("{}.{}", d.csum(), d.deployserial())
}

fn report_key(r: &DriftReport) -> String {
    format!("{}.{}", r.checksum, r.deploy_serial)
}
