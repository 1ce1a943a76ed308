//! The desktop app against the real berthd: a private system bus with real polkitd, berthd
//! serving a tmpfs sysroot with the demo OS installed from a real registry (through a slow
//! proxy, so downloads last long enough to watch and cancel), and the real app's widgets
//! driven in-process under Xvfb as an unprivileged user.
//!
//! `harness = false`: GTK must own the main thread. The test binary runs twice over:
//! - as root (the parent, inside tests/run-engine-tests.sh's private mount namespace) it sets
//!   up the bus, berthd and registry, then starts itself as a test user under
//!   `xvfb-run dbus-run-session` for each scenario, and carries out the scenario's requests
//!   on a control socket (publish a new version, run the CLI, kill or start berthd);
//! - as the child (`--ui-child SCENARIO`) it opens the app's window and drives it.
//!
//! BERTH_UI_SHOTS=DIR keeps screenshots of the main states there (tests/ui/screenshots.sh).

#[path = "../../service/tests/common/mod.rs"]
mod common;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ui-child") {
        let scenario = args.get(i + 1).cloned().unwrap_or_default();
        std::process::exit(child::run(&scenario));
    }
    // `cargo test NAME`: run only when the filter matches this target.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "ui".contains(f.as_str())) {
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("ui: test");
        return;
    }
    std::process::exit(parent::run());
}

/// How long any one on-screen condition may take (a slow machine, a 2-core CI).
const PATIENCE: Duration = Duration::from_secs(120);

