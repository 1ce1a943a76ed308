//! Whether the identity a signature claims (`docker-reference`) fits the image being
//! pulled, under the policy's `signedIdentity` rule (containers-policy.json(5)).

use crate::imgref::{ImageRef, RegistryRef};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum SignedIdentity {
    /// The signature names exactly this tag, or for a digest reference, this repository.
    #[default]
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact,
    #[serde(rename = "matchExact")]
    MatchExact,
    #[serde(rename = "matchRepository")]
    MatchRepository,
    #[serde(rename = "exactReference")]
    ExactReference { docker_reference: String },
    #[serde(rename = "exactRepository")]
    ExactRepository { docker_repository: String },
    /// The image's name with `prefix` replaced by `signed_prefix`, then
    /// matchRepoDigestOrExact (for mirrors).
    #[serde(rename = "remapIdentity")]
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

/// A docker reference reduced to what identities compare: name, tag, digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerName {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl DockerName {
    pub fn parse(s: &str) -> Result<DockerName, String> {
        match ImageRef::parse(s) {
            Ok(ImageRef::Registry(r)) => Ok(DockerName::from(&r)),
            Ok(ImageRef::Layout { .. }) => Err(format!("{s:?} is not a docker reference")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `name:tag` or `name@digest` (docker references carry one of them).
    fn full(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.name),
            (None, Some(t)) => format!("{}:{t}", self.name),
            (None, None) => self.name.clone(),
        }
    }
}

impl From<&RegistryRef> for DockerName {
    fn from(r: &RegistryRef) -> Self {
        // A reference with both keeps the digest, as skopeo resolves it.
        let tag = if r.digest.is_some() {
            None
        } else {
            Some(r.tag.clone().unwrap_or_else(|| "latest".into()))
        };
        DockerName {
            name: format!("{}/{}", r.registry, r.repository),
            tag,
            digest: r.digest.clone(),
        }
    }
}

impl SignedIdentity {
    /// Whether a signature claiming `signed` is good for `intended` (None: the image has no
    /// docker identity, as an OCI layout).
    pub fn matches(
        &self,
        intended: Option<&DockerName>,
        signed: &DockerName,
    ) -> Result<bool, String> {
        let need = || {
            intended.ok_or_else(|| {
                "the image has no docker reference to match the signature's identity against"
                    .to_string()
            })
        };
        Ok(match self {
            SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(need()?, signed),
            SignedIdentity::MatchExact => {
                let i = need()?;
                !i.name_only() && !signed.name_only() && i.full() == signed.full()
            }
            SignedIdentity::MatchRepository => need()?.name == signed.name,
            SignedIdentity::ExactReference { docker_reference } => {
                let r = DockerName::parse(docker_reference)?;
                !r.name_only() && !signed.name_only() && r.full() == signed.full()
            }
            SignedIdentity::ExactRepository { docker_repository } => {
                DockerName::parse(docker_repository)?.name == signed.name
            }
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                let i = need()?;
                match remap(&i.full(), prefix, signed_prefix) {
                    Some(remapped) => repo_digest_or_exact(&DockerName::parse(&remapped)?, signed),
                    None => repo_digest_or_exact(i, signed),
                }
            }
        })
    }
}

fn repo_digest_or_exact(intended: &DockerName, signed: &DockerName) -> bool {
    if intended.digest.is_some() {
        intended.name == signed.name
    } else {
        intended.tag.is_some() && intended.full() == signed.full()
    }
}

/// `reference` with `prefix` replaced, when the prefix ends at a name-component boundary.
fn remap(reference: &str, prefix: &str, signed_prefix: &str) -> Option<String> {
    let rest = reference.strip_prefix(prefix)?;
    let at_boundary = rest.is_empty() || rest.starts_with(['/', ':', '@']) || prefix.ends_with('/');
    at_boundary.then(|| format!("{signed_prefix}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> DockerName {
        DockerName::parse(s).unwrap()
    }

    #[test]
    fn the_default_wants_the_exact_tag_or_the_repository_of_a_digest() {
        let rule = SignedIdentity::default();
        let tagged = n("127.0.0.1:5000/os:v1");
        assert!(rule
            .matches(Some(&tagged), &n("127.0.0.1:5000/os:v1"))
            .unwrap());
        assert!(!rule
            .matches(Some(&tagged), &n("127.0.0.1:5000/os:v2"))
            .unwrap());
        assert!(!rule
            .matches(Some(&tagged), &n("127.0.0.1:5000/other:v1"))
            .unwrap());
        let pinned = n(&format!("127.0.0.1:5000/os@sha256:{}", "a".repeat(64)));
        assert!(rule
            .matches(Some(&pinned), &n("127.0.0.1:5000/os:v9"))
            .unwrap());
        assert!(!rule
            .matches(Some(&pinned), &n("127.0.0.1:5000/else:v9"))
            .unwrap());
        assert!(rule.matches(None, &n("127.0.0.1:5000/os:v1")).is_err());
    }

    #[test]
    fn repository_exact_and_remapped_identities() {
        let i = n("mirror.local:5000/os:v1");
        let repo = SignedIdentity::MatchRepository;
        assert!(repo
            .matches(Some(&i), &n("mirror.local:5000/os:v7"))
            .unwrap());
        let exact = SignedIdentity::ExactReference {
            docker_reference: "quay.io/acme/os:v1".into(),
        };
        assert!(exact.matches(Some(&i), &n("quay.io/acme/os:v1")).unwrap());
        assert!(!exact.matches(Some(&i), &n("quay.io/acme/os:v2")).unwrap());
        let remap = SignedIdentity::RemapIdentity {
            prefix: "mirror.local:5000".into(),
            signed_prefix: "quay.io/acme".into(),
        };
        assert!(remap.matches(Some(&i), &n("quay.io/acme/os:v1")).unwrap());
        assert!(!remap
            .matches(Some(&i), &n("mirror.local:5000/os:v1"))
            .unwrap());
        let other = n("mirror.local:50001/os:v1");
        assert!(!remap
            .matches(Some(&other), &n("quay.io/acme1/os:v1"))
            .unwrap());
    }
}
