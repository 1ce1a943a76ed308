//! berthd's state on the bus: runs one transaction at a time, publishes the
//! Manager's properties, tracks watching clients and knows when it is idle.

use crate::authz::{Action, Authority, Caller, Details};
use crate::bus_error::BusError;
use crate::state::{self, Facts};
use crate::transaction::{self, Kind, OnPhase, Outcome, TransactionObject, TxnShared};
use berth_dbus::{MANAGER_INTERFACE, MANAGER_PATH, TRANSACTION_PATH_PREFIX};
use berth_engine::config::{Automatic, Policy, Sources};
use berth_engine::{Cancel, Engine, ProgressFn};
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::zvariant::{ObjectPath, OwnedValue, Value};
use zbus::Connection;

/// Finished transactions kept on the bus for late readers.
const KEEP_FINISHED: usize = 8;
/// Registered clients (open windows, monitors) one user other than root may keep at once:
/// enough for every client Berth ships, too few to pile up memory.
const MAX_CLIENTS_PER_USER: usize = 4;
/// Marks a transaction in flight, so a restarted berthd can say the last one was interrupted.
const IN_FLIGHT: &str = "ostree/berth/transaction.json";
/// What a transaction runs: gets the progress callback and the cancel flag, returns the
/// result as JSON.
pub type Work = Box<
    dyn FnOnce(ProgressFn, Cancel) -> BoxFuture<'static, Result<serde_json::Value, BusError>>
        + Send,
>;

pub struct Daemon {
    pub engine: Engine,
    pub conn: Connection,
    pub authority: Arc<Authority>,
    /// Where the configuration comes from; re-read by the scheduler and Configure.
    pub sources: Sources,
    /// Wakes the automatic-update scheduler (settings changed, a transaction ended).
    pub wake_scheduler: Notify,
    inner: Mutex<Inner>,
    publishing: tokio::sync::Mutex<()>,
}

struct Inner {
    facts: Facts,
    active: Option<Arc<TxnShared>>,
    next_id: u64,
    finished: VecDeque<String>,
    /// Registered clients' bus names, with their uids.
    clients: HashMap<String, u32>,
    last_activity: Instant,
    /// Method calls being handled (a polkit prompt can take a while): no idle exit meanwhile.
    calls_in_flight: usize,
    /// A quick mutating call (pin, unpin, reboot) holds the one slot transactions also need.
    quick_call: Option<&'static str>,
    published: HashMap<&'static str, OwnedValue>,
}

/// Counts a method call as in flight until dropped.
pub struct CallGuard<'a>(&'a Daemon);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.calls_in_flight -= 1;
        inner.last_activity = Instant::now();
    }
}

/// Holds the slot for a quick mutating call until dropped.
pub struct QuickGuard<'a>(&'a Daemon);

impl Drop for QuickGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().quick_call = None;
    }
}

