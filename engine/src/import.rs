//! Importing layers into ostree and assembling the image commit.
//!
//! Each layer becomes its own commit (`berth/layer/<diff-id>`), so an image that shares layers
//! with one already imported only imports what is new. The image commit
//! (`berth/image/<manifest-digest>`) is then assembled from the layer commits by checksum
//! alone: whiteouts and opaque directories are applied, nothing is decompressed again.

use crate::error::{Context as _, Error, Result};
use crate::layer;
use crate::objects::{self, Meta, ObjectWriter};
use crate::oci::Compression;
use crate::progress::Cancel;
use ostree::gio;
use ostree::glib;
use ostree::prelude::*;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

pub const LAYER_REF_PREFIX: &str = "berth/layer/";
pub const IMAGE_REF_PREFIX: &str = "berth/image/";

/// Where an image's `/var` content is kept; it is copied into a stateroot's `/var`
/// at install and factory reset (as bootc unpacks `/var` only at install time).
pub const FACTORY_VAR: &str = "usr/share/factory/var";

pub fn layer_ref(diff_id: &str) -> String {
    format!(
        "{LAYER_REF_PREFIX}{}",
        diff_id.trim_start_matches("sha256:")
    )
}

pub fn image_ref(manifest_digest: &str) -> String {
    format!(
        "{IMAGE_REF_PREFIX}{}",
        manifest_digest.trim_start_matches("sha256:")
    )
}

pub fn open_repo(path: &Path) -> Result<ostree::Repo> {
    let repo = ostree::Repo::new(&gio::File::for_path(path));
    repo.open(gio::Cancellable::NONE)
        .ctx(|| format!("open ostree repo {}", path.display()))?;
    Ok(repo)
}

pub fn resolve(repo: &ostree::Repo, refname: &str) -> Result<Option<String>> {
    Ok(repo
        .resolve_rev(refname, true)
        .ctx(|| format!("resolve {refname}"))?
        .map(|s| s.to_string()))
}

/// Aborts the repo transaction unless it was committed.
struct Transaction<'a> {
    repo: &'a ostree::Repo,
    done: bool,
}

impl<'a> Transaction<'a> {
    fn begin(repo: &'a ostree::Repo) -> Result<Self> {
        // Layers import side by side, each in a transaction of its own. libostree 2022.7
        // looks through tmp/ for a staging directory to reuse, and fails with NotFound when
        // another transaction removes its own between the listing and the open: a race,
        // not a fault, and nothing was written yet. Try again.
        let mut attempt = 0;
        loop {
            match repo.prepare_transaction(gio::Cancellable::NONE) {
                Ok(_) => return Ok(Transaction { repo, done: false }),
                Err(e) if e.matches(gio::IOErrorEnum::NotFound) && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!("a staging directory vanished while ostree chose one: {e}");
                }
                Err(e) => return Err(Error::ostree("prepare ostree transaction", e)),
            }
        }
    }
    fn commit(mut self) -> Result<()> {
        self.done = true;
        self.repo
            .commit_transaction(gio::Cancellable::NONE)
            .ctx(|| "commit ostree transaction".into())?;
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.repo.abort_transaction(gio::Cancellable::NONE);
        }
    }
}

/// Imports one layer blob as a commit; returns its checksum. Idempotent per diff-id.
pub fn import_layer(
    repo_path: &Path,
    blob: impl Read + Send,
    compression: Compression,
    diff_id: &str,
    limits: &crate::Limits,
    cancel: &Cancel,
) -> Result<String> {
    let repo = open_repo(repo_path)?;
    let refname = layer_ref(diff_id);
    if let Some(c) = resolve(&repo, &refname)? {
        return Ok(c);
    }
    if repo.mode() != ostree::RepoMode::Bare {
        return Err(Error::Unsupported(format!(
            "the ostree repo at {} is not in bare mode",
            repo_path.display()
        )));
    }
    let txn = Transaction::begin(&repo)?;
    let mut tree = TreeBuilder::new(&repo, ObjectWriter::new(repo_path)?, repo_path);
    let scan = layer::read_layer(blob, compression, diff_id, limits, cancel, |entry, path| {
        tree.add(entry, path)
    })?;
    cancel.check()?;
    tree.finish_root()?;
    // The layer's digest is verified: its objects may join the repository.
    let TreeBuilder { objects, root, .. } = tree;
    objects.publish()?;
    objects::sync(repo_path)?;
    let root = write_root(&repo, &root)?;
    txn.commit()?;
    let meta = glib::VariantDict::new(None);
    meta.insert("berth.diff-id", diff_id);
    meta.insert("berth.whiteouts", &scan.whiteouts);
    meta.insert("berth.opaque", &scan.opaque_dirs);
    let csum = write_commit_for(&repo, &root, &format!("layer {diff_id}"), &meta, &refname)?;
    tracing::debug!(
        diff_id,
        entries = scan.entries,
        bytes = scan.uncompressed_bytes,
        "layer imported"
    );
    Ok(csum.to_string())
}

