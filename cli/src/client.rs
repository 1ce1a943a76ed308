//! Talking to berthd: privileged calls carry the interactive-authorization flag unless the
//! user said --no-ask-password; transactions are followed through their signals.

use crate::progress::Bar;
use berth_dbus::{ManagerProxy, TransactionProxy, BUS_NAME, TRANSACTION_INTERFACE};
use futures_util::StreamExt;
use zbus::proxy::MethodFlags;
use zbus::zvariant::{DynamicDeserialize, DynamicType, OwnedObjectPath};
use zbus::Connection;

/// A failed call or transaction, with its D-Bus error name.
#[derive(Debug)]
pub struct CallError {
    pub name: String,
    pub message: String,
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
                let name = zbus::DBusError::name(&e).to_string();
                CallError {
                    name,
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

pub struct Client {
    pub conn: Connection,
    pub manager: ManagerProxy<'static>,
    interactive: bool,
}

/// How a transaction ended.
pub struct Outcome {
    pub result: serde_json::Value,
}

impl Client {
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

    /// Lets polkit ask for a password, unless the user said --no-ask-password.
    pub fn flags(&self) -> enumflags2::BitFlags<MethodFlags> {
        if self.interactive {
            MethodFlags::AllowInteractiveAuth.into()
        } else {
            Default::default()
        }
    }

    /// Calls a Manager method, allowing interactive authentication unless told not to.
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

    /// Starts a transaction with `method` and follows it to the end with a progress bar.
    pub async fn run<B>(&self, method: &str, body: &B, quiet: bool) -> Result<Outcome, CallError>
    where
        B: serde::Serialize + DynamicType,
    {
        // Subscribe first: a short transaction may finish before the call returns.
        let mut signals = self.transaction_signals().await?;
        let path: OwnedObjectPath = self.call(method, body).await?;
        self.follow(path.as_str(), &mut signals, quiet).await
    }

    /// Transaction signals from berthd itself: the rule names berthd's unique bus name, so
    /// nobody else on the bus can fake progress or a Finished.
    pub async fn transaction_signals(&self) -> Result<zbus::MessageStream, CallError> {
        let bus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        // Starts berthd if needed (activation) and names the process that owns the service.
        self.conn
            .call_method(
                Some(BUS_NAME),
                berth_dbus::MANAGER_PATH,
                Some("org.freedesktop.DBus.Peer"),
                "Ping",
                &(),
            )
            .await?;
        let owner = bus
            .get_name_owner(BUS_NAME.try_into().expect("valid name"))
            .await?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(owner.to_string())?
            .interface(TRANSACTION_INTERFACE)?
            .build();
        Ok(zbus::MessageStream::for_match_rule(rule, &self.conn, Some(256)).await?)
    }

    pub async fn follow(
        &self,
        path: &str,
        signals: &mut zbus::MessageStream,
        quiet: bool,
    ) -> Result<Outcome, CallError> {
        let t = self.transaction(path).await?;
        let mut bar = Bar::new(quiet);
        let bus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        let mut owner_changes = bus
            .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
            .await?;
        if !t.is_finished().await? {
            loop {
                tokio::select! {
                    msg = signals.next() => {
                        let Some(Ok(msg)) = msg else { break };
                        let hdr = msg.header();
                        if hdr.path().map(|p| p.as_str()) != Some(path) {
                            continue;
                        }
                        match hdr.member().map(|m| m.as_str()) {
                            Some("Progress") => {
                                if let Ok((phase, fraction, done, total, message)) =
                                    msg.body().deserialize::<(String, f64, u64, u64, String)>()
                                {
                                    bar.update(&phase, fraction, done, total, &message);
                                }
                            }
                            Some("Finished") => break,
                            _ => {}
                        }
                    }
                    _ = owner_changes.next() => {
                        bar.finish();
                        return Err(CallError {
                            name: format!("{}.Interrupted", berth_dbus::ERROR_PREFIX),
                            message: format!("berthd stopped while running {path}"),
                        });
                    }
                    _ = tokio::signal::ctrl_c() => {
                        bar.finish();
                        // Only what this user started: a joined transaction is someone else's.
                        // SAFETY: getuid has no preconditions.
                        if t.initiator_uid().await? == unsafe { libc::getuid() } {
                            eprintln!("cancelling {path}...");
                            let _ = t.cancel().await;
                        } else {
                            eprintln!("leaving {path} running (another user started it)");
                            return Err(CallError {
                                name: format!("{}.Cancelled", berth_dbus::ERROR_PREFIX),
                                message: "stopped watching".into(),
                            });
                        }
                    }
                }
            }
        }
        bar.finish();
        if !t.is_finished().await? {
            return Err(CallError {
                name: format!("{}.Failed", berth_dbus::ERROR_PREFIX),
                message: format!("lost track of {path} before it finished"),
            });
        }
        if t.success().await? {
            let result = serde_json::from_str(&t.result().await?).unwrap_or_default();
            Ok(Outcome { result })
        } else {
            Err(CallError {
                name: t.error_name().await?,
                message: t.error_message().await?,
            })
        }
    }
}
