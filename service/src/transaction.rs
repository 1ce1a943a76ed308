//! One long operation on the bus: its progress, its outcome, and the object clients watch.
//! The engine reports progress from any thread; a pump publishes it at most 10 times a second
//! as a `Progress` signal plus one `PropertiesChanged` (a phase that passed in between is
//! still published once), and `Finished` exactly once.

use crate::authz::{Action, Authority, Details};
use crate::bus_error::BusError;
use berth_engine::{Cancel, Phase, Progress, ProgressFn};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use zbus::message::Header;
use zbus::zvariant::Value;
use zbus::{interface, Connection};

const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Check,
    Update,
    Switch,
    Rollback,
    FactoryReset,
    Cleanup,
    Verify,
    Unlock,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Update => "update",
            Kind::Switch => "switch",
            Kind::Rollback => "rollback",
            Kind::FactoryReset => "factory-reset",
            Kind::Cleanup => "cleanup",
            Kind::Verify => "verify",
            Kind::Unlock => "unlock",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub phase: String,
    pub fraction: f64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub error_name: String,
    pub error_message: String,
    pub result: String,
}

struct Pending {
    latest: Snapshot,
    dirty: bool,
    passed_phases: Vec<Snapshot>,
}

/// What the engine, the pump and the bus object share.
pub struct TxnShared {
    pub path: String,
    pub kind: Kind,
    /// Method + arguments: the same request again joins this transaction.
    pub key: String,
    pub initiator: String,
    pub initiator_uid: u32,
    pub cancel: Cancel,
    /// The latest snapshot, whether it is unpublished, and earlier phases not published yet
    /// (every phase reaches the watchers, however quickly it passed).
    progress: Mutex<Pending>,
    outcome: Mutex<Option<Outcome>>,
    changed: Notify,
    /// Held while publishing, with the last phase published: signals go out in order.
    emitting: tokio::sync::Mutex<String>,
}

