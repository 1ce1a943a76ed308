//! Reading images from a local OCI image layout (a directory, e.g. on a USB stick) without
//! trusting the storage it lives on. berthd reads as root, so every file is opened one path
//! component at a time without following symbolic links, must be a regular file (a FIFO would
//! hang the reader, a device never ends), and is read no further than its declared size.
//! Whether a user other than root could have changed the layout is judged as sudo and systemd
//! judge paths: every directory from `/` down and every file read must be owned by root and not
//! writable by group or others (root-owned sticky directories such as `/tmp` aside), and the
//! layout must not live on a filesystem mounted `nosuid` (removable media a user mounts through
//! udisks are, and their files' owners are whatever whoever made the stick chose). Such a
//! layout is followed by routine updates; one that fails the test only when an administrator
//! chose it (`LayoutTrust::AnyOwner`). The directories are opened one at a time from `/`
//! without following links, and judged on what was opened, so nothing can be swapped between
//! the judgement and the read.

use crate::error::{Error, Result};
use crate::oci::{self, Descriptor};
use crate::source::BlobStream;
use bytes::Bytes;
use futures_util::stream::StreamExt;
use rustix::fs::{FileType, Mode, OFlags};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Layout metadata (`oci-layout`, `index.json`) is as small as manifests.
const MAX_METADATA: u64 = crate::source::MAX_SMALL_BLOB;

/// Whose changes a layout may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutTrust {
    /// Only root could have written it: routine updates, automatic updates.
    RootOnly,
    /// An administrator chose this layout (switch, or an update authorized as switch).
    AnyOwner,
}

pub struct LayoutSource {
    path: PathBuf,
    tag: Option<String>,
    trust: LayoutTrust,
}

#[derive(serde::Deserialize)]
struct LayoutMarker {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

/// Why `path` may have been written by someone other than root, if it may.
pub fn untrusted_reason(path: &Path) -> Option<String> {
    let canonical = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let mut walked = PathBuf::from("/");
    let mut chain = vec![walked.clone()];
    for c in canonical.components() {
        if let Component::Normal(name) = c {
            walked.push(name);
            chain.push(walked.clone());
        }
    }
    chain
        .iter()
        .find_map(|p| match std::fs::metadata(p) {
            Ok(m) => owner_problem(m.uid(), m.mode(), m.is_dir())
                .map(|why| format!("{} {why}", p.display())),
            Err(e) => Some(format!("{}: {e}", p.display())),
        })
        .or_else(|| match rustix::fs::statvfs(&canonical) {
            Ok(st) if st.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID) => {
                Some(format!("{} {REMOVABLE}", canonical.display()))
            }
            Ok(_) => None,
            Err(e) => Some(format!("{}: {e}", canonical.display())),
        })
}

const REMOVABLE: &str = "is on a filesystem mounted nosuid, as removable media a user mounts are";

/// Why a file or directory with this owner and mode is not root's alone.
fn owner_problem(uid: u32, mode: u32, is_dir: bool) -> Option<String> {
    const STICKY: u32 = 0o1000;
    if uid != 0 {
        return Some(format!("is owned by uid {uid}, not root"));
    }
    if mode & 0o022 != 0 && !(is_dir && mode & STICKY != 0) {
        return Some(format!(
            "is writable by group or others (mode {:o})",
            mode & 0o7777
        ));
    }
    None
}

impl LayoutSource {
    pub fn new(path: &Path, tag: Option<&str>, trust: LayoutTrust) -> LayoutSource {
        LayoutSource {
            path: path.to_path_buf(),
            tag: tag.map(str::to_string),
            trust,
        }
    }

    fn not_found(&self, what: &str) -> Error {
        Error::NotFound {
            what: format!("{what} in OCI layout {}", self.path.display()),
        }
    }

    fn refused(&self, rel: &str, why: impl std::fmt::Display) -> Error {
        Error::NotTrusted(format!("OCI layout {}: {rel} {why}", self.path.display()))
    }

