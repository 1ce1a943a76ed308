//! Reading one layer blob: decompress, verify its diff-id, and check every tar entry before
//! anything is written for it. Hostile or broken entries stop the import with a precise error.

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::oci::Compression;
use crate::progress::Cancel;
use crate::targuard::{HeaderGuard, HeaderTooLarge};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{self, BufReader, Read};
use std::sync::mpsc;

const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";
const CHUNK: usize = 256 << 10;

/// What a layer's tar stream holds besides plain content.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerScan {
    /// Paths (relative, no leading `/`) deleted from lower layers.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content is hidden.
    pub opaque_dirs: Vec<String>,
    pub uncompressed_bytes: u64,
    pub entries: u64,
}

/// The tar stream as the entry visitor reads it.
pub type TarStream<'a> = HeaderGuard<&'a mut ChunkReader>;

/// A layer that exceeds one of the [`Limits`] (wrapped in an `InvalidData` I/O error).
#[derive(Debug)]
struct LimitExceeded(String);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// Reads a layer blob, checks every entry and hands each one that belongs in the tree to `visit`
/// with its clean path (`""` for the root). Decompression and the diff-id hash run on their
/// own thread. Errors at the first bad entry, on corrupt compression, past a limit, or on a
/// diff-id mismatch (found at the end: the objects visited by then are content-addressed and
/// unreferenced, so they are harmless and pruned later).
pub fn read_layer(
    blob: impl Read + Send,
    compression: Compression,
    diff_id: &str,
    limits: &Limits,
    cancel: &Cancel,
    mut visit: impl FnMut(&mut tar::Entry<'_, TarStream<'_>>, &str) -> Result<()>,
) -> Result<LayerScan> {
    let layer = short(diff_id);
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    let result = std::thread::scope(|s| {
        let decoder = s.spawn(|| {
            decode(
                blob,
                compression,
                tx,
                limits.max_layer_bytes,
                cancel,
                &layer,
            )
        });
        let mut scan = LayerScan::default();
        let mut reader = ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let walked = walk(&mut reader, &layer, limits, &mut scan, cancel, &mut visit);
        // Drain what follows the end-of-archive marker (it is part of the diff-id), or
        // unblock the decoder after an error.
        let drained = io::copy(&mut reader, &mut io::sink());
        drop(reader);
        let decoded = decoder.join().unwrap_or_else(|_| {
            Err(Error::CorruptLayer {
                layer: layer.clone(),
                detail: "decoder panicked".into(),
            })
        });
        // A limit the decoder hit is the cause of whatever the walker saw.
        if let Err(e @ Error::HostileLayer { .. }) = decoded {
            return Err(e);
        }
        walked?;
        drained.map_err(|e| read_error(&layer, e))?;
        let (actual, bytes) = decoded?;
        if actual != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed layer {layer} (diff_id)"),
                expected: diff_id.into(),
                actual,
            });
        }
        scan.uncompressed_bytes = bytes;
        Ok(scan)
    });
    // A cancel surfaces as whatever read failed first; report it as what it is.
    match result {
        Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
        other => other,
    }
}

fn walk(
    reader: &mut ChunkReader,
    layer: &str,
    limits: &Limits,
    scan: &mut LayerScan,
    cancel: &Cancel,
    visit: &mut impl FnMut(&mut tar::Entry<'_, TarStream<'_>>, &str) -> Result<()>,
) -> Result<()> {
    let mut checker = EntryChecker::default();
    let mut archive = tar::Archive::new(HeaderGuard::new(reader, limits.max_tar_header_bytes));
    for entry in archive.entries().map_err(|e| read_error(layer, e))? {
        let mut entry = entry.map_err(|e| read_error(layer, e))?;
        cancel.check()?;
        if scan.entries >= limits.max_layer_entries {
            return Err(Error::HostileLayer {
                layer: layer.into(),
                detail: format!(
                    "more than {} entries (limits.max-layer-entries)",
                    limits.max_layer_entries
                ),
            });
        }
        let checked = checker
            .check(&entry, scan)
            .map_err(|detail| Error::HostileLayer {
                layer: layer.into(),
                detail,
            })?;
        scan.entries += 1;
        if let Some(path) = checked {
            visit(&mut entry, &path).map_err(|e| match e {
                Error::Io { source, .. } if is_read_side(&source) => read_error(layer, source),
                e => e,
            })?;
        }
    }
    Ok(())
}

/// Errors from reading the tar stream (as opposed to writing objects) are corruption.
fn is_read_side(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
}