/// Builds one layer's tree from checked tar entries: content objects are written directly,
/// directories become dirmeta objects (written through libostree, they are few and small).
struct TreeBuilder<'r> {
    repo: &'r ostree::Repo,
    objects: ObjectWriter,
    root: ostree::MutableTree,
    dirmetas: HashMap<Meta, String>,
    /// Regular files of this layer by path, for hardlinks.
    files: HashMap<String, String>,
    /// Whether the layer had an entry for its root directory.
    has_root: bool,
    /// Stops the import before the repository's filesystem is full.
    space: crate::space::Watchdog,
}

const DEFAULT_DIR: Meta = Meta {
    uid: 0,
    gid: 0,
    mode: libc::S_IFDIR | 0o755,
    xattrs: Vec::new(),
};

impl<'r> TreeBuilder<'r> {
    fn new(repo: &'r ostree::Repo, objects: ObjectWriter, repo_path: &Path) -> Self {
        TreeBuilder {
            repo,
            objects,
            root: ostree::MutableTree::new(),
            dirmetas: HashMap::new(),
            files: HashMap::new(),
            has_root: false,
            space: crate::space::Watchdog::new(repo_path),
        }
    }

    fn dirmeta(&mut self, meta: &Meta) -> Result<String> {
        if let Some(c) = self.dirmetas.get(meta) {
            return Ok(c.clone());
        }
        let csum = self
            .repo
            .write_metadata(
                ostree::ObjectType::DirMeta,
                None,
                &objects::dirmeta(meta),
                gio::Cancellable::NONE,
            )
            .ctx(|| "write directory metadata".into())?;
        let csum = csum.to_hex();
        self.dirmetas.insert(meta.clone(), csum.clone());
        Ok(csum)
    }

    /// The directory at `path`, created (root-owned, 0755) with its parents if missing.
    fn dir(&mut self, path: &str) -> Result<ostree::MutableTree> {
        let mut dir = self.root.clone();
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let existed = dir.lookup(name).is_ok();
            let child = dir
                .ensure_dir(name)
                .ctx(|| format!("create directory /{path}"))?;
            if !existed {
                child.set_metadata_checksum(&self.dirmeta(&DEFAULT_DIR)?);
            }
            dir = child;
        }
        Ok(dir)
    }

    fn add(&mut self, entry: &mut tar::Entry<'_, impl Read>, path: &str) -> Result<()> {
        let header = entry.header();
        let (uid, gid) = (
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        let perms = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = header.entry_type();
        self.space
            .about_to_write(if kind.is_file() { entry.size() } else { 0 })?;
        let xattrs = pax_xattrs(entry)?;
        let meta = |ftype: u32| Meta {
            uid,
            gid,
            mode: ftype | perms,
            xattrs: xattrs.clone(),
        };
        let (parent_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        use tar::EntryType as T;
        if kind == T::Directory {
            let csum = self.dirmeta(&meta(libc::S_IFDIR))?;
            self.has_root |= path.is_empty();
            self.dir(path)?.set_metadata_checksum(&csum);
            return Ok(());
        }
        let checksum = match kind {
            T::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = String::from_utf8_lossy(&target).into_owned();
                let mut m = meta(libc::S_IFLNK);
                m.mode = libc::S_IFLNK | 0o777;
                self.objects.symlink(&m, &target)?
            }
            T::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = String::from_utf8_lossy(&target);
                let target = target.trim_start_matches("./").trim_end_matches('/');
                self.files.get(target).cloned().ok_or_else(|| {
                    Error::WrongState(format!("hardlink target /{target} was not imported"))
                })?
            }
            _ => {
                let size = entry.size();
                let csum = self.objects.regular(&meta(libc::S_IFREG), size, entry)?;
                self.files.insert(path.to_string(), csum.clone());
                csum
            }
        };
        if kind == T::Link {
            self.files.insert(path.to_string(), checksum.clone());
        }
        self.dir(parent_path)?
            .replace_file(name, &checksum)
            .ctx(|| format!("add /{path}"))
    }

    /// A layer without a root entry gets a root-owned 0755 root, as parents do.
    fn finish_root(&mut self) -> Result<()> {
        if !self.has_root {
            let csum = self.dirmeta(&DEFAULT_DIR)?;
            self.root.set_metadata_checksum(&csum);
        }
        Ok(())
    }
}