impl TxnShared {
    pub fn new(path: String, kind: Kind, key: String, initiator: String, uid: u32) -> Arc<Self> {
        Arc::new(TxnShared {
            path,
            kind,
            key,
            initiator,
            initiator_uid: uid,
            cancel: Cancel::new(),
            progress: Mutex::new(Pending {
                latest: Snapshot {
                    phase: "queued".into(),
                    fraction: 0.0,
                    bytes_done: 0,
                    bytes_total: 0,
                    message: String::new(),
                },
                dirty: true,
                passed_phases: Vec::new(),
            }),
            outcome: Mutex::new(None),
            changed: Notify::new(),
            emitting: tokio::sync::Mutex::new(String::new()),
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        lock(&self.progress).latest.clone()
    }

    pub fn outcome(&self) -> Option<Outcome> {
        lock(&self.outcome).clone()
    }

    /// Waits until the transaction has finished.
    pub async fn wait(&self) -> Outcome {
        loop {
            if let Some(o) = self.outcome() {
                return o;
            }
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(250),
                self.changed.notified(),
            )
            .await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut p = lock(&self.progress);
        let before = p.latest.clone();
        f(&mut p.latest);
        // Fractions never go backwards, even when a download restarts.
        p.latest.fraction = p.latest.fraction.max(before.fraction).clamp(0.0, 1.0);
        if p.dirty && p.latest.phase != before.phase {
            p.passed_phases.push(before);
        }
        p.dirty = true;
        drop(p);
        self.changed.notify_one();
    }

    /// The engine's progress callback for this transaction.
    pub fn progress_fn(self: &Arc<Self>) -> ProgressFn {
        let this = self.clone();
        Arc::new(move |p: &Progress| {
            this.update(|s| {
                s.phase = p.phase.as_str().to_string();
                s.bytes_done = p.bytes_done;
                s.bytes_total = p.bytes_total;
                if !p.message.is_empty() {
                    s.message = p.message.clone();
                }
                s.fraction = fraction(p);
            })
        })
    }

    pub fn finish(&self, outcome: Outcome) {
        self.update(|s| {
            s.phase = "done".into();
            if outcome.success {
                s.fraction = 1.0;
            }
            s.message = if outcome.success {
                "done".into()
            } else {
                outcome.error_message.clone()
            };
        });
        *lock(&self.outcome) = Some(outcome);
        self.changed.notify_one();
    }

    /// Takes what changed since the last publish: the last state of each phase that passed
    /// unpublished, then the latest.
    fn take_changed(&self) -> Vec<Snapshot> {
        let mut p = lock(&self.progress);
        if !p.dirty {
            return Vec::new();
        }
        p.dirty = false;
        let mut out = std::mem::take(&mut p.passed_phases);
        out.push(p.latest.clone());
        out
    }
}

/// Overall progress of a pull-and-stage: checking, then bytes (download and import run
/// together), then staging.
fn fraction(p: &Progress) -> f64 {
    let part = if p.bytes_total > 0 {
        p.bytes_done as f64 / p.bytes_total as f64
    } else if p.layers_total > 0 {
        p.layers_done as f64 / p.layers_total as f64
    } else {
        0.0
    };
    match p.phase {
        Phase::Checking => 0.0,
        Phase::Downloading | Phase::Importing => 0.02 + 0.88 * part,
        Phase::Staging => 0.92,
        Phase::Cleanup => 0.5,
        Phase::Verifying => part,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Something to call with each phase published, so the Manager's State can follow it.
pub type OnPhase = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// Publishes a transaction's progress until it has finished; returns after `Finished`.
pub async fn pump(conn: Connection, txn: Arc<TxnShared>, on_phase: OnPhase) {
    loop {
        let notified = txn.changed.notified();
        let finished = txn.outcome();
        publish_pending(&conn, &txn, &on_phase).await;
        if let Some(outcome) = finished {
            if let Err(e) = publish_finished(&conn, &txn.path, &outcome).await {
                tracing::warn!("cannot emit Finished for {}: {e}", txn.path);
            }
            return;
        }
        notified.await;
        // Coalesce bursts: at most one publish per interval.
        tokio::time::sleep(PUBLISH_INTERVAL).await;
    }
}

/// Publishes what changed since the last publish, now (the pump, and the daemon once the
/// work is done, so every phase reaches the watchers before the final state).
pub async fn publish_pending(conn: &Connection, txn: &TxnShared, on_phase: &OnPhase) {
    let mut last_phase = txn.emitting.lock().await;
    for snap in txn.take_changed() {
        if let Err(e) = publish_progress(conn, &txn.path, &snap).await {
            tracing::warn!("cannot emit progress for {}: {e}", txn.path);
        }
        if snap.phase != *last_phase {
            *last_phase = snap.phase.clone();
            on_phase(snap.phase).await;
        }
    }
}

async fn publish_progress(conn: &Connection, path: &str, s: &Snapshot) -> zbus::Result<()> {
    let iface = berth_dbus::TRANSACTION_INTERFACE;
    conn.emit_signal(
        None::<()>,
        path,
        iface,
        "Progress",
        &(
            &s.phase,
            s.fraction,
            s.bytes_done,
            s.bytes_total,
            &s.message,
        ),
    )
    .await?;
    let changed: HashMap<&str, Value> = HashMap::from([
        ("Phase", Value::from(s.phase.as_str())),
        ("Fraction", Value::from(s.fraction)),
        ("BytesDone", Value::from(s.bytes_done)),
        ("BytesTotal", Value::from(s.bytes_total)),
        ("Message", Value::from(s.message.as_str())),
    ]);
    emit_properties_changed(conn, path, iface, changed).await
}

async fn publish_finished(conn: &Connection, path: &str, o: &Outcome) -> zbus::Result<()> {
    let iface = berth_dbus::TRANSACTION_INTERFACE;
    let changed: HashMap<&str, Value> = HashMap::from([
        ("IsFinished", Value::from(true)),
        ("Success", Value::from(o.success)),
        ("ErrorName", Value::from(o.error_name.as_str())),
        ("ErrorMessage", Value::from(o.error_message.as_str())),
        ("Result", Value::from(o.result.as_str())),
    ]);
    emit_properties_changed(conn, path, iface, changed).await?;
    conn.emit_signal(
        None::<()>,
        path,
        iface,
        "Finished",
        &(o.success, &o.error_name, &o.error_message),
    )
    .await
}

pub async fn emit_properties_changed(
    conn: &Connection,
    path: &str,
    iface: &str,
    changed: HashMap<&str, Value<'_>>,
) -> zbus::Result<()> {
    conn.emit_signal(
        None::<()>,
        path,
        "org.freedesktop.DBus.Properties",
        "PropertiesChanged",
        &(iface, changed, Vec::<&str>::new()),
    )
    .await
}

/// The bus object of one transaction.
pub struct TransactionObject {
    pub txn: Arc<TxnShared>,
    pub authority: Arc<Authority>,
}

#[interface(name = "org.berth.Berth1.Transaction")]
impl TransactionObject {
    /// Cancels the work; the transaction then finishes with Error.Cancelled.
    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), BusError> {
        let caller = self.authority.caller(&hdr).await?;
        if caller.uid != self.txn.initiator_uid {
            // Being allowed to start such work is not enough to stop someone else's (root's,
            // the timer's): that is an administrator's call.
            let details = Details::new("cancel")
                .with("transaction", self.txn.kind.as_str())
                .with("initiator", self.txn.initiator.as_str());
            self.authority
                .authorize(&hdr, &[Action::CancelOthers], &details)
                .await?;
        }
        if self.txn.outcome().is_some() {
            return Err(BusError::wrong_state(format!(
                "{} has already finished",
                self.txn.path
            )));
        }
        tracing::info!("{} cancelled by {}", self.txn.path, caller.describe());
        self.txn.cancel.cancel();
        Ok(())
    }

    #[zbus(signal)]
    async fn progress(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        phase: &str,
        fraction: f64,
        bytes_done: u64,
        bytes_total: u64,
        message: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn finished(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        success: bool,
        error_name: &str,
        error_message: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn kind(&self) -> &str {
        self.txn.kind.as_str()
    }
    #[zbus(property)]
    fn phase(&self) -> String {
        self.txn.snapshot().phase
    }
    #[zbus(property)]
    fn fraction(&self) -> f64 {
        self.txn.snapshot().fraction
    }
    #[zbus(property)]
    fn bytes_done(&self) -> u64 {
        self.txn.snapshot().bytes_done
    }
    #[zbus(property)]
    fn bytes_total(&self) -> u64 {
        self.txn.snapshot().bytes_total
    }
    #[zbus(property)]
    fn message(&self) -> String {
        self.txn.snapshot().message
    }
    #[zbus(property)]
    fn initiator(&self) -> &str {
        &self.txn.initiator
    }
    #[zbus(property)]
    fn initiator_uid(&self) -> u32 {
        self.txn.initiator_uid
    }
    #[zbus(property)]
    fn is_finished(&self) -> bool {
        self.txn.outcome().is_some()
    }
    #[zbus(property)]
    fn success(&self) -> bool {
        self.txn.outcome().is_some_and(|o| o.success)
    }
    #[zbus(property)]
    fn error_name(&self) -> String {
        self.txn.outcome().map(|o| o.error_name).unwrap_or_default()
    }
    #[zbus(property)]
    fn error_message(&self) -> String {
        self.txn
            .outcome()
            .map(|o| o.error_message)
            .unwrap_or_default()
    }
    #[zbus(property)]
    fn result(&self) -> String {
        self.txn.outcome().map(|o| o.result).unwrap_or_default()
    }
}
