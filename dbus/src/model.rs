//! berthd's properties as typed values, so clients read `Deployment`s and a `CachedUpdate`
//! instead of picking through `a{sv}` dictionaries.

use crate::{ManagerProxy, Options};
use zbus::zvariant::OwnedValue;

fn string(o: &Options, key: &str) -> Option<String> {
    o.get(key)
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .filter(|s| !s.is_empty())
}

fn value<T: TryFrom<OwnedValue>>(o: &Options, key: &str) -> Option<T> {
    o.get(key)
        .and_then(|v| T::try_from(v.try_clone().ok()?).ok())
}

/// One deployment as `Booted`, `Staged` and `RollbackDeployment` describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    pub index: u32,
    pub image: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    /// The image's creation time (RFC 3339), when the image says.
    pub timestamp: Option<String>,
    pub os_name: Option<String>,
    pub stateroot: String,
    pub checksum: String,
    pub pinned: bool,
    /// How the signature policy let the image in; None when berthd did not record it.
    pub signature: Option<Signature>,
    /// `/usr` is writable: `transient` or `hotfix`.
    pub unlocked: Option<String>,
    /// The last drift check (`berth verify`), if any.
    pub drift: Option<Drift>,
}

/// What the last drift check of a deployment found.
#[derive(Debug, Clone, PartialEq)]
pub enum Drift {
    Clean,
    /// Paths changed, added or removed, and repository objects damaged.
    Drifted {
        paths: u32,
        corrupt_objects: u32,
    },
}

impl Drift {
    fn from_options(o: &Options) -> Option<Drift> {
        match string(o, "drift")?.as_str() {
            "clean" => Some(Drift::Clean),
            "drifted" => Some(Drift::Drifted {
                paths: value::<u32>(o, "drift-paths").unwrap_or(0),
                corrupt_objects: value::<u32>(o, "drift-corrupt-objects").unwrap_or(0),
            }),
            _ => None,
        }
    }
}

/// What the signature policy found when the image came in.
#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    /// Verified by these keys (GPG fingerprints, or `sha256:` ids of sigstore keys).
    Signed { by: Vec<String> },
    /// Let in without a signature (`insecureAcceptAnything`).
    Unverified,
}

impl Signature {
    fn from_options(o: &Options) -> Option<Signature> {
        match string(o, "signature")?.as_str() {
            "signed" => Some(Signature::Signed {
                by: value::<Vec<String>>(o, "signed-by").unwrap_or_default(),
            }),
            "unverified" => Some(Signature::Unverified),
            _ => None,
        }
    }
}

/// A key as people compare them: a GPG fingerprint's last 16 hex digits (its long key id),
/// a sigstore key id's first 12.
pub fn short_key(key: &str) -> String {
    if key.contains(':') {
        short_digest(key)
    } else {
        let start = key.len().saturating_sub(16);
        key.get(start..).unwrap_or(key).to_string()
    }
}

impl Deployment {
    /// None for the empty dictionary berthd sends when there is no such deployment.
    pub fn from_options(o: &Options) -> Option<Deployment> {
        Some(Deployment {
            index: value::<u32>(o, "index")?,
            image: string(o, "image"),
            version: string(o, "version"),
            digest: string(o, "digest"),
            timestamp: string(o, "timestamp"),
            os_name: string(o, "os-name"),
            stateroot: string(o, "stateroot").unwrap_or_default(),
            checksum: string(o, "checksum").unwrap_or_default(),
            pinned: value::<bool>(o, "pinned").unwrap_or(false),
            signature: Signature::from_options(o),
            unlocked: string(o, "unlocked"),
            drift: Drift::from_options(o),
        })
    }

    /// The digest as people compare them: the first 12 hex digits.
    pub fn short_digest(&self) -> Option<String> {
        self.digest.as_deref().map(short_digest)
    }
}

/// `sha256:0123456789abcdef...` -> `0123456789ab`.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// What the last check found, or what a download-only update fetched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedUpdate {
    pub image: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    /// Bytes still to download (0 once downloaded).
    pub download_size: u64,
    pub downloaded: bool,
}

impl CachedUpdate {
    pub fn from_options(o: &Options) -> Option<CachedUpdate> {
        if o.is_empty() {
            return None;
        }
        Some(CachedUpdate {
            image: string(o, "image"),
            version: string(o, "version"),
            digest: string(o, "digest"),
            download_size: value::<u64>(o, "download-size").unwrap_or(0),
            downloaded: value::<bool>(o, "downloaded").unwrap_or(false),
        })
    }
}

/// The scheduler's state (AutomaticStatus with Blocked).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutomaticStatus {
    /// Seconds since the epoch; 0: never, or (next_run) nothing scheduled.
    pub last_check: u64,
    pub next_run: u64,
    /// berthd's own words (English) for the last step's outcome.
    pub last_outcome: String,
    pub failures: u32,
    /// The Blocked code ("" when nothing holds the step back) and berthd's words for it.
    pub blocked: String,
    pub blocked_reason: String,
    /// The fleet group whose reboot slot this machine holds.
    pub reboot_slot: Option<String>,
}