impl Daemon {
    pub fn new(engine: Engine, conn: Connection, sources: Sources) -> Arc<Daemon> {
        let automatic = engine.config().automatic.clone();
        let coordination = engine.config().reboot_coordination.clone();
        Arc::new(Daemon {
            engine,
            authority: Arc::new(Authority::new(conn.clone())),
            conn,
            inner: Mutex::new(Inner {
                facts: Facts {
                    automatic,
                    coordination,
                    ..Facts::default()
                },
                active: None,
                next_id: 1,
                finished: VecDeque::new(),
                clients: HashMap::new(),
                last_activity: Instant::now(),
                calls_in_flight: 0,
                quick_call: None,
                published: HashMap::new(),
            }),
            publishing: tokio::sync::Mutex::new(()),
            sources,
            wake_scheduler: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a method call in flight; idle exit waits for it.
    pub fn call(&self) -> CallGuard<'_> {
        let mut inner = self.lock();
        inner.calls_in_flight += 1;
        inner.last_activity = Instant::now();
        CallGuard(self)
    }

    /// Takes the slot for a quick mutating call, or says what holds it.
    pub fn quick(&self, what: &'static str) -> Result<QuickGuard<'_>, BusError> {
        let mut inner = self.lock();
        if let Some(t) = &inner.active {
            return Err(busy(t));
        }
        if let Some(other) = inner.quick_call {
            return Err(BusError::busy(format!("a {other} is in progress")));
        }
        inner.quick_call = Some(what);
        Ok(QuickGuard(self))
    }

    pub fn facts(&self) -> Facts {
        self.lock().facts.clone()
    }

    pub fn active(&self) -> Option<Arc<TxnShared>> {
        self.lock().active.clone()
    }

    /// Every Manager property, computed from the current facts.
    pub fn properties(&self) -> HashMap<&'static str, OwnedValue> {
        self.properties_in_phase(None)
    }

    /// The properties with the running transaction in `phase` (default: its latest).
    fn properties_in_phase(&self, phase: Option<String>) -> HashMap<&'static str, OwnedValue> {
        let (facts, active) = {
            let mut inner = self.lock();
            let running = inner.active.as_ref().map(|t| {
                let phase = phase.unwrap_or_else(|| t.snapshot().phase);
                (phase, t.kind.as_str())
            });
            inner.facts.running = running;
            (inner.facts.clone(), inner.active.clone())
        };
        let v = |v: Value<'_>| v.try_to_owned().expect("plain values have no fds");
        let (err_name, err_msg) = facts.last_error.clone().unwrap_or_default();
        let active_path = active.map_or_else(|| "/".to_string(), |t| t.path.clone());
        let emulated = facts.host.as_ref().is_some_and(|h| h.status.berth.emulated);
        HashMap::from([
            ("State", v(Value::from(state::state(&facts)))),
            ("ErrorName", v(Value::from(err_name))),
            ("ErrorMessage", v(Value::from(err_msg))),
            (
                "Booted",
                v(Value::from(state::deployment_dict(state::booted(&facts)))),
            ),
            (
                "Staged",
                v(Value::from(state::deployment_dict(state::staged(&facts)))),
            ),
            (
                "RollbackDeployment",
                v(Value::from(state::deployment_dict(state::rollback(&facts)))),
            ),
            ("CachedUpdate", v(Value::from(state::cached_update(&facts)))),
            (
                "BootAssessment",
                v(Value::from(state::boot_assessment(&facts))),
            ),
            ("LastCheck", v(Value::from(facts.last_check_time))),
            (
                "AutomaticUpdates",
                v(Value::from(facts.automatic.policy.as_str())),
            ),
            (
                "AutomaticSettings",
                v(Value::from(state::automatic_settings(&facts.automatic))),
            ),
            (
                "AutomaticStatus",
                v(Value::from(state::automatic_status(&facts))),
            ),
            (
                "Blocked",
                v(Value::from(
                    facts.blocked.as_ref().map_or("", |(code, _)| code.as_str()),
                )),
            ),
            ("ConfigError", v(Value::from(facts.config_error.clone()))),
            (
                "ActiveTransaction",
                v(Value::from(
                    ObjectPath::try_from(active_path).expect("valid path"),
                )),
            ),
            ("Emulated", v(Value::from(emulated))),
            ("DaemonVersion", v(Value::from(env!("CARGO_PKG_VERSION")))),
        ])
    }

    /// Emits one PropertiesChanged with every Manager property that changed since the last.
    pub async fn publish(&self) {
        self.publish_phase(None).await
    }

    async fn publish_phase(&self, phase: Option<String>) {
        // One publisher at a time: compute, diff and emit in order, so the last signal a
        // client sees always carries the newest values.
        let _order = self.publishing.lock().await;
        let now = self.properties_in_phase(phase);
        let changed: HashMap<&str, Value> = {
            let mut inner = self.lock();
            let changed = now
                .iter()
                .filter(|(k, v)| inner.published.get(*k) != Some(*v))
                .map(|(k, v)| (*k, Value::from(v.try_clone().expect("no fds"))))
                .collect();
            inner.published = now;
            changed
        };
        if changed.is_empty() {
            return;
        }
        if let Err(e) = transaction::emit_properties_changed(
            &self.conn,
            MANAGER_PATH,
            MANAGER_INTERFACE,
            changed,
        )
        .await
        {
            tracing::warn!("cannot emit PropertiesChanged: {e}");
        }
    }

    /// Re-reads the host status from the sysroot and publishes what changed.
    pub async fn refresh(&self) {
        self.refresh_host().await;
        self.publish().await;
    }

    async fn refresh_host(&self) {
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || engine.status()).await {
            Ok(Ok(host)) => self.lock().facts.host = Some(host),
            Ok(Err(e)) => tracing::warn!("cannot read the host status: {e}"),
            Err(e) => tracing::warn!("status task failed: {e}"),
        }
    }

