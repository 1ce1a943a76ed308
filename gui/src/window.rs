//! The main window: one big state at the top (as GNOME Software's updates page), the system
//! as it is now, automatic updates, and the versions installed. Everything shown comes from
//! berthd's properties and signals, so work started elsewhere (the CLI, Cockpit, the timer)
//! shows here the moment it starts.

use crate::a11y;
use crate::backend::{Backend, Event};
use crate::present;
use adw::prelude::*;
use berth_dbus::model::{ListedDeployment, Snapshot};
use berth_dbus::{options, CallError, TransactionEvent};
use berth_l10n::fl;
use gtk::{gio, glib};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use zbus::zvariant::Value;

/// A transaction the window is following.
#[derive(Debug, Clone, Default)]
pub struct Running {
    pub path: String,
    pub kind: String,
    pub phase: String,
    pub fraction: f64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Started from this window (its outcome is reported here, not as a notification).
    pub mine: bool,
}

/// Told the version when a restart becomes needed for work this window did not start.
pub type RestartNeeded = Box<dyn Fn(&str)>;

/// A window menu entry and what it does.
type MenuAction = (&'static str, fn(&Window));

/// What the buttons under the big state do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    UpdateAndRestart,
    Download,
    Restart,
    Cancel,
    TryAgain,
}

/// What the big state at the top shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hero {
    Connecting,
    Unreachable,
    Running,
    Restarting,
    Error,
    RestartNeeded,
    UpdateAvailable,
    UpdateDownloaded,
    UpToDate,
}

#[derive(Default)]
pub struct State {
    pub snapshot: Option<Snapshot>,
    pub deployments: Vec<ListedDeployment>,
    pub unreachable: Option<CallError>,
    /// The last failure, shown until the next action succeeds.
    pub error: Option<CallError>,
    pub running: Option<Running>,
    pub checked_on_open: bool,
    pub restarting: bool,
    pub hero: Option<Hero>,
    pub primary: Option<Action>,
    pub secondary: Option<Action>,
    /// The toasts shown, newest last (the last few).
    pub toasts: Vec<String>,
}

/// The window's widgets, public so the UI tests drive the same widgets a person clicks.
pub struct Widgets {
    pub window: adw::ApplicationWindow,
    pub toasts: adw::ToastOverlay,
    pub check_button: gtk::Button,
    pub menu_button: gtk::MenuButton,
    pub hero_icon: gtk::Image,
    pub hero_title: gtk::Label,
    pub hero_description: gtk::Label,
    pub spinner: gtk::Spinner,
    pub progress: gtk::ProgressBar,
    pub progress_label: gtk::Label,
    pub primary: gtk::Button,
    pub secondary: gtk::Button,
    pub os_row: adw::ActionRow,
    pub version_row: adw::ActionRow,
    pub image_row: adw::ActionRow,
    pub digest_row: adw::ActionRow,
    pub signature_row: adw::ActionRow,
    pub modifications_row: adw::ActionRow,
    pub built_row: adw::ActionRow,
    pub policy_row: adw::ComboRow,
    pub schedule_row: adw::ActionRow,
    pub held_row: adw::ActionRow,
    pub versions: adw::PreferencesGroup,
    pub rollback_button: gtk::Button,
    /// The rows of the versions list, rebuilt on every change.
    pub version_rows: RefCell<Vec<(adw::ActionRow, gtk::ToggleButton)>>,
    /// The confirmation on screen, if any.
    pub dialog: RefCell<Option<adw::MessageDialog>>,
}

pub struct Inner {
    pub w: Widgets,
    pub state: RefCell<State>,
    pub backend: RefCell<Option<Backend>>,
    /// Set while the window itself moves the policy selector.
    syncing_policy: Cell<bool>,
    /// Called whenever a restart becomes needed for work this window did not start.
    pub on_restart_needed: RefCell<Option<RestartNeeded>>,
}

#[derive(Clone)]
pub struct Window(pub Rc<Inner>);

fn row(title: String) -> adw::ActionRow {
    let r = adw::ActionRow::builder().title(title).build();
    r.add_css_class("property");
    r
}

fn label_button(label: String) -> gtk::Button {
    gtk::Button::builder()
        .label(label)
        .use_underline(true)
        .halign(gtk::Align::Center)
        .css_classes(["pill"])
        .build()
}

