//! Trust: the containers signature policy applied to an image's manifest digest before any
//! layer is fetched. `policy.json` chooses the requirements (policy), registries.d says where
//! GPG signatures live (registries_d), and each signature is checked cryptographically (gpg,
//! cosign), then for what it claims (payload, identity).

mod cosign;
mod gpg;
pub mod identity;
mod payload;
pub mod policy;
pub mod registries_d;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::imgref::{ImageRef, RegistryRef};
use crate::oci::Descriptor;
use crate::source::{Source, MAX_SMALL_BLOB};
use crate::text::outside;
use identity::{DockerName, SignedIdentity};
use payload::Claim;
use policy::{Policy, Requirement, Scoped};
use registries_d::RegistriesD;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// More signatures than this for one image is not a real signing setup.
const MAX_SIGNATURES: usize = 64;

/// How an image was let in: recorded with its deployment and shown in status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The policy scope that applied (`docker:host/repo`, `oci`, `default`, ...).
    pub scope: String,
    /// The requirements the image met, as policy.json names them.
    pub requirements: Vec<String>,
    /// Fingerprints (GPG) or key ids (`sha256:` of a sigstore public key) that signed it.
    pub keys: Vec<String>,
    /// The identities those signatures claim.
    pub identities: Vec<String>,
}

impl Verification {
    /// Verified by a key (not only accepted by `insecureAcceptAnything`).
    pub fn is_signed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// One line for people: "signed by KEY (signedBy)" or "not verified (...)".
    pub fn summary(&self) -> String {
        if self.is_signed() {
            format!(
                "signed by {} ({})",
                self.keys.join(", "),
                self.requirements.join(", ")
            )
        } else {
            format!("not verified ({})", self.requirements.join(", "))
        }
    }
}

/// Checks `image`, whose top-level manifest has `digest`, against the configured policy.
/// A refusal is [`Error::NotTrusted`]; a missing or malformed policy, registries.d or key
/// is [`Error::Config`] (fail closed).
pub async fn verify_image(
    config: &Config,
    source: &Source,
    image: &ImageRef,
    digest: &str,
) -> Result<Verification> {
    let policy_path = config.signature_policy_path();
    let bad_config = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| Error::Config { path, reason }
    };
    let policy = Policy::load(&policy_path).map_err(bad_config(&policy_path))?;
    let scoped = scoped(image);
    let applicable = policy.requirements_for(&scoped);
    let mut verification = Verification {
        scope: applicable.scope.clone(),
        ..Default::default()
    };
    let intended = match image {
        ImageRef::Registry(r) => Some(DockerName::from(r)),
        ImageRef::Layout { .. } => None,
    };
    for requirement in applicable.requirements {
        let kind = requirement.kind();
        let refuse = |why: &str| {
            Error::NotTrusted(format!(
                "the signature policy refuses {image} ({kind}, scope {}): {why}",
                applicable.scope
            ))
        };
        let accepted = match requirement {
            Requirement::InsecureAcceptAnything {} => None,
            Requirement::Reject {} => return Err(refuse("images from here are rejected")),
            Requirement::SignedBy {
                key_path,
                key_paths,
                key_data,
                signed_identity,
                ..
            } => {
                let paths = all_paths(key_path, key_paths);
                let keyring = gpg::Keyring::load(&paths, key_data.as_deref())
                    .map_err(bad_config(&policy_path))?;
                let signatures = match image {
                    ImageRef::Registry(r) => {
                        lookaside_signatures(config, r, &scoped, digest).await?
                    }
                    ImageRef::Layout { .. } => Vec::new(),
                };
                let checked = signatures.iter().map(|sig| {
                    let (key, bytes) = keyring.verify(sig)?;
                    Ok((key, payload::parse(&bytes, payload::GPG_TYPE)?))
                });
                Some(
                    first_accepted(checked, digest, signed_identity, intended.as_ref())
                        .map_err(|why| refuse(&why))?,
                )
            }
            Requirement::SigstoreSigned {
                key_path,
                key_paths,
                key_data,
                key_datas,
                signed_identity,
                ..
            } => {
                let paths = all_paths(key_path, key_paths);
                let datas: Vec<String> = key_data
                    .iter()
                    .chain(key_datas.iter().flatten())
                    .cloned()
                    .collect();
                let keys =
                    cosign::PublicKeys::load(&paths, &datas).map_err(bad_config(&policy_path))?;
                let attached = match image {
                    ImageRef::Registry(_) => {
                        let registries = load_registries_d(config)?;
                        if registries.use_sigstore_attachments(&scoped.scopes()) {
                            sigstore_attachments(source, digest).await?
                        } else {
                            Vec::new()
                        }
                    }
                    ImageRef::Layout { .. } => Vec::new(),
                };
                let checked = attached.iter().map(|(bytes, sig)| {
                    let key = keys.verify(bytes, sig)?;
                    Ok((key, payload::parse(bytes, payload::COSIGN_TYPE)?))
                });
                Some(
                    first_accepted(checked, digest, signed_identity, intended.as_ref())
                        .map_err(|why| refuse(&why))?,
                )
            }
        };
        verification.requirements.push(kind.to_string());
        if let Some((key, identity)) = accepted {
            verification.keys.push(key);
            verification.identities.push(identity);
        }
    }
    tracing::info!(image = %image, digest, verification = %verification.summary(), "signature policy accepted the image");
    Ok(verification)
}

