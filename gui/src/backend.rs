//! The window's link to berthd: one system bus connection, a watcher that turns berthd's
//! signals into `Event`s for the window, and calls that report their D-Bus error names.
//!
//! The watcher registers as a client (berthd stays up while the window is open), follows
//! PropertiesChanged and every transaction's signals from berthd's current unique name, and
//! when berthd leaves the bus it says so and keeps trying to reach it (bus activation starts
//! it again where it is installed).

use crate::runtime;
use berth_dbus::model::{self, ListedDeployment, Snapshot};
use berth_dbus::{options, AutomaticEvent, CallError, Client, Options, TransactionEvent};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long the watcher waits before trying berthd again.
const RETRY: Duration = Duration::from_secs(3);

/// What the window hears about.
#[derive(Debug, Clone)]
pub enum Event {
    /// berthd's properties changed (or were read after connecting).
    Snapshot(Box<Snapshot>, Vec<ListedDeployment>),
    Transaction(String, TransactionEvent),
    /// berthd's scheduler did something (found, downloaded, staged, blocked, failed, rebooting).
    Automatic(AutomaticEvent),
    /// berthd left the bus (crashed, stopped, idle exit) while we watched.
    Lost,
    /// berthd cannot be reached; the watcher retries.
    Unreachable(CallError),
}

#[derive(Clone)]
pub struct Backend {
    client: Arc<Client>,
}

impl Backend {
    /// Connects to the system bus and starts watching berthd; events arrive on the receiver.
    pub async fn connect() -> Result<(Backend, async_channel::Receiver<Event>), CallError> {
        let client = runtime::spawn(Client::connect(true)).await?;
        let client = Arc::new(client);
        let (tx, rx) = async_channel::unbounded();
        let watched = client.clone();
        runtime::detach(watch(watched, tx));
        Ok((Backend { client }, rx))
    }

    /// Starts a transaction; returns its path.
    pub async fn start(&self, method: &'static str, opts: Options) -> Result<String, CallError> {
        let c = self.client.clone();
        runtime::spawn(async move {
            let path: OwnedObjectPath = c.call(method, &(opts,)).await?;
            Ok(path.to_string())
        })
        .await
    }

    pub async fn update(
        &self,
        download_only: bool,
        from_downloaded: bool,
        reboot: bool,
    ) -> Result<String, CallError> {
        let opts = options([
            ("download-only", Value::Bool(download_only)),
            ("from-downloaded", Value::Bool(from_downloaded)),
            ("reboot", Value::Bool(reboot)),
        ]);
        self.start("Update", opts).await
    }

    pub async fn reboot(&self) -> Result<(), CallError> {
        let c = self.client.clone();
        runtime::spawn(async move { c.call_unit("Reboot", &(options([]),)).await }).await
    }

    pub async fn pin(&self, index: u32, pin: bool) -> Result<(), CallError> {
        let c = self.client.clone();
        let method = if pin { "Pin" } else { "Unpin" };
        runtime::spawn(async move { c.call_unit(method, &(index,)).await }).await
    }

    pub async fn configure(&self, policy: &str) -> Result<(), CallError> {
        let c = self.client.clone();
        let opts = options([("automatic-updates", Value::from(policy.to_string()))]);
        runtime::spawn(async move { c.call_unit("Configure", &(opts,)).await }).await
    }

    pub async fn cancel(&self, path: String) -> Result<(), CallError> {
        let c = self.client.clone();
        runtime::spawn(async move { c.cancel(&path).await }).await
    }

    /// The transaction's kind and, if it already ended, how.
    pub async fn transaction_state(
        &self,
        path: String,
    ) -> Result<(String, Option<TransactionEvent>), CallError> {
        let c = self.client.clone();
        runtime::spawn(async move {
            let t = c.transaction(&path).await?;
            let kind = t.kind().await?;
            let ended = if t.is_finished().await? {
                Some(TransactionEvent::Finished {
                    success: t.success().await?,
                    error_name: t.error_name().await?,
                    error_message: t.error_message().await?,
                })
            } else {
                Some(TransactionEvent::Progress {
                    phase: t.phase().await?,
                    fraction: t.fraction().await?,
                    bytes_done: t.bytes_done().await?,
                    bytes_total: t.bytes_total().await?,
                    message: t.message().await?,
                })
            };
            Ok((kind, ended))
        })
        .await
    }
}

async fn read_all(c: &Client) -> Result<Event, CallError> {
    let snapshot = Snapshot::read(&c.manager).await?;
    let status: String = c.manager.get_status().await?;
    let list = model::list_deployments(&status).unwrap_or_default();
    Ok(Event::Snapshot(Box::new(snapshot), list))
}

/// Follows berthd for as long as the window lives (until the receiver is dropped).
async fn watch(c: Arc<Client>, tx: async_channel::Sender<Event>) {
    let Ok(bus) = zbus::fdo::DBusProxy::new(&c.conn).await else {
        return;
    };
    loop {
        // Reach berthd (activating it where it is installed) and learn its unique name.
        let owner = match c.owner().await {
            Ok(o) => o,
            Err(e) => {
                if tx.send(Event::Unreachable(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let (signals, owner_changes) = match (
            c.all_signals(&owner).await,
            bus.receive_name_owner_changed_with_args(&[(0, berth_dbus::BUS_NAME)])
                .await,
        ) {
            (Ok(s), Ok(o)) => (s, o),
            (Err(e), _) => {
                let _ = tx.send(Event::Unreachable(e)).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
            (_, Err(e)) => {
                let _ = tx.send(Event::Unreachable(e.into())).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // Registered, berthd does not exit for idleness while the window is open.
        let _ = c.manager.register_client(options([])).await;
        match read_all(&c).await {
            Ok(ev) => {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Event::Unreachable(e)).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        if !follow(&c, &tx, signals, owner_changes, &owner).await {
            return;
        }
        if tx.send(Event::Lost).await.is_err() {
            return;
        }
    }
}

/// Forwards berthd's signals until it leaves the bus (true) or the window is gone (false).
async fn follow(
    c: &Client,
    tx: &async_channel::Sender<Event>,
    mut signals: zbus::MessageStream,
    mut owner_changes: zbus::fdo::NameOwnerChangedStream,
    owner: &str,
) -> bool {
    loop {
        tokio::select! {
            msg = signals.next() => {
                let Some(Ok(msg)) = msg else { return true };
                let event = if let Some((path, ev)) = TransactionEvent::parse(&msg) {
                    Event::Transaction(path, ev)
                } else if let Some(ev) = AutomaticEvent::parse(&msg) {
                    Event::Automatic(ev)
                } else if msg.header().member().is_some_and(|m| m == "PropertiesChanged")
                    && msg.header().path().is_some_and(|p| p.as_str() == berth_dbus::MANAGER_PATH)
                {
                    match read_all(c).await {
                        Ok(ev) => ev,
                        Err(_) => continue,
                    }
                } else {
                    continue;
                };
                if tx.send(event).await.is_err() {
                    return false;
                }
            }
            change = owner_changes.next() => {
                let Some(change) = change else { return true };
                let Ok(args) = change.args() else { continue };
                if args.old_owner().as_ref().map(|o| o.as_str()) == Some(owner) {
                    return true;
                }
            }
        }
    }
}
