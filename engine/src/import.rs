//! Importing layers into ostree and assembling the image commit.
//!
//! Each layer becomes its own commit (`berth/layer/<diff-id>`), so an image that shares layers
//! with one already imported only imports what is new. The image commit
//! (`berth/image/<manifest-digest>`) is then assembled from the layer commits by checksum
//! alone: whiteouts and opaque directories are applied, nothing is decompressed again.

use crate::error::{Context as _, Error, Result};
use crate::layer::{self, LayerScan};
use crate::oci::Compression;
use crate::progress::Cancel;
use ostree::gio;
use ostree::glib;
use ostree::prelude::*;
use std::os::fd::AsRawFd;
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
        repo.prepare_transaction(gio::Cancellable::NONE)
            .ctx(|| "prepare ostree transaction".into())?;
        Ok(Transaction { repo, done: false })
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
    blob: &Path,
    compression: Compression,
    diff_id: &str,
    cancel: &Cancel,
) -> Result<String> {
    let repo = open_repo(repo_path)?;
    let refname = layer_ref(diff_id);
    if let Some(c) = resolve(&repo, &refname)? {
        return Ok(c);
    }
    let txn = Transaction::begin(&repo)?;
    let mtree = ostree::MutableTree::new();
    let modifier = ostree::RepoCommitModifier::new(
        ostree::RepoCommitModifierFlags::NONE,
        Some(Box::new(|_repo, path: &str, _info: &gio::FileInfo| {
            let base = path.rsplit('/').next().unwrap_or(path);
            if layer::is_whiteout_name(base) {
                ostree::RepoCommitFilterResult::Skip
            } else {
                ostree::RepoCommitFilterResult::Allow
            }
        })),
    );
    let (reader, writer) = std::io::pipe().ctx(|| "create pipe".into())?;
    let (imported, scan): (_, Result<LayerScan>) = std::thread::scope(|s| {
        let scanner = s.spawn(|| layer::scan_layer(blob, compression, diff_id, writer, cancel));
        let r = repo.write_archive_to_mtree_from_fd(
            reader.as_raw_fd(),
            &mtree,
            Some(&modifier),
            true,
            gio::Cancellable::NONE,
        );
        drop(reader);
        let scan = scanner.join().unwrap_or_else(|_| {
            Err(Error::CorruptLayer {
                layer: diff_id.into(),
                detail: "scanner panicked".into(),
            })
        });
        (r, scan)
    });
    // The scanner's verdict is the precise one; libostree's error only counts if the stream was fine.
    let scan = scan?;
    imported.map_err(|e| Error::CorruptLayer {
        layer: diff_id.into(),
        detail: e.to_string(),
    })?;
    cancel.check()?;
    let root = write_root(&repo, &mtree)?;
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
        return Ok(c);
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
