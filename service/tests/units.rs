//! Berth's systemd units (dbus/) as systemd reads them: `systemd-analyze verify` must find no
//! unknown key, misplaced setting, bad value or missing unit in them or in the drop-in for
//! boot-complete.target. (A setting in the wrong section is only a warning to systemd, and
//! silently does nothing: `SuccessAction=` under [Service] once kept a failed trial from
//! rebooting.) The binaries the units run are not installed on the test host: that
//! complaint alone is expected.

use std::path::Path;
use std::process::Command;

#[test]
fn every_unit_and_the_boot_complete_drop_in_are_valid() {
    let dbus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dbus");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&dbus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // org.berth.Berth1.service is D-Bus's activation file, not a systemd unit.
        let is_unit =
            name.starts_with("berth") && (name.ends_with(".service") || name.ends_with(".timer"));
        if is_unit {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
            units.push(dir.path().join(&name));
        }
    }
    assert!(units.len() >= 8, "{units:?}");
    let drop_in = dir.path().join("boot-complete.target.d");
    std::fs::create_dir(&drop_in).unwrap();
    std::fs::copy(
        dbus.join("berth-boot-complete.conf"),
        drop_in.join("50-berth.conf"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("boot-complete.target"),
        "[Unit]\nDescription=Boot Completion Check\n",
    )
    .unwrap();
    units.push(dir.path().join("boot-complete.target"));
    for unit in &units {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit)
            // The copies first, then the host's own units (targets they name).
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
            .output()
            .expect("systemd-analyze");
        let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("is not executable"))
            .map(str::to_string)
            .collect();
        // A missing binary alone makes the exit status 1; anything else is a finding.
        assert!(complaints.is_empty(), "{}: {complaints:#?}", unit.display());
        let missing_binary_only =
            String::from_utf8_lossy(&out.stderr).contains("is not executable");
        assert!(
            out.status.success() || missing_binary_only,
            "{}: {out:?}",
            unit.display()
        );
    }
}
