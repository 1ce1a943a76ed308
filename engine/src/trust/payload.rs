//! The signed claim inside a signature: "this manifest digest is this docker reference"
//! (the "simple signing" JSON shared by GPG signatures and cosign's).

use serde::Deserialize;

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub docker_reference: String,
    pub manifest_digest: String,
}

pub const GPG_TYPE: &str = "atomic container signature";
pub const COSIGN_TYPE: &str = "cosign container image signature";

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
    // Free-form (creator, timestamp); never trusted.
    #[serde(default)]
    #[allow(dead_code)]
    optional: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    identity: Identity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// Parses the signed bytes; `kind` is the type the signature format must declare.
pub fn parse(bytes: &[u8], kind: &str) -> Result<Claim, String> {
    let p: Payload =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed signature payload: {e}"))?;
    if p.critical.kind != kind {
        return Err(format!(
            "signature type {:?} is not {kind:?}",
            crate::text::outside(&p.critical.kind)
        ));
    }
    Ok(Claim {
        docker_reference: p.critical.identity.reference,
        manifest_digest: p.critical.image.digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_claim_and_refuses_other_types_and_extra_critical_fields() {
        let ok = br#"{"critical":{"identity":{"docker-reference":"r/os:v1"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"atomic container signature"},"optional":{"creator":"x"}}"#;
        let c = parse(ok, GPG_TYPE).unwrap();
        assert_eq!(
            (c.docker_reference.as_str(), c.manifest_digest.as_str()),
            ("r/os:v1", "sha256:ab")
        );
        assert!(parse(ok, COSIGN_TYPE).is_err());
        let extra = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"atomic container signature","x":1}}"#;
        assert!(parse(extra, GPG_TYPE).is_err());
    }
}
