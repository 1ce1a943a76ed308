//! Berth's D-Bus API as every client sees it: the bus name, object paths, typed proxies for
//! the Manager and Transaction interfaces, and the error names berthd replies with.
//! `org.berth.Berth1.xml` next to this crate is the written contract; a test checks that the
//! running service matches it.

pub mod client;
pub mod model;

pub use client::{AutomaticEvent, CallError, Client, TransactionEvent};

use std::collections::HashMap;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

pub const BUS_NAME: &str = "org.berth.Berth1";
pub const MANAGER_PATH: &str = "/org/berth/Berth1";
pub const MANAGER_INTERFACE: &str = "org.berth.Berth1.Manager";
pub const TRANSACTION_INTERFACE: &str = "org.berth.Berth1.Transaction";
/// Transactions live under this path, numbered from 1 each time berthd starts.
pub const TRANSACTION_PATH_PREFIX: &str = "/org/berth/Berth1/Transaction/";
pub const ERROR_PREFIX: &str = "org.berth.Berth1.Error";

/// The interface XML, for tests and for clients that want to introspect offline.
pub const INTROSPECTION_XML: &str = include_str!("../org.berth.Berth1.xml");

/// `a{sv}` as it travels on the bus.
pub type Options = HashMap<String, OwnedValue>;

/// berthd's state machine, as the `State` property spells it.
pub mod state {
    pub const IDLE: &str = "idle";
    pub const CHECKING: &str = "checking";
    pub const DOWNLOADING: &str = "downloading";
    pub const IMPORTING: &str = "importing";
    pub const STAGING: &str = "staging";
    pub const CLEANING_UP: &str = "cleaning-up";
    pub const VERIFYING: &str = "verifying";
    pub const UPDATE_AVAILABLE: &str = "update-available";
    pub const UPDATE_READY: &str = "update-ready";
    pub const NEEDS_REBOOT: &str = "needs-reboot";
    pub const ERROR: &str = "error";
}

/// Short error names (after `org.berth.Berth1.Error.`), with the CLI exit code each maps to.
pub const ERRORS: &[(&str, i32)] = &[
    ("Failed", 1),
    ("InvalidReference", 2),
    ("InvalidConfiguration", 2),
    ("RegistryUnauthorized", 3),
    ("RegistryForbidden", 3),
    ("ImageNotFound", 3),
    ("Network", 3),
    ("BadManifest", 4),
    ("Unsupported", 4),
    ("DigestMismatch", 4),
    ("CorruptLayer", 4),
    ("HostileLayer", 4),
    ("NotBootable", 4),
    ("NotTrusted", 4),
    ("NoSpace", 5),
    ("Cancelled", 6),
    ("WrongState", 7),
    ("Busy", 7),
    ("Interrupted", 7),
    ("RebootBlocked", 7),
    ("NotAuthorized", 8),
    ("Downgrade", 8),
    ("HealthCheckFailed", 10),
    ("UpdateRolledBack", 10),
];

/// Exit code for a D-Bus error name (Berth's own, or the bus's standard ones).
pub fn exit_code_for(error_name: &str) -> i32 {
    if let Some(short) = error_name
        .strip_prefix(ERROR_PREFIX)
        .and_then(|s| s.strip_prefix('.'))
    {
        return ERRORS
            .iter()
            .find(|(n, _)| *n == short)
            .map_or(1, |(_, c)| *c);
    }
    match error_name {
        "org.freedesktop.DBus.Error.InvalidArgs" => 2,
        "org.freedesktop.DBus.Error.AccessDenied"
        | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => 8,
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoReply" => 9,
        _ => 1,
    }
}

#[zbus::proxy(
    interface = "org.berth.Berth1.Manager",
    default_service = "org.berth.Berth1",
    default_path = "/org/berth/Berth1",
    gen_blocking = false
)]
pub trait Manager {
    /// bootc-compatible `org.containers.bootc/v1` BootcHost JSON.
    fn get_status(&self) -> zbus::Result<String>;
    fn check(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn update(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn switch(&self, image: &str, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn rollback(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn factory_reset(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn cleanup(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    /// Drift: options index (u), automatic (b); the transaction's result is the report.
    fn verify(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    /// options: hotfix (b); default transient.
    fn unlock(&self, options: Options) -> zbus::Result<OwnedObjectPath>;
    fn pin(&self, index: u32) -> zbus::Result<()>;
    fn unpin(&self, index: u32) -> zbus::Result<()>;
    fn reboot(&self, options: Options) -> zbus::Result<()>;
    fn configure(&self, settings: Options) -> zbus::Result<()>;
    /// "good" ends the booted update's trial; "bad": the next boot falls back.
    fn mark_boot(&self, verdict: &str, options: Options) -> zbus::Result<()>;
    fn register_client(&self, options: Options) -> zbus::Result<()>;
    fn unregister_client(&self) -> zbus::Result<()>;

    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error_name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error_message(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn booted(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn staged(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn rollback_deployment(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn cached_update(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn boot_assessment(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn last_check(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn automatic_updates(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn automatic_settings(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn automatic_status(&self) -> zbus::Result<Options>;
    #[zbus(property)]
    fn blocked(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn config_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_transaction(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn emulated(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn daemon_version(&self) -> zbus::Result<String>;

    /// Automatic updates: found, downloaded, staged, blocked, failed, rebooting.
    #[zbus(signal)]
    fn automatic_update(&self, event: &str, details: Options) -> zbus::Result<()>;

    /// Boot assessment rolled an update back (once, when berthd first runs in that boot).
    #[zbus(signal)]
    fn update_rolled_back(
        &self,
        version: &str,
        digest: &str,
        reason: &str,
        message: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.berth.Berth1.Transaction",
    default_service = "org.berth.Berth1",
    gen_blocking = false
)]
pub trait Transaction {
    fn cancel(&self) -> zbus::Result<()>;

    #[zbus(signal)]
    fn progress(
        &self,
        phase: &str,
        fraction: f64,
        bytes_done: u64,
        bytes_total: u64,
        message: &str,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn finished(&self, success: bool, error_name: &str, error_message: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn phase(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fraction(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn bytes_done(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn bytes_total(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn message(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn initiator(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn initiator_uid(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn is_finished(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn success(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn error_name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error_message(&self) -> zbus::Result<String>;
    /// The outcome as JSON (what was pulled, staged, cleaned...), once finished.
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}

/// A plain `a{sv}` builder for clients.
pub fn options<const N: usize>(pairs: [(&str, zbus::zvariant::Value<'_>); N]) -> Options {
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.try_to_owned().expect("plain values have no fds"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_cover_every_error_and_the_bus_errors() {
        assert_eq!(exit_code_for("org.berth.Berth1.Error.Busy"), 7);
        assert_eq!(exit_code_for("org.berth.Berth1.Error.NotAuthorized"), 8);
        assert_eq!(exit_code_for("org.berth.Berth1.Error.Unheard"), 1);
        assert_eq!(
            exit_code_for("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
            8
        );
        assert_eq!(exit_code_for("org.freedesktop.DBus.Error.InvalidArgs"), 2);
    }

    #[test]
    fn interface_xml_names_both_interfaces() {
        assert!(INTROSPECTION_XML.contains(r#"<interface name="org.berth.Berth1.Manager">"#));
        assert!(INTROSPECTION_XML.contains(r#"<interface name="org.berth.Berth1.Transaction">"#));
    }
}