impl Window {
    pub fn new(app: &adw::Application) -> Window {
        let check_button = gtk::Button::builder()
            .icon_name("view-refresh-symbolic")
            .tooltip_text(fl!("check-for-updates"))
            .build();
        a11y::set_label(&check_button, &fl!("check-for-updates"));
        let menu = gio::Menu::new();
        menu.append(Some(&fl!("menu-cleanup")), Some("win.cleanup"));
        menu.append(Some(&fl!("menu-factory-reset")), Some("win.factory-reset"));
        menu.append(Some(&fl!("menu-about")), Some("win.about"));
        let menu_button = gtk::MenuButton::builder()
            .icon_name("open-menu-symbolic")
            .menu_model(&menu)
            .tooltip_text(fl!("main-menu"))
            .primary(true)
            .build();
        a11y::set_label(&menu_button, &fl!("main-menu"));
        let header = adw::HeaderBar::builder()
            .title_widget(&adw::WindowTitle::new(&fl!("app-name"), ""))
            .build();
        header.pack_start(&check_button);
        header.pack_end(&menu_button);

        // The big state with its progress and buttons.
        let spinner = gtk::Spinner::builder()
            .width_request(32)
            .height_request(32)
            .halign(gtk::Align::Center)
            .visible(false)
            .build();
        a11y::set_label(&spinner, &fl!("hero-working"));
        let progress = gtk::ProgressBar::builder()
            .visible(false)
            .width_request(320)
            .halign(gtk::Align::Center)
            .build();
        a11y::set_label(&progress, &fl!("progress-name"));
        let progress_label = gtk::Label::builder()
            .visible(false)
            .wrap(true)
            .justify(gtk::Justification::Center)
            .css_classes(["dim-label", "numeric"])
            .build();
        let primary = label_button(String::new());
        primary.add_css_class("suggested-action");
        let secondary = label_button(String::new());
        let buttons = gtk::Box::builder()
            .orientation(gtk::Orientation::Horizontal)
            .spacing(12)
            .halign(gtk::Align::Center)
            .build();
        buttons.append(&secondary);
        buttons.append(&primary);
        let hero_box = gtk::Box::builder()
            .orientation(gtk::Orientation::Vertical)
            .spacing(12)
            .build();
        hero_box.append(&spinner);
        hero_box.append(&progress);
        hero_box.append(&progress_label);
        hero_box.append(&buttons);
        let hero_icon = gtk::Image::builder()
            .icon_name("content-loading-symbolic")
            .pixel_size(96)
            .accessible_role(gtk::AccessibleRole::Presentation)
            .css_classes(["dim-label"])
            .margin_bottom(12)
            .build();
        let hero_title = gtk::Label::builder()
            .wrap(true)
            .justify(gtk::Justification::Center)
            .css_classes(["title-1"])
            .build();
        let hero_description = gtk::Label::builder()
            .wrap(true)
            .justify(gtk::Justification::Center)
            .css_classes(["body"])
            .build();
        let hero = gtk::Box::builder()
            .orientation(gtk::Orientation::Vertical)
            .spacing(6)
            .margin_top(24)
            .margin_bottom(12)
            .build();
        hero.append(&hero_icon);
        hero.append(&hero_title);
        hero.append(&hero_description);
        hero_box.set_margin_top(12);
        hero.append(&hero_box);

        // This system.
        let os_row = row(fl!("row-system"));
        let version_row = row(fl!("row-version"));
        let image_row = row(fl!("row-image"));
        let digest_row = row(fl!("row-digest"));
        let signature_row = row(fl!("row-signature"));
        let modifications_row = row(fl!("row-modifications"));
        let built_row = row(fl!("row-built"));
        let system = adw::PreferencesGroup::builder()
            .title(fl!("group-system"))
            .build();
        for r in [
            &os_row,
            &version_row,
            &image_row,
            &digest_row,
            &signature_row,
            &modifications_row,
            &built_row,
        ] {
            system.add(r);
        }

        // Automatic updates.
        let titles: Vec<String> = present::POLICIES
            .iter()
            .map(|p| present::policy_title(p))
            .collect();
        let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        let policy_row = adw::ComboRow::builder()
            .title(fl!("row-automatic-updates"))
            .model(&gtk::StringList::new(&title_refs))
            .build();
        let automatic = adw::PreferencesGroup::builder()
            .title(fl!("group-automatic"))
            .build();
        automatic.add(&policy_row);
        // When the scheduler last looked and looks next; what holds it back, if anything.
        let schedule_row = row(fl!("hero-not-checked"));
        let held_row = adw::ActionRow::builder()
            .title(fl!("automatic-held-back"))
            .visible(false)
            .build();
        held_row.add_prefix(&gtk::Image::from_icon_name("dialog-warning-symbolic"));
        held_row.add_css_class("property");
        automatic.add(&schedule_row);
        automatic.add(&held_row);

        // Versions on this system.
        let rollback_button = gtk::Button::builder()
            .label(fl!("rollback-button"))
            .use_underline(true)
            .valign(gtk::Align::Center)
            .visible(false)
            .build();
        let versions = adw::PreferencesGroup::builder()
            .title(fl!("group-versions"))
            .description(fl!("group-versions-description"))
            .header_suffix(&rollback_button)
            .build();

        let page = adw::PreferencesPage::new();
        let hero_group = adw::PreferencesGroup::new();
        hero_group.add(&hero);
        page.add(&hero_group);
        page.add(&system);
        page.add(&automatic);
        page.add(&versions);
        let toasts = adw::ToastOverlay::new();
        toasts.set_child(Some(&page));
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&toasts);
        let window = adw::ApplicationWindow::builder()
            .application(app)
            .title(fl!("app-name"))
            .icon_name(crate::APP_ID)
            .default_width(640)
            .default_height(780)
            .content(&content)
            .build();