    pub fn set_check(&self, c: berth_engine::CheckResult) {
        let mut inner = self.lock();
        inner.facts.last_check_on = crate::state::checked_on(&inner.facts);
        inner.facts.last_check = Some(c);
        inner.facts.last_check_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
    }

    /// Re-reads the configuration: the automatic settings it holds, or, when a file is bad,
    /// the last good ones and the error (ConfigError). Publishes what changed.
    pub async fn reload_settings(&self) -> Automatic {
        let sources = self.sources.clone();
        let sysroot = self.engine.sysroot_path().to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || {
            let (config, text) = sources.load_merged(None)?;
            crate::lastgood::keep(&sysroot, &text);
            Ok::<_, berth_engine::Error>(config)
        })
        .await
        .map_err(|e| BusError::failed(e.to_string()));
        let settings = {
            let mut inner = self.lock();
            match loaded {
                Ok(Ok(config)) => {
                    inner.facts.automatic = config.automatic;
                    inner.facts.coordination = config.reboot_coordination;
                    inner.facts.config_error.clear();
                }
                Ok(Err(e)) => {
                    let message = e.to_string();
                    if inner.facts.config_error != message {
                        tracing::error!("{message}; keeping the last good settings");
                    }
                    inner.facts.config_error = message;
                }
                Err(e) => tracing::warn!("cannot read the configuration: {}", e.message()),
            }
            inner.facts.automatic.clone()
        };
        self.publish().await;
        settings
    }

    /// The scheduler's record and what holds it back now, as the properties show them.
    pub async fn set_schedule(
        &self,
        record: crate::automatic::record::Record,
        blocked: Option<(String, String)>,
        wariness: f64,
    ) {
        {
            let mut inner = self.lock();
            // A rollback noted meanwhile stays noted.
            let noted = std::mem::take(&mut inner.facts.schedule.rolled_back);
            let mut record = record;
            for digest in noted {
                record.note_rolled_back(&digest);
            }
            inner.facts.schedule = record;
            inner.facts.blocked = blocked;
            inner.facts.wariness = wariness;
        }
        self.publish().await;
    }

    /// An image rolled back by hand: automatic updates do not take it again.
    pub async fn note_rolled_back(&self, digest: &str) {
        let record = {
            let mut inner = self.lock();
            inner.facts.schedule.note_rolled_back(digest);
            inner.facts.schedule.clone()
        };
        crate::automatic::record::store(self.engine.sysroot_path(), &record);
        self.publish().await;
    }

    /// LastCheck after a restart: the scheduler's last check, until a new one.
    pub fn restore_last_check(&self, time: u64) {
        let mut inner = self.lock();
        if inner.facts.last_check_time == 0 {
            inner.facts.last_check_time = time;
        }
    }

    /// Starts `work` as a transaction, or joins the running one if it is the same request.
    pub async fn begin(
        self: &Arc<Self>,
        hdr: &Header<'_>,
        kind: Kind,
        key: String,
        actions: &[Action],
        details: &Details,
        work: Work,
    ) -> Result<ObjectPath<'static>, BusError> {
        let caller: Caller = self.authority.authorize(hdr, actions, details).await?;
        let txn = self
            .start(kind, key, caller.describe(), caller.uid, work)
            .await?;
        Ok(path_of(&txn.path))
    }

    /// Starts `work` for `initiator` (authorized already, or berthd's own scheduler), or
    /// joins the running transaction if it is the same request.
    pub async fn start(
        self: &Arc<Self>,
        kind: Kind,
        key: String,
        initiator: String,
        uid: u32,
        work: Work,
    ) -> Result<Arc<TxnShared>, BusError> {
        let txn = {
            let mut inner = self.lock();
            inner.last_activity = Instant::now();
            if let Some(t) = &inner.active {
                if t.key == key {
                    tracing::info!("{initiator} joins {}", t.path);
                    return Ok(t.clone());
                }
                return Err(busy(t));
            }
            if let Some(other) = inner.quick_call {
                return Err(BusError::busy(format!("a {other} is in progress")));
            }
            let path = format!("{TRANSACTION_PATH_PREFIX}{}", inner.next_id);
            inner.next_id += 1;
            let txn = TxnShared::new(path, kind, key, initiator, uid);
            inner.active = Some(txn.clone());
            txn
        };
        let object = TransactionObject {
            txn: txn.clone(),
            authority: self.authority.clone(),
        };
        if let Err(e) = self
            .conn
            .object_server()
            .at(txn.path.as_str(), object)
            .await
        {
            self.lock().active = None;
            return Err(e.into());
        }
        tracing::info!(
            "{} {} started by {}",
            txn.path,
            kind.as_str(),
            txn.initiator
        );
        self.mark_in_flight(&txn);
        self.publish().await;
        let this = self.clone();
        let running = txn.clone();
        tokio::spawn(async move { this.run(running, work).await });
        Ok(txn)
    }

    async fn run(self: Arc<Self>, txn: Arc<TxnShared>, work: Work) {
        // The Manager's State follows every phase the transaction goes through.
        let this = self.clone();
        let on_phase: OnPhase = Arc::new(move |phase: String| -> BoxFuture<'static, ()> {
            let this = this.clone();
            Box::pin(async move { this.publish_phase(Some(phase)).await })
        });
        let pump = tokio::spawn(transaction::pump(
            self.conn.clone(),
            txn.clone(),
            on_phase.clone(),
        ));
        // Run the work in its own task: a panic becomes a failed transaction, never a daemon
        // stuck Busy forever.
        let result = match tokio::spawn(work(txn.progress_fn(), txn.cancel.clone())).await {
            Ok(r) => r,
            Err(e) => Err(BusError::failed(format!(
                "the {} work failed: {e}",
                txn.kind.as_str()
            ))),
        };
        let outcome = match result {
            Ok(v) => Outcome {
                success: true,
                error_name: String::new(),
                error_message: String::new(),
                result: v.to_string(),
            },
            Err(e) => Outcome {
                success: false,
                error_name: e.name().to_string(),
                error_message: e.message().to_string(),
                result: "{}".into(),
            },
        };
        tracing::info!(
            "{} {} finished: {}",
            txn.path,
            txn.kind.as_str(),
            if outcome.success {
                "ok"
            } else {
                &outcome.error_name
            }
        );
        // Every phase reaches the watchers first, then the final state is settled (host
        // status, last error, no active transaction), then Finished goes out.
        transaction::publish_pending(&self.conn, &txn, &on_phase).await;
        self.refresh_host().await;
        self.clear_in_flight();
        let stale = {
            let mut inner = self.lock();
            // A check (a window opening, the timer) does not hide that an update was rolled
            // back: only an operation that changes what boots does.
            let rolled_back = inner
                .facts
                .last_error
                .as_ref()
                .is_some_and(|(name, _)| name.ends_with(".UpdateRolledBack"));
            if outcome.success {
                if !(rolled_back && txn.kind == Kind::Check) {
                    inner.facts.last_error = None;
                }
            } else if !is_cancel(&outcome.error_name) {
                inner.facts.last_error =
                    Some((outcome.error_name.clone(), outcome.error_message.clone()));
            }
            inner.active = None;
            inner.last_activity = Instant::now();
            inner.finished.push_back(txn.path.clone());
            if inner.finished.len() > KEEP_FINISHED {
                inner.finished.pop_front()
            } else {
                None
            }
        };
        self.publish().await;
        txn.finish(outcome);
        self.wake_scheduler.notify_one();
        let _ = pump.await;
        if let Some(stale) = stale {
            let _ = self
                .conn
                .object_server()
                .remove::<TransactionObject, _>(stale.as_str())
                .await;
        }
    }

    fn mark_in_flight(&self, txn: &TxnShared) {
        let marker = serde_json::json!({
            "path": txn.path, "kind": txn.kind.as_str(), "initiator": txn.initiator,
        });
        let path = self.engine.sysroot_path().join(IN_FLIGHT);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, marker.to_string()) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn clear_in_flight(&self) {
        let _ = std::fs::remove_file(self.engine.sysroot_path().join(IN_FLIGHT));
    }

    /// After a crash or kill: report the interrupted transaction as the last error.
    pub fn recover_in_flight(&self) {
        let path = self.engine.sysroot_path().join(IN_FLIGHT);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let msg = format!(
            "berthd stopped during {} ({}) started by {}; the system was left as it was before it",
            v["kind"].as_str().unwrap_or("a transaction"),
            v["path"].as_str().unwrap_or("?"),
            v["initiator"].as_str().unwrap_or("?"),
        );
        tracing::warn!("{msg}");
        self.lock().facts.last_error =
            Some((format!("{}.Interrupted", berth_dbus::ERROR_PREFIX), msg));
        let _ = std::fs::remove_file(&path);
    }

    /// An update rolled back by boot assessment in this boot is the last error until a
    /// transaction succeeds; returns it the first time a berthd of this boot asks, for the
    /// UpdateRolledBack signal.
    pub fn recover_rolled_back(&self) -> Option<berth_engine::assessment::FailedUpdate> {
        use berth_engine::assessment;
        let sysroot = self.engine.sysroot_path();
        let last = assessment::load(sysroot).ok()?.failed.pop()?;
        if last.boot_id != assessment::boot_id() {
            return None;
        }
        self.lock().facts.last_error = Some((
            format!("{}.UpdateRolledBack", berth_dbus::ERROR_PREFIX),
            last.summary(),
        ));
        assessment::take_unannounced(sysroot).unwrap_or_else(|e| {
            tracing::warn!("boot assessment record: {e}");
            None
        })
    }

    /// Keeps berthd running for `caller` until it unregisters or leaves the bus.
    pub async fn register_client(&self, caller: &Caller) -> Result<(), BusError> {
        {
            let mut inner = self.lock();
            let theirs = inner.clients.values().filter(|u| **u == caller.uid).count();
            if caller.uid != 0
                && !inner.clients.contains_key(&caller.sender)
                && theirs >= MAX_CLIENTS_PER_USER
            {
                return Err(BusError::limits_exceeded(format!(
                    "uid {} already has {theirs} registered clients",
                    caller.uid
                )));
            }
            inner.clients.insert(caller.sender.clone(), caller.uid);
        }
        // A client that left between its call and now sent its NameOwnerChanged already:
        // ask the bus, so no registration outlives its client.
        let present = match zbus::fdo::DBusProxy::new(&self.conn).await {
            Ok(bus) => match BusName::try_from(caller.sender.as_str()) {
                Ok(name) => bus.name_has_owner(name).await.unwrap_or(false),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if !present {
            self.unregister_client(&caller.sender);
        }
        Ok(())
    }

    pub fn unregister_client(&self, name: &str) {
        self.lock().clients.remove(name);
    }

    /// How long nothing has happened; None while anything runs, anyone is registered, or
    /// automatic updates keep a schedule.
    pub fn idle_for(&self) -> Option<Duration> {
        let inner = self.lock();
        (inner.active.is_none()
            && inner.clients.is_empty()
            && inner.calls_in_flight == 0
            && inner.facts.automatic.policy == Policy::Off)
            .then(|| inner.last_activity.elapsed())
    }
}

fn busy(t: &TxnShared) -> BusError {
    BusError::busy(format!(
        "transaction {} ({}, started by {}) is running",
        t.path,
        t.kind.as_str(),
        t.initiator
    ))
}

fn is_cancel(name: &str) -> bool {
    name.ends_with(".Cancelled")
}

fn path_of(p: &str) -> ObjectPath<'static> {
    ObjectPath::try_from(p.to_string()).expect("transaction paths are valid")
}

impl Daemon {
    /// Reboots into the default deployment: emulated for a sysroot that is not the running
    /// system, through logind otherwise (ostree finalizes a staged deployment on the way down).
    /// `requester` is the uid that asked: other users' sessions would block it.
    /// Reboots (emulated for a sysroot that is not the running system); `check_sessions`:
    /// refuse while others are logged in.
    pub async fn reboot_system(
        &self,
        requester: u32,
        check_sessions: bool,
    ) -> Result<(), BusError> {
        // Ask the sysroot itself: a stale or missing status must never reboot the host.
        let engine = self.engine.clone();
        let emulated = tokio::task::spawn_blocking(move || engine.is_emulated())
            .await
            .map_err(|e| BusError::failed(format!("worker failed: {e}")))??;
        if emulated {
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || engine.reboot())
                .await
                .map_err(|e| BusError::failed(format!("worker failed: {e}")))??;
            // The emulated boot changed Booted/Staged: watchers hear it as after a real boot.
            self.refresh().await;
            return Ok(());
        }
        crate::reboot::reboot(&self.conn, requester, check_sessions).await
    }
}