/// Extended attributes carried as `SCHILY.xattr.NAME` pax records, sorted by name. Empty
/// values are dropped: ostree does not record them (its checksum of a file on disk skips
/// them), so keeping them would make objects that `ostree fsck` calls corrupt. Only the
/// names of [`allowed_xattr`] are kept; others are dropped with a warning.
fn pax_xattrs(entry: &mut tar::Entry<'_, impl Read>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(out);
    };
    for ext in exts.flatten() {
        if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
            if ext.value_bytes().is_empty() {
                continue;
            }
            if allowed_xattr(name) {
                out.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else {
                dropped.push(crate::text::outside(&String::from_utf8_lossy(name)));
            }
        }
    }
    if !dropped.is_empty() {
        let path = crate::text::outside(&String::from_utf8_lossy(&entry.path_bytes()));
        tracing::warn!(%path, ?dropped, "extended attributes not on Berth's allow-list: dropped");
    }
    out.sort();
    Ok(out)
}

/// The extended attributes an image may set, each for a reason:
/// - `security.capability`: file capabilities, what distributions give `ping` & co. instead of
///   a setuid bit;
/// - `security.selinux`: the SELinux labels the image was built with (ostree keeps them);
/// - `security.ima`, `security.evm`: IMA/EVM signatures and hashes, for appraised boots;
/// - `user.*`: attributes without privilege meaning (PaX flags, application metadata).
///
/// Dropped: ACLs (`system.posix_acl_*`, which could open a 0600 file to some uid behind its
/// mode bits), `trusted.*` (overlayfs and other privileged kernel users read them) and every
/// other `security.*` (LSM attributes Berth does not know the meaning of).
pub fn allowed_xattr(name: &[u8]) -> bool {
    matches!(
        name,
        b"security.capability" | b"security.selinux" | b"security.ima" | b"security.evm"
    ) || name.starts_with(b"user.")
}

fn write_root(repo: &ostree::Repo, mtree: &ostree::MutableTree) -> Result<ostree::RepoFile> {
    let root = repo
        .write_mtree(mtree, gio::Cancellable::NONE)
        .ctx(|| "write tree".into())?;
    root.downcast::<ostree::RepoFile>()
        .map_err(|_| Error::WrongState("write_mtree did not return a RepoFile".into()))
}

/// What the image commit records about its origin.
pub struct ImageMeta<'a> {
    pub image: &'a str,
    pub source_digest: &'a str,
    pub manifest_digest: &'a str,
    pub version: Option<&'a str>,
    pub created: Option<&'a str>,
    pub manifest_json: &'a [u8],
    pub config_json: &'a [u8],
}

/// Assembles the image commit from layer commits (lowest first); idempotent per manifest digest.
pub fn commit_image(
    repo: &ostree::Repo,
    layer_commits: &[String],
    meta: &ImageMeta,
) -> Result<String> {
    let refname = image_ref(meta.manifest_digest);
    if let Some(c) = resolve(repo, &refname)? {
        if stored_manifest_matches(repo, &c, meta.manifest_digest)? {
            return Ok(c);
        }
    }
    let txn = Transaction::begin(repo)?;
    let root = ostree::MutableTree::new();
    for commit in layer_commits {
        let (commit_v, _) = repo
            .load_commit(commit)
            .ctx(|| format!("load layer commit {commit}"))?;
        let md = glib::VariantDict::new(Some(&commit_v.child_value(0)));
        let opaque: Vec<String> = md.lookup("berth.opaque").ok().flatten().unwrap_or_default();
        let whiteouts: Vec<String> = md
            .lookup("berth.whiteouts")
            .ok()
            .flatten()
            .unwrap_or_default();
        for dir in &opaque {
            if let Some(t) = walk_dir(&root, dir)? {
                clear_dir(&t)?;
            }
        }
        for path in &whiteouts {
            remove_path(&root, path)?;
        }
        let contents = hex::encode(commit_v.child_value(6).data_as_bytes());
        let metadata = hex::encode(commit_v.child_value(7).data_as_bytes());
        overlay(repo, &root, &contents, &metadata)?;
    }
    to_ostree_layout(repo, &root)?;
    check_bootable(&root)?;
    let root_file = write_root(repo, &root)?;
    txn.commit()?;
    let md = glib::VariantDict::new(None);
    if let Some(v) = meta.version {
        md.insert("version", v);
    }
    md.insert("berth.image", meta.image);
    md.insert("berth.source-digest", meta.source_digest);
    md.insert("berth.manifest-digest", meta.manifest_digest);
    if let Some(c) = meta.created {
        md.insert("berth.created", c);
    }
    md.insert(
        "berth.manifest",
        std::str::from_utf8(meta.manifest_json).unwrap_or_default(),
    );
    md.insert(
        "berth.config",
        std::str::from_utf8(meta.config_json).unwrap_or_default(),
    );
    md.insert("berth.layers", layer_commits.to_vec());
    write_commit_for(
        repo,
        &root_file,
        &format!("image {}", meta.image),
        &md,
        &refname,
    )
}

