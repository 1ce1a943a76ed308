//! Where images come from: a registry (OCI distribution API) or a local OCI layout directory.
//! Both give the same operations: a cheap digest check, manifest + config, and blob streams
//! that can start at an offset (to resume a partial download).

use crate::auth::{self, Credentials};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::imgref::{ImageRef, RegistryRef};
use crate::layout::{LayoutSource, LayoutTrust};
use crate::oci::{self, Descriptor, ImageConfig, Manifest, ManifestDoc};
use crate::text::outside;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a blob, and whether they start at the requested offset (false: from byte 0).
pub struct BlobStream {
    pub from_offset: bool,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

/// Manifest and config of one image, both verified against their digests.
#[derive(Debug, Clone)]
pub struct FetchedImage {
    /// Digest the reference resolved to (an index's digest for multi-platform images).
    pub source_digest: String,
    /// Digest of the platform image manifest.
    pub manifest_digest: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
}

pub enum Source {
    Registry(Box<RegistrySource>),
    Layout(Arc<LayoutSource>),
}

impl Source {
    /// `trust` says whose layouts may be read (registries are verified by digest alone).
    pub fn new(imgref: &ImageRef, config: &Config, trust: LayoutTrust) -> Result<Source> {
        match imgref {
            ImageRef::Registry(r) => {
                Ok(Source::Registry(Box::new(RegistrySource::new(r, config)?)))
            }
            ImageRef::Layout { path, tag } => Ok(Source::Layout(Arc::new(LayoutSource::new(
                path,
                tag.as_deref(),
                trust,
            )))),
        }
    }

    /// The digest the reference points at now, as cheaply as the source allows (HEAD).
    pub async fn current_digest(&self) -> Result<String> {
        match self {
            Source::Registry(r) => r.head_digest().await,
            Source::Layout(l) => Ok(l.top_descriptor().await?.digest),
        }
    }

    /// Fetches and verifies the manifest (choosing the host platform from an index) and config.
    pub async fn fetch_image(&self) -> Result<FetchedImage> {
        let (top_digest, top_bytes) = match self {
            Source::Registry(r) => r.manifest(None).await?,
            Source::Layout(l) => {
                let d = l.top_descriptor().await?;
                let bytes = l.read_small_blob(&d).await?;
                // index.json names the digest; the bytes must have it, as from a registry.
                verify("manifest", &d.digest, &bytes)?;
                (d.digest.clone(), bytes)
            }
        };
        let (manifest_digest, manifest_bytes, manifest) = match oci::parse_manifest_doc(&top_bytes)?
        {
            ManifestDoc::Image(m) => (top_digest.clone(), top_bytes, m),
            ManifestDoc::Index(idx) => {
                let d = oci::select_platform(&idx)?.clone();
                let bytes = match self {
                    Source::Registry(r) => r.manifest(Some(&d.digest)).await?.1,
                    Source::Layout(l) => l.read_small_blob(&d).await?,
                };
                verify("platform manifest", &d.digest, &bytes)?;
                match oci::parse_manifest_doc(&bytes)? {
                    ManifestDoc::Image(m) => (d.digest, bytes, m),
                    ManifestDoc::Index(_) => {
                        return Err(Error::BadManifest("nested image index".into()))
                    }
                }
            }
        };
        let config_bytes = match self {
            Source::Registry(r) => r.small_blob(&manifest.config).await?,
            Source::Layout(l) => l.read_small_blob(&manifest.config).await?,
        };
        verify("image config", &manifest.config.digest, &config_bytes)?;
        let config = oci::parse_config(&config_bytes, &manifest)?;
        Ok(FetchedImage {
            source_digest: top_digest,
            manifest_digest,
            manifest_bytes,
            manifest,
            config_bytes,
            config,
        })
    }

    /// A manifest of the same repository by tag (cosign's `sha256-<hex>.sig`), None when the
    /// tag does not exist. Layouts carry no attachments.
    pub async fn tagged_manifest(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Registry(r) => {
                let tagged = RegistrySource {
                    reference: RegistryRef {
                        tag: Some(tag.to_string()),
                        digest: None,
                        ..r.reference.clone()
                    },
                    client: r.client.clone(),
                    http: r.http.clone(),
                    scheme: r.scheme,
                    auth: r.auth.clone(),
                };
                match tagged.manifest(None).await {
                    Ok((_, bytes)) => Ok(Some(bytes)),
                    Err(Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Source::Layout(_) => Ok(None),
        }
    }

    /// A small blob (at most [`MAX_SMALL_BLOB`] bytes), verified against its digest.
    pub async fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let bytes = match self {
            Source::Registry(r) => r.small_blob(desc).await?,
            Source::Layout(l) => l.read_small_blob(desc).await?,
        };
        verify("blob", &desc.digest, &bytes)?;
        Ok(bytes)
    }

    pub async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        match self {
            Source::Registry(r) => r.open_blob(desc, offset).await,
            Source::Layout(l) => l.open_blob(desc, offset).await,
        }
    }
}

fn verify(what: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let actual = oci::sha256_digest(bytes);
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: what.into(),
            expected: expected.into(),
            actual,
        });
    }
    Ok(())
}