impl AutomaticStatus {
    pub async fn read(m: &ManagerProxy<'_>) -> zbus::Result<AutomaticStatus> {
        let o = m.automatic_status().await?;
        let text = |k: &str| {
            o.get(k)
                .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
                .unwrap_or_default()
        };
        let number = |k: &str| o.get(k).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        Ok(AutomaticStatus {
            last_check: number("last-check"),
            next_run: number("next-run"),
            last_outcome: text("last-outcome"),
            failures: o
                .get("failures")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            blocked: m.blocked().await?,
            blocked_reason: text("blocked-reason"),
            reboot_slot: Some(text("reboot-slot")).filter(|s| !s.is_empty()),
        })
    }
}

/// Every Manager property at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub state: String,
    pub error_name: String,
    pub error_message: String,
    pub booted: Option<Deployment>,
    pub staged: Option<Deployment>,
    pub rollback: Option<Deployment>,
    pub cached_update: Option<CachedUpdate>,
    /// When a check last succeeded (seconds since the epoch), whoever asked; 0: none yet.
    pub last_check: u64,
    pub automatic_updates: String,
    /// The scheduler's AutomaticStatus, and what holds its step back (Blocked).
    pub automatic: AutomaticStatus,
    /// None when nothing runs.
    pub active_transaction: Option<String>,
    pub emulated: bool,
}

impl Snapshot {
    pub async fn read(m: &ManagerProxy<'_>) -> zbus::Result<Snapshot> {
        let active = m.active_transaction().await?;
        Ok(Snapshot {
            state: m.state().await?,
            error_name: m.error_name().await?,
            error_message: m.error_message().await?,
            booted: Deployment::from_options(&m.booted().await?),
            staged: Deployment::from_options(&m.staged().await?),
            rollback: Deployment::from_options(&m.rollback_deployment().await?),
            cached_update: CachedUpdate::from_options(&m.cached_update().await?),
            last_check: m.last_check().await?,
            automatic_updates: m.automatic_updates().await?,
            automatic: AutomaticStatus::read(m).await?,
            active_transaction: (active.as_str() != "/").then(|| active.to_string()),
            emulated: m.emulated().await?,
        })
    }
}

/// A deployment as `GetStatus` lists it (every deployment, in boot order).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedDeployment {
    pub index: u32,
    pub image: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub os_name: Option<String>,
    pub booted: bool,
    pub staged: bool,
    pub rollback: bool,
    pub pinned: bool,
}

/// The deployments from `GetStatus`'s JSON.
pub fn list_deployments(status_json: &str) -> Result<Vec<ListedDeployment>, serde_json::Error> {
    let host: serde_json::Value = serde_json::from_str(status_json)?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    Ok(host["status"]["berth"]["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| ListedDeployment {
            index: d["index"].as_u64().unwrap_or(0) as u32,
            image: text(&d["image"]["image"]["image"]),
            version: text(&d["image"]["version"]),
            digest: text(&d["image"]["imageDigest"]),
            os_name: text(&d["osName"]),
            booted: d["booted"] == true,
            staged: d["staged"] == true,
            rollback: d["rollback"] == true,
            pinned: d["pinned"] == true,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options;
    use zbus::zvariant::Value;

    #[test]
    fn a_deployment_reads_from_its_dictionary_and_an_empty_one_is_none() {
        let o = options([
            ("index", Value::U32(1)),
            ("image", Value::from("registry.example/os:stable")),
            ("digest", Value::from("sha256:0123456789abcdef0123")),
            ("pinned", Value::Bool(true)),
        ]);
        let d = Deployment::from_options(&o).expect("has an index");
        assert_eq!(d.index, 1);
        assert!(d.pinned);
        assert_eq!(d.short_digest().as_deref(), Some("0123456789ab"));
        assert_eq!(d.version, None);
        assert_eq!(Deployment::from_options(&Options::new()), None);
        assert_eq!(CachedUpdate::from_options(&Options::new()), None);
    }

    #[test]
    fn deployments_list_from_status_json() {
        let json = r#"{"status":{"berth":{"deployments":[
            {"index":0,"staged":true,"booted":false,"pinned":false,
             "image":{"image":{"image":"r/os:1"},"version":"2","imageDigest":"sha256:ab"}},
            {"index":1,"booted":true,"pinned":true,"osName":"Demo OS 1"}]}}}"#;
        let list = list_deployments(json).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].staged && !list[0].booted);
        assert_eq!(list[0].version.as_deref(), Some("2"));
        assert!(list[1].booted && list[1].pinned);
        assert_eq!(list[1].os_name.as_deref(), Some("Demo OS 1"));
    }
}