    /// Opens the layout directory itself: from `/`, one directory at a time without following
    /// links, judging each opened directory when the layout must be root's.
    fn open_root(&self) -> Result<OwnedFd> {
        let canonical = std::fs::canonicalize(&self.path)
            .map_err(|_| self.not_found("the layout directory"))?;
        let untrusted = |why: String| {
            Error::NotTrusted(format!(
                "OCI layout {}: {why}; a user other than root could change the image, so only \
                 an administrator can choose it (berth switch)",
                self.path.display()
            ))
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut dir =
            rustix::fs::open("/", flags, Mode::empty()).map_err(|e| self.refused("/", e))?;
        let mut walked = PathBuf::from("/");
        let mut names = canonical.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        });
        loop {
            if self.trust == LayoutTrust::RootOnly {
                let st = rustix::fs::fstat(&dir).map_err(|e| self.refused(".", e))?;
                if let Some(why) = owner_problem(st.st_uid, st.st_mode, true) {
                    return Err(untrusted(format!("{} {why}", walked.display())));
                }
            }
            let Some(name) = names.next() else { break };
            walked.push(&name);
            // A link here means the path changed since it was resolved: refuse.
            dir = rustix::fs::openat(&dir, name.as_os_str(), flags, Mode::empty())
                .map_err(|e| self.refused(&walked.display().to_string(), e))?;
        }
        if self.trust == LayoutTrust::RootOnly {
            let st = rustix::fs::fstatvfs(&dir).map_err(|e| self.refused(".", e))?;
            if st.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID) {
                return Err(untrusted(format!("{} {REMOVABLE}", canonical.display())));
            }
        }
        Ok(dir)
    }

    /// Opens `rel` (components separated by `/`) inside the layout, one component at a time
    /// without following links; each must be a directory, the last a regular file, and, when
    /// the layout must be root's, each root-owned and not writable by others.
    fn open_file(&self, rel: &str) -> Result<(std::fs::File, u64)> {
        let mut dir = self.open_root()?;
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let shown = parts[..=i].join("/");
            // O_NONBLOCK: opening a FIFO must not wait for a writer.
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NOCTTY
                | OFlags::NONBLOCK
                | if last {
                    OFlags::empty()
                } else {
                    OFlags::DIRECTORY
                };
            let fd = rustix::fs::openat(&dir, *part, flags, Mode::empty()).map_err(|e| {
                match e {
                    rustix::io::Errno::NOENT => self.not_found(&shown),
                    rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => self.refused(
                        &shown,
                        "is a symbolic link or not a directory (layouts are read without following links)",
                    ),
                    e => self.refused(&shown, e),
                }
            })?;
            let st = rustix::fs::fstat(&fd).map_err(|e| self.refused(&shown, e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let expected = if last {
                FileType::RegularFile
            } else {
                FileType::Directory
            };
            if ft != expected {
                return Err(self.refused(&shown, format!("is a {ft:?}, not a {expected:?}")));
            }
            if self.trust == LayoutTrust::RootOnly {
                if let Some(why) = owner_problem(st.st_uid, st.st_mode, !last) {
                    return Err(self.refused(&shown, why));
                }
            }
            if last {
                // Reads block normally from here on: it is a regular file.
                rustix::fs::fcntl_setfl(&fd, OFlags::empty())
                    .map_err(|e| self.refused(&shown, e))?;
                return Ok((std::fs::File::from(fd), st.st_size as u64));
            }
            dir = fd;
        }
        unreachable!("rel has at least one component")
    }

    /// Reads a whole small file, refusing one larger than `cap`.
    fn read_capped(&self, rel: &str, cap: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let (file, size) = self.open_file(rel)?;
        if size > cap {
            return Err(Error::BadManifest(format!(
                "{rel} in OCI layout {} is {size} bytes, more than the {cap} allowed",
                self.path.display()
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        file.take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("read {rel} in {}", self.path.display()), e))?;
        if out.len() as u64 > cap {
            return Err(Error::BadManifest(format!(
                "{rel} grew past {cap} bytes while read"
            )));
        }
        Ok(out)
    }

    fn blob_rel(digest: &str) -> Result<String> {
        crate::imgref::validate_digest(digest).map_err(Error::BadManifest)?;
        let (alg, hex) = digest.split_once(':').expect("validated digest");
        Ok(format!("blobs/{alg}/{hex}"))
    }

    /// The index.json entry for the tag (or the only entry when no tag is given).
    fn top_descriptor_blocking(&self) -> Result<Descriptor> {
        let marker = self.read_capped("oci-layout", MAX_METADATA)?;
        let marker: LayoutMarker = serde_json::from_slice(&marker)
            .map_err(|e| Error::BadManifest(format!("oci-layout: {e}")))?;
        if !marker.version.starts_with("1.") {
            return Err(Error::Unsupported(format!(
                "OCI layout version {}",
                crate::text::outside(&marker.version)
            )));
        }
        let index = self.read_capped("index.json", MAX_METADATA)?;
        let index: oci::Index = serde_json::from_slice(&index)
            .map_err(|e| Error::BadManifest(format!("index.json: {e}")))?;
        let found: Vec<&Descriptor> = match &self.tag {
            Some(t) => index
                .manifests
                .iter()
                .filter(|d| d.annotations.get("org.opencontainers.image.ref.name") == Some(t))
                .collect(),
            None => index.manifests.iter().collect(),
        };
        match found.as_slice() {
            [one] => {
                crate::imgref::validate_digest(&one.digest).map_err(Error::BadManifest)?;
                Ok((*one).clone())
            }
            [] => Err(self.not_found(&format!("tag {:?}", self.tag.as_deref().unwrap_or("")))),
            _ => Err(Error::InvalidReference {
                reference: format!("oci:{}", self.path.display()),
                reason: "the layout holds several images: name one with :TAG".into(),
            }),
        }
    }

    /// Reads a manifest or config blob, no larger than its descriptor says (and small).
    fn small_blob_blocking(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_METADATA {
            return Err(Error::BadManifest(format!(
                "blob {} of {} bytes is too large for a manifest or config",
                desc.digest, desc.size
            )));
        }
        self.read_capped(&Self::blob_rel(&desc.digest)?, desc.size)
    }

    pub async fn top_descriptor(self: &std::sync::Arc<Self>) -> Result<Descriptor> {
        let this = self.clone();
        blocking(move || this.top_descriptor_blocking()).await
    }

    pub async fn read_small_blob(
        self: &std::sync::Arc<Self>,
        desc: &Descriptor,
    ) -> Result<Vec<u8>> {
        let (this, desc) = (self.clone(), desc.clone());
        blocking(move || this.small_blob_blocking(&desc)).await
    }

    /// The blob from `offset`, no further than the size its descriptor declares.
    pub async fn open_blob(
        self: &std::sync::Arc<Self>,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let rel = Self::blob_rel(&desc.digest)?;
        let (this, rel2) = (self.clone(), rel.clone());
        let (file, size) = blocking(move || this.open_file(&rel2)).await?;
        if size > desc.size {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", desc.digest),
                expected: format!("{} bytes", desc.size),
                actual: format!("{size} bytes in the layout"),
            });
        }
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| Error::io(format!("seek {rel}"), e))?;
        let limited = file.take(desc.size.saturating_sub(offset));
        let stream = futures_util::stream::unfold(Some(limited), move |file| {
            let rel = rel.clone();
            async move {
                let mut file = file?;
                let mut buf = vec![0u8; 1 << 20];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some(file)))
                    }
                    Err(e) => Some((Err(Error::io(format!("read {rel}"), e)), None)),
                }
            }
        })
        .boxed();
        Ok(BlobStream {
            from_offset: true,
            stream,
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::WrongState(format!("layout reader failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_modes_as_sudo_judges_them() {
        assert_eq!(owner_problem(0, 0o40755, true), None);
        assert_eq!(owner_problem(0, 0o41777, true), None, "root's sticky /tmp");
        assert!(
            owner_problem(0, 0o40777, true).is_some(),
            "world-writable, not sticky"
        );
        assert!(owner_problem(0, 0o100666, false).is_some());
        assert!(
            owner_problem(0, 0o101666, false).is_some(),
            "sticky means nothing on files"
        );
        assert!(owner_problem(0, 0o40775, true).is_some(), "group-writable");
        assert!(owner_problem(1000, 0o40755, true).is_some());
        assert_eq!(owner_problem(0, 0o100644, false), None);
    }
}
