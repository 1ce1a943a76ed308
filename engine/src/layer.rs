//! Reading one layer blob: decompress, verify its diff-id, and check every tar entry before
//! libostree sees the stream. Hostile or broken entries stop the import with a precise error.

use crate::error::{Error, Result};
use crate::oci::Compression;
use crate::progress::Cancel;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::rc::Rc;

const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";

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

/// True for the marker files that must not land in the tree.
pub fn is_whiteout_name(basename: &str) -> bool {
    basename.starts_with(WHITEOUT_PREFIX)
}

/// Streams the uncompressed tar of `blob` into `out` while checking it. Returns an error (and
/// stops writing) at the first bad entry, on a diff-id mismatch, or on corrupt compression.
pub fn scan_layer(
    blob: &Path,
    compression: Compression,
    diff_id: &str,
    out: impl Write,
    cancel: &Cancel,
) -> Result<LayerScan> {
    let layer = short(diff_id);
    let file =
        std::fs::File::open(blob).map_err(|e| Error::io(format!("open {}", blob.display()), e))?;
    let raw = BufReader::with_capacity(1 << 20, file);
    let decoded: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(raw),
        )),
        Compression::None => Box::new(raw),
    };
    // libostree only ever sees entries that passed the checks: the tee holds back every byte
    // past the end of the last checked entry.
    let safe_until = Rc::new(Cell::new(0u64));
    let mut tee = Tee {
        inner: decoded,
        hasher: Sha256::new(),
        out: io::BufWriter::with_capacity(1 << 20, out),
        bytes: 0,
        pending: Vec::new(),
        safe_until: safe_until.clone(),
        cancel,
    };
    let mut scan = LayerScan::default();
    let mut checker = EntryChecker::default();
    let corrupt = |e: io::Error| tee_error(&layer, e);
    {
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            checker
                .check(&entry, &mut scan)
                .map_err(|detail| Error::HostileLayer {
                    layer: layer.clone(),
                    detail,
                })?;
            safe_until.set(entry.raw_file_position() + entry.size().div_ceil(512) * 512);
            scan.entries += 1;
        }
    }
    // Whatever follows the end-of-archive marker is part of the diff-id too.
    safe_until.set(u64::MAX);
    io::copy(&mut tee, &mut io::sink()).map_err(|e| tee_error(&layer, e))?;
    tee.forward().map_err(|e| tee_error(&layer, e))?;
    tee.out
        .flush()
        .map_err(|e| Error::io("write layer stream", e))?;
    let actual = format!("sha256:{}", hex::encode(tee.hasher.finalize()));
    if actual != diff_id {
        return Err(Error::DigestMismatch {
            what: format!("uncompressed layer {layer} (diff_id)"),
            expected: diff_id.into(),
            actual,
        });
    }
    scan.uncompressed_bytes = tee.bytes;
    Ok(scan)
}

fn short(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// Classifies a read error: our own cancel/pipe errors pass through, the rest is corruption.
fn tee_error(layer: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::Interrupted && e.to_string() == "cancelled" {
        return Error::Cancelled;
    }
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Error::io("libostree stopped reading the layer", e);
    }
    Error::CorruptLayer {
        layer: layer.into(),
        detail: e.to_string(),
    }
}

/// Hashes everything read through it and forwards it to `out`, up to `safe_until`.
struct Tee<'a, W: Write> {
    inner: Box<dyn Read>,
    hasher: Sha256,
    out: io::BufWriter<W>,
    /// Bytes read so far.
    bytes: u64,
    /// Bytes read but not forwarded yet (they start at `bytes - pending.len()`).
    pending: Vec<u8>,
    safe_until: Rc<Cell<u64>>,
    cancel: &'a Cancel,
}

impl<W: Write> Tee<'_, W> {
    fn forward(&mut self) -> io::Result<()> {
        let start = self.bytes - self.pending.len() as u64;
        let n =
            (self.safe_until.get().saturating_sub(start)).min(self.pending.len() as u64) as usize;
        if n > 0 {
            self.out
                .write_all(&self.pending[..n])
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
            self.pending.drain(..n);
        }
        Ok(())
    }
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.pending.extend_from_slice(&buf[..n]);
        self.bytes += n as u64;
        self.forward()?;
        Ok(n)
    }
}

/// Per-layer state for the entry rules.
#[derive(Default)]
struct EntryChecker {
    symlinks: HashSet<String>,
    files: HashSet<String>,
}

impl EntryChecker {
    fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        scan: &mut LayerScan,
    ) -> std::result::Result<(), String> {
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
                Ok(())
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
            return Ok(());
        }
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if !target.starts_with(".wh.") && !target.is_empty() {
                scan.whiteouts.push(if dir.is_empty() {
                    target.to_string()
                } else {
                    format!("{dir}/{target}")
                });
            }
            return Ok(());
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
                self.symlinks.insert(path);
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
                self.files.insert(path);
            }
            T::Directory => {
                self.symlinks.remove(&path);
            }
            _ => {
                self.symlinks.remove(&path);
                self.files.insert(path);
            }
        }
        Ok(())
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