/// Config and manifests are small (a real OS image's are a few KiB); refuse absurd sizes
/// instead of buffering them.
pub const MAX_SMALL_BLOB: u64 = 4 << 20;

/// How long one manifest may take to arrive, whole.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct RegistrySource {
    client: oci_client::Client,
    /// For manifests, whose size oci-client does not cap.
    http: reqwest::Client,
    scheme: &'static str,
    reference: RegistryRef,
    auth: RegistryAuth,
}

impl RegistrySource {
    fn new(r: &RegistryRef, config: &Config) -> Result<Self> {
        let protocol = if config.is_insecure(&r.registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let auth = match auth::credentials_for(&r.registry, config.auth_file.as_deref())? {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username, password),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Network {
                registry: r.registry.clone(),
                detail: outside(&e.to_string()),
            })?;
        let scheme = if config.is_insecure(&r.registry) {
            "http"
        } else {
            "https"
        };
        Ok(RegistrySource {
            client,
            http,
            scheme,
            reference: r.clone(),
            auth,
        })
    }

    fn oci_ref(&self, digest: Option<&str>) -> oci_client::Reference {
        let r = &self.reference;
        match (digest.or(r.digest.as_deref()), &r.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                r.registry.clone(),
                r.repository.clone(),
                d.to_string(),
            ),
            (None, Some(t)) => {
                oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
            }
            (None, None) => oci_client::Reference::with_tag(
                r.registry.clone(),
                r.repository.clone(),
                "latest".into(),
            ),
        }
    }

    fn err(&self, e: OciDistributionError) -> Error {
        map_registry_error(&self.reference, e)
    }

    async fn head_digest(&self) -> Result<String> {
        let reference = self.oci_ref(None);
        self.client
            .fetch_manifest_digest(&reference, &self.auth)
            .await
            .map_err(|e| self.err(e))
    }

    /// A manifest, read no further than [`MAX_SMALL_BLOB`] bytes (oci-client would read any
    /// body whole). Authentication is oci-client's: it returns the bearer token to send.
    async fn manifest(&self, digest: Option<&str>) -> Result<(String, Vec<u8>)> {
        // A registry that trickles bytes must not hold the one transaction slot for ever.
        tokio::time::timeout(MANIFEST_TIMEOUT, self.manifest_capped(digest))
            .await
            .map_err(|_| Error::Network {
                registry: self.reference.registry.clone(),
                detail: format!("no whole manifest within {MANIFEST_TIMEOUT:?}"),
            })?
    }

    async fn manifest_capped(&self, digest: Option<&str>) -> Result<(String, Vec<u8>)> {
        let reference = self.oci_ref(digest);
        let registry = &self.reference.registry;
        let token = self
            .client
            .auth(&reference, &self.auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| self.err(e))?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme,
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, oci::ACCEPTED_MANIFESTS.join(", "));
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let network = |e: reqwest::Error| Error::Network {
            registry: registry.clone(),
            detail: outside(&with_causes(&e.to_string(), &e)),
        };
        let mut response = request.send().await.map_err(network)?;
        let status = response.status();
        let claimed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let too_large = || {
            Error::BadManifest(format!(
                "the manifest from {registry} is larger than the {MAX_SMALL_BLOB} bytes allowed"
            ))
        };
        if status.is_success()
            && response
                .content_length()
                .is_some_and(|l| l > MAX_SMALL_BLOB)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_SMALL_BLOB {
                if status.is_success() {
                    return Err(too_large());
                }
                break; // enough of an error text
            }
        }
        if !status.is_success() {
            return Err(self.status_error(status.as_u16(), &body));
        }
        let digest = match (reference.digest(), claimed) {
            (Some(pinned), _) => pinned.to_string(),
            (None, Some(claimed)) => {
                crate::imgref::validate_digest(&claimed)
                    .map_err(|e| Error::BadManifest(outside(&e)))?;
                claimed
            }
            (None, None) => oci::sha256_digest(&body),
        };
        // The digest asked for, or the one the registry claims, must be that of what it sent.
        verify("manifest", &digest, &body)?;
        Ok((digest, body))
    }

    /// A registry's refusal of a manifest request, as Berth's error.
    fn status_error(&self, code: u16, body: &[u8]) -> Error {
        let registry = self.reference.registry.clone();
        let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
        let detail = outside(&format!("HTTP {code}: {}", text.trim()));
        match code {
            401 => Error::Unauthorized { registry, detail },
            403 => Error::Forbidden { registry, detail },
            404 => Error::NotFound {
                what: format!("{}: {detail}", self.reference),
            },
            408 | 429 | 500..=599 => Error::Network { registry, detail },
            _ => Error::BadManifest(format!("{registry}: {detail}")),
        }
    }

    async fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_SMALL_BLOB {
            return Err(Error::BadManifest(format!(
                "config blob of {} bytes is too large",
                desc.size
            )));
        }
        let mut out = Vec::with_capacity(desc.size as usize);
        let mut s = self.open_blob(desc, 0).await?.stream;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() as u64 > desc.size {
                break;
            }
        }
        Ok(out)
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        let reference = self.oci_ref(None);
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let resp = self
            .client
            .pull_blob_stream_partial(&reference, &layer, offset, None)
            .await
            .map_err(|e| self.err(e))?;
        let (from_offset, sized) = match resp {
            BlobResponse::Full(s) => (offset == 0, s),
            BlobResponse::Partial(s) => (true, s),
        };
        let registry = self.reference.registry.clone();
        let stream = sized
            .stream
            .map(move |r| r.map_err(|e| map_stream_error(&registry, e)))
            .boxed();
        Ok(BlobStream {
            from_offset,
            stream,
        })
    }
}