/// The first signature that verifies and claims this digest and a matching identity, as
/// (key, identity); else why none did.
fn first_accepted(
    checked: impl Iterator<Item = std::result::Result<(String, Claim), String>>,
    digest: &str,
    rule: &Option<SignedIdentity>,
    intended: Option<&DockerName>,
) -> std::result::Result<(String, String), String> {
    let rule = rule.clone().unwrap_or_default();
    let mut reasons = Vec::new();
    for (n, result) in checked.enumerate() {
        let verdict = result.and_then(|(key, claim)| {
            if claim.manifest_digest != digest {
                return Err(format!(
                    "it signs another image ({})",
                    outside(&claim.manifest_digest)
                ));
            }
            let signed = DockerName::parse(&claim.docker_reference)
                .map_err(|e| format!("its identity is not a docker reference: {}", outside(&e)))?;
            if !rule.matches(intended, &signed)? {
                return Err(format!(
                    "its identity {} does not match {} ({rule:?})",
                    outside(&claim.docker_reference),
                    intended.map(|i| i.name.as_str()).unwrap_or("the image")
                ));
            }
            Ok((key, claim.docker_reference))
        });
        match verdict {
            Ok(accepted) => return Ok(accepted),
            Err(why) => reasons.push(format!("signature {}: {why}", n + 1)),
        }
    }
    if reasons.is_empty() {
        Err("a signature was required, but no signature exists".into())
    } else {
        Err(reasons.join("; "))
    }
}

fn all_paths(one: &Option<PathBuf>, many: &Option<Vec<PathBuf>>) -> Vec<PathBuf> {
    one.iter().chain(many.iter().flatten()).cloned().collect()
}

fn scoped(image: &ImageRef) -> Scoped {
    match image {
        ImageRef::Registry(r) => {
            let d = DockerName::from(r);
            Scoped::Docker {
                name: d.name,
                tag_or_digest: d.digest.or(d.tag),
            }
        }
        ImageRef::Layout { path, tag } => Scoped::Oci {
            dir: std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .to_string_lossy()
                .into_owned(),
            tag: tag.clone(),
        },
    }
}

fn load_registries_d(config: &Config) -> Result<RegistriesD> {
    let dir = config.registries_d_path();
    RegistriesD::load(&dir).map_err(|reason| Error::Config { path: dir, reason })
}

/// GPG signatures from the lookaside store registries.d names for this repository:
/// `BASE/REPO@sha256=HEX/signature-N`, N from 1 until one is missing.
async fn lookaside_signatures(
    config: &Config,
    r: &RegistryRef,
    scoped: &Scoped,
    digest: &str,
) -> Result<Vec<Vec<u8>>> {
    let registries = load_registries_d(config)?;
    let Some(base) = registries.lookaside(&scoped.scopes()) else {
        return Ok(Vec::new());
    };
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let mut out = Vec::new();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Network {
            registry: base.to_string(),
            detail: outside(&e.to_string()),
        })?;
    for n in 1..=MAX_SIGNATURES {
        let url = format!(
            "{}/{}@{algorithm}={hex}/signature-{n}",
            base.trim_end_matches('/'),
            r.repository
        );
        match fetch_signature(&http, &url).await? {
            Some(bytes) => out.push(bytes),
            None => break,
        }
    }
    Ok(out)
}

/// One lookaside signature (`file://` or `http(s)://`); None when it does not exist.
async fn fetch_signature(http: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>> {
    if let Some(path) = url.strip_prefix("file://") {
        use std::io::Read;
        let file = match std::fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(|e| Error::io(format!("reading signature {path}"), e))?,
        };
        // Read one byte past the cap: a larger file is refused, whatever its size said before.
        let mut bytes = Vec::new();
        file.take(MAX_SMALL_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading signature {path}"), e))?;
        if bytes.len() as u64 > MAX_SMALL_BLOB {
            return Err(Error::NotTrusted(format!(
                "signature {path} is larger than {MAX_SMALL_BLOB} bytes"
            )));
        }
        return Ok(Some(bytes));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Config {
            path: PathBuf::from(url),
            reason: "a lookaside location must be a file://, http:// or https:// URL".into(),
        });
    }
    let network = |detail: String| Error::Network {
        registry: url.to_string(),
        detail: outside(&detail),
    };
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| network(e.to_string()))?;
    match response.status().as_u16() {
        404 => return Ok(None),
        200..=299 => {}
        code => return Err(network(format!("HTTP {code} for the signature"))),
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_SMALL_BLOB {
            return Err(Error::NotTrusted(format!(
                "signature {url} is larger than {MAX_SMALL_BLOB} bytes"
            )));
        }
    }
    Ok(Some(body))
}

/// cosign's signatures attached to the image: the `sha256-HEX.sig` tag's layers, as
/// (payload, base64 signature).
async fn sigstore_attachments(source: &Source, digest: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let tag = format!("{}.sig", digest.replace(':', "-"));
    let Some(manifest) = source.tagged_manifest(&tag).await? else {
        return Ok(Vec::new());
    };
    #[derive(Deserialize)]
    struct Attached {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let attached: Attached = serde_json::from_slice(&manifest)
        .map_err(|e| Error::BadManifest(format!("the signature manifest {tag}: {e}")))?;
    let mut out = Vec::new();
    for layer in attached.layers.iter().take(MAX_SIGNATURES) {
        if layer.media_type != cosign::SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let Some(sig) = layer.annotations.get(cosign::SIGNATURE_ANNOTATION) else {
            continue;
        };
        let bytes = source.small_blob(layer).await?;
        out.push((bytes, sig.clone()));
    }
    Ok(out)
}