        let w = Widgets {
            window,
            toasts,
            check_button,
            menu_button,
            hero_icon,
            hero_title,
            hero_description,
            spinner,
            progress,
            progress_label,
            primary,
            secondary,
            os_row,
            version_row,
            image_row,
            digest_row,
            signature_row,
            modifications_row,
            built_row,
            policy_row,
            schedule_row,
            held_row,
            versions,
            rollback_button,
            version_rows: RefCell::default(),
            dialog: RefCell::default(),
        };
        let win = Window(Rc::new(Inner {
            w,
            state: RefCell::default(),
            backend: RefCell::default(),
            syncing_policy: Cell::new(false),
            on_restart_needed: RefCell::default(),
        }));
        win.connect_signals();
        win.render();
        win
    }

    pub fn widgets(&self) -> &Widgets {
        &self.0.w
    }

    fn connect_signals(&self) {
        let w = &self.0.w;
        let this = self.clone();
        w.check_button.connect_clicked(move |_| this.check());
        let this = self.clone();
        w.primary.connect_clicked(move |_| {
            let action = this.0.state.borrow().primary.unwrap_or(Action::None);
            this.act(action);
        });
        let this = self.clone();
        w.secondary.connect_clicked(move |_| {
            let action = this.0.state.borrow().secondary.unwrap_or(Action::None);
            this.act(action);
        });
        let this = self.clone();
        w.rollback_button
            .connect_clicked(move |_| this.confirm_rollback());
        let this = self.clone();
        w.policy_row.connect_selected_notify(move |row| {
            if this.0.syncing_policy.get() {
                return;
            }
            let Some(policy) = present::POLICIES.get(row.selected() as usize) else {
                return;
            };
            this.configure(policy);
        });
        let actions: [MenuAction; 3] = [
            ("cleanup", Window::cleanup),
            ("factory-reset", Window::confirm_factory_reset),
            ("about", Window::about),
        ];
        for (name, f) in actions {
            let action = gio::SimpleAction::new(name, None);
            let this = self.clone();
            action.connect_activate(move |_, _| f(&this));
            w.window.add_action(&action);
        }
    }

    /// Connects to berthd and follows it; call once the window is shown.
    pub fn start(&self) {
        let this = self.clone();
        glib::spawn_future_local(async move {
            loop {
                match Backend::connect().await {
                    Ok((backend, events)) => {
                        *this.0.backend.borrow_mut() = Some(backend);
                        while let Ok(event) = events.recv().await {
                            this.handle(event);
                        }
                        return;
                    }
                    Err(e) => {
                        this.0.state.borrow_mut().unreachable = Some(e);
                        this.render();
                        glib::timeout_future_seconds(3).await;
                    }
                }
            }
        });
    }

    fn backend(&self) -> Option<Backend> {
        self.0.backend.borrow().clone()
    }

    pub fn handle(&self, event: Event) {
        if std::env::var_os("BERTH_GUI_DEBUG").is_some_and(|v| !v.is_empty()) {
            eprintln!("event: {event:?}");
        }
        match event {
            Event::Snapshot(snapshot, list) => self.on_snapshot(*snapshot, list),
            Event::Transaction(path, ev) => self.on_transaction(path, ev),
            Event::Automatic(ev) => {
                if let Some(text) = present::automatic_event(&ev) {
                    self.toast(text);
                }
            }
            Event::Lost => {
                let mut st = self.0.state.borrow_mut();
                if let Some(r) = st.running.take() {
                    st.error = Some(CallError::new(
                        "Interrupted",
                        format!("berthd stopped while running {}", r.path),
                    ));
                }
                st.restarting = false;
            }
            Event::Unreachable(e) => {
                let mut st = self.0.state.borrow_mut();
                st.unreachable = Some(e);
                if st.running.take().is_some() {
                    st.error = Some(CallError::new("Interrupted", "berthd stopped"));
                }
            }
        }
        self.render();
    }

    fn on_snapshot(&self, snapshot: Snapshot, list: Vec<ListedDeployment>) {
        let restart_needed_now = snapshot.staged.as_ref().and_then(|s| s.digest.clone());
        let (follow, check_now, newly_staged) = {
            let mut st = self.0.state.borrow_mut();
            let staged_before = st
                .snapshot
                .as_ref()
                .and_then(|s| s.staged.as_ref())
                .and_then(|s| s.digest.clone());
            st.unreachable = None;
            // A restart happened (or, on an emulated sysroot, was played out).
            let booted = |s: Option<&Snapshot>| {
                s.and_then(|s| s.booted.as_ref())
                    .map(|b| b.checksum.clone())
            };
            if booted(st.snapshot.as_ref()) != booted(Some(&snapshot)) {
                st.restarting = false;
            }
            let active = snapshot.active_transaction.clone();
            let follow = match (&active, &st.running) {
                (Some(a), Some(r)) if *a == r.path => None,
                (Some(a), _) => Some(a.clone()),
                (None, _) => None,
            };
            let check_now = !st.checked_on_open && active.is_none();
            st.checked_on_open = true;
            // A failure berthd reports that this window has not seen (the timer's, say).
            // A rolled-back update stays in view (a check does not end it for berthd either).
            let unseen = st.snapshot.as_ref().map(|s| &s.error_name) != Some(&snapshot.error_name)
                || snapshot.error_name.ends_with(".UpdateRolledBack");
            if snapshot.state == berth_dbus::state::ERROR
                && !snapshot.error_name.ends_with(".Cancelled")
                && unseen
                && st.error.is_none()
            {
                st.error = Some(CallError {
                    name: snapshot.error_name.clone(),
                    message: snapshot.error_message.clone(),
                });
            }
            let mine = st.running.as_ref().is_some_and(|r| r.mine);
            let newly_staged =
                restart_needed_now.is_some() && restart_needed_now != staged_before && !mine;
            st.snapshot = Some(snapshot);
            st.deployments = list;
            (follow, check_now, newly_staged)
        };
        if let Some(path) = follow {
            self.follow_transaction(path, false);
        }
        if check_now {
            self.check();
        }
        if newly_staged {
            if let Some(cb) = self.0.on_restart_needed.borrow().as_ref() {
                let version = self
                    .0
                    .state
                    .borrow()
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.staged.as_ref().map(present::deployment_version))
                    .unwrap_or_default();
                cb(&version);
            }
        }
    }

    /// Starts following a transaction someone else started (or that we only know by path).
    fn follow_transaction(&self, path: String, mine: bool) {
        {
            let mut st = self.0.state.borrow_mut();
            match &mut st.running {
                Some(r) if r.path == path => {
                    r.mine |= mine;
                    return;
                }
                // The placeholder of a call this window just made.
                Some(r) if r.path.is_empty() => {
                    r.path = path.clone();
                    r.mine = true;
                }
                _ => {
                    st.running = Some(Running {
                        path: path.clone(),
                        mine,
                        ..Default::default()
                    })
                }
            }
        }
        let Some(backend) = self.backend() else {
            return;
        };
        let this = self.clone();
        glib::spawn_future_local(async move {
            if let Ok((kind, ev)) = backend.transaction_state(path.clone()).await {
                {
                    let mut st = this.0.state.borrow_mut();
                    if let Some(r) = st.running.as_mut().filter(|r| r.path == path) {
                        r.kind = kind;
                    }
                }
                if let Some(ev) = ev {
                    this.on_transaction(path, ev);
                }
                this.render();
            }
        });
    }

    fn on_transaction(&self, path: String, ev: TransactionEvent) {
        let known = self
            .0
            .state
            .borrow()
            .running
            .as_ref()
            .is_some_and(|r| r.path == path);
        match ev {
            TransactionEvent::Progress {
                phase,
                fraction,
                bytes_done,
                bytes_total,
                ..
            } => {
                if !known {
                    self.follow_transaction(path.clone(), false);
                }
                let mut st = self.0.state.borrow_mut();
                if let Some(r) = st.running.as_mut().filter(|r| r.path == path) {
                    r.phase = phase;
                    r.fraction = fraction.clamp(0.0, 1.0);
                    r.bytes_done = bytes_done;
                    r.bytes_total = bytes_total;
                }
            }
            TransactionEvent::Finished {
                success,
                error_name,
                error_message,
            } => {
                let mut st = self.0.state.borrow_mut();
                let ran = st.running.take_if(|r| r.path == path);
                let kind = ran.as_ref().map(|r| r.kind.clone()).unwrap_or_default();
                let mine = ran.as_ref().is_some_and(|r| r.mine);
                if success {
                    st.error = None;
                    drop(st);
                    if mine && kind == "cleanup" {
                        self.toast(fl!("toast-cleaned-up"));
                    }
                } else if error_name.ends_with(".Cancelled") {
                    st.restarting = false;
                    drop(st);
                    self.toast(fl!("toast-cancelled"));
                } else {
                    st.restarting = false;
                    st.error = Some(CallError {
                        name: error_name,
                        message: error_message,
                    });
                }
            }
        }
        self.render();
    }

    pub fn toast(&self, text: String) {
        self.0.w.toasts.add_toast(adw::Toast::new(&text));
        let mut st = self.0.state.borrow_mut();
        if st.toasts.len() >= 16 {
            st.toasts.remove(0);
        }
        st.toasts.push(text);
    }

    /// Runs a call that starts a transaction; the transaction's signals do the rest.
    fn start_transaction<F>(&self, kind: &str, call: F)
    where
        F: std::future::Future<Output = Result<String, CallError>> + 'static,
    {
        {
            let mut st = self.0.state.borrow_mut();
            st.error = None;
            // Shown at once; the path follows when berthd answers.
            st.running = Some(Running {
                kind: kind.to_string(),
                phase: "queued".into(),
                mine: true,
                ..Default::default()
            });
        }
        self.render();
        let this = self.clone();
        glib::spawn_future_local(async move {
            match call.await {
                Ok(path) => this.follow_transaction(path, true),
                Err(e) => this.fail(e),
            }
            this.render();
        });
    }

    fn fail(&self, e: CallError) {
        let mut st = self.0.state.borrow_mut();
        st.restarting = false;
        st.running.take_if(|r| r.path.is_empty());
        st.error = Some(e);
    }

    pub fn check(&self) {
        let Some(b) = self.backend() else { return };
        self.start_transaction("check", async move { b.start("Check", options([])).await });
    }

    pub fn act(&self, action: Action) {
        let Some(b) = self.backend() else { return };
        let downloaded = self
            .0
            .state
            .borrow()
            .snapshot
            .as_ref()
            .and_then(|s| s.cached_update.as_ref())
            .is_some_and(|c| c.downloaded);
        match action {
            Action::None => {}
            Action::UpdateAndRestart => {
                self.0.state.borrow_mut().restarting = true;
                self.start_transaction(
                    "update",
                    async move { b.update(false, downloaded, true).await },
                );
            }
            Action::Download => {
                self.start_transaction("update", async move { b.update(true, false, false).await })
            }
            Action::TryAgain => self.check(),
            Action::Cancel => {
                let Some(path) = self
                    .0
                    .state
                    .borrow()
                    .running
                    .as_ref()
                    .map(|r| r.path.clone())
                else {
                    return;
                };
                let this = self.clone();
                glib::spawn_future_local(async move {
                    if let Err(e) = b.cancel(path).await {
                        this.fail(e);
                        this.render();
                    }
                });
            }
            Action::Restart => {
                self.0.state.borrow_mut().restarting = true;
                self.render();
                let this = self.clone();
                glib::spawn_future_local(async move {
                    if let Err(e) = b.reboot().await {
                        this.fail(e);
                    }
                    this.render();
                });
            }
        }
    }

    fn configure(&self, policy: &'static str) {
        let Some(b) = self.backend() else { return };
        let this = self.clone();
        glib::spawn_future_local(async move {
            match b.configure(policy).await {
                Ok(()) => this.toast(fl!("toast-policy", policy = present::policy_title(policy))),
                Err(e) => {
                    let ex = berth_l10n::explain(&e.name, &e.message);
                    this.toast(ex.title);
                    // Back to what berthd has.
                    this.sync_policy();
                }
            }
        });
    }

    fn pin(&self, index: u32, pin: bool) {
        let Some(b) = self.backend() else { return };
        let this = self.clone();
        glib::spawn_future_local(async move {
            if let Err(e) = b.pin(index, pin).await {
                let ex = berth_l10n::explain(&e.name, &e.message);
                this.toast(ex.title);
                this.render();
            }
        });
    }

    fn confirm_rollback(&self) {
        let (back, current, image) = {
            let st = self.0.state.borrow();
            let Some(s) = st.snapshot.as_ref() else {
                return;
            };
            let Some(r) = s.rollback.as_ref() else { return };
            let current = s
                .staged
                .as_ref()
                .or(s.booted.as_ref())
                .map(present::deployment_version)
                .unwrap_or_default();
            (
                present::deployment_version(r),
                current,
                r.image.clone().unwrap_or_default(),
            )
        };
        self.confirm(
            fl!("rollback-heading", version = back.clone()),
            fl!(
                "rollback-body",
                version = back,
                current = current,
                image = image
            ),
            (fl!("rollback-confirm"), adw::ResponseAppearance::Suggested),
            ("rollback", "Rollback"),
        );
    }

    /// A confirmation: Cancel (the default) or `confirm`, which starts the transaction
    /// `kind` with `method` (without restarting: the window then offers Restart).
    fn confirm(
        &self,
        heading: String,
        body: String,
        confirm: (String, adw::ResponseAppearance),
        (kind, method): (&'static str, &'static str),
    ) {
        let dialog = adw::MessageDialog::new(Some(&self.0.w.window), Some(&heading), Some(&body));
        dialog.add_responses(&[("cancel", &fl!("dialog-cancel")), ("confirm", &confirm.0)]);
        dialog.set_response_appearance("confirm", confirm.1);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let this = self.clone();
        dialog.connect_response(None, move |_, response| {
            *this.0.w.dialog.borrow_mut() = None;
            if response != "confirm" {
                return;
            }
            if let Some(b) = this.backend() {
                this.start_transaction(kind, async move {
                    b.start(method, options([("reboot", Value::Bool(false))]))
                        .await
                });
            }
        });
        *self.0.w.dialog.borrow_mut() = Some(dialog.clone());
        dialog.present();
    }

    fn confirm_factory_reset(&self) {
        let (image, version) = {
            let st = self.0.state.borrow();
            let booted = st.snapshot.as_ref().and_then(|s| s.booted.clone());
            (
                booted
                    .as_ref()
                    .and_then(|b| b.image.clone())
                    .unwrap_or_default(),
                booted
                    .as_ref()
                    .map(present::deployment_version)
                    .unwrap_or_default(),
            )
        };
        self.confirm(
            fl!("reset-heading"),
            fl!("reset-body", image = image, version = version),
            (fl!("reset-confirm"), adw::ResponseAppearance::Destructive),
            ("factory-reset", "FactoryReset"),
        );
    }

    fn cleanup(&self) {
        let Some(b) = self.backend() else { return };
        self.start_transaction(
            "cleanup",
            async move { b.start("Cleanup", options([])).await },
        );
    }

    fn about(&self) {
        let about = adw::AboutWindow::builder()
            .transient_for(&self.0.w.window)
            .application_name(fl!("app-name"))
            .application_icon(crate::APP_ID)
            .version(env!("CARGO_PKG_VERSION"))
            .developer_name(fl!("about-developer"))
            .comments(fl!("about-comments"))
            .license_type(gtk::License::MitX11)
            .build();
        about.present();
    }

    /// Which big state to show, from everything known now.
    fn hero_for(st: &State) -> Hero {
        let Some(s) = st.snapshot.as_ref() else {
            return if st.unreachable.is_some() {
                Hero::Unreachable
            } else {
                Hero::Connecting
            };
        };
        if st.unreachable.is_some() && st.error.is_none() {
            return Hero::Unreachable;
        }
        if st.running.is_some() {
            return Hero::Running;
        }
        if st.error.is_some() {
            return Hero::Error;
        }
        if st.restarting && s.staged.is_some() {
            return Hero::Restarting;
        }
        if s.state == berth_dbus::state::NEEDS_REBOOT || s.staged.is_some() {
            return Hero::RestartNeeded;
        }
        match &s.cached_update {
            Some(c) if c.downloaded => Hero::UpdateDownloaded,
            Some(_) => Hero::UpdateAvailable,
            None => Hero::UpToDate,
        }
    }

    fn set_buttons(&self, primary: (Action, String), secondary: (Action, String)) {
        let w = &self.0.w;
        for (button, (action, label)) in [(&w.primary, &primary), (&w.secondary, &secondary)] {
            button.set_visible(*action != Action::None);
            button.set_label(label);
        }
        let mut st = self.0.state.borrow_mut();
        st.primary = Some(primary.0);
        st.secondary = Some(secondary.0);
    }

    /// Shows the state: called after every event.
    pub fn render(&self) {
        let w = &self.0.w;
        let hero = Self::hero_for(&self.0.state.borrow());
        self.0.state.borrow_mut().hero = Some(hero);
        let none = || (Action::None, String::new());
        let (icon, title, description, spinner, progress) = {
            let st = self.0.state.borrow();
            let s = st.snapshot.clone().unwrap_or_default();
            let cached_version = s
                .cached_update
                .as_ref()
                .map(|c| present::version_of(c.version.as_deref(), c.digest.as_deref()))
                .unwrap_or_default();
            match hero {
                Hero::Connecting => (
                    "content-loading-symbolic",
                    fl!("hero-connecting"),
                    String::new(),
                    true,
                    None,
                ),
                Hero::Unreachable => {
                    let e = st
                        .unreachable
                        .clone()
                        .unwrap_or_else(|| CallError::new("Failed", ""));
                    let ex = berth_l10n::explain(&e.name, &e.message);
                    (
                        "network-offline-symbolic",
                        fl!("hero-unreachable"),
                        format!("{}\n{}", ex.advice, fl!("hero-retrying")),
                        false,
                        None,
                    )
                }
                Hero::Running => {
                    let r = st.running.clone().unwrap_or_default();
                    let title = present::running_title(&r.kind, &r.phase);
                    let line = match present::bytes(r.bytes_done, r.bytes_total) {
                        Some(b) => format!("{} · {b}", berth_l10n::phase(&r.phase)),
                        None => berth_l10n::phase(&r.phase),
                    };
                    let bar = (r.kind != "check").then_some((r.fraction, line));
                    (
                        "folder-download-symbolic",
                        title,
                        String::new(),
                        r.kind == "check",
                        bar,
                    )
                }
                Hero::Restarting => (
                    "system-reboot-symbolic",
                    fl!("hero-restarting"),
                    String::new(),
                    true,
                    None,
                ),
                Hero::Error => {
                    let e = st
                        .error
                        .clone()
                        .unwrap_or_else(|| CallError::new("Failed", ""));
                    let ex = berth_l10n::explain(&e.name, &e.message);
                    ("dialog-warning-symbolic", ex.title, ex.advice, false, None)
                }
                Hero::RestartNeeded => {
                    let description = match s.staged.as_ref() {
                        Some(d) => fl!(
                            "hero-restart-update-description",
                            version = present::deployment_version(d)
                        ),
                        None => fl!("hero-restart-description"),
                    };
                    let title = if s.staged.is_some() {
                        fl!("hero-restart-update")
                    } else {
                        fl!("hero-restart")
                    };
                    ("system-reboot-symbolic", title, description, false, None)
                }
                Hero::UpdateAvailable => {
                    let size = s.cached_update.as_ref().map_or(0, |c| c.download_size);
                    (
                        "software-update-available-symbolic",
                        fl!("hero-update-available"),
                        fl!(
                            "hero-update-available-description",
                            version = cached_version,
                            size = berth_l10n::size(size)
                        ),
                        false,
                        None,
                    )
                }
                Hero::UpdateDownloaded => (
                    "software-update-available-symbolic",
                    fl!("hero-update-downloaded"),
                    fl!(
                        "hero-update-downloaded-description",
                        version = cached_version
                    ),
                    false,
                    None,
                ),
                Hero::UpToDate => {
                    // berthd's time, so a check by the timer or the CLI counts too.
                    let last_check = st.snapshot.as_ref().map_or(0, |s| s.last_check);
                    let checked = match (last_check > 0)
                        .then(|| glib::DateTime::from_unix_local(last_check as i64).ok())
                        .flatten()
                    {
                        Some(t) => fl!(
                            "hero-last-checked",
                            time = t.format("%X").map(|s| s.to_string()).unwrap_or_default()
                        ),
                        None => fl!("hero-not-checked"),
                    };
                    (
                        "object-select-symbolic",
                        fl!("hero-up-to-date"),
                        checked,
                        false,
                        None,
                    )
                }
            }
        };
        w.hero_icon.set_icon_name(Some(icon));
        w.hero_title.set_label(&title);
        w.hero_description.set_label(&description);
        w.hero_description.set_visible(!description.is_empty());
        w.spinner.set_visible(spinner);
        w.spinner.set_spinning(spinner);
        w.progress.set_visible(progress.is_some());
        w.progress_label.set_visible(progress.is_some());
        if let Some((fraction, line)) = &progress {
            w.progress.set_fraction(*fraction);
            w.progress_label.set_label(line);
        }
        let running_kind = self
            .0
            .state
            .borrow()
            .running
            .as_ref()
            .map(|r| r.kind.clone());
        match hero {
            Hero::UpdateAvailable => self.set_buttons(
                (Action::UpdateAndRestart, fl!("button-update-and-restart")),
                (Action::Download, fl!("button-download")),
            ),
            Hero::UpdateDownloaded => self.set_buttons(
                (Action::UpdateAndRestart, fl!("button-update-and-restart")),
                none(),
            ),
            Hero::RestartNeeded => {
                self.set_buttons((Action::Restart, fl!("button-restart")), none())
            }
            Hero::Error => self.set_buttons((Action::TryAgain, fl!("button-try-again")), none()),
            Hero::Running if running_kind.as_deref() != Some("check") => {
                self.set_buttons(none(), (Action::Cancel, fl!("button-cancel")))
            }
            _ => self.set_buttons(none(), none()),
        }
        let busy = matches!(
            hero,
            Hero::Running | Hero::Connecting | Hero::Unreachable | Hero::Restarting
        );
        w.check_button.set_sensitive(!busy);
        w.window
            .set_default_widget(Some(&w.primary).filter(|p| p.is_visible()));
        self.render_system();
        self.sync_policy();
        self.render_automatic();
        self.render_versions(busy);
    }

    fn render_system(&self) {
        let w = &self.0.w;
        let st = self.0.state.borrow();
        let booted = st.snapshot.as_ref().and_then(|s| s.booted.clone());
        let dash = || "—".to_string();
        let b = booted.as_ref();
        w.os_row.set_subtitle(
            &b.and_then(|b| b.os_name.clone())
                .unwrap_or_else(|| fl!("unknown")),
        );
        w.version_row
            .set_subtitle(&b.map(present::deployment_version).unwrap_or_else(dash));
        w.image_row
            .set_subtitle(&b.and_then(|b| b.image.clone()).unwrap_or_else(dash));
        w.digest_row
            .set_subtitle(&b.and_then(|b| b.short_digest()).unwrap_or_else(dash));
        let signature = b.and_then(present::signature);
        w.signature_row.set_visible(signature.is_some());
        w.signature_row
            .set_subtitle(&signature.unwrap_or_else(dash));
        let modifications = b.and_then(present::modifications);
        w.modifications_row.set_visible(modifications.is_some());
        w.modifications_row
            .set_subtitle(&modifications.unwrap_or_else(dash));
        w.built_row.set_subtitle(
            &b.and_then(|b| b.timestamp.as_deref().and_then(present::date))
                .unwrap_or_else(dash),
        );
    }

    fn sync_policy(&self) {
        let policy = self
            .0
            .state
            .borrow()
            .snapshot
            .as_ref()
            .map(|s| s.automatic_updates.clone());
        let w = &self.0.w;
        let index = policy
            .as_deref()
            .and_then(|p| present::POLICIES.iter().position(|x| *x == p));
        w.policy_row.set_sensitive(index.is_some());
        if let Some(i) = index {
            self.0.syncing_policy.set(true);
            w.policy_row.set_selected(i as u32);
            w.policy_row
                .set_subtitle(&present::policy_description(present::POLICIES[i]));
            self.0.syncing_policy.set(false);
        }
    }

    /// The scheduler's rows: last and next step (while a policy is on), and what holds it
    /// back.
    fn render_automatic(&self) {
        let w = &self.0.w;
        let st = self.0.state.borrow();
        let Some(s) = st.snapshot.as_ref() else {
            w.schedule_row.set_visible(false);
            w.held_row.set_visible(false);
            return;
        };
        let a = &s.automatic;
        let on = s.automatic_updates != "off" && !s.automatic_updates.is_empty();
        // LastCheck counts a check by anyone; the scheduler's own may be older.
        let last = s.last_check.max(a.last_check);
        w.schedule_row.set_visible(on || last > 0);
        w.schedule_row
            .set_title(&match present::moment(last).filter(|_| last > 0) {
                Some(t) => fl!("hero-last-checked", time = t),
                None => fl!("hero-not-checked"),
            });
        let next = present::moment(a.next_run).filter(|_| on && a.next_run > 0);
        w.schedule_row.set_subtitle(&match next {
            Some(t) => fl!("automatic-next-check", time = t),
            None => String::new(),
        });
        w.held_row.set_visible(on && !a.blocked.is_empty());
        w.held_row
            .set_subtitle(&present::blocked(&a.blocked, &a.blocked_reason));
    }

    fn render_versions(&self, busy: bool) {
        let w = &self.0.w;
        for (row, _) in w.version_rows.borrow_mut().drain(..) {
            w.versions.remove(&row);
        }
        let st = self.0.state.borrow();
        let has_rollback = st.snapshot.as_ref().is_some_and(|s| s.rollback.is_some());
        w.rollback_button.set_visible(has_rollback);
        w.rollback_button.set_sensitive(!busy);
        let mut rows = Vec::new();
        for d in &st.deployments {
            let version = present::version_of(d.version.as_deref(), d.digest.as_deref());
            let r = adw::ActionRow::builder()
                .title(fl!("version-title", version = version.clone()))
                .subtitle(
                    d.os_name
                        .clone()
                        .or_else(|| d.image.clone())
                        .unwrap_or_default(),
                )
                .build();
            let role = if d.staged {
                Some(fl!("role-staged"))
            } else if d.booted {
                Some(fl!("role-booted"))
            } else if d.rollback {
                Some(fl!("role-rollback"))
            } else {
                None
            };
            if let Some(role) = role {
                let tag = gtk::Label::builder()
                    .label(role)
                    .valign(gtk::Align::Center)
                    .css_classes(["dim-label", "caption-heading"])
                    .build();
                r.add_suffix(&tag);
            }
            let pin = gtk::ToggleButton::builder()
                .icon_name("view-pin-symbolic")
                .valign(gtk::Align::Center)
                .active(d.pinned)
                .sensitive(!d.staged && !busy)
                .css_classes(["flat"])
                .build();
            let name = if d.pinned {
                fl!("unpin-version", version = version.clone())
            } else {
                fl!("pin-version", version = version.clone())
            };
            pin.set_tooltip_text(Some(&name));
            a11y::set_label(&pin, &name);
            let this = self.clone();
            let index = d.index;
            pin.connect_toggled(move |b| this.pin(index, b.is_active()));
            r.add_suffix(&pin);
            w.versions.add(&r);
            rows.push((r, pin));
        }
        *w.version_rows.borrow_mut() = rows;
    }
}