mod parent {
    use super::common::control;
    use super::common::service::Service;
    use berth_testkit::bus::{as_user, users};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    pub fn run() -> i32 {
        for tool in ["xvfb-run", "Xvfb", "dbus-run-session"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
            {
                eprintln!("ui: missing {tool}: run .ci/install-deps");
                return 1;
            }
        }
        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let mut svc = rt.block_on(Service::start_following_slow("ui"));
        let shots = std::env::var_os("BERTH_UI_SHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| svc.env.dir.join("shots"));
        std::fs::create_dir_all(&shots).unwrap();
        // Both test users write their screenshots here.
        std::fs::set_permissions(&shots, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (mut ran, mut failed) = (0, 0);
        for (scenario, user, lang) in [
            ("main", users::DESKTOP, "en_US.UTF-8"),
            ("german", users::DESKTOP, "de_DE.UTF-8"),
            ("refused", users::PLAIN, "en_US.UTF-8"),
        ] {
            // BERTH_UI_SCENARIOS=main,german picks scenarios (when working on one).
            if let Ok(only) = std::env::var("BERTH_UI_SCENARIOS") {
                if !only.split(',').any(|s| s == scenario) {
                    continue;
                }
            }
            println!("ui: scenario {scenario} as {user} ({lang})");
            ran += 1;
            let home = user_home(&svc, user);
            let ok = run_child(&rt, &mut svc, scenario, user, lang, &shots, &home);
            if !ok {
                failed += 1;
                println!("berthd log:\n{}", svc.log());
            }
        }
        println!("ui: screenshots in {}", shots.display());
        if failed == 0 {
            println!("test result: ok. {ran} passed; 0 failed");
            0
        } else {
            println!(
                "test result: FAILED. {} passed; {failed} failed",
                3 - failed
            );
            1
        }
    }

    /// A home and runtime directory of the user's own (0700), as a login would give.
    fn user_home(svc: &Service, user: &str) -> PathBuf {
        let home = svc.env.dir.join(format!("home-{user}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, user]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        std::os::unix::fs::chown(&home, Some(id("-u")), Some(id("-g"))).unwrap();
        home
    }

    fn run_child(
        rt: &tokio::runtime::Runtime,
        svc: &mut Service,
        scenario: &str,
        user: &str,
        lang: &str,
        shots: &Path,
        home: &Path,
    ) -> bool {
        let control = svc.env.dir.join(format!("control-{scenario}.sock"));
        let listener = control::listen(&control);
        let exe = std::env::current_exe().unwrap();
        let mut child = as_user(user, "xvfb-run")
            .args([
                "-a",
                "-s",
                "-screen 0 1280x1024x24",
                "dbus-run-session",
                "--",
            ])
            .arg(&exe)
            .args(["--ui-child", scenario])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
            .env("BERTH_UI_CONTROL", &control)
            .env("BERTH_UI_SHOTS", shots)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home)
            .env("GSETTINGS_BACKEND", "memory")
            .env("LANG", lang)
            .env("LC_ALL", lang)
            .env("LANGUAGE", "")
            .env("GSK_RENDERER", "cairo")
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            .env("GTK_A11Y", "none")
            .env(
                "BERTH_GUI_DEBUG",
                std::env::var_os("BERTH_GUI_DEBUG").unwrap_or_default(),
            )
            .spawn()
            .expect("start the app under xvfb-run");
        control::serve_client(rt, svc, listener, &mut child, super::PATIENCE).success()
    }
}

mod child {
    use berth_gui::adw::prelude::*;
    use berth_gui::window::{Hero, Window};
    use berth_gui::{adw, glib, gtk};
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    type Checks = Rc<RefCell<Vec<(String, Result<(), String>)>>>;

    /// The parent's side of the control socket: one request line, one answer line.
    struct Control(UnixStream);

    impl Control {
        fn connect() -> Control {
            let path = std::env::var("BERTH_UI_CONTROL").expect("BERTH_UI_CONTROL");
            Control(UnixStream::connect(path).expect("control socket"))
        }

        /// Asks the parent and waits for its answer on a worker thread (GTK keeps drawing).
        async fn ask(&self, request: &str) -> Result<String, String> {
            let mut stream = self.0.try_clone().map_err(|e| e.to_string())?;
            writeln!(stream, "{request}").map_err(|e| e.to_string())?;
            let line = gtk::gio::spawn_blocking(move || {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while stream.read(&mut byte)? == 1 && byte[0] != b'\n' {
                    line.push(byte[0]);
                }
                Ok::<_, std::io::Error>(String::from_utf8_lossy(&line).trim().to_string())
            })
            .await
            .map_err(|_| "control thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
            match line.strip_prefix("ok") {
                Some(rest) => Ok(rest.trim().to_string()),
                None => Err(format!("{request}: {line}")),
            }
        }
    }

    /// Waits until `cond` holds, checking every 20 ms while GTK runs.
    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > super::PATIENCE {
                return Err(format!("timed out waiting for {what}"));
            }
            glib::timeout_future(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Lets GTK lay out and draw what changed (a few frames of the widget's clock).
    async fn frames(widget: &impl IsA<gtk::Widget>) {
        for _ in 0..3 {
            let (tx, rx) = async_channel::bounded(1);
            widget.add_tick_callback(move |_, _| {
                let _ = tx.try_send(());
                glib::ControlFlow::Break
            });
            let _ = rx.recv().await;
        }
    }

    /// Writes a PNG of `widget` as GTK draws it.
    async fn shot(widget: &impl IsA<gtk::Widget>, name: &str) -> Result<(), String> {
        frames(widget).await;
        let dir = std::env::var("BERTH_UI_SHOTS").map_err(|e| e.to_string())?;
        let (w, h) = (widget.width(), widget.height());
        let paintable = gtk::WidgetPaintable::new(Some(widget));
        let snapshot = gtk::Snapshot::new();
        paintable.snapshot(&snapshot, w as f64, h as f64);
        let node = snapshot.to_node().ok_or("nothing drawn")?;
        let native = widget.native().ok_or("not in a window")?;
        let renderer = native.renderer().ok_or("no renderer")?;
        let texture = renderer.render_texture(
            &node,
            Some(&gtk::graphene::Rect::new(0.0, 0.0, w as f32, h as f32)),
        );
        let path = format!("{dir}/{name}.png");
        texture
            .save_to_png(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        println!("screenshot {path}");
        Ok(())
    }

    /// Scrolls the page so that the group holding `row` is at the top of the window.
    fn scroll_to(row: &impl IsA<gtk::Widget>) -> Result<(), String> {
        let group = row
            .ancestor(adw::PreferencesGroup::static_type())
            .ok_or("no group")?;
        let scrolled = group
            .ancestor(gtk::ScrolledWindow::static_type())
            .and_downcast::<gtk::ScrolledWindow>()
            .ok_or("not scrolled")?;
        let content = scrolled.child().ok_or("empty")?;
        let at = group
            .compute_point(&content, &gtk::graphene::Point::new(0.0, 0.0))
            .ok_or("not laid out")?;
        scrolled.vadjustment().set_value(f64::from(at.y()) - 12.0);
        Ok(())
    }

    fn hero(win: &Window) -> Option<Hero> {
        win.0.state.borrow().hero
    }

    fn title(win: &Window) -> String {
        win.widgets().hero_title.label().to_string()
    }

    fn description(win: &Window) -> String {
        win.widgets().hero_description.label().to_string()
    }

    fn expect(what: &str, ok: bool, detail: impl FnOnce() -> String) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!("{what}: {}", detail()))
        }
    }

    /// Notifications the app sent, as a notification server on the session bus saw them.
    #[derive(Clone, Default)]
    struct Notifications(Arc<Mutex<Vec<(String, String)>>>);

    #[zbus::interface(name = "org.freedesktop.Notifications")]
    impl Notifications {
        #[allow(clippy::too_many_arguments)]
        fn notify(
            &self,
            _app_name: String,
            _replaces_id: u32,
            _app_icon: String,
            summary: String,
            body: String,
            _actions: Vec<String>,
            _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
            _expire_timeout: i32,
        ) -> u32 {
            let mut seen = self.0.lock().unwrap();
            seen.push((summary, body));
            seen.len() as u32
        }
        fn get_capabilities(&self) -> Vec<String> {
            vec!["actions".into(), "body".into()]
        }
        fn get_server_information(&self) -> (String, String, String, String) {
            (
                "berth-ui-test".into(),
                "berth".into(),
                "1".into(),
                "1.2".into(),
            )
        }
        fn close_notification(&self, _id: u32) {}
    }

    pub fn run(scenario: &str) -> i32 {
        berth_l10n::init();
        let notifications = Notifications::default();
        let served = notifications.clone();
        let server = std::sync::mpsc::channel();
        let tx = server.0;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let conn = zbus::connection::Builder::session()
                    .and_then(|b| b.name("org.freedesktop.Notifications"))
                    .and_then(|b| b.serve_at("/org/freedesktop/Notifications", served));
                match conn {
                    Ok(b) => match b.build().await {
                        Ok(c) => {
                            let _ = tx.send(true);
                            std::future::pending::<()>().await;
                            drop(c);
                        }
                        Err(_) => {
                            let _ = tx.send(false);
                        }
                    },
                    Err(_) => {
                        let _ = tx.send(false);
                    }
                }
            });
        });
        let _ = server.1.recv_timeout(Duration::from_secs(10));

        let checks: Checks = Rc::default();
        let app = adw::Application::builder()
            .application_id(berth_gui::APP_ID)
            .flags(gtk::gio::ApplicationFlags::NON_UNIQUE)
            .build();
        let res = checks.clone();
        let scenario = scenario.to_string();
        app.connect_activate(move |app| {
            let win = Window::new(app);
            let a = app.clone();
            win.0
                .on_restart_needed
                .replace(Some(Box::new(move |v: &str| {
                    berth_gui::notify_restart(&a, v)
                })));
            win.widgets().window.present();
            win.start();
            let res = res.clone();
            let app = app.clone();
            let scenario = scenario.clone();
            let notifications = notifications.clone();
            glib::spawn_future_local(async move {
                let control = Control::connect();
                match scenario.as_str() {
                    "main" => main_scenario(&win, &control, &res, &notifications).await,
                    "german" => german_scenario(&win, &res).await,
                    "refused" => refused_scenario(&win, &res).await,
                    other => res
                        .borrow_mut()
                        .push((other.into(), Err("unknown scenario".into()))),
                }
                app.quit();
            });
        });
        app.run_with_args::<&str>(&[]);
        let (mut pass, mut fail) = (0, 0);
        for (name, r) in checks.borrow().iter() {
            match r {
                Ok(()) => {
                    pass += 1;
                    println!("test ui::{name} ... ok");
                }
                Err(e) => {
                    fail += 1;
                    println!("test ui::{name} ... FAILED: {e}");
                }
            }
        }
        if pass + fail == 0 {
            println!("no checks ran");
            fail = 1;
        }
        i32::from(fail != 0)
    }

