//! Image references: registry references validated against the OCI distribution grammar,
//! and local OCI layout directories (`oci:/path[:tag]`) for offline or USB updates.

use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;

const DEFAULT_REGISTRY: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Registry(RegistryRef),
    /// An OCI image layout directory; `tag` selects `org.opencontainers.image.ref.name`.
    Layout {
        path: PathBuf,
        tag: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]`
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("contains whitespace or control characters"));
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            return parse_layout(rest).map_err(|r| bad(&r));
        }
        let rest = input.strip_prefix("docker://").unwrap_or(input);
        parse_registry(rest)
            .map(ImageRef::Registry)
            .map_err(|r| bad(&r))
    }

    /// The same image pinned to a manifest digest (registry images only).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        match self {
            ImageRef::Registry(r) => ImageRef::Registry(RegistryRef {
                digest: Some(digest.to_string()),
                ..r.clone()
            }),
            other => other.clone(),
        }
    }

    /// bootc's transport name for this reference.
    pub fn transport(&self) -> &'static str {
        match self {
            ImageRef::Registry(_) => "registry",
            ImageRef::Layout { .. } => "oci",
        }
    }

    /// The reference without the transport prefix, as bootc prints it.
    pub fn image_name(&self) -> String {
        match self {
            ImageRef::Registry(r) => r.to_string(),
            ImageRef::Layout { path, tag } => match tag {
                Some(t) => format!("{}:{t}", path.display()),
                None => path.display().to_string(),
            },
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => r.fmt(f),
            ImageRef::Layout { .. } => write!(f, "oci:{}", self.image_name()),
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

fn parse_layout(rest: &str) -> std::result::Result<ImageRef, String> {
    if !rest.starts_with('/') {
        return Err("an OCI layout path must be absolute (oci:/path[:tag])".into());
    }
    // The tag is whatever follows the last ':' after the last '/'.
    let last_slash = rest.rfind('/').unwrap_or(0);
    let (path, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let (p, t) = rest.split_at(last_slash + i);
            (p, Some(&t[1..]))
        }
        None => (rest, None),
    };
    if path.split('/').any(|c| c == "..") {
        return Err("the layout path must not contain '..'".into());
    }
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(format!("invalid tag {t:?}"));
        }
    }
    Ok(ImageRef::Layout {
        path: PathBuf::from(path),
        tag: tag.map(str::to_string),
    })
}

fn parse_registry(s: &str) -> std::result::Result<RegistryRef, String> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        validate_digest(d)?;
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = name_tag.rfind('/');
    let tag_colon = name_tag
        .rfind(':')
        .filter(|&c| last_slash.is_none_or(|s| c > s));
    let (name, tag) = match tag_colon {
        Some(c) => (&name_tag[..c], Some(&name_tag[c + 1..])),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(format!("invalid tag {t:?}"));
        }
    }
    if name.is_empty() {
        return Err("missing repository name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "repository name longer than {MAX_NAME_LEN} characters"
        ));
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if is_domain(first) => (first.to_string(), rest.to_string()),
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    validate_domain(&registry)?;
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(format!(
                "invalid repository path component {component:?} (lowercase letters, digits and . _ - separators)"
            ));
        }
    }
    let tag = match (tag, digest) {
        (None, None) => Some("latest".to_string()),
        (t, _) => t.map(str::to_string),
    };
    Ok(RegistryRef {
        registry,
        repository,
        tag,
        digest: digest.map(str::to_string),
    })
}

/// The first path component names a registry if it looks like a host.
fn is_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn validate_domain(domain: &str) -> std::result::Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("unterminated IPv6 address")?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {v6:?}"));
        }
        (None, after.strip_prefix(':'))
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!("invalid port {p:?}"));
        }
    }
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(format!("invalid registry host {h:?}"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
pub(crate) fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase).
pub(crate) fn validate_digest(d: &str) -> std::result::Result<(), String> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("invalid digest {d:?}"))?;
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {alg:?}")),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("invalid {alg} digest {d:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RegistryRef {
        match ImageRef::parse(s).unwrap() {
            ImageRef::Registry(r) => r,
            other => panic!("not a registry ref: {other:?}"),
        }
    }

    #[test]
    fn registry_references() {
        let r = reg("quay.io/org/os:tag");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("quay.io", "org/os", Some("tag"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = reg(&format!("127.0.0.1:5000/x@{d}"));
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.tag,
                r.digest.as_deref()
            ),
            ("127.0.0.1:5000", "x", None, Some(d.as_str()))
        );
        let r = reg("fedora");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/fedora", Some("latest"))
        );
        let r = reg("localhost/a-b__c.d/e:1.0-rc_1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "a-b__c.d/e")
        );
        assert_eq!(reg("docker://quay.io/a/b:1").to_string(), "quay.io/a/b:1");
        assert_eq!(reg("[::1]:5000/os:2").registry, "[::1]:5000");
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "Quay.io",
            "quay.io/Org/os",
            "quay.io/os:",
            "quay.io/os:-x",
            "quay.io/os@sha256:abc",
            "quay.io/os@md5:0123",
            "host:99999/os",
            "quay.io/a//b",
            "quay.io/a..b",
            "quay.io/-a",
            "quay.io/os; rm -rf /",
            "quay.io/os\n",
            "oci:relative/path",
            "oci:/a/../b",
            "host:port/x",
            &format!("quay.io/{}", "a".repeat(300)),
            &format!("quay.io/os:{}", "t".repeat(129)),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn layout_references() {
        assert_eq!(
            ImageRef::parse("oci:/media/usb/os:2").unwrap(),
            ImageRef::Layout {
                path: "/media/usb/os".into(),
                tag: Some("2".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/srv/img").unwrap(),
            ImageRef::Layout {
                path: "/srv/img".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/srv/img:v1").unwrap().to_string(),
            "oci:/srv/img:v1"
        );
    }
}
