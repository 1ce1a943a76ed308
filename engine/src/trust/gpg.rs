//! GPG "simple signing" (signedBy): an OpenPGP signed message whose literal data is the
//! claim. Verified with rpgp (the `pgp` crate): pure Rust, no C library or gpg-agent.

use base64::Engine as _;
use pgp::composed::{Deserializable, Message, SignedPublicKey};
use pgp::types::KeyDetails;
use std::path::PathBuf;

/// The keys a signedBy requirement trusts.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// From keyPath / keyPaths / keyData (base64 of binary or armored keys).
    pub fn load(paths: &[PathBuf], data: Option<&str>) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for path in paths {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
            keys.extend(parse_keys(&bytes).map_err(|e| format!("key {}: {e}", path.display()))?);
        }
        if let Some(data) = data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("keyData is not base64: {e}"))?;
            keys.extend(parse_keys(&bytes).map_err(|e| format!("keyData: {e}"))?);
        }
        if keys.is_empty() {
            return Err("no GPG keys in the signedBy requirement".into());
        }
        Ok(Keyring { keys })
    }

    /// Verifies `signature` and returns the primary key's fingerprint and the signed bytes.
    pub fn verify(&self, signature: &[u8]) -> Result<(String, Vec<u8>), String> {
        let mut msg =
            Message::from_bytes(signature).map_err(|e| format!("not an OpenPGP message: {e}"))?;
        while msg.is_compressed() {
            msg = msg
                .decompress()
                .map_err(|e| format!("cannot decompress the signature: {e}"))?;
        }
        let payload = msg
            .as_data_vec()
            .map_err(|e| format!("cannot read the signed data: {e}"))?;
        for key in &self.keys {
            let fingerprint = format!("{:X}", key.fingerprint());
            if msg.verify(key).is_ok() {
                return Ok((fingerprint, payload));
            }
            if key.public_subkeys.iter().any(|sub| msg.verify(sub).is_ok()) {
                return Ok((fingerprint, payload));
            }
        }
        Err("not signed by a trusted key (or the signature is invalid)".into())
    }
}

fn parse_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, String> {
    let (keys, _) = SignedPublicKey::from_reader_many(bytes).map_err(|e| e.to_string())?;
    let keys = keys
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for k in &keys {
        k.verify_bindings()
            .map_err(|e| format!("{:X}: {e}", k.fingerprint()))?;
    }
    Ok(keys)
}