    async fn step(
        res: &Checks,
        name: &str,
        f: impl std::future::Future<Output = Result<(), String>>,
    ) -> bool {
        let r = f.await;
        let ok = r.is_ok();
        println!("{name}: {}", if ok { "ok" } else { "FAILED" });
        res.borrow_mut().push((name.to_string(), r));
        ok
    }

    async fn main_scenario(win: &Window, ctl: &Control, res: &Checks, notes: &Notifications) {
        let w = win.widgets();
        let ok = step(res, "opens_checks_and_is_up_to_date", async {
            wait_for("up to date", || hero(win) == Some(Hero::UpToDate)).await?;
            expect("title", title(win) == "Up to date", || title(win))?;
            expect(
                "last checked",
                description(win).starts_with("Last checked"),
                || description(win),
            )?;
            let version = w.version_row.subtitle().unwrap_or_default();
            expect("version row", version == "1", || version.to_string())?;
            let os = w.os_row.subtitle().unwrap_or_default();
            expect("os row", os == "Berth Demo OS 1", || os.to_string())?;
            // The test sandbox's signature policy accepts any image: installed unverified.
            let signature = w.signature_row.subtitle().unwrap_or_default();
            expect("signature row", signature == "Not verified", || {
                signature.to_string()
            })?;
            shot(&w.window, "up-to-date").await
        })
        .await;
        if !ok {
            return;
        }
        let ok = step(res, "check_finds_version_2_with_its_size", async {
            ctl.ask("publish 2").await?;
            w.check_button.emit_clicked();
            wait_for("update available", || {
                hero(win) == Some(Hero::UpdateAvailable)
            })
            .await?;
            let d = description(win);
            expect(
                "description",
                d.contains("Version 2") && d.contains(" to download"),
                || d.clone(),
            )?;
            expect("size", d.contains("kB") || d.contains("MB"), || d.clone())?;
            expect(
                "primary button",
                w.primary.label().as_deref() == Some("_Update and Restart"),
                || format!("{:?}", w.primary.label()),
            )?;
            shot(&w.window, "update-available").await
        })
        .await;
        if !ok {
            return;
        }
        step(
            res,
            "update_and_restart_shows_progress_then_boots_2",
            async {
                w.primary.emit_clicked();
                let (mut max, mut phases) = (0.0f64, Vec::<String>::new());
                wait_for("the update to run and finish", || {
                    if hero(win) == Some(Hero::Running) && w.progress.is_visible() {
                        max = max.max(w.progress.fraction());
                        let line = w.progress_label.label().to_string();
                        if !phases.contains(&line) {
                            phases.push(line);
                        }
                    }
                    hero(win) == Some(Hero::UpToDate)
                        && w.version_row.subtitle().as_deref() == Some("2")
                })
                .await?;
                expect("progress seen", max > 0.0, || format!("max fraction {max}"))?;
                expect("phases shown", !phases.is_empty(), || format!("{phases:?}"))?;
                println!("phases seen: {phases:?}, highest fraction {max:.2}");
                Ok(())
            },
        )
        .await;
        step(
            res,
            "update_from_the_cli_appears_live_then_restart_needed",
            async {
                ctl.ask("publish 3").await?;
                ctl.ask("cli-update").await?;
                wait_for("the CLI's transaction in the window", || {
                    hero(win) == Some(Hero::Running)
                        && win
                            .0
                            .state
                            .borrow()
                            .running
                            .as_ref()
                            .is_some_and(|r| !r.mine)
                })
                .await?;
                wait_for("restart needed", || hero(win) == Some(Hero::RestartNeeded)).await?;
                ctl.ask("cli-wait").await?;
                expect("title", title(win) == "Restart to finish updating", || {
                    title(win)
                })?;
                expect(
                    "version 3 named",
                    description(win).contains("Version 3"),
                    || description(win),
                )?;
                expect("restart button", w.primary.is_visible(), || "hidden".into())?;
                shot(&w.window, "restart-needed").await?;
                wait_for("a notification", || !notes.0.lock().unwrap().is_empty()).await?;
                let seen = notes.0.lock().unwrap().clone();
                expect(
                    "notification",
                    seen[0].0 == "Restart to finish updating" && seen[0].1.contains("Version 3"),
                    || format!("{seen:?}"),
                )
            },
        )
        .await;
        step(res, "restart_boots_3", async {
            w.primary.emit_clicked();
            wait_for("version 3 booted", || {
                hero(win) == Some(Hero::UpToDate)
                    && w.version_row.subtitle().as_deref() == Some("3")
            })
            .await
        })
        .await;
        step(res, "cancel_mid_download", async {
            ctl.ask("publish big").await?;
            w.check_button.emit_clicked();
            wait_for("the big update", || {
                hero(win) == Some(Hero::UpdateAvailable)
            })
            .await?;
            let d = description(win);
            expect("big size", d.contains("MB"), || d.clone())?;
            w.secondary.emit_clicked(); // Download
            wait_for("bytes downloading", || {
                win.0
                    .state
                    .borrow()
                    .running
                    .as_ref()
                    .is_some_and(|r| r.bytes_done > 0)
                    && w.progress_label.label().contains(" of ")
            })
            .await?;
            expect("title", title(win) == "Downloading update", || title(win))?;
            shot(&w.window, "downloading").await?;
            expect(
                "cancel button",
                w.secondary.label().as_deref() == Some("_Cancel"),
                || format!("{:?}", w.secondary.label()),
            )?;
            w.secondary.emit_clicked(); // Cancel
            wait_for("back to update available", || {
                hero(win) == Some(Hero::UpdateAvailable)
            })
            .await?;
            expect(
                "no error shown",
                win.0.state.borrow().error.is_none(),
                || format!("{:?}", win.0.state.borrow().error),
            )?;
            expect(
                "still on 3",
                w.version_row.subtitle().as_deref() == Some("3"),
                || format!("{:?}", w.version_row.subtitle()),
            )
        })
        .await;
        step(res, "berthd_killed_mid_download_shows_interrupted", async {
            w.secondary.emit_clicked(); // Download again
            wait_for("bytes downloading", || {
                win.0
                    .state
                    .borrow()
                    .running
                    .as_ref()
                    .is_some_and(|r| r.bytes_done > 0)
            })
            .await?;
            ctl.ask("kill-berthd").await?;
            wait_for("the interrupted state", || hero(win) == Some(Hero::Error)).await?;
            expect(
                "title",
                title(win) == "The operation was interrupted",
                || title(win),
            )?;
            expect("advice", description(win).contains("unchanged"), || {
                description(win)
            })?;
            shot(&w.window, "error-interrupted").await?;
            ctl.ask("start-berthd").await?;
            // Back on the bus: "Try again" checks again through the new berthd.
            wait_for("berthd reachable again", || {
                win.0.state.borrow().unreachable.is_none()
            })
            .await?;
            w.primary.emit_clicked();
            wait_for("update available again", || {
                hero(win) == Some(Hero::UpdateAvailable)
            })
            .await
        })
        .await;
        step(
            res,
            "automatic_updates_show_their_state_and_events",
            async {
                w.policy_row.set_selected(2); // Download automatically
                ctl.ask("automatic-held").await?;
                wait_for("held back", || w.held_row.is_visible()).await?;
                let why = w.held_row.subtitle().unwrap_or_default();
                expect(
                    "the reason",
                    why == "There is not enough free disk space.",
                    || why.to_string(),
                )?;
                let toasts = || win.0.state.borrow().toasts.join(" | ");
                wait_for("the toasts", || {
                    toasts().contains("is available")
                        && toasts().contains("Automatic update held back: There is not enough")
                })
                .await
                .map_err(|e| format!("{e}: {}", toasts()))?;
                let last = w.schedule_row.title();
                expect("last check", last.starts_with("Last checked "), || {
                    last.to_string()
                })?;
                let next = w.schedule_row.subtitle().unwrap_or_default();
                expect("next step", next.starts_with("Next step "), || {
                    next.to_string()
                })?;
                wait_for("the step to end", || win.0.state.borrow().running.is_none()).await?;
                // Scrolled into view, as a person would.
                scroll_to(&w.policy_row)?;
                shot(&w.window, "automatic-held-back").await?;
                ctl.ask("automatic-free").await?;
                wait_for("the download announced", || {
                    toasts().contains("was downloaded") && !w.held_row.is_visible()
                })
                .await
                .map_err(|e| format!("{e}: {}", toasts()))?;
                wait_for("update downloaded", || {
                    hero(win) == Some(Hero::UpdateDownloaded)
                })
                .await?;
                shot(&w.window, "automatic-downloaded").await?;
                // Quiet again for the steps that follow (the next step a day away).
                ctl.ask("automatic-quiet").await.map(|_| ())
            },
        )
        .await;
        step(res, "rollback_confirms_then_needs_restart", async {
            expect("rollback button", w.rollback_button.is_visible(), || {
                "hidden".into()
            })?;
            w.rollback_button.emit_clicked();
            wait_for("the confirmation", || w.dialog.borrow().is_some()).await?;
            let dialog = w.dialog.borrow().clone().unwrap();
            let heading = dialog.heading().unwrap_or_default();
            let body = dialog.body();
            expect(
                "heading names version 2",
                heading == "Roll back to version 2?",
                || heading.to_string(),
            )?;
            expect(
                "body explains /etc",
                body.contains("/etc") && body.contains("version 3"),
                || body.to_string(),
            )?;
            shot(&dialog, "rollback-dialog").await?;
            dialog.response("confirm");
            wait_for("restart needed after the rollback", || {
                hero(win) == Some(Hero::RestartNeeded)
            })
            .await?;
            expect("title", title(win) == "Restart to finish", || title(win))
        })
        .await;
        step(res, "policy_change_reaches_berthd", async {
            w.policy_row.set_selected(1); // Check only
            let mut policy = String::new();
            let start = Instant::now();
            while policy != "check" && start.elapsed() < super::PATIENCE {
                policy = ctl.ask("automatic-updates").await?;
            }
            expect("AutomaticUpdates", policy == "check", || policy.clone())?;
            wait_for("the window follows", || {
                win.0
                    .state
                    .borrow()
                    .snapshot
                    .as_ref()
                    .map(|s| s.automatic_updates.as_str())
                    == Some("check")
            })
            .await
        })
        .await;
        step(res, "pin_a_version", async {
            let target = {
                let st = win.0.state.borrow();
                st.deployments
                    .iter()
                    .position(|d| !d.booted && !d.staged && !d.pinned)
            };
            let i = target.ok_or("no version to pin")?;
            let toggle = w.version_rows.borrow()[i].1.clone();
            toggle.set_active(true);
            wait_for("pinned in berthd", || {
                win.0
                    .state
                    .borrow()
                    .deployments
                    .get(i)
                    .is_some_and(|d| d.pinned)
            })
            .await
        })
        .await;
        step(res, "cleanup_from_the_menu", async {
            let must_stay: Vec<_> = win
                .0
                .state
                .borrow()
                .deployments
                .iter()
                .filter(|d| d.pinned || d.booted || d.rollback || d.staged)
                .map(|d| d.digest.clone())
                .collect();
            gtk::prelude::WidgetExt::activate_action(&w.window, "win.cleanup", None)
                .map_err(|e| e.to_string())?;
            wait_for("the cleanup to run", || {
                win.0
                    .state
                    .borrow()
                    .running
                    .as_ref()
                    .is_some_and(|r| r.kind == "cleanup")
            })
            .await?;
            wait_for("the cleanup to end", || {
                win.0.state.borrow().running.is_none()
            })
            .await?;
            let st = win.0.state.borrow();
            expect("no error", st.error.is_none(), || format!("{:?}", st.error))?;
            // The pinned and the running, rollback and next-start versions all stay.
            let now: Vec<_> = st.deployments.iter().map(|d| d.digest.clone()).collect();
            expect(
                "versions kept",
                must_stay.iter().all(|d| now.contains(d)),
                || format!("{must_stay:?} -> {now:?}"),
            )
        })
        .await;
        step(res, "factory_reset_dialog_states_what_is_lost", async {
            gtk::prelude::WidgetExt::activate_action(&w.window, "win.factory-reset", None)
                .map_err(|e| e.to_string())?;
            wait_for("the confirmation", || w.dialog.borrow().is_some()).await?;
            let dialog = w.dialog.borrow().clone().unwrap();
            let body = dialog.body();
            expect(
                "discarded and kept",
                body.contains("/etc") && body.contains("/var") && body.contains("Kept"),
                || body.to_string(),
            )?;
            shot(&dialog, "factory-reset-dialog").await?;
            dialog.response("cancel");
            wait_for("closed", || w.dialog.borrow().is_none()).await?;
            expect(
                "nothing started",
                win.0.state.borrow().running.is_none(),
                || "running".into(),
            )
        })
        .await;
        step(res, "local_changes_are_shown", async {
            // The image as built: no row, or the automatic drift check's clean verdict.
            let clean = w.modifications_row.subtitle().unwrap_or_default();
            expect(
                "no local changes shown for the image as built",
                !w.modifications_row.is_visible() || clean == "Matches the image",
                || clean.to_string(),
            )?;
            ctl.ask("unlock-and-modify").await?;
            let want = "Unlocked until the next restart · Differs from the image: 1 file";
            wait_for("the local changes row", || {
                w.modifications_row.is_visible()
                    && w.modifications_row.subtitle().as_deref() == Some(want)
            })
            .await?;
            shot(&w.window, "local-changes").await
        })
        .await;
    }

