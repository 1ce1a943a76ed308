//! The app's desktop integration: installed where a package puts it, and valid by the tools
//! that desktops and software centres use (desktop-file-validate, appstreamcli).

use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn run(tool: &str, args: &[&Path]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (run .ci/install-deps)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} failed:\n{text}");
    text
}

#[test]
fn desktop_files_are_valid_and_name_the_app() {
    let main = data().join(format!("{}.desktop", berth_gui::APP_ID));
    let autostart = data().join(format!("{}-autostart.desktop", berth_gui::APP_ID));
    run("desktop-file-validate", &[&main, &autostart]);
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(text.contains("\nExec=berth-updates\n"), "{text}");
    assert!(text.contains(&format!("\nIcon={}\n", berth_gui::APP_ID)));
    for lang in ["de", "fr"] {
        assert!(text.contains(&format!("Name[{lang}]=")), "no {lang} name");
    }
    let auto = std::fs::read_to_string(&autostart).unwrap();
    assert!(
        auto.contains("\nExec=berth-updates --background\n"),
        "{auto}"
    );
}

#[test]
fn metainfo_is_valid() {
    let meta = data().join(format!("{}.metainfo.xml", berth_gui::APP_ID));
    let out = run(
        "appstreamcli",
        &[Path::new("validate"), Path::new("--no-net"), &meta],
    );
    assert!(out.contains("Validation was successful"), "{out}");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.contains(&format!("<id>{}</id>", berth_gui::APP_ID)));
    assert!(text.contains(&format!("{}.desktop", berth_gui::APP_ID)));
}

#[test]
fn install_puts_every_file_where_desktops_look() {
    let dest = std::env::temp_dir().join(format!("berth-gui-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dest);
    // Any executable stands in for the binary: this checks the layout, not the build.
    let st = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .args(["--destdir", dest.to_str().unwrap(), "--bin", "/bin/true"])
        .status()
        .unwrap();
    assert!(st.success());
    for path in [
        "usr/bin/berth-updates",
        "usr/share/applications/org.berth.Updates.desktop",
        "usr/share/metainfo/org.berth.Updates.metainfo.xml",
        "usr/share/icons/hicolor/scalable/apps/org.berth.Updates.svg",
        "usr/share/icons/hicolor/symbolic/apps/org.berth.Updates-symbolic.svg",
        "etc/xdg/autostart/org.berth.Updates-autostart.desktop",
    ] {
        assert!(dest.join(path).is_file(), "{path} not installed");
    }
    for icon in [
        "usr/share/icons/hicolor/scalable/apps/org.berth.Updates.svg",
        "usr/share/icons/hicolor/symbolic/apps/org.berth.Updates-symbolic.svg",
    ] {
        let svg = std::fs::read_to_string(dest.join(icon)).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
    std::fs::remove_dir_all(&dest).unwrap();
}