/// Writes the commit object and its ref in a transaction of their own, after the tree's
/// transaction landed: libostree moves staged objects into place in no particular order, so a
/// kill mid-commit could otherwise leave a commit object whose dirtree never arrived.
fn write_commit_for(
    repo: &ostree::Repo,
    root: &ostree::RepoFile,
    subject: &str,
    meta: &glib::VariantDict,
    refname: &str,
) -> Result<String> {
    let txn = Transaction::begin(repo)?;
    let csum = repo
        .write_commit(
            None,
            Some(subject),
            None,
            Some(&meta.end()),
            root,
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("write commit ({subject})"))?;
    repo.transaction_set_ref(None, refname, Some(&csum));
    txn.commit()?;
    Ok(csum.to_string())
}

/// Lays a stored directory tree over `dst`: files replace, directories merge.
fn overlay(
    repo: &ostree::Repo,
    dst: &ostree::MutableTree,
    contents: &str,
    metadata: &str,
) -> Result<()> {
    dst.set_metadata_checksum(metadata);
    let (files, dirs) = read_dirtree(repo, contents)?;
    for (name, csum) in files {
        if let Ok((None, Some(_))) = dst.lookup(&name) {
            dst.remove(&name, true)
                .ctx(|| format!("replace directory {name}"))?;
        }
        dst.replace_file(&name, &csum)
            .ctx(|| format!("add file {name}"))?;
    }
    for (name, sub_contents, sub_meta) in dirs {
        match dst.lookup(&name) {
            Ok((None, Some(sub))) => overlay(repo, &sub, &sub_contents, &sub_meta)?,
            other => {
                if matches!(other, Ok((Some(_), _))) {
                    dst.remove(&name, true)
                        .ctx(|| format!("replace file {name}"))?;
                }
                let sub = dst
                    .ensure_dir(&name)
                    .ctx(|| format!("add directory {name}"))?;
                sub.fill_empty_from_dirtree(repo, &sub_contents, &sub_meta);
            }
        }
    }
    Ok(())
}

type DirTree = (Vec<(String, String)>, Vec<(String, String, String)>);

/// The entries of a dirtree object: files (name, checksum) and dirs (name, contents, meta).
fn read_dirtree(repo: &ostree::Repo, contents: &str) -> Result<DirTree> {
    let v = repo
        .load_variant(ostree::ObjectType::DirTree, contents)
        .ctx(|| format!("load dirtree {contents}"))?;
    let files_v = v.child_value(0);
    let dirs_v = v.child_value(1);
    let mut files = Vec::with_capacity(files_v.n_children());
    for i in 0..files_v.n_children() {
        let e = files_v.child_value(i);
        let name: String = e.child_value(0).get().unwrap_or_default();
        files.push((name, hex::encode(e.child_value(1).data_as_bytes())));
    }
    let mut dirs = Vec::with_capacity(dirs_v.n_children());
    for i in 0..dirs_v.n_children() {
        let e = dirs_v.child_value(i);
        let name: String = e.child_value(0).get().unwrap_or_default();
        dirs.push((
            name,
            hex::encode(e.child_value(1).data_as_bytes()),
            hex::encode(e.child_value(2).data_as_bytes()),
        ));
    }
    Ok((files, dirs))
}

fn walk_dir(root: &ostree::MutableTree, path: &str) -> Result<Option<ostree::MutableTree>> {
    let mut t = root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        match t.lookup(part) {
            Ok((None, Some(sub))) => t = sub,
            _ => return Ok(None),
        }
    }
    Ok(Some(t))
}

fn clear_dir(t: &ostree::MutableTree) -> Result<()> {
    let names: Vec<String> = t
        .copy_files()
        .into_keys()
        .chain(t.copy_subdirs().into_keys())
        .collect();
    for n in names {
        t.remove(&n, true).ctx(|| format!("clear {n}"))?;
    }
    Ok(())
}

fn remove_path(root: &ostree::MutableTree, path: &str) -> Result<()> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    };
    if let Some(parent) = walk_dir(root, dir)? {
        parent
            .remove(name, true)
            .ctx(|| format!("whiteout {path}"))?;
    }
    Ok(())
}

