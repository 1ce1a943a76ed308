//! A connection to berthd for unprivileged clients: calls that let polkit ask for a password
//! (unless the client says not to), errors carrying their D-Bus names, and transaction signals
//! taken only from berthd itself.

use crate::{ManagerProxy, TransactionProxy, BUS_NAME, ERROR_PREFIX, TRANSACTION_INTERFACE};
use zbus::proxy::MethodFlags;
use zbus::zvariant::{DynamicDeserialize, DynamicType};
use zbus::Connection;

/// A failed call or transaction, with its D-Bus error name.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub name: String,
    pub message: String,
}

impl CallError {
    pub fn new(short_name: &str, message: impl Into<String>) -> CallError {
        CallError {
            name: format!("{ERROR_PREFIX}.{short_name}"),
            message: message.into(),
        }
    }

    /// `Network` for `org.berth.Berth1.Error.Network`; the bus's own errors keep their
    /// full names (`org.freedesktop.DBus.Error.AccessDenied`).
    pub fn short_name(&self) -> &str {
        self.name
            .strip_prefix(ERROR_PREFIX)
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or(&self.name)
    }

    /// berthd is not on the bus, or went away mid-call.
    pub fn is_unreachable(&self) -> bool {
        crate::exit_code_for(&self.name) == 9
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.name)
    }
}

impl std::error::Error for CallError {}

impl From<zbus::fdo::Error> for CallError {
    fn from(e: zbus::fdo::Error) -> Self {
        CallError::from(zbus::Error::from(e))
    }
}

impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => CallError {
                name: name.to_string(),
                message: msg.unwrap_or_default(),
            },
            zbus::Error::FDO(e) => {
                let e = *e;
                CallError {
                    name: zbus::DBusError::name(&e).to_string(),
                    message: zbus::DBusError::description(&e)
                        .unwrap_or_default()
                        .to_string(),
                }
            }
            other => CallError {
                name: "org.freedesktop.DBus.Error.NoReply".into(),
                message: format!("cannot reach berthd: {other}"),
            },
        }
    }
}

/// One signal of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionEvent {
    Progress {
        phase: String,
        fraction: f64,
        bytes_done: u64,
        bytes_total: u64,
        message: String,
    },
    Finished {
        success: bool,
        error_name: String,
        error_message: String,
    },
}

/// An `AutomaticUpdate` signal: what berthd's scheduler did (found, downloaded, staged,
/// blocked, failed, rebooting) and its details (version, code, reason, error-message...).
#[derive(Debug, Clone, PartialEq)]
pub struct AutomaticEvent {
    pub event: String,
    pub details: std::collections::HashMap<String, String>,
}

impl AutomaticEvent {
    /// The event of a signal message, if it is berthd's AutomaticUpdate; string details only
    /// (what clients show).
    pub fn parse(msg: &zbus::Message) -> Option<AutomaticEvent> {
        let hdr = msg.header();
        if hdr.member()?.as_str() != "AutomaticUpdate"
            || hdr.path()?.as_str() != crate::MANAGER_PATH
        {
            return None;
        }
        let (event, details) = msg.body().deserialize::<(String, crate::Options)>().ok()?;
        let details = details
            .iter()
            .filter_map(|(k, v)| {
                let s = String::try_from(v.try_clone().ok()?).ok()?;
                Some((k.clone(), s))
            })
            .collect();
        Some(AutomaticEvent { event, details })
    }

    pub fn detail(&self, key: &str) -> &str {
        self.details.get(key).map_or("", String::as_str)
    }
}

impl TransactionEvent {
    /// The transaction path and event of a signal message, if it is one of berthd's.
    pub fn parse(msg: &zbus::Message) -> Option<(String, TransactionEvent)> {
        let hdr = msg.header();
        let path = hdr.path()?.to_string();
        let event = match hdr.member()?.as_str() {
            "Progress" => {
                let (phase, fraction, bytes_done, bytes_total, message) = msg
                    .body()
                    .deserialize::<(String, f64, u64, u64, String)>()
                    .ok()?;
                TransactionEvent::Progress {
                    phase,
                    fraction,
                    bytes_done,
                    bytes_total,
                    message,
                }
            }
            "Finished" => {
                let (success, error_name, error_message) =
                    msg.body().deserialize::<(bool, String, String)>().ok()?;
                TransactionEvent::Finished {
                    success,
                    error_name,
                    error_message,
                }
            }
            _ => return None,
        };
        Some((path, event))
    }
}

