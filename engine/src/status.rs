//! Host status as data, serializable as bootc's `org.containers.bootc/v1` `BootcHost`
//! so existing bootc tooling can read a Berth host. Berth-only facts sit under `berth`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: HostSpec,
    pub status: HostStatus,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    pub image: Option<ImageReference>,
    /// `default` or `rollback` (a rollback is queued).
    pub boot_order: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageReference {
    pub image: String,
    pub transport: String,
    /// bootc's `ImageSignature`: `containerPolicy` (verified by a key under the policy) or
    /// `insecure` (let in without a signature); None when Berth did not record it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<ImageSignature>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ImageSignature {
    ContainerPolicy,
    Insecure,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    pub staged: Option<BootEntry>,
    pub booted: Option<BootEntry>,
    pub rollback: Option<BootEntry>,
    pub rollback_queued: bool,
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    pub berth: BerthStatus,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootEntry {
    pub image: Option<ImageStatus>,
    pub cached_update: Option<ImageStatus>,
    pub incompatible: bool,
    pub pinned: bool,
    pub store: Option<&'static str>,
    pub ostree: Option<OstreeEntry>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    pub image: ImageReference,
    pub version: Option<String>,
    pub timestamp: Option<String>,
    pub image_digest: String,
    /// What the signature policy checked: scope, requirements, keys, identities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::trust::Verification>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OstreeEntry {
    pub checksum: String,
    pub deploy_serial: i32,
    pub stateroot: String,
}

/// What bootc's schema has no field for.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BerthStatus {
    /// The sysroot is not the running system; staging and reboot are emulated.
    pub emulated: bool,
    pub stateroot: Option<String>,
    /// Every deployment in boot order.
    pub deployments: Vec<DeploymentInfo>,
    /// An update downloaded but not staged yet.
    pub cached_update: Option<CachedUpdate>,
    pub boot_assessment: BootAssessment,
}

/// Whether the booted deployment is on trial, and the last update that failed its trial.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootAssessment {
    #[serde(flatten)]
    pub state: crate::assessment::BootState,
    pub last_failure: Option<crate::assessment::FailedUpdate>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentInfo {
    pub index: usize,
    pub stateroot: String,
    pub checksum: String,
    pub deploy_serial: i32,
    pub image: Option<ImageStatus>,
    pub booted: bool,
    pub staged: bool,
    pub rollback: bool,
    pub default: bool,
    pub pinned: bool,
    pub kernel_args: Vec<String>,
    /// The deployed system's name from its os-release (`PRETTY_NAME`, else `NAME`).
    pub os_name: Option<String>,
    /// `/usr` is writable: `transient` (until the next boot) or `hotfix` (until the next
    /// update); None when it is the image as built.
    pub unlocked: Option<&'static str>,
    /// The last drift check (`berth verify`) of this deployment, if any.
    pub drift: Option<crate::drift::DriftSummary>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CachedUpdate {
    pub image: String,
    pub manifest_digest: String,
    pub commit: String,
    pub version: Option<String>,
    pub timestamp: Option<String>,
    /// The booted deployment's commit when it was downloaded.
    #[serde(default)]
    pub base: Option<String>,
    /// How the signature policy let it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::trust::Verification>,
}