    async fn german_scenario(win: &Window, res: &Checks) {
        let w = win.widgets();
        step(res, "german_strings", async {
            wait_for("a state", || {
                matches!(
                    hero(win),
                    Some(Hero::RestartNeeded | Hero::UpToDate | Hero::UpdateAvailable)
                )
            })
            .await?;
            let group = w.policy_row.title();
            expect(
                "German row title",
                group == "Automatische Aktualisierungen",
                || group.to_string(),
            )?;
            let t = title(win);
            expect(
                "German title",
                t.starts_with("Neu starten")
                    || t == "Auf dem neuesten Stand"
                    || t == "Aktualisierung verfügbar",
                || t.clone(),
            )?;
            shot(&w.window, "german").await?;
            // The scheduler's rows (policy "check", from the main scenario), in German.
            wait_for("the schedule", || w.schedule_row.is_visible()).await?;
            let next = w.schedule_row.subtitle().unwrap_or_default();
            expect(
                "German next step",
                next.starts_with("Nächster Schritt "),
                || next.to_string(),
            )?;
            scroll_to(&w.policy_row)?;
            shot(&w.window, "german-automatic").await
        })
        .await;
    }

    async fn refused_scenario(win: &Window, res: &Checks) {
        let w = win.widgets();
        step(res, "user_without_grant_sees_the_refusal", async {
            // Opening the window checks; polkit refuses this user (no agent, no grant).
            wait_for("the refusal", || hero(win) == Some(Hero::Error)).await?;
            expect(
                "title",
                title(win) == "You are not allowed to do this",
                || title(win),
            )?;
            expect("advice", description(win).contains("administrator"), || {
                description(win)
            })?;
            shot(&w.window, "refused").await
        })
        .await;
    }
}
