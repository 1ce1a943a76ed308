//! The Manager object (/org/berth/Berth1): status, the state machine's properties, and the
//! methods that start transactions. Arguments are validated before anything starts, so bad
//! input is a method error, never a failed transaction.

use crate::authz::{Action, Details};
use crate::bus_error::BusError;
use crate::daemon::{Daemon, Work};
use crate::options::Flags;
use crate::state;
use crate::transaction::Kind;
use berth_dbus::Options;
use berth_engine::{Approval, ImageRef, UpdateOptions, UpdateOutcome};
use futures_util::FutureExt;
use std::sync::Arc;
use zbus::interface;
use zbus::message::Header;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

pub struct ManagerObject {
    d: Arc<Daemon>,
}

impl ManagerObject {
    pub fn new(d: Arc<Daemon>) -> Self {
        ManagerObject { d }
    }

    fn property(&self, name: &str) -> Value<'static> {
        let props = self.d.properties();
        Value::from(
            props
                .get(name)
                .expect("every property is computed")
                .try_clone()
                .expect("no fds"),
        )
    }
}

/// Runs a blocking engine call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_engine::Result<T> + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BusError::failed(format!("worker failed: {e}")))?
        .map_err(BusError::from)
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The actions a call needs: its own, plus reboot when it asks to reboot afterwards.
fn with_reboot(action: Action, reboot: bool) -> Vec<Action> {
    if reboot {
        vec![action, Action::Reboot]
    } else {
        vec![action]
    }
}

#[interface(name = "org.berth.Berth1.Manager")]
impl ManagerObject {
    /// bootc-compatible host status as JSON. Needs no authorization.
    async fn get_status(&self) -> Result<String, BusError> {
        let _call = self.d.call();
        let engine = self.d.engine.clone();
        let host = blocking(move || engine.status()).await?;
        serde_json::to_string(&host).map_err(|e| BusError::failed(e.to_string()))
    }

    async fn check(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        Flags::parse(&options, &[])?;
        self.start_check(&hdr).await
    }

