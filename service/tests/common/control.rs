//! Requests a client under test (the GTK app, the Cockpit page's browser script) sends to the
//! harness that owns berthd and the registry: one line each on a Unix socket, answered with
//! "ok", "ok VALUE" or "error WHY". Fixed words only, never passed to a shell.

use super::service::{berth_bin, Service};
use berth_testkit::bus::{as_user, users};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The control socket at `path`, which any user may connect to. Bind it before starting the
/// client.
pub fn listen(path: &Path) -> UnixListener {
    let listener = UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Serves `client`'s requests on `listener` until it closes the connection; returns the
/// client's exit status. Gives up waiting for the connection after `patience`, or when the
/// client exits first.
pub fn serve_client(
    rt: &tokio::runtime::Runtime,
    svc: &mut Service,
    listener: UnixListener,
    client: &mut Child,
    patience: Duration,
) -> std::process::ExitStatus {
    let started = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if client.try_wait().unwrap().is_some() || started.elapsed() > patience {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("control socket: {e}"),
        }
    };
    if let Some(stream) = stream {
        stream.set_nonblocking(false).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut cli: Option<Child> = None;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let reply = rt.block_on(serve(svc, &mut cli, line.trim()));
            let _ = writeln!(writer, "{reply}");
        }
        if let Some(mut c) = cli {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    if let Ok(addr) = listener.local_addr() {
        if let Some(path) = addr.as_pathname() {
            let _ = std::fs::remove_file(path);
        }
    }
    client.wait().unwrap()
}

/// Makes `from` the newest version the booted image (`berth/demo:1`) follows.
fn retag(svc: &Service, from: &str) -> Result<(), String> {
    let reg = &svc.env.registry.addr;
    let st = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{reg}/berth/demo:{from}"),
            &format!("docker://{reg}/berth/demo:1"),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    st.success().then_some(()).ok_or("skopeo failed".into())
}

fn unlock_and_modify(svc: &Service) -> Result<(), String> {
    let berth = |args: &[&str]| {
        Command::new(berth_bin())
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())
    };
    let st = berth(&["--quiet", "unlock"])?;
    if !st.success() {
        return Err(format!("berth unlock: {st}"));
    }
    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    std::fs::write(usr.join("share/local-change.txt"), "local\n").map_err(|e| e.to_string())?;
    match berth(&["--quiet", "verify"])?.code() {
        Some(101) => Ok(()),
        other => Err(format!("berth verify: exit {other:?}, not 101")),
    }
}

/// An administrator's drop-in for the scheduler, then `systemctl reload berthd` (SIGHUP).
/// u64::MAX: none (removed).
fn automatic_settings(svc: &Service, min_free_space: u64) -> Result<(), String> {
    let dir = std::path::PathBuf::from(format!("{}.d", svc.config.display()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dropin = dir.join("20-test-automatic.toml");
    if min_free_space == u64::MAX {
        std::fs::remove_file(&dropin).map_err(|e| e.to_string())?;
    } else {
        std::fs::write(
            dropin,
            format!(
                "[automatic]\nfirst-check-delay = 0\njitter = 0\ncheck-interval = 86400\n\
             retry-interval = 86400\nmin-free-space = {min_free_space}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
    }
    let pid = svc.berthd.as_ref().ok_or("berthd is not running")?.pid();
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("kill -HUP: {st}"))
}

async fn serve(svc: &mut Service, cli: &mut Option<Child>, request: &str) -> String {
    let result: Result<(), String> = match request {
        "publish 2" => retag(svc, "2"),
        "publish 3" => retag(svc, "3"),
        "publish big" => {
            svc.push_big();
            retag(svc, "big")
        }
        // Another 24 MiB to download, for a second long transfer.
        "publish big2" => {
            svc.push_noise("big2", 10);
            retag(svc, "big2")
        }
        // An update by someone else: a granted user with the CLI.
        "cli-update" => as_user(users::GRANTED, berth_bin().to_str().unwrap())
            .args(["--no-ask-password", "update"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|c| *cli = Some(c))
            .map_err(|e| e.to_string()),
        "cli-wait" => match cli.take() {
            Some(mut c) => match c.wait() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("berth update: {s}")),
                Err(e) => Err(e.to_string()),
            },
            None => Err("no CLI running".into()),
        },
        // Root unlocks /usr, changes a file there and runs a drift check.
        "unlock-and-modify" => unlock_and_modify(svc),
        // berthd's scheduler steps at once and is held back by the free-space floor, with a
        // new image (24 MiB) waiting; then the floor is lifted and it downloads.
        "automatic-held" => {
            svc.push_noise("big2", 10);
            retag(svc, "big2").and_then(|_| automatic_settings(svc, 1 << 60))
        }
        "automatic-free" => automatic_settings(svc, 0),
        // The drop-in removed: the scheduler's next step is a day away again.
        "automatic-quiet" => automatic_settings(svc, u64::MAX),
        "kill-berthd" => {
            if let Some(mut b) = svc.berthd.take() {
                b.kill();
            }
            Ok(())
        }
        "start-berthd" => {
            svc.start_berthd();
            Ok(())
        }
        "automatic-updates" => {
            let m = svc.manager().await;
            return match m.automatic_updates().await {
                Ok(p) => format!("ok {p}"),
                Err(e) => format!("error {e}"),
            };
        }
        "booted-version" => {
            let m = svc.manager().await;
            return match m.booted().await {
                Ok(b) => match b.get("version").map(|v| String::try_from(v.clone())) {
                    Some(Ok(v)) => format!("ok {v}"),
                    _ => "ok ".into(),
                },
                Err(e) => format!("error {e}"),
            };
        }
        other => Err(format!("unknown request {other:?}")),
    };
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("error {e}"),
    }
}
