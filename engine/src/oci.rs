//! The OCI image format as far as Berth reads it: manifests, indexes, configs.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    MT_OCI_MANIFEST,
    MT_OCI_INDEX,
    MT_DOCKER_MANIFEST,
    MT_DOCKER_LIST,
];

pub const VERSION_LABEL: &str = "org.opencontainers.image.version";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

impl Descriptor {
    pub fn compression(&self) -> Result<Compression> {
        match self.media_type.as_str() {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
                Ok(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar" => Ok(Compression::None),
            other => Err(Error::Unsupported(format!(
                "layer media type {other:?} (Berth reads tar and tar+gzip layers)"
            ))),
        }
    }
}

impl ImageConfig {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config
            .as_ref()?
            .labels
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}

/// A parsed manifest document: either an image manifest or an index to choose from.
pub enum ManifestDoc {
    Image(Manifest),
    Index(Index),
}

pub fn parse_manifest_doc(bytes: &[u8]) -> Result<ManifestDoc> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadManifest(format!("manifest is not JSON: {e}")))?;
    if probe.schema_version != Some(2) {
        return Err(Error::BadManifest(format!(
            "unsupported schemaVersion {:?}",
            probe.schema_version
        )));
    }
    let is_index = matches!(
        probe.media_type.as_deref(),
        Some(MT_OCI_INDEX | MT_DOCKER_LIST)
    ) || (probe.media_type.is_none() && probe.manifests.is_some());
    if is_index {
        let idx: Index = serde_json::from_slice(bytes)
            .map_err(|e| Error::BadManifest(format!("image index: {e}")))?;
        return Ok(ManifestDoc::Index(idx));
    }
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadManifest(format!("image manifest: {e}")))?;
    validate_manifest(&m)?;
    Ok(ManifestDoc::Image(m))
}

fn validate_manifest(m: &Manifest) -> Result<()> {
    if m.layers.is_empty() {
        return Err(Error::BadManifest("manifest has no layers".into()));
    }
    for d in std::iter::once(&m.config).chain(&m.layers) {
        crate::imgref::validate_digest(&d.digest).map_err(Error::BadManifest)?;
        if !d.digest.starts_with("sha256:") {
            return Err(Error::Unsupported(format!(
                "digest algorithm of {}",
                d.digest
            )));
        }
    }
    for l in &m.layers {
        l.compression()?;
    }
    Ok(())
}

/// The host's OCI platform (architecture in Go's naming).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// Picks the host platform's manifest from an index.
pub fn select_platform(idx: &Index) -> Result<&Descriptor> {
    let (os, arch) = host_platform();
    idx.manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
        .ok_or_else(|| Error::Unsupported(format!("the image index has no {os}/{arch} image")))
}

pub fn parse_config(bytes: &[u8], manifest: &Manifest) -> Result<ImageConfig> {
    let mut cfg: ImageConfig = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadManifest(format!("image config: {e}")))?;
    // Labels (the version) and the created time reach status, terminals and the journal.
    if let Some(labels) = cfg.config.as_mut().and_then(|c| c.labels.as_mut()) {
        for v in labels.values_mut() {
            *v = crate::text::outside(v);
        }
    }
    cfg.created = cfg.created.as_deref().map(crate::text::outside);
    if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::BadManifest(format!(
            "config lists {} diff_ids for {} layers",
            cfg.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    for d in &cfg.rootfs.diff_ids {
        crate::imgref::validate_digest(d).map_err(Error::BadManifest)?;
        if !d.starts_with("sha256:") {
            return Err(Error::Unsupported(format!("diff_id algorithm of {d}")));
        }
    }
    Ok(cfg)
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