/// Decompresses `file` into chunks, hashing them; returns the diff-id and the byte count.
fn decode(
    blob: impl Read,
    compression: Compression,
    tx: mpsc::SyncSender<io::Result<Vec<u8>>>,
    max_bytes: u64,
    cancel: &Cancel,
    layer: &str,
) -> Result<(String, u64)> {
    let raw = BufReader::with_capacity(CHUNK, blob);
    let mut decoded: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::None => Box::new(raw),
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        if cancel.is_cancelled() {
            let _ = tx.send(Err(io::Error::other("cancelled")));
            return Err(Error::Cancelled);
        }
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match decoded.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !cancel.is_cancelled() => {}
                Err(e) => {
                    let detail = e.to_string();
                    let _ = tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    return Err(Error::CorruptLayer {
                        layer: layer.into(),
                        detail,
                    });
                }
            }
        }
        if filled == 0 {
            return Ok((format!("sha256:{}", hex::encode(hasher.finalize())), bytes));
        }
        buf.truncate(filled);
        hasher.update(&buf);
        bytes += filled as u64;
        if bytes > max_bytes {
            // A compression bomb, or an image far beyond any real one.
            let detail = format!("expands past {max_bytes} bytes (limits.max-layer-bytes)");
            let _ = tx.send(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LimitExceeded(detail.clone()),
            )));
            return Err(Error::HostileLayer {
                layer: layer.into(),
                detail,
            });
        }
        if tx.send(Ok(buf)).is_err() {
            // The reader stopped (it failed): its error is the one reported.
            return Ok((String::new(), bytes));
        }
    }
}

/// The tar reader's side of the decoder's channel.
pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn short(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// A read error is corruption (a cancel is told apart at the end of `read_layer`).
/// A read failure is corruption, unless a limit caused it: that layer is hostile.
fn read_error(layer: &str, e: io::Error) -> Error {
    if caused_by::<HeaderTooLarge>(&e) || caused_by::<LimitExceeded>(&e) {
        return Error::HostileLayer {
            layer: layer.into(),
            detail: e.to_string(),
        };
    }
    Error::CorruptLayer {
        layer: layer.into(),
        detail: e.to_string(),
    }
}

/// Whether `T` is somewhere in `e`'s chain (tar wraps the reader's errors in its own).
fn caused_by<T: std::error::Error + 'static>(e: &io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|i| i as &(dyn std::error::Error + 'static));
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = match err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// Per-layer state for the entry rules.
#[derive(Default)]
struct EntryChecker {
    symlinks: HashSet<String>,
    files: HashSet<String>,
}

impl EntryChecker {
    /// Checks one entry; returns its clean path if it belongs in the tree (markers do not).
    fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        scan: &mut LayerScan,
    ) -> std::result::Result<Option<String>, String> {
        let raw = entry.path_bytes();
        let path = clean_path(&raw, "entry")?;
        self.check_not_through_symlink(&path)?;
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link => {}
            T::Char | T::Block => {
                return Err(format!(
                    "device node /{path} is not allowed in a bootable image"
                ))
            }
            T::Fifo => return Err(format!("FIFO /{path} cannot be stored")),
            other => return Err(format!("unsupported tar entry type {other:?} at /{path}")),
        }
        if path.is_empty() {
            return if kind == T::Directory {
                Ok(Some(path))
            } else {
                Err("a non-directory entry for the root".into())
            };
        }
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", path.as_str()),
        };
        if base == OPAQUE_MARKER {
            scan.opaque_dirs.push(dir.to_string());
            return Ok(None);
        }
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if !target.starts_with(".wh.") && !target.is_empty() {
                scan.whiteouts.push(if dir.is_empty() {
                    target.to_string()
                } else {
                    format!("{dir}/{target}")
                });
            }
            return Ok(None);
        }
        match kind {
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("symlink /{path} without a target"))?;
                if target.is_empty() {
                    return Err(format!("symlink /{path} has an empty target"));
                }
                std::str::from_utf8(&target)
                    .map_err(|_| format!("symlink /{path} has a non-UTF-8 target"))?;
                self.symlinks.insert(path.clone());
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("hardlink /{path} without a target"))?;
                let target = clean_path(&target, "hardlink target")?;
                self.check_not_through_symlink(&target)?;
                if !self.files.contains(&target) {
                    return Err(format!("hardlink /{path} points to /{target}, which is not a file earlier in this layer"));
                }
                self.files.insert(path.clone());
            }
            T::Directory => {
                self.symlinks.remove(&path);
            }
            _ => {
                self.symlinks.remove(&path);
                self.files.insert(path.clone());
            }
        }
        Ok(Some(path))
    }

    /// A path must not reach a parent through a symlink this layer created.
    fn check_not_through_symlink(&self, path: &str) -> std::result::Result<(), String> {
        let mut prefix = String::new();
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.symlinks.contains(&prefix) {
                return Err(format!("entry /{path} writes through symlink /{prefix}"));
            }
        }
        Ok(())
    }
}

/// Normalizes a tar path to `a/b/c`; rejects absolute paths, `..` and non-UTF-8 names.
fn clean_path(raw: &[u8], what: &str) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| format!("{what} {:?} is not UTF-8", String::from_utf8_lossy(raw)))?;
    if s.starts_with('/') {
        return Err(format!("{what} {s:?} is an absolute path"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("{what} {s:?} escapes the root with '..'")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(b"./usr//bin/", "e").unwrap(), "usr/bin");
        assert_eq!(clean_path(b".", "e").unwrap(), "");
        assert!(clean_path(b"../etc/passwd", "e")
            .unwrap_err()
            .contains("escapes"));
        assert!(clean_path(b"usr/../../x", "e").is_err());
        assert!(clean_path(b"/etc/passwd", "e")
            .unwrap_err()
            .contains("absolute"));
        assert!(clean_path(b"a\xff", "e").is_err());
    }
}
