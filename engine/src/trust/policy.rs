//! The containers signature policy (`policy.json`, containers-policy.json(5)): which
//! requirements an image must meet, chosen by the most specific scope that names it.

use super::identity::SignedIdentity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    default: Vec<Requirement>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One requirement; an image passes a scope only when it meets every one of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Requirement {
    // Empty structs, not unit variants: serde would let unit variants carry unknown fields.
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything {},
    #[serde(rename = "reject")]
    Reject {},
    /// GPG "simple signing".
    #[serde(rename = "signedBy", rename_all = "camelCase")]
    SignedBy {
        key_type: String,
        #[serde(default)]
        key_path: Option<PathBuf>,
        #[serde(default)]
        key_paths: Option<Vec<PathBuf>>,
        /// Base64 of the key(s), as JSON carries Go's `[]byte`.
        #[serde(default)]
        key_data: Option<String>,
        #[serde(default)]
        signed_identity: Option<SignedIdentity>,
    },
    /// cosign's signatures attached to the image in its registry, checked with a public key.
    #[serde(rename = "sigstoreSigned", rename_all = "camelCase")]
    SigstoreSigned {
        #[serde(default)]
        key_path: Option<PathBuf>,
        #[serde(default)]
        key_paths: Option<Vec<PathBuf>>,
        #[serde(default)]
        key_data: Option<String>,
        #[serde(default)]
        key_datas: Option<Vec<String>>,
        #[serde(default)]
        fulcio: Option<serde_json::Value>,
        #[serde(default)]
        rekor_public_key_path: Option<PathBuf>,
        #[serde(default)]
        rekor_public_key_data: Option<String>,
        #[serde(default)]
        signed_identity: Option<SignedIdentity>,
    },
}

impl Requirement {
    /// The requirement's name as policy.json spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything {} => "insecureAcceptAnything",
            Requirement::Reject {} => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Requirement::SignedBy {
                key_type,
                key_path,
                key_paths,
                key_data,
                ..
            } => {
                if key_type != "GPGKeys" {
                    return Err(format!(
                        "signedBy keyType {key_type:?} is not supported (only GPGKeys)"
                    ));
                }
                let given = [key_path.is_some(), key_paths.is_some(), key_data.is_some()];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(
                        "signedBy needs exactly one of keyPath, keyPaths and keyData".into(),
                    );
                }
            }
            Requirement::SigstoreSigned {
                key_path,
                key_paths,
                key_data,
                key_datas,
                fulcio,
                rekor_public_key_path,
                rekor_public_key_data,
                ..
            } => {
                if fulcio.is_some()
                    || rekor_public_key_path.is_some()
                    || rekor_public_key_data.is_some()
                {
                    return Err(
                        "sigstoreSigned with fulcio or rekor is not supported (only a public key)"
                            .into(),
                    );
                }
                let given = [
                    key_path.is_some(),
                    key_paths.is_some(),
                    key_data.is_some(),
                    key_datas.is_some(),
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err("sigstoreSigned needs exactly one of keyPath, keyPaths, keyData and keyDatas".into());
                }
            }
            Requirement::InsecureAcceptAnything {} | Requirement::Reject {} => {}
        }
        Ok(())
    }
}

/// Where an image comes from, as the policy's scopes name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scoped {
    /// `docker` transport: `host[:port]/path`, with its tag or digest.
    Docker {
        name: String,
        tag_or_digest: Option<String>,
    },
    /// `oci` transport: the layout's resolved directory and the tag asked for.
    Oci { dir: String, tag: Option<String> },
}

impl Scoped {
    fn transport(&self) -> &'static str {
        match self {
            Scoped::Docker { .. } => "docker",
            Scoped::Oci { .. } => "oci",
        }
    }

    /// The scopes that name this image, most specific first (containers-policy.json(5)).
    pub fn scopes(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            Scoped::Docker {
                name,
                tag_or_digest,
            } => {
                if let Some(td) = tag_or_digest {
                    let sep = if td.contains(':') { '@' } else { ':' };
                    out.push(format!("{name}{sep}{td}"));
                }
                let mut n = name.as_str();
                loop {
                    out.push(n.to_string());
                    match n.rfind('/') {
                        Some(i) => n = &n[..i],
                        None => break,
                    }
                }
                // Wildcarded domains: *.example.com for registry.example.com.
                let mut host = n;
                while let Some(i) = host.find('.') {
                    host = &host[i + 1..];
                    out.push(format!("*.{host}"));
                }
            }
            Scoped::Oci { dir, tag } => {
                if let Some(t) = tag {
                    out.push(format!("{dir}:{t}"));
                }
                let mut p = dir.as_str();
                while p != "/" && !p.is_empty() {
                    out.push(p.to_string());
                    match p.rfind('/') {
                        Some(i) => p = &p[..i],
                        None => break,
                    }
                }
            }
        }
        out
    }
}

