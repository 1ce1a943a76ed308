//! The Cockpit page ("Image updates", cockpit-plugin/) in a real browser: headless Chromium
//! driven by playwright-core logs in to a real cockpit-ws through PAM as the sandbox's web
//! users, and the page talks to the real berthd over the private system bus (at its default
//! path, which Cockpit's sudo-started privileged bridge connects to) with real polkitd, a
//! tmpfs sysroot and a registry behind a slow proxy.
//!
//! `harness = false`: this binary sets up berthd, builds and installs the page for the test
//! users, starts cockpit-ws on 127.0.0.1, then runs cockpit-plugin/test/browser.mjs and serves
//! its requests (publish a version, run the CLI, stop berthd) on a control socket.
//! BERTH_COCKPIT_SHOTS=DIR keeps screenshots of the main states (tests/cockpit/screenshots.sh).

mod common;

use berth_testkit::bus::users;
use common::control;
use common::service::Service;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COCKPIT: &str = "/usr/lib/cockpit";
/// How long the browser script may wait for one request to be taken up.
const PATIENCE: Duration = Duration::from_secs(180);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test NAME`: run only when the filter matches this target.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "cockpit".contains(f.as_str())) {
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("cockpit: test");
        return;
    }
    std::process::exit(run());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn missing_tools() -> Vec<String> {
    let plugin = repo().join("cockpit-plugin");
    [
        format!("{COCKPIT}/cockpit-ws"),
        format!("{COCKPIT}/cockpit-session"),
        "/usr/bin/chromium".into(),
        "/usr/bin/sudo".into(),
        plugin
            .join("node_modules/playwright-core")
            .display()
            .to_string(),
        plugin.join("node_modules/esbuild").display().to_string(),
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect()
}

fn run() -> i32 {
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!("cockpit: missing {missing:?}: run .ci/install-deps (apt packages, npm ci)");
        return 1;
    }
    let plugin = repo().join("cockpit-plugin");
    let built = Command::new("node")
        .arg(plugin.join("build.mjs"))
        .status()
        .expect("node");
    assert!(built.success(), "building the Cockpit page failed");

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let mut svc = rt.block_on(Service::start_following_slow_on_default_bus("cockpit"));
    let mut session_buses = vec![];
    for user in [users::OPERATOR, users::VIEWER] {
        let home = install_for(user, &plugin.join("dist"));
        session_buses.push(start_session_bus(user, &home));
    }
    let shots = std::env::var_os("BERTH_COCKPIT_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| svc.env.dir.join("cockpit-shots"));
    std::fs::create_dir_all(&shots).unwrap();

    let mut ws = CockpitWs::start(&svc.env.dir.join("cockpit"));
    let listener = control::listen(&svc.env.dir.join("cockpit-control.sock"));
    let mut browser = Command::new("node")
        .arg(plugin.join("test/browser.mjs"))
        .env("BERTH_COCKPIT_URL", format!("http://127.0.0.1:{}", ws.port))
        .env("BERTH_CONTROL", svc.env.dir.join("cockpit-control.sock"))
        .env("BERTH_SHOTS", &shots)
        .env("BERTH_OPERATOR", users::OPERATOR)
        .env("BERTH_VIEWER", users::VIEWER)
        .env("BERTH_WEB_PASSWORD", users::WEB_PASSWORD)
        .env("BERTH_PROFILE_DIR", svc.env.dir.join("chromium"))
        .spawn()
        .expect("node test/browser.mjs");
    let status = control::serve_client(&rt, &mut svc, listener, &mut browser, PATIENCE);
    ws.stop();
    for mut bus in session_buses {
        let _ = bus.kill();
        let _ = bus.wait();
    }
    stop_user_processes(&[users::OPERATOR, users::VIEWER]);
    println!("cockpit: screenshots in {}", shots.display());
    if status.success() {
        println!("test result: ok. 1 passed; 0 failed");
        0
    } else {
        println!("berthd log:\n{}", svc.log());
        println!("cockpit-ws log:\n{}", ws.log());
        println!("test result: FAILED. 0 passed; 1 failed");
        1
    }
}

/// The page in the user's own Cockpit package directory, as a per-user install would be;
/// returns the user's home.
fn install_for(user: &str, dist: &Path) -> PathBuf {
    let home = Command::new("getent")
        .args(["passwd", user])
        .output()
        .expect("getent");
    let home = String::from_utf8_lossy(&home.stdout)
        .split(':')
        .nth(5)
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{user} has no home: run inside tests/sandbox.sh's sandbox"));
    let dest = Path::new(&home).join(".local/share/cockpit/berth");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(dist)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(copied.success());
    let owned = Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(Path::new(&home).join(".local"))
        .status()
        .unwrap();
    assert!(owned.success());
    PathBuf::from(home)
}

/// A session bus for `user`, as systemd's user manager gives a real login: Cockpit's
/// preloaded Services page opens it, and the bridge (337, Python) dies when the default
/// user bus is missing. The login's PAM stack (pam_env with user_readenv) hands the bridge
/// the address from ~/.pam_environment.
fn start_session_bus(user: &str, home: &Path) -> Child {
    let socket = home.join(".berth-session-bus");
    let _ = std::fs::remove_file(&socket);
    let address = format!("unix:path={}", socket.display());
    let env_file = home.join(".pam_environment");
    std::fs::write(
        &env_file,
        format!("DBUS_SESSION_BUS_ADDRESS DEFAULT={address}\n"),
    )
    .unwrap();
    let owned = Command::new("chown")
        .args([&format!("{user}:{user}")])
        .arg(&env_file)
        .status()
        .unwrap();
    assert!(owned.success());
    let child = berth_testkit::bus::as_user(user, "dbus-daemon")
        .args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={address}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon --session");
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no session bus for {user}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// cockpit-ws on a loopback port, logging in through PAM (cockpit-session) without systemd.
struct CockpitWs {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl CockpitWs {
    fn start(dir: &Path) -> CockpitWs {
        let config = dir.join("config/cockpit");
        std::fs::create_dir_all(&config).unwrap();
        // No systemd, so no cockpit-session socket unit: ws spawns the session helper itself.
        std::fs::write(
            config.join("cockpit.conf"),
            format!(
                "[WebService]\nAllowUnencrypted = true\nLoginTitle = Berth test\n\n\
                 [basic]\nCommand = {COCKPIT}/cockpit-session\n"
            ),
        )
        .unwrap();
        let port = berth_testkit::registry::free_port().unwrap();
        let log = dir.join("ws.log");
        let child = Command::new(format!("{COCKPIT}/cockpit-ws"))
            .args(["--no-tls", "--address=127.0.0.1", &format!("--port={port}")])
            .env("XDG_CONFIG_DIRS", dir.join("config"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("cockpit-ws");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "cockpit-ws did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        CockpitWs { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Sessions (cockpit-session, the bridges, sudo) of the sandbox's web users end with ws; any
/// left over belong to those test users only.
fn stop_user_processes(users: &[&str]) {
    for user in users {
        let _ = Command::new("pkill").args(["-u", user]).status();
    }
}
