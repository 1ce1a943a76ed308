//! Berth's desktop app ("System Updates"): an unprivileged client of berthd that shows the
//! system's image, finds and installs updates with live progress, restarts, rolls back,
//! pins versions, sets the automatic update policy and resets to factory state. polkit asks
//! through the desktop's agent; every refusal and failure is explained in the window.
//!
//! Run with `--background` (the session's autostart does) it keeps no window and sends a
//! notification when an update has been installed in the background and waits for a restart.

pub mod a11y;
pub mod backend;
pub mod present;
pub mod runtime;
pub mod window;

pub use adw;
pub use gtk;
pub use gtk::glib;

use adw::prelude::*;
use berth_l10n::fl;
use gtk::gio;
use std::cell::RefCell;
use std::rc::Rc;
use window::Window;

pub const APP_ID: &str = "org.berth.Updates";

/// The application: one window, or none in background mode; a second launch shows the
/// window of the running instance.
pub fn application() -> adw::Application {
    let app = adw::Application::builder()
        .application_id(APP_ID)
        .flags(gio::ApplicationFlags::HANDLES_COMMAND_LINE)
        .build();
    let window: Rc<RefCell<Option<Window>>> = Rc::default();
    let watcher: Rc<RefCell<Option<Window>>> = Rc::default();

    let restart = gio::SimpleAction::new("restart", None);
    let w = window.clone();
    let bg = watcher.clone();
    restart.connect_activate(move |_, _| {
        let current = w.borrow().clone().or_else(|| bg.borrow().clone());
        if let Some(win) = current {
            win.act(window::Action::Restart);
        }
    });
    app.add_action(&restart);

    let w = window.clone();
    let bg = watcher.clone();
    app.connect_command_line(move |app, cmdline| {
        let background = cmdline
            .arguments()
            .iter()
            .any(|a| a.to_str() == Some("--background"));
        if background {
            if bg.borrow().is_none() {
                // The watcher: a window that is never shown, so the notification logic is
                // the window's own; the app stays alive without it on screen.
                let win = Window::new(app);
                win.0.on_restart_needed.replace(Some(Box::new({
                    let app = app.clone();
                    move |version: &str| notify_restart(&app, version)
                })));
                win.start();
                std::mem::forget(app.hold());
                *bg.borrow_mut() = Some(win);
            }
        } else {
            show_window(app, &w);
        }
        0.into()
    });
    app
}

fn show_window(app: &adw::Application, slot: &Rc<RefCell<Option<Window>>>) {
    if let Some(win) = slot.borrow().as_ref() {
        win.widgets().window.present();
        return;
    }
    let win = Window::new(app);
    win.widgets().window.present();
    win.start();
    let s = slot.clone();
    win.widgets().window.connect_close_request(move |_| {
        s.borrow_mut().take();
        glib::Propagation::Proceed
    });
    *slot.borrow_mut() = Some(win);
}

/// "Restart to finish updating", with a Restart button, as GNOME Software sends it.
pub fn notify_restart(app: &adw::Application, version: &str) {
    let n = gio::Notification::new(&fl!("notify-restart-title"));
    n.set_body(Some(&fl!(
        "notify-restart-body",
        version = version.to_string()
    )));
    n.set_priority(gio::NotificationPriority::High);
    n.add_button(&fl!("button-restart"), "app.restart");
    n.set_default_action("app.activate");
    app.send_notification(Some("restart-needed"), &n);
}
