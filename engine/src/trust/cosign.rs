//! cosign's signatures (sigstoreSigned with a public key): an ECDSA P-256 / SHA-256
//! signature, base64 in the layer annotation `dev.cosignproject.cosign/signature`, over the
//! layer's bytes (the claim). Verified with RustCrypto's `p256`, which rpgp already builds.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

pub struct PublicKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl PublicKeys {
    /// From keyPath(s) (PEM files) or keyData(s) (base64 of PEM).
    pub fn load(paths: &[PathBuf], datas: &[String]) -> Result<PublicKeys, String> {
        let mut keys = Vec::new();
        for path in paths {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
            keys.push(parse_key(&pem).map_err(|e| format!("key {}: {e}", path.display()))?);
        }
        for data in datas {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("keyData is not base64: {e}"))?;
            let pem = String::from_utf8(pem).map_err(|_| "keyData is not a PEM key".to_string())?;
            keys.push(parse_key(&pem).map_err(|e| format!("keyData: {e}"))?);
        }
        if keys.is_empty() {
            return Err("no public keys in the sigstoreSigned requirement".into());
        }
        Ok(PublicKeys { keys })
    }

    /// The id (`sha256:` of the key's DER) of the key that signed `payload`.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> Result<String, String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|e| format!("the signature annotation is not base64: {e}"))?;
        let sig = Signature::from_der(&der).map_err(|e| format!("not an ECDSA signature: {e}"))?;
        self.keys
            .iter()
            .find(|(_, key)| key.verify(payload, &sig).is_ok())
            .map(|(id, _)| id.clone())
            .ok_or_else(|| "not signed by a trusted key (or the signature is invalid)".into())
    }
}

fn parse_key(pem: &str) -> Result<(String, VerifyingKey), String> {
    let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| {
        format!("not an ECDSA P-256 public key in PEM ({e}); only P-256 keys are supported")
    })?;
    let der = key
        .to_public_key_der()
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let id = format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())));
    Ok((id, key))
}
