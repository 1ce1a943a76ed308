//! Berth's core engine: pull bootable OCI images, import them into ostree, stage, roll back,
//! switch, pin, clean up, factory reset and install. berthd is its only privileged caller.

pub mod assessment;
pub mod auth;
pub mod blobcache;
pub mod bootcount;
pub mod bootflush;
pub mod config;
pub mod deployments;
pub mod drift;
pub mod engine;
pub mod error;
pub mod etcd;
pub mod etcmerge;
pub mod faults;
mod fsutil;
pub mod growing;
pub mod grubenv;
pub mod health;
mod hoststatus;
pub mod imgref;
pub mod import;
pub mod kargs;
pub mod layer;
pub mod layout;
pub mod objects;
pub mod oci;
pub mod progress;
mod pull;
pub mod rebootlock;
pub mod source;
pub mod space;
pub mod status;
pub mod targuard;
pub mod text;
pub mod trust;
pub mod unlock;

pub use config::{Config, Limits};
pub use engine::{
    install, Approval, CheckResult, CleanupReport, Engine, InstallOptions, Pulled, UpdateOptions,
    UpdateOutcome,
};
pub use error::{Error, Result};
pub use fsutil::write_atomic;
pub use imgref::ImageRef;
pub use progress::{Cancel, Phase, Progress, ProgressFn};
