//! A deterministic OCI image builder: layers from entry lists or rootfs directories, written
//! as an OCI image layout (tar + sha256 + JSON), byte-for-byte the same on every run.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const MTIME: u64 = 1_700_000_000;

#[derive(Debug, Clone)]
pub enum Entry {
    Dir(String),
    File(String, Vec<u8>, u32),
    /// A regular file with extended attributes (`SCHILY.xattr.*` pax records).
    XattrFile(String, Vec<u8>, u32, Vec<(String, Vec<u8>)>),
    Symlink(String, String),
    Hardlink(String, String),
    /// `.wh.NAME` next to the path: deletes it from lower layers.
    Whiteout(String),
    /// `.wh..wh..opq` in the directory: hides its lower-layer content.
    Opaque(String),
    /// A character device node (hostile input).
    CharDevice(String),
    /// A regular-file header with an arbitrary, unvalidated name (hostile input).
    RawFile(Vec<u8>, Vec<u8>),
    /// A symlink header with an arbitrary name and target (hostile input).
    RawSymlink(Vec<u8>, Vec<u8>),
}

pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
    Entry::File(path.into(), data.into(), 0o644)
}

#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub entries: Vec<Entry>,
    pub uncompressed: bool,
}

impl Layer {
    pub fn new(entries: Vec<Entry>) -> Layer {
        Layer {
            entries,
            uncompressed: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub labels: BTreeMap<String, String>,
    pub created: String,
    /// Write a wrong diff_id for the last layer (broken input).
    pub bad_diff_id: bool,
}

impl Image {
    pub fn new(version: &str, layers: Vec<Layer>) -> Image {
        let mut labels = BTreeMap::new();
        labels.insert(
            "org.opencontainers.image.version".to_string(),
            version.to_string(),
        );
        labels.insert("containers.bootc".to_string(), "1".to_string());
        Image {
            layers,
            labels,
            created: "2026-01-01T00:00:00Z".into(),
            bad_diff_id: false,
        }
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn raw_name(h: &mut tar::Header, name: &[u8]) {
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
}

/// The uncompressed tar of a layer.
pub fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(
                    &mut h,
                    format!("{}/", p.trim_end_matches('/')),
                    std::io::empty(),
                )?;
            }
            Entry::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, p, data.as_slice())?;
            }
            Entry::XattrFile(p, data, mode, xattrs) => {
                let records: Vec<(String, &[u8])> = xattrs
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                    .collect();
                b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, p, data.as_slice())?;
            }
            Entry::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, target)?;
            }
            Entry::Hardlink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, p, target)?;
            }
            Entry::Whiteout(p) => {
                let (dir, name) = p
                    .rsplit_once('/')
                    .map(|(d, n)| (format!("{d}/"), n))
                    .unwrap_or((String::new(), p.as_str()));
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, format!("{dir}.wh.{name}"), std::io::empty())?;
            }
            Entry::Opaque(d) => {
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(
                    &mut h,
                    format!("{}/.wh..wh..opq", d.trim_end_matches('/')),
                    std::io::empty(),
                )?;
            }
            Entry::CharDevice(p) => {
                let mut h = header(tar::EntryType::Char, 0o666, 0);
                h.set_device_major(1)?;
                h.set_device_minor(3)?;
                b.append_data(&mut h, p, std::io::empty())?;
            }
            Entry::RawFile(name, data) => {
                let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
                raw_name(&mut h, name);
                h.set_cksum();
                b.append(&h, data.as_slice())?;
            }
            Entry::RawSymlink(name, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                raw_name(&mut h, name);
                h.as_gnu_mut().expect("gnu").linkname[..target.len()].copy_from_slice(target);
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// The entries of a rootfs directory, sorted, owners and modes kept.
pub fn rootfs_entries(root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = e.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().to_string();
        let meta = std::fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            out.push(Entry::Symlink(
                rel,
                std::fs::read_link(&path)?.to_string_lossy().to_string(),
            ));
        } else if ft.is_dir() {
            out.push(Entry::Dir(rel));
            walk(root, &path, out)?;
        } else if ft.is_file() {
            out.push(Entry::File(
                rel,
                std::fs::read(&path)?,
                meta.permissions().mode() & 0o7777,
            ));
        }
    }
    Ok(())
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn put_blob(layout: &Path, data: &[u8]) -> Result<(String, u64)> {
    let digest = sha256(data);
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    if !path.exists() {
        std::fs::write(&path, data).with_context(|| format!("write {}", path.display()))?;
    }
    Ok((digest, data.len() as u64))
}

/// Facts about a written image, for assertions.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest_digest: String,
    /// (compressed digest, compressed size) per layer.
    pub layers: Vec<(String, u64)>,
}

/// Writes images into an OCI layout at `layout` (created if needed), each under its tag.
pub fn write_layout(layout: &Path, images: &[(&str, &Image)]) -> Result<Vec<Written>> {
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index_path = layout.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match std::fs::read(&index_path) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)?["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut written = Vec::new();
    for (tag, img) in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, layer) in img.layers.iter().enumerate() {
            let tar = layer_tar(&layer.entries)?;
            let mut diff_id = sha256(&tar);
            if img.bad_diff_id && i + 1 == img.layers.len() {
                diff_id = sha256(b"not this layer");
            }
            diff_ids.push(diff_id);
            let (blob, media_type) = if layer.uncompressed {
                (tar, "application/vnd.oci.image.layer.v1.tar")
            } else {
                (gzip(&tar)?, "application/vnd.oci.image.layer.v1.tar+gzip")
            };
            let (digest, size) = put_blob(layout, &blob)?;
            layers.push((digest, size, media_type));
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": img.created,
            "config": {"Labels": img.labels},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (cdigest, csize) = put_blob(layout, &serde_json::to_vec(&config)?)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": layers.iter().map(|(d, s, m)| serde_json::json!({"mediaType": m, "digest": d, "size": s})).collect::<Vec<_>>(),
        });
        let (mdigest, msize) = put_blob(layout, &serde_json::to_vec(&manifest)?)?;
        manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != *tag);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        written.push(Written {
            manifest_digest: mdigest,
            layers: layers.iter().map(|(d, s, _)| (d.clone(), *s)).collect(),
        });
    }
    std::fs::write(
        &index_path,
        serde_json::to_vec_pretty(
            &serde_json::json!({"schemaVersion": 2, "manifests": manifests}),
        )?,
    )?;
    Ok(written)
}

/// Adds an image index under `tag` that points at images already in the layout: one
/// `(existing tag, architecture)` per platform, all `linux`. Returns the index digest.
pub fn write_index(layout: &Path, tag: &str, platforms: &[(&str, &str)]) -> Result<String> {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path)?)?;
    let manifests = index["manifests"]
        .as_array_mut()
        .context("index.json without manifests")?;
    let mut entries = Vec::new();
    for (existing, arch) in platforms {
        let d = manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *existing)
            .with_context(|| format!("no tag {existing} in the layout"))?;
        entries.push(serde_json::json!({
            "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let (digest, size) = put_blob(layout, &serde_json::to_vec(&idx)?)?;
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index)?)?;
    Ok(digest)
}

/// Deterministic pseudo-random bytes (xorshift), incompressible like real binaries.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