/// Errors in the middle of a blob: a digest failure at its end, else a dropped connection.
fn map_stream_error(registry: &str, e: std::io::Error) -> Error {
    let is_digest = e.get_ref().is_some_and(|inner| {
        inner
            .downcast_ref::<oci_client::errors::DigestError>()
            .is_some()
    });
    if is_digest {
        Error::DigestMismatch {
            what: format!("blob from {registry}"),
            expected: String::new(),
            actual: outside(&e.to_string()),
        }
    } else {
        Error::Network {
            registry: registry.to_string(),
            detail: outside(&with_causes(&e.to_string(), &e)),
        }
    }
}

/// `detail: cause: its cause ...`; the HTTP client's own message rarely says what happened.
fn with_causes(detail: &str, e: &dyn std::error::Error) -> String {
    let mut out = detail.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Turns the client's errors into Berth's: 401/403/404 are final, 5xx and I/O are transient.
fn map_registry_error(r: &RegistryRef, e: OciDistributionError) -> Error {
    let registry = r.registry.clone();
    let detail = outside(&e.to_string());
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            Error::Unauthorized { registry, detail }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => Error::NotFound {
            what: r.to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized))
            {
                Error::Unauthorized { registry, detail }
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Denied)) {
                Error::Forbidden { registry, detail }
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                Error::NotFound {
                    what: format!("{r}: {detail}"),
                }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
            {
                Error::Network { registry, detail }
            } else {
                Error::BadManifest(detail)
            }
        }
        OciDistributionError::ServerError { code, .. } => match code {
            401 => Error::Unauthorized { registry, detail },
            403 => Error::Forbidden { registry, detail },
            404 => Error::NotFound {
                what: format!("{r}: {detail}"),
            },
            408 | 429 | 500..=599 => Error::Network { registry, detail },
            _ => Error::BadManifest(detail),
        },
        OciDistributionError::RequestError(ref re) => {
            if re.status().is_some_and(|s| s.as_u16() == 404) {
                Error::NotFound {
                    what: r.to_string(),
                }
            } else {
                Error::Network {
                    registry,
                    detail: outside(&with_causes(&detail, re)),
                }
            }
        }
        OciDistributionError::IoError(_) => Error::Network { registry, detail },
        OciDistributionError::DigestError(_) => Error::DigestMismatch {
            what: format!("blob from {registry}"),
            expected: String::new(),
            actual: detail,
        },
        OciDistributionError::IncompatibleLayerMediaTypeError(_)
        | OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::UnsupportedSchemaVersionError(_) => Error::Unsupported(detail),
        _ => Error::BadManifest(detail),
    }
}
