//! The `[reboot-coordination]` table: the etcd cluster whose semaphore lets at most
//! `max-concurrent` machines of a group reboot at once (see `rebootlock`). Absent: every
//! machine reboots on its own schedule. Checked while read, like every table.

use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Coordination {
    /// etcd client URLs (`http://` or `https://`), tried in order until one answers.
    #[serde(default, deserialize_with = "endpoints")]
    pub endpoints: Vec<String>,
    /// The machines that share the slots.
    #[serde(default = "default_group", deserialize_with = "name")]
    pub group: String,
    /// Machines of the group rebooting at once.
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub max_concurrent: u32,
    /// How long a slot outlives a holder that stopped renewing it: long enough for a reboot
    /// and the new deployment's health checks; a machine that dies frees its slot after it.
    #[serde(default = "default_lease", deserialize_with = "lease")]
    pub lease_seconds: u64,
    /// This machine's name in the semaphore; default: its machine id.
    #[serde(
        default,
        deserialize_with = "some_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The CA that signed the members' certificates (PEM); default: the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This machine's client certificate (PEM) and its PKCS#8 key (PEM), for
    /// `--client-cert-auth` clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// etcd's own user authentication; the password is read from a file (root's alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl Coordination {
    /// What serde cannot say per key: settings that only make sense together.
    pub fn check(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("endpoints names no etcd member".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("cert-file and key-file go together".into());
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Err("username and password-file go together".into());
        }
        Ok(())
    }
}

fn default_group() -> String {
    "default".into()
}

fn one() -> u32 {
    1
}

fn default_lease() -> u64 {
    1800
}

fn endpoints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "at least one etcd endpoint is needed",
        ));
    }
    for e in &v {
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{e:?} is not an http:// or https:// URL"))
            })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!("{e:?} names no host")));
        }
    }
    Ok(v)
}

/// Group and machine names become etcd key segments: no slashes, nothing odd.
fn checked_name<E: serde::de::Error>(v: String) -> Result<String, E> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !v.starts_with('.');
    if ok {
        Ok(v)
    } else {
        Err(E::custom(format!(
            "{v:?}: 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_name(String::deserialize(d)?)
}

fn some_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_name(String::deserialize(d)?).map(Some)
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom(
            "at least one machine must be able to reboot",
        ));
    }
    Ok(v)
}

fn lease<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if !(5..=7 * 24 * 3600).contains(&v) {
        return Err(serde::de::Error::custom(
            "a lease is 5 seconds to a week (it must outlast a reboot)",
        ));
    }
    Ok(v)
}
