//! Authorization: every mutating call is checked with polkit for the calling bus name.
//! Root (uid 0) is allowed without asking polkit, as polkit itself would answer; everyone else
//! needs the action's polkit grant. If polkit cannot answer, the call is refused.

use crate::bus_error::BusError;
use enumflags2::BitFlags;
use std::collections::HashMap;
use tokio::sync::OnceCell;
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::proxy::CacheProperties;
use zbus::Connection;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// One polkit action per kind of operation (ids in polkit/org.berth.berth1.policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Check,
    Update,
    Reboot,
    Switch,
    Rollback,
    Cleanup,
    Pin,
    Configure,
    FactoryReset,
    MarkBoot,
    /// Cancelling work someone else started (root's, the timer's, another user's).
    CancelOthers,
    /// Deploying an image the signature policy lets in unsigned over a signed booted one.
    DowngradeTrust,
    /// Comparing a deployment with its image (reads all of /usr: not free for the machine).
    Verify,
    /// Making /usr writable: the system stops being the image as built.
    Unlock,
}

impl Action {
    pub fn id(self) -> &'static str {
        match self {
            Action::Check => "org.berth.berth1.check",
            Action::Update => "org.berth.berth1.update",
            Action::Reboot => "org.berth.berth1.reboot",
            Action::Switch => "org.berth.berth1.switch",
            Action::Rollback => "org.berth.berth1.rollback",
            Action::Cleanup => "org.berth.berth1.cleanup",
            Action::Pin => "org.berth.berth1.pin",
            Action::Configure => "org.berth.berth1.configure",
            Action::FactoryReset => "org.berth.berth1.factory-reset",
            Action::MarkBoot => "org.berth.berth1.mark-boot",
            Action::CancelOthers => "org.berth.berth1.cancel-others",
            Action::DowngradeTrust => "org.berth.berth1.downgrade-trust",
            Action::Verify => "org.berth.berth1.verify",
            Action::Unlock => "org.berth.berth1.unlock",
        }
    }
}

/// What is being approved, passed to polkit as details: the prompt shows them (the action
/// messages say `$(image)`), and rules can decide on them (`action.lookup("image")`).
#[derive(Debug, Clone, Default)]
pub struct Details(Vec<(&'static str, String)>);

impl Details {
    /// Every check names its operation ("update", "switch", ...).
    pub fn new(operation: &str) -> Self {
        Details(vec![("operation", operation.to_string())])
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.0.push((key, value.into()));
        self
    }

    fn to_map(&self) -> HashMap<&str, &str> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// Who is calling: resolved from the message's sender by the bus itself.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sender: String,
    pub uid: u32,
}

impl Caller {
    /// "uid 1000 (alice) via :1.42", for transactions and logs.
    pub fn describe(&self) -> String {
        match user_name(self.uid) {
            Some(name) => format!("uid {} ({name}) via {}", self.uid, self.sender),
            None => format!("uid {} via {}", self.uid, self.sender),
        }
    }
}

pub struct Authority {
    conn: Connection,
    polkit: OnceCell<AuthorityProxy<'static>>,
    bus: OnceCell<zbus::fdo::DBusProxy<'static>>,
}

impl Authority {
    pub fn new(conn: Connection) -> Self {
        Authority {
            conn,
            polkit: OnceCell::new(),
            bus: OnceCell::new(),
        }
    }

    pub async fn caller(&self, hdr: &Header<'_>) -> Result<Caller, BusError> {
        let sender = hdr
            .sender()
            .ok_or_else(|| BusError::not_authorized("the message has no sender"))?
            .to_string();
        let bus = self
            .bus
            .get_or_try_init(|| zbus::fdo::DBusProxy::new(&self.conn))
            .await?;
        let uid = bus
            .get_connection_unix_user(
                BusName::try_from(sender.as_str()).map_err(|e| BusError::failed(e.to_string()))?,
            )
            .await
            .map_err(|e| BusError::not_authorized(format!("cannot identify the caller: {e}")))?;
        Ok(Caller { sender, uid })
    }

    /// Checks `actions` (all must be granted) for the sender of `hdr`.
    pub async fn authorize(
        &self,
        hdr: &Header<'_>,
        actions: &[Action],
        details: &Details,
    ) -> Result<Caller, BusError> {
        let caller = self.caller(hdr).await?;
        if caller.uid == 0 {
            return Ok(caller);
        }
        for &action in actions {
            self.check(hdr, &caller, action, details).await?;
        }
        Ok(caller)
    }

    async fn check(
        &self,
        hdr: &Header<'_>,
        caller: &Caller,
        action: Action,
        details: &Details,
    ) -> Result<(), BusError> {
        let subject = Subject::new_for_message_header(hdr)
            .map_err(|e| BusError::not_authorized(format!("cannot build a polkit subject: {e}")))?;
        // Honour the caller's ALLOW_INTERACTIVE_AUTHORIZATION flag (busctl sets it by default).
        let interactive = hdr.primary().flags().contains(Flags::AllowInteractiveAuth);
        let flags: BitFlags<CheckAuthorizationFlags> = if interactive {
            CheckAuthorizationFlags::AllowUserInteraction.into()
        } else {
            BitFlags::empty()
        };
        let polkit = self
            .polkit
            .get_or_try_init(|| async {
                AuthorityProxy::builder(&self.conn)
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await
            })
            .await
            .map_err(|e| BusError::not_authorized(format!("polkit is unavailable: {e}")))?;
        let result = polkit
            .check_authorization(&subject, action.id(), &details.to_map(), flags, "")
            .await
            .map_err(|e| BusError::not_authorized(format!("polkit could not decide: {e}")))?;
        tracing::info!(
            action = action.id(),
            caller = %caller.describe(),
            details = ?details.0,
            interactive,
            authorized = result.is_authorized,
            challenge = result.is_challenge,
            "polkit"
        );
        if result.is_authorized {
            Ok(())
        } else if result.is_challenge && !interactive {
            Err(BusError::interactive_auth_required(format!(
                "{} needs authentication: call again allowing interactive authorization",
                action.id()
            )))
        } else {
            Err(BusError::not_authorized(format!(
                "{} is not authorized for {}",
                caller.describe(),
                action.id()
            )))
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into pwd and buf, whose sizes we pass.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into buf, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
