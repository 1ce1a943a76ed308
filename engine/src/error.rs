//! The engine's error type. Every variant maps to one stable, machine-readable name
//! (`Error::name`) so that berthd can turn it into a precise D-Bus error.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("registry {registry} refused the credentials (HTTP 401): {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("registry {registry} denied access (HTTP 403): {detail}")]
    Forbidden { registry: String, detail: String },
    #[error("image not found: {what}")]
    NotFound { what: String },
    #[error("network error talking to {registry}: {detail}")]
    Network { registry: String, detail: String },
    #[error("malformed manifest or configuration: {0}")]
    BadManifest(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer} is corrupt or truncated: {detail}")]
    CorruptLayer { layer: String, detail: String },
    #[error("layer {layer} is rejected: {detail}")]
    HostileLayer { layer: String, detail: String },
    #[error("not a bootable image: {0}")]
    NotBootable(String),
    /// The source could have been changed by someone other than root (or is laid out to
    /// mislead a root reader: links, FIFOs, devices).
    #[error("not trusted: {0}")]
    NotTrusted(String),
    /// The image is older than the booted one: only an administrator may go back.
    #[error("{0}")]
    Downgrade(String),
    #[error("not enough free space in {path}: need {needed} bytes, {available} available{hint}")]
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
        /// What was kept and how to free it, or why the need was higher than estimated.
        hint: String,
    },
    #[error("operation cancelled")]
    Cancelled,
    #[error("wrong state: {0}")]
    WrongState(String),
    #[error("busy: {0}")]
    Busy(String),
    /// A health check of the booted system failed (`berthd health-check`).
    #[error("health check failed: {0}")]
    HealthCheckFailed(String),
    /// The fleet's reboot coordination (etcd) failed or refused. It never reaches D-Bus: the
    /// scheduler turns it into a Blocked reason.
    #[error("reboot coordination: {0}")]
    Coordination(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Ostree {
        context: String,
        source: ostree::glib::Error,
    },
}

impl Error {
    /// Stable short name of the error kind; berthd publishes it as
    /// `org.berth.Berth1.Error.<Name>`.
    pub fn name(&self) -> &'static str {
        match self {
            Error::InvalidReference { .. } => "InvalidReference",
            Error::Config { .. } => "InvalidConfiguration",
            Error::Unauthorized { .. } => "RegistryUnauthorized",
            Error::Forbidden { .. } => "RegistryForbidden",
            Error::NotFound { .. } => "ImageNotFound",
            Error::Network { .. } => "Network",
            Error::BadManifest(_) => "BadManifest",
            Error::Unsupported(_) => "Unsupported",
            Error::DigestMismatch { .. } => "DigestMismatch",
            Error::CorruptLayer { .. } => "CorruptLayer",
            Error::HostileLayer { .. } => "HostileLayer",
            Error::NotBootable(_) => "NotBootable",
            Error::NotTrusted(_) => "NotTrusted",
            Error::Downgrade(_) => "Downgrade",
            Error::NoSpace { .. } => "NoSpace",
            Error::Cancelled => "Cancelled",
            Error::WrongState(_) => "WrongState",
            Error::Busy(_) => "Busy",
            Error::HealthCheckFailed(_) => "HealthCheckFailed",
            Error::Coordination(_) => "Failed",
            Error::Io { source, .. } if is_enospc(source) => "NoSpace",
            Error::Io { .. } => "Failed",
            Error::Ostree { source, .. } if glib_is_enospc(source) => "NoSpace",
            Error::Ostree { .. } => "Failed",
        }
    }

    /// True for errors worth retrying against a registry (5xx, dropped connections).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Network { .. })
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn ostree(context: impl Into<String>, source: ostree::glib::Error) -> Self {
        Error::Ostree {
            context: context.into(),
            source,
        }
    }
}

fn is_enospc(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull
}

fn glib_is_enospc(e: &ostree::glib::Error) -> bool {
    e.matches(ostree::gio::IOErrorEnum::NoSpace) || e.message().contains("No space left")
}

/// Adds context to io and glib results.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, ostree::glib::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::ostree(context(), e))
    }
}