/// The scope that applied and its requirements.
#[derive(Debug, Clone)]
pub struct Applicable<'a> {
    /// `docker:127.0.0.1:5000/os`, `oci:/srv/layout`, `docker` (the transport's default) or
    /// `default`.
    pub scope: String,
    pub requirements: &'a [Requirement],
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Policy::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Policy, String> {
        let policy: Policy = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let all = std::iter::once(&policy.default).chain(
            policy
                .transports
                .values()
                .flat_map(|scopes| scopes.values()),
        );
        for reqs in all {
            if reqs.is_empty() {
                return Err(
                    "a scope has no requirements (use insecureAcceptAnything or reject)".into(),
                );
            }
            for r in reqs {
                r.check()?;
            }
        }
        Ok(policy)
    }

    /// The requirements for `image`: its transport's most specific scope, that transport's
    /// "" scope, or the policy's `default`.
    pub fn requirements_for(&self, image: &Scoped) -> Applicable<'_> {
        let transport = image.transport();
        if let Some(scopes) = self.transports.get(transport) {
            for scope in image.scopes() {
                if let Some(reqs) = scopes.get(&scope) {
                    return Applicable {
                        scope: format!("{transport}:{scope}"),
                        requirements: reqs,
                    };
                }
            }
            if let Some(reqs) = scopes.get("") {
                return Applicable {
                    scope: transport.to_string(),
                    requirements: reqs,
                };
            }
        }
        Applicable {
            scope: "default".into(),
            requirements: &self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(name: &str, tag: &str) -> Scoped {
        Scoped::Docker {
            name: name.into(),
            tag_or_digest: Some(tag.into()),
        }
    }

    #[test]
    fn scopes_run_from_most_to_least_specific() {
        assert_eq!(
            docker("reg.example.com:5000/a/os", "v1").scopes(),
            [
                "reg.example.com:5000/a/os:v1",
                "reg.example.com:5000/a/os",
                "reg.example.com:5000/a",
                "reg.example.com:5000",
                "*.example.com:5000",
                "*.com:5000"
            ]
        );
        let oci = Scoped::Oci {
            dir: "/srv/images/os".into(),
            tag: Some("v2".into()),
        };
        assert_eq!(
            oci.scopes(),
            ["/srv/images/os:v2", "/srv/images/os", "/srv/images", "/srv"]
        );
    }

    #[test]
    fn the_most_specific_scope_wins_then_the_transport_then_default() {
        let p = Policy::parse(
            br#"{"default":[{"type":"reject"}],
                 "transports":{"docker":{
                    "127.0.0.1:5000/a":[{"type":"insecureAcceptAnything"}],
                    "127.0.0.1:5000/a/os:v1":[{"type":"reject"}]},
                  "oci":{"":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let at = |name: &str, tag: &str| p.requirements_for(&docker(name, tag)).scope;
        assert_eq!(
            at("127.0.0.1:5000/a/os", "v1"),
            "docker:127.0.0.1:5000/a/os:v1"
        );
        assert_eq!(at("127.0.0.1:5000/a/os", "v2"), "docker:127.0.0.1:5000/a");
        assert_eq!(at("127.0.0.1:5000/b/os", "v2"), "default");
        let oci = Scoped::Oci {
            dir: "/x".into(),
            tag: None,
        };
        assert_eq!(p.requirements_for(&oci).scope, "oci");
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            &br#"{"transports":{}}"#[..],
            br#"{"default":[]}"#,
            br#"{"default":[{"type":"acceptAll"}]}"#,
            br#"{"default":[{"type":"reject","extra":1}]}"#,
            br#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#,
            br#"{"default":[{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}]}"#,
            br#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","fulcio":{}}]}"#,
            br#"not json"#,
        ] {
            assert!(
                Policy::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
