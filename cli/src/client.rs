//! Following a transaction on a terminal: started with the shared client's call, followed
//! through berthd's signals with a progress bar; Ctrl-C cancels what this user started.

use crate::fl;
use crate::progress::Bar;
use berth_dbus::{CallError, Client, TransactionEvent};
use futures_util::StreamExt;
use zbus::zvariant::{DynamicType, OwnedObjectPath};

/// How a transaction ended.
pub struct Outcome {
    pub result: serde_json::Value,
}

/// Starts a transaction with `method` and follows it to the end with a progress bar.
pub async fn run<B>(c: &Client, method: &str, body: &B, quiet: bool) -> Result<Outcome, CallError>
where
    B: serde::Serialize + DynamicType,
{
    // Subscribe first: a short transaction may finish before the call returns.
    let mut signals = c.transaction_signals().await?;
    let path: OwnedObjectPath = c.call(method, body).await?;
    follow(c, path.as_str(), &mut signals, quiet).await
}

pub async fn follow(
    c: &Client,
    path: &str,
    signals: &mut zbus::MessageStream,
    quiet: bool,
) -> Result<Outcome, CallError> {
    let t = c.transaction(path).await?;
    let mut bar = Bar::new(quiet);
    let bus = zbus::fdo::DBusProxy::new(&c.conn).await?;
    let mut owner_changes = bus
        .receive_name_owner_changed_with_args(&[(0, berth_dbus::BUS_NAME)])
        .await?;
    if !t.is_finished().await? {
        loop {
            tokio::select! {
                msg = signals.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    match TransactionEvent::parse(&msg) {
                        Some((p, TransactionEvent::Progress { phase, fraction, bytes_done, bytes_total, message }))
                            if p == path => bar.update(&phase, fraction, bytes_done, bytes_total, &message),
                        Some((p, TransactionEvent::Finished { .. })) if p == path => break,
                        _ => {}
                    }
                }
                _ = owner_changes.next() => {
                    bar.finish();
                    return Err(CallError::new("Interrupted", fl!("cli-berthd-stopped", path = path)));
                }
                _ = tokio::signal::ctrl_c() => {
                    bar.finish();
                    // Only what this user started: a joined transaction is someone else's.
                    if t.initiator_uid().await? == rustix::process::getuid().as_raw() {
                        eprintln!("{}", fl!("cli-cancelling", path = path));
                        let _ = t.cancel().await;
                    } else {
                        eprintln!("{}", fl!("cli-leaving-running", path = path));
                        return Err(CallError::new("Cancelled", fl!("cli-stopped-watching")));
                    }
                }
            }
        }
    }
    bar.finish();
    if !t.is_finished().await? {
        return Err(CallError::new("Failed", fl!("cli-lost-track", path = path)));
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
