use gtk::prelude::*;

fn main() -> gtk::glib::ExitCode {
    berth_l10n::init();
    let app = berth_gui::application();
    app.run()
}