pub struct Client {
    pub conn: Connection,
    pub manager: ManagerProxy<'static>,
    interactive: bool,
}

impl Client {
    /// Connects to the system bus. `interactive`: privileged calls let polkit ask the user
    /// (through the desktop's or the terminal's agent).
    pub async fn connect(interactive: bool) -> Result<Client, CallError> {
        let conn = Connection::system().await?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Client {
            conn,
            manager,
            interactive,
        })
    }

    pub fn flags(&self) -> enumflags2::BitFlags<MethodFlags> {
        if self.interactive {
            MethodFlags::AllowInteractiveAuth.into()
        } else {
            Default::default()
        }
    }

    /// Calls a Manager method with the client's interaction flag.
    pub async fn call<B, R>(&self, method: &str, body: &B) -> Result<R, CallError>
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        self.manager
            .inner()
            .call_with_flags(method, self.flags(), body)
            .await?
            .ok_or_else(|| CallError {
                name: "org.freedesktop.DBus.Error.NoReply".into(),
                message: "no reply".into(),
            })
    }

    pub async fn call_unit<B>(&self, method: &str, body: &B) -> Result<(), CallError>
    where
        B: serde::Serialize + DynamicType,
    {
        self.manager
            .inner()
            .call_with_flags::<_, _, ()>(method, self.flags(), body)
            .await?;
        Ok(())
    }

    pub async fn transaction(&self, path: &str) -> Result<TransactionProxy<'static>, CallError> {
        Ok(TransactionProxy::builder(&self.conn)
            .path(path.to_string())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// Cancels a transaction, letting polkit ask when it is someone else's.
    pub async fn cancel(&self, path: &str) -> Result<(), CallError> {
        let t = self.transaction(path).await?;
        t.inner()
            .call_with_flags::<_, _, ()>("Cancel", self.flags(), &())
            .await?;
        Ok(())
    }

    /// berthd's unique name, starting berthd by bus activation if it is not running.
    pub async fn owner(&self) -> Result<String, CallError> {
        self.conn
            .call_method(
                Some(BUS_NAME),
                crate::MANAGER_PATH,
                Some("org.freedesktop.DBus.Peer"),
                "Ping",
                &(),
            )
            .await?;
        let bus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        Ok(bus
            .get_name_owner(BUS_NAME.try_into().expect("valid name"))
            .await?
            .to_string())
    }

    /// Transaction signals from berthd itself: the rule names berthd's unique bus name, so
    /// nobody else on the bus can fake progress or a Finished.
    pub async fn transaction_signals(&self) -> Result<zbus::MessageStream, CallError> {
        let owner = self.owner().await?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(owner)?
            .interface(TRANSACTION_INTERFACE)?
            .build();
        Ok(zbus::MessageStream::for_match_rule(rule, &self.conn, Some(256)).await?)
    }

    /// Every signal berthd (this instance of it) sends: transactions' and the Manager's
    /// PropertiesChanged.
    pub async fn all_signals(&self, owner: &str) -> Result<zbus::MessageStream, CallError> {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(owner.to_string())?
            .path_namespace("/org/berth/Berth1")?
            .build();
        Ok(zbus::MessageStream::for_match_rule(rule, &self.conn, Some(256)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_unreachable() {
        let e = CallError::new("NoSpace", "need 3 GB");
        assert_eq!(e.short_name(), "NoSpace");
        assert!(!e.is_unreachable());
        let e = CallError {
            name: "org.freedesktop.DBus.Error.ServiceUnknown".into(),
            message: String::new(),
        };
        assert_eq!(e.short_name(), "org.freedesktop.DBus.Error.ServiceUnknown");
        assert!(e.is_unreachable());
    }
}