/// Converts what container tooling produces into ostree's layout: `/etc` becomes `/usr/etc`
/// (merged over an existing one), `/var` content moves to [`FACTORY_VAR`] and `/var` is left
/// empty, since ostree deployments share one `/var` per stateroot.
fn to_ostree_layout(repo: &ostree::Repo, root: &ostree::MutableTree) -> Result<()> {
    let usr = match root.lookup("usr") {
        Ok((None, Some(u))) => u,
        _ => return Err(Error::NotBootable("the image has no /usr directory".into())),
    };
    move_dir(repo, root, "etc", &usr, "etc")?;
    let var_meta = match root.lookup("var") {
        Ok((None, Some(v))) => Some(v.metadata_checksum().to_string()),
        _ => None,
    };
    if var_meta.is_some() {
        let share = ensure_dir(&usr, "share")?;
        let factory = ensure_dir(&share, "factory")?;
        move_dir(repo, root, "var", &factory, "var")?;
    }
    let var = ensure_dir(root, "var")?;
    if let Some(m) = var_meta {
        var.set_metadata_checksum(&m);
    }
    ensure_dir(&usr, "etc")?;
    Ok(())
}

/// A subdirectory, created with its parent's owner and mode if missing.
fn ensure_dir(parent: &ostree::MutableTree, name: &str) -> Result<ostree::MutableTree> {
    let existed = parent.lookup(name).is_ok();
    let dir = parent
        .ensure_dir(name)
        .ctx(|| format!("create directory {name}"))?;
    if !existed {
        dir.set_metadata_checksum(&parent.metadata_checksum());
    }
    Ok(dir)
}

/// Moves `src_parent/src_name` (a directory) onto `dst_parent/dst_name`, merging.
fn move_dir(
    repo: &ostree::Repo,
    src_parent: &ostree::MutableTree,
    src_name: &str,
    dst_parent: &ostree::MutableTree,
    dst_name: &str,
) -> Result<()> {
    let src = match src_parent.lookup(src_name) {
        Ok((None, Some(s))) => s,
        Ok((Some(_), None)) => {
            return Err(Error::NotBootable(format!(
                "/{src_name} is not a directory in the image"
            )));
        }
        _ => return Ok(()),
    };
    let written = write_root(repo, &src)?;
    let contents = written
        .tree_get_contents_checksum()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let metadata = written
        .tree_get_metadata_checksum()
        .map(|s| s.to_string())
        .unwrap_or_default();
    src_parent
        .remove(src_name, false)
        .ctx(|| format!("move /{src_name}"))?;
    let dst = match dst_parent.lookup(dst_name) {
        Ok((None, Some(d))) => d,
        Ok((Some(_), None)) => {
            return Err(Error::NotBootable(format!(
                "{dst_name} is a file where a directory belongs"
            )))
        }
        _ => ensure_dir(dst_parent, dst_name)?,
    };
    overlay(repo, &dst, &contents, &metadata)
}

/// A bootable image ships a kernel at `/usr/lib/modules/<version>/vmlinuz`.
fn check_bootable(root: &ostree::MutableTree) -> Result<()> {
    let modules = walk_dir(root, "usr/lib/modules")?;
    let has_kernel = modules.is_some_and(|m| {
        m.copy_subdirs()
            .values()
            .any(|k| k.copy_files().contains_key("vmlinuz"))
    });
    if has_kernel {
        Ok(())
    } else {
        Err(Error::NotBootable(
            "no kernel at /usr/lib/modules/*/vmlinuz".into(),
        ))
    }
}

/// Whether the image commit records a manifest that hashes to `digest` (an image stored
/// under a digest it does not have, by a lying source, must not be reused).
pub fn stored_manifest_matches(repo: &ostree::Repo, commit: &str, digest: &str) -> Result<bool> {
    let md = commit_metadata(repo, commit)?;
    Ok(meta_str(&md, "berth.manifest")
        .is_some_and(|m| crate::oci::sha256_digest(m.as_bytes()) == digest))
}

/// The commit's metadata as a dictionary.
pub fn commit_metadata(repo: &ostree::Repo, commit: &str) -> Result<glib::VariantDict> {
    let (v, _) = repo
        .load_commit(commit)
        .ctx(|| format!("load commit {commit}"))?;
    Ok(glib::VariantDict::new(Some(&v.child_value(0))))
}

pub fn meta_str(md: &glib::VariantDict, key: &str) -> Option<String> {
    md.lookup::<String>(key).ok().flatten()
}
