//! Registry credentials from the containers auth-file format, looked up as bootc does:
//! `/run/ostree/auth.json`, then `/etc/ostree/auth.json` (or the configured file).

use crate::error::{Error, Result};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const DEFAULT_AUTH_FILES: &[&str] = &["/run/ostree/auth.json", "/etc/ostree/auth.json"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: String },
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
}

/// Credentials for `registry`, from `configured` or the default auth files.
pub fn credentials_for(registry: &str, configured: Option<&Path>) -> Result<Credentials> {
    let candidates: Vec<PathBuf> = match configured {
        Some(p) => vec![p.to_path_buf()],
        None => DEFAULT_AUTH_FILES.iter().map(PathBuf::from).collect(),
    };
    for path in candidates {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Config {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        return parse(&text, registry).map_err(|reason| Error::Config { path, reason });
    }
    Ok(Credentials::Anonymous)
}

fn parse(text: &str, registry: &str) -> std::result::Result<Credentials, String> {
    let file: AuthFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    // Keys may be a bare host or a URL such as https://host/v1/.
    let entry = file.auths.iter().find(|(k, _)| {
        let host = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        host.split('/').next() == Some(registry)
    });
    let Some((_, AuthEntry { auth: Some(b64) })) = entry else {
        return Ok(Credentials::Anonymous);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("auth for {registry} is not base64: {e}"))?;
    let pair = String::from_utf8(raw).map_err(|_| format!("auth for {registry} is not UTF-8"))?;
    let (username, password) = pair
        .split_once(':')
        .ok_or_else(|| format!("auth for {registry} is not user:password"))?;
    Ok(Credentials::Basic {
        username: username.into(),
        password: password.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_registry_credentials() {
        let text = r#"{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"auth":"YTpi"}}}"#;
        assert_eq!(
            parse(text, "quay.io").unwrap(),
            Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            }
        );
        assert_eq!(
            parse(text, "index.docker.io").unwrap(),
            Credentials::Basic {
                username: "a".into(),
                password: "b".into()
            }
        );
        assert_eq!(parse(text, "ghcr.io").unwrap(), Credentials::Anonymous);
        assert!(parse(r#"{"auths":{"quay.io":{"auth":"!!"}}}"#, "quay.io").is_err());
        assert!(parse("not json", "quay.io").is_err());
    }
}
