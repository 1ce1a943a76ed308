//! Kernel arguments: what the booted deployment has, plus what the image ships in bootc's
//! `/usr/lib/bootc/kargs.d/*.toml` format (`kargs = [...]`, optional `match-architectures`).

use crate::error::{Context as _, Error, Result};
use ostree::gio;
use ostree::prelude::*;
use serde::Deserialize;

const KARGS_D: &str = "usr/lib/bootc/kargs.d";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KargsFile {
    kargs: Vec<String>,
    #[serde(default)]
    match_architectures: Option<Vec<String>>,
}

/// Parses one kargs.d file; `None` when it does not apply to this architecture.
fn parse(text: &str, name: &str) -> Result<Option<Vec<String>>> {
    let f: KargsFile =
        toml::from_str(text).map_err(|e| Error::BadManifest(format!("{KARGS_D}/{name}: {e}")))?;
    if let Some(archs) = &f.match_architectures {
        if !archs.iter().any(|a| a == std::env::consts::ARCH) {
            return Ok(None);
        }
    }
    Ok(Some(f.kargs))
}

/// The kernel arguments an image commit ships, in file-name order.
pub fn image_kargs(repo: &ostree::Repo, commit: &str) -> Result<Vec<String>> {
    let (root, _) = repo
        .read_commit(commit, gio::Cancellable::NONE)
        .ctx(|| format!("read commit {commit}"))?;
    let dir = root.resolve_relative_path(KARGS_D);
    if !dir.query_exists(gio::Cancellable::NONE) {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = list_dir(&dir)?
        .into_iter()
        .filter(|i| i.file_type() == gio::FileType::Regular)
        .map(|i| i.name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let bytes =
            read_repo_file(repo, &dir.child(&name)).ctx(|| format!("read {KARGS_D}/{name}"))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::BadManifest(format!("{KARGS_D}/{name} is not UTF-8")))?;
        if let Some(k) = parse(text, &name)? {
            out.extend(k);
        }
    }
    Ok(out)
}

/// A kernel-arguments file is a few lines; an image's larger one is refused, not buffered.
const MAX_KARGS_FILE: u64 = 64 << 10;

/// A regular file of a commit, read through the repository. (GIO's `load_contents` asks the
/// stream of a repository file for file info it cannot give, and GLib prints an assertion
/// failure into the journal for every file read.)
fn read_repo_file(repo: &ostree::Repo, file: &gio::File) -> Result<Vec<u8>, ostree::glib::Error> {
    use std::io::Read;
    let repo_file = file
        .downcast_ref::<ostree::RepoFile>()
        .ok_or_else(|| ostree::glib::Error::new(gio::IOErrorEnum::NotSupported, "not in a repo"))?;
    repo_file.ensure_resolved()?;
    let checksum = repo_file.checksum();
    let (stream, _, _) = repo.load_file(&checksum, gio::Cancellable::NONE)?;
    let mut out = Vec::new();
    if let Some(stream) = stream {
        stream
            .into_read()
            .take(MAX_KARGS_FILE + 1)
            .read_to_end(&mut out)
            .map_err(|e| ostree::glib::Error::new(gio::IOErrorEnum::Failed, &e.to_string()))?;
    }
    if out.len() as u64 > MAX_KARGS_FILE {
        return Err(ostree::glib::Error::new(
            gio::IOErrorEnum::Failed,
            &format!("larger than {MAX_KARGS_FILE} bytes"),
        ));
    }
    Ok(out)
}

/// The entries of a directory in a commit.
pub fn list_dir(dir: &gio::File) -> Result<Vec<gio::FileInfo>> {
    let what = || format!("list {}", dir.uri());
    let children = dir
        .enumerate_children(
            "standard::name,standard::type,standard::size",
            gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
            gio::Cancellable::NONE,
        )
        .ctx(what)?;
    let mut out = Vec::new();
    while let Some(info) = children.next_file(gio::Cancellable::NONE).ctx(what)? {
        out.push(info);
    }
    Ok(out)
}

/// The kernel arguments of a deployment's boot entry.
pub fn deployment_kargs(d: &ostree::Deployment) -> Vec<String> {
    d.bootconfig()
        .and_then(|b| b.get("options"))
        .map(|o| o.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The new deployment keeps the merge deployment's arguments, drops those the old image
/// shipped and adds those the new image ships (as bootc does).
pub fn merge(current: &[String], old_image: &[String], new_image: &[String]) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|k| !old_image.contains(k))
        .cloned()
        .collect();
    for k in new_image {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_like_bootc() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let got = merge(
            &s(&["root=/dev/vda", "quiet", "mitigations=off"]),
            &s(&["quiet"]),
            &s(&["console=ttyS0", "root=/dev/vda"]),
        );
        assert_eq!(
            got,
            s(&["root=/dev/vda", "mitigations=off", "console=ttyS0"])
        );
    }

    #[test]
    fn parses_kargs_files() {
        assert_eq!(
            parse("kargs = [\"a=1\", \"b\"]", "x.toml").unwrap(),
            Some(vec!["a=1".into(), "b".into()])
        );
        assert_eq!(
            parse(
                "kargs = [\"a\"]\nmatch-architectures = [\"s390x\"]",
                "x.toml"
            )
            .unwrap(),
            None
        );
        assert!(parse("kargs = 3", "x.toml").is_err());
    }
}