    async fn update(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        let f = Flags::parse(
            &options,
            &[
                "download-only",
                "from-downloaded",
                "reboot",
                "automatic",
                "allow-unverified",
            ],
        )?;
        let mut opts = UpdateOptions {
            download_only: f.bool("download-only")?,
            from_downloaded: f.bool("from-downloaded")?,
            approved: Approval::default(),
        };
        let allow_unverified = f.bool("allow-unverified")?;
        let reboot = f.bool("reboot")?;
        if opts.download_only && (opts.from_downloaded || reboot) {
            return Err(BusError::invalid_args(
                "download-only cannot be combined with from-downloaded or reboot",
            ));
        }
        let automatic = f.bool("automatic")?;
        if automatic {
            if opts.download_only || opts.from_downloaded || reboot || allow_unverified {
                return Err(BusError::invalid_args(
                    "automatic takes no other options: the configured policy decides",
                ));
            }
            // The configured policy decides how far an automatic update goes.
            use berth_engine::config::Policy;
            match self.d.facts().automatic.policy {
                Policy::Check => return self.start_check(&hdr).await,
                Policy::Download => opts.download_only = true,
                Policy::Apply => {}
                Policy::Off => return Err(BusError::wrong_state("automatic updates are off")),
            }
        }
        let plan = plan_update(&self.d.engine, opts.from_downloaded).await?;
        let mut actions = with_reboot(Action::Update, reboot);
        let mut details = Details::new("update").with("image", plan.image.to_string());
        if let Some(v) = &plan.version {
            details = details.with("version", v.as_str());
        }
        // What a routine update cannot carry (a layout others can change, going back to an
        // older image) needs what a switch needs: an administrator. Nobody approves for the
        // timer, so automatic updates never carry it.
        let caller = self.d.authority.caller(&hdr).await?;
        if !automatic {
            if caller.uid == 0 {
                opts.approved = Approval::ADMIN;
            } else if plan.needs_admin() {
                // Only what the plan needs, and the prompt says what that is.
                actions.push(Action::Switch);
                opts.approved = Approval {
                    downgrade: plan.cached_downgrade,
                    any_layout_owner: plan.untrusted_layout.is_some(),
                    unverified: false,
                };
                details = details.with("beyond-routine", plan.why_admin());
            }
        }
        if allow_unverified {
            // Asked for by name; polkit asks for an administrator every time.
            actions.push(Action::DowngradeTrust);
            opts.approved.unverified = true;
        }
        let key = format!("update {opts:?} reboot={reboot}");
        let (engine, d, requester) = (self.d.engine.clone(), self.d.clone(), caller.uid);
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                let outcome = engine.update(opts, progress.clone(), &cancel).await?;
                if reboot
                    && (matches!(outcome, UpdateOutcome::Staged { .. })
                        || has_staged(&engine).await?)
                {
                    reboot_now(&d, requester, &progress, &cancel).await?;
                }
                Ok(json(&outcome))
            }
            .boxed()
        });
        let p = self
            .d
            .begin(&hdr, Kind::Update, key, &actions, &details, work)
            .await?;
        Ok(p.into())
    }

    async fn switch(
        &self,
        image: String,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        let image = ImageRef::parse(&image)?;
        let f = Flags::parse(&options, &["reboot", "allow-unverified"])?;
        let (reboot, allow_unverified) = (f.bool("reboot")?, f.bool("allow-unverified")?);
        let key = format!("switch {image} reboot={reboot} allow-unverified={allow_unverified}");
        let details = Details::new("switch").with("image", image.to_string());
        let mut actions = with_reboot(Action::Switch, reboot);
        if allow_unverified {
            actions.push(Action::DowngradeTrust);
        }
        let requester = self.d.authority.caller(&hdr).await?.uid;
        let (engine, d) = (self.d.engine.clone(), self.d.clone());
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                let outcome = engine
                    .switch(&image, allow_unverified, progress.clone(), &cancel)
                    .await?;
                if reboot && matches!(outcome, UpdateOutcome::Staged { .. }) {
                    reboot_now(&d, requester, &progress, &cancel).await?;
                }
                Ok(json(&outcome))
            }
            .boxed()
        });
        let p = self
            .d
            .begin(&hdr, Kind::Switch, key, &actions, &details, work)
            .await?;
        Ok(p.into())
    }

    async fn rollback(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        let reboot = Flags::parse(&options, &["reboot"])?.bool("reboot")?;
        let requester = self.d.authority.caller(&hdr).await?.uid;
        let (engine, d) = (self.d.engine.clone(), self.d.clone());
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                progress(&staging("rolling back"));
                cancel.check()?;
                // What is rolled back: the staged image, else the booted one. Automatic
                // updates do not take it again.
                let facts = d.facts();
                let away = state::staged(&facts)
                    .or(state::booted(&facts))
                    .and_then(|d| d.image.as_ref())
                    .map(|i| i.image_digest.clone());
                blocking(move || engine.rollback()).await?;
                if let Some(digest) = away {
                    d.note_rolled_back(&digest).await;
                }
                if reboot {
                    reboot_now(&d, requester, &progress, &cancel).await?;
                }
                Ok(serde_json::json!({}))
            }
            .boxed()
        });
        let key = format!("rollback reboot={reboot}");
        let actions = with_reboot(Action::Rollback, reboot);
        let details = self.deployment_details("rollback", state::rollback);
        let p = self
            .d
            .begin(&hdr, Kind::Rollback, key, &actions, &details, work)
            .await?;
        Ok(p.into())
    }

    async fn factory_reset(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        let reboot = Flags::parse(&options, &["reboot"])?.bool("reboot")?;
        let requester = self.d.authority.caller(&hdr).await?.uid;
        let (engine, d) = (self.d.engine.clone(), self.d.clone());
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                progress(&staging("preparing the factory reset"));
                cancel.check()?;
                let stateroot = blocking(move || engine.factory_reset()).await?;
                if reboot {
                    reboot_now(&d, requester, &progress, &cancel).await?;
                }
                Ok(serde_json::json!({ "stateroot": stateroot }))
            }
            .boxed()
        });
        let key = format!("factory-reset reboot={reboot}");
        let actions = with_reboot(Action::FactoryReset, reboot);
        let details = self.deployment_details("factory-reset", state::booted);
        let p = self
            .d
            .begin(&hdr, Kind::FactoryReset, key, &actions, &details, work)
            .await?;
        Ok(p.into())
    }

    async fn cleanup(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        Flags::parse(&options, &[])?;
        let engine = self.d.engine.clone();
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                let mut p = staging("removing what nothing needs");
                p.phase = berth_engine::Phase::Cleanup;
                progress(&p);
                cancel.check()?;
                Ok(json(&blocking(move || engine.cleanup()).await?))
            }
            .boxed()
        });
        let p = self
            .d
            .begin(
                &hdr,
                Kind::Cleanup,
                "cleanup".into(),
                &[Action::Cleanup],
                &Details::new("cleanup"),
                work,
            )
            .await?;
        Ok(p.into())
    }

    /// Drift: compares a deployment's /usr with its commit and fsck's the objects behind it.
    async fn verify(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        let _call = self.d.call();
        let f = Flags::parse(&options, &["index", "automatic"])?;
        let index = f.u32("index")?.map(|i| i as usize);
        if f.bool("automatic")? {
            if index.is_some() {
                return Err(BusError::invalid_args(
                    "automatic checks the booted deployment only",
                ));
            }
            if !self.d.engine.config().scheduled_drift_check {
                return Err(BusError::wrong_state(
                    "scheduled drift checks are off (scheduled-drift-check in berth.toml)",
                ));
            }
        }
        let details = Details::new("verify").with(
            "deployment",
            index.map_or("booted".to_string(), |i| i.to_string()),
        );
        let work = verify_work(&self.d, index);
        let key = format!("verify {index:?}");
        let p = self
            .d
            .begin(&hdr, Kind::Verify, key, &[Action::Verify], &details, work)
            .await?;
        Ok(p.into())
    }

    /// Makes the booted deployment's /usr writable: transient (gone at the next boot) or,
    /// with `hotfix`, until the next update or rollback.
    async fn unlock(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<OwnedObjectPath, BusError> {
        use berth_engine::unlock::UnlockKind;
        let _call = self.d.call();
        let f = Flags::parse(&options, &["hotfix"])?;
        let kind = if f.bool("hotfix")? {
            UnlockKind::Hotfix
        } else {
            UnlockKind::Transient
        };
        if let Some(now) = state::booted(&self.d.facts()).and_then(|b| b.unlocked) {
            return Err(BusError::wrong_state(format!(
                "the booted deployment is already unlocked ({now})"
            )));
        }
        let details = Details::new("unlock").with("kind", kind.as_str());
        let (engine, d) = (self.d.engine.clone(), self.d.clone());
        let work: Work = Box::new(move |progress, cancel| {
            async move {
                let mut p = staging(&format!("unlocking /usr ({})", kind.as_str()));
                progress(&p);
                cancel.check()?;
                if engine.is_emulated()? {
                    let e = engine.clone();
                    blocking(move || e.unlock(kind)).await?;
                } else {
                    // The overlay must be mounted in the host's mount namespace.
                    let unit = format!("berth-unlock-{}.service", kind.as_str());
                    crate::hostunit::run(&d.conn, &unit).await?;
                }
                tracing::warn!(
                    "the booted deployment's /usr is unlocked ({})",
                    kind.as_str()
                );
                p.message = "unlocked".into();
                progress(&p);
                Ok(serde_json::json!({ "unlocked": kind.as_str() }))
            }
            .boxed()
        });
        let key = format!("unlock {}", kind.as_str());
        let p = self
            .d
            .begin(&hdr, Kind::Unlock, key, &[Action::Unlock], &details, work)
            .await?;
        Ok(p.into())
    }

    /// A deployment differs from its image (emitted by each Verify that finds drift): the
    /// deployment's checksum and serial, and the report as JSON.
    #[zbus(signal)]
    async fn drift_detected(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        checksum: &str,
        serial: i32,
        report: &str,
    ) -> zbus::Result<()>;

    async fn pin(&self, index: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), BusError> {
        let _call = self.d.call();
        self.set_pinned(&hdr, index, true).await
    }

    async fn unpin(&self, index: u32, #[zbus(header)] hdr: Header<'_>) -> Result<(), BusError> {
        let _call = self.d.call();
        self.set_pinned(&hdr, index, false).await
    }

    async fn reboot(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), BusError> {
        let _call = self.d.call();
        Flags::parse(&options, &[])?;
        let caller = self
            .d
            .authority
            .authorize(&hdr, &[Action::Reboot], &Details::new("reboot"))
            .await?;
        let _slot = self.d.quick("reboot")?;
        let r = self.d.reboot_system(caller.uid, true).await;
        self.d.refresh().await;
        r
    }

    /// "good" ends the booted update's trial; "bad" makes the next boot fall back to the
    /// previous deployment and records the image as failed.
    async fn mark_boot(
        &self,
        verdict: &str,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), BusError> {
        let _call = self.d.call();
        Flags::parse(&options, &[])?;
        if verdict != "good" && verdict != "bad" {
            return Err(BusError::invalid_args(format!(
                "the verdict must be \"good\" or \"bad\", not {verdict:?}"
            )));
        }
        let details = Details::new("mark-boot").with("verdict", verdict.to_string());
        let caller = self
            .d
            .authority
            .authorize(&hdr, &[Action::MarkBoot], &details)
            .await?;
        let _slot = self.d.quick("mark-boot")?;
        let engine = self.d.engine.clone();
        let r = if verdict == "good" {
            blocking(move || engine.mark_boot_good().map(|_| ())).await
        } else {
            let detail = format!("marked bad by {}", caller.describe());
            blocking(move || engine.mark_boot_bad(&detail)).await
        };
        self.d.refresh().await;
        r
    }

    /// Boot assessment rolled an update back (emitted once, when berthd first runs in the
    /// boot that fell back; BootAssessment keeps saying it).
    #[zbus(signal)]
    async fn update_rolled_back(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        version: &str,
        digest: &str,
        reason: &str,
        message: &str,
    ) -> zbus::Result<()>;

    /// Settings: the keys of berth.toml's `[automatic]` (`automatic-updates` is `policy`),
    /// kept in the administrator's drop-in 90-configure.toml.
    async fn configure(
        &self,
        settings: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), BusError> {
        let _call = self.d.call();
        let changes = crate::settings::changes(&settings)?;
        // Checked with every other file before anyone is asked to authorize it.
        crate::settings::check(&self.d.sources, &changes)?;
        let summary: Vec<String> = changes.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let mut details = Details::new("configure").with("settings", summary.join(", "));
        for (key, value) in &changes {
            // Polkit's details are keyed by the setting's name.
            let name = berth_engine::config::Automatic::KEYS
                .iter()
                .find(|k| *k == key)
                .expect("changes() knows every key");
            details = details.with(name, value.to_string());
        }
        self.d
            .authority
            .authorize(&hdr, &[Action::Configure], &details)
            .await?;
        crate::settings::store(&self.d.sources, &changes)?;
        self.d.reload_settings().await;
        // The scheduler looks at the new settings now.
        self.d.wake_scheduler.notify_one();
        Ok(())
    }

    /// Automatic updates: event is found, downloaded, staged, blocked, failed or rebooting;
    /// details has version, digest, and for blocked the code and reason, for failed the
    /// error name and message.
    #[zbus(signal)]
    pub async fn automatic_update(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        event: &str,
        details: state::Dict,
    ) -> zbus::Result<()>;

    async fn register_client(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), BusError> {
        let _call = self.d.call();
        Flags::parse(&options, &[])?;
        // Identifying the caller fails once it has left the bus: nothing stale is kept.
        let caller = self.d.authority.caller(&hdr).await?;
        self.d.register_client(&caller).await
    }

    async fn unregister_client(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), BusError> {
        if let Some(sender) = hdr.sender() {
            self.d.unregister_client(sender.as_str());
        }
        Ok(())
    }

    #[zbus(property)]
    fn state(&self) -> String {
        String::try_from(self.property("State")).unwrap_or_default()
    }
    #[zbus(property)]
    fn error_name(&self) -> String {
        String::try_from(self.property("ErrorName")).unwrap_or_default()
    }
    #[zbus(property)]
    fn error_message(&self) -> String {
        String::try_from(self.property("ErrorMessage")).unwrap_or_default()
    }
    #[zbus(property)]
    fn booted(&self) -> state::Dict {
        state::deployment_dict(state::booted(&self.d.facts()))
    }
    #[zbus(property)]
    fn staged(&self) -> state::Dict {
        state::deployment_dict(state::staged(&self.d.facts()))
    }
    #[zbus(property)]
    fn rollback_deployment(&self) -> state::Dict {
        state::deployment_dict(state::rollback(&self.d.facts()))
    }
    #[zbus(property)]
    fn cached_update(&self) -> state::Dict {
        state::cached_update(&self.d.facts())
    }
    #[zbus(property)]
    fn boot_assessment(&self) -> state::Dict {
        state::boot_assessment(&self.d.facts())
    }
    #[zbus(property)]
    fn last_check(&self) -> u64 {
        self.d.facts().last_check_time
    }
    #[zbus(property)]
    fn automatic_updates(&self) -> String {
        self.d.facts().automatic.policy.as_str().to_string()
    }
    #[zbus(property)]
    fn automatic_settings(&self) -> state::Dict {
        state::automatic_settings(&self.d.facts().automatic)
    }
    #[zbus(property)]
    fn automatic_status(&self) -> state::Dict {
        state::automatic_status(&self.d.facts())
    }
    #[zbus(property)]
    fn blocked(&self) -> String {
        String::try_from(self.property("Blocked")).unwrap_or_default()
    }
    #[zbus(property)]
    fn config_error(&self) -> String {
        self.d.facts().config_error
    }
    #[zbus(property)]
    fn active_transaction(&self) -> OwnedObjectPath {
        let path = self
            .d
            .active()
            .map_or_else(|| "/".into(), |t| t.path.clone());
        ObjectPath::try_from(path).expect("valid path").into()
    }
    #[zbus(property)]
    fn emulated(&self) -> bool {
        self.d.facts().host.is_some_and(|h| h.status.berth.emulated)
    }
    #[zbus(property)]
    fn daemon_version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

impl ManagerObject {
    async fn start_check(&self, hdr: &Header<'_>) -> Result<OwnedObjectPath, BusError> {
        let work = check_work(&self.d);
        let p = self
            .d
            .begin(
                hdr,
                Kind::Check,
                "check".into(),
                &[Action::Check],
                &Details::new("check"),
                work,
            )
            .await?;
        Ok(p.into())
    }

    /// The operation, with the image and version of the deployment it brings (back).
    fn deployment_details(
        &self,
        operation: &str,
        which: fn(&state::Facts) -> Option<&berth_engine::status::DeploymentInfo>,
    ) -> Details {
        let facts = self.d.facts();
        let image = which(&facts).and_then(|d| d.image.as_ref());
        Details::new(operation)
            .with(
                "image",
                image.map_or("no image", |i| i.image.image.as_str()),
            )
            .with(
                "version",
                image
                    .and_then(|i| i.version.as_deref())
                    .unwrap_or("unknown"),
            )
    }

    async fn announce_drift(conn: &zbus::Connection, report: &berth_engine::drift::DriftReport) {
        let emitter = match zbus::object_server::SignalEmitter::new(conn, berth_dbus::MANAGER_PATH)
        {
            Ok(e) => e,
            Err(e) => return tracing::warn!("cannot announce drift: {e}"),
        };
        let json = serde_json::to_string(report).expect("serializable");
        let r = Self::drift_detected(&emitter, &report.checksum, report.deploy_serial, &json);
        if let Err(e) = r.await {
            tracing::warn!("cannot announce drift: {e}");
        }
    }

    pub async fn announce_rollback(
        conn: &zbus::Connection,
        failed: &berth_engine::assessment::FailedUpdate,
    ) {
        let emitter = match zbus::object_server::SignalEmitter::new(conn, berth_dbus::MANAGER_PATH)
        {
            Ok(e) => e,
            Err(e) => return tracing::warn!("cannot announce the rollback: {e}"),
        };
        let r = Self::update_rolled_back(
            &emitter,
            failed.version.as_deref().unwrap_or_default(),
            failed.digest.as_deref().unwrap_or_default(),
            failed.reason.as_str(),
            &failed.summary(),
        )
        .await;
        if let Err(e) = r {
            tracing::warn!("cannot announce the rollback: {e}");
        }
    }

    async fn set_pinned(&self, hdr: &Header<'_>, index: u32, pinned: bool) -> Result<(), BusError> {
        let operation = if pinned { "pin" } else { "unpin" };
        let details = Details::new(operation).with("index", index.to_string());
        self.d
            .authority
            .authorize(hdr, &[Action::Pin], &details)
            .await?;
        let _slot = self.d.quick(if pinned { "pin" } else { "unpin" })?;
        let engine = self.d.engine.clone();
        let r = blocking(move || engine.set_pinned(index as usize, pinned)).await;
        self.d.refresh().await;
        r
    }
}

/// A check of the tracked image; its result becomes the last check.
pub fn check_work(d: &Arc<Daemon>) -> Work {
    let (engine, d) = (d.engine.clone(), d.clone());
    Box::new(move |progress, cancel| {
        async move {
            let mut p = staging("checking for updates");
            p.phase = berth_engine::Phase::Checking;
            progress(&p);
            // A check only talks to the registry: a cancel simply abandons it.
            let result = tokio::select! {
                r = engine.check(None) => r?,
                _ = cancelled(&cancel) => return Err(berth_engine::Error::Cancelled.into()),
            };
            d.set_check(result.clone());
            Ok(json(&result))
        }
        .boxed()
    })
}

/// A drift check of the deployment with `index` (default: the booted one).
pub fn verify_work(d: &Arc<Daemon>, index: Option<usize>) -> Work {
    let (engine, d) = (d.engine.clone(), d.clone());
    Box::new(move |progress, cancel| {
        async move {
            let report = blocking(move || engine.verify(index, progress, &cancel)).await?;
            if !report.is_clean() {
                tracing::warn!(
                    "drift in deployment {}.{}: {}",
                    report.checksum,
                    report.deploy_serial,
                    report.summary().text()
                );
                ManagerObject::announce_drift(&d.conn, &report).await;
            }
            Ok(json(&report))
        }
        .boxed()
    })
}

/// A routine update as the scheduler runs it: nobody approves anything beyond routine.
pub fn routine_update_work(engine: &berth_engine::Engine, opts: UpdateOptions) -> Work {
    let engine = engine.clone();
    Box::new(move |progress, cancel| {
        async move { Ok(json(&engine.update(opts, progress, &cancel).await?)) }.boxed()
    })
}

/// What an update would follow, known before it starts.
struct UpdatePlan {
    image: ImageRef,
    /// Version of the downloaded update it would stage.
    version: Option<String>,
    /// Why the followed OCI layout may hold someone else's image.
    untrusted_layout: Option<String>,
    /// The downloaded update it would stage is older than the booted image.
    cached_downgrade: bool,
}

impl UpdatePlan {
    fn needs_admin(&self) -> bool {
        self.untrusted_layout.is_some() || self.cached_downgrade
    }

    /// What makes this update more than routine, in words for the prompt and the log.
    fn why_admin(&self) -> String {
        let mut why = Vec::new();
        if let Some(reason) = &self.untrusted_layout {
            why.push(format!(
                "the layout it follows may be changed by others ({reason})"
            ));
        }
        if self.cached_downgrade {
            why.push("the downloaded update is older than the running system".to_string());
        }
        why.join("; ")
    }
}

async fn plan_update(
    engine: &berth_engine::Engine,
    from_downloaded: bool,
) -> Result<UpdatePlan, BusError> {
    let engine = engine.clone();
    blocking(move || {
        let image = engine.tracked_image()?;
        let untrusted_layout = match &image {
            ImageRef::Layout { path, .. } => berth_engine::layout::untrusted_reason(path),
            ImageRef::Registry(_) => None,
        };
        let cached = if from_downloaded {
            engine.cached_update()?
        } else {
            None
        };
        let cached_downgrade = match &cached {
            Some(c) => engine.is_downgrade(c.timestamp.as_deref())?,
            None => false,
        };
        Ok(UpdatePlan {
            image,
            version: cached.and_then(|c| c.version),
            untrusted_layout,
            cached_downgrade,
        })
    })
    .await
}

/// Resolves once `cancel` is set.
async fn cancelled(cancel: &berth_engine::Cancel) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn has_staged(engine: &berth_engine::Engine) -> Result<bool, BusError> {
    let engine = engine.clone();
    Ok(blocking(move || engine.status())
        .await?
        .status
        .staged
        .is_some())
}

/// The reboot a transaction asked for: the last point where a cancel still counts.
async fn reboot_now(
    d: &Daemon,
    requester: u32,
    progress: &berth_engine::ProgressFn,
    cancel: &berth_engine::Cancel,
) -> Result<(), BusError> {
    cancel.check()?;
    progress(&staging("rebooting"));
    d.reboot_system(requester, true).await
}

/// A progress event for steps without bytes.
fn staging(message: &str) -> berth_engine::Progress {
    berth_engine::Progress {
        phase: berth_engine::Phase::Staging,
        bytes_done: 0,
        bytes_total: 0,
        layers_done: 0,
        layers_total: 0,
        message: message.into(),
    }
}
