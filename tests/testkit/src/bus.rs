//! A private "system" bus for tests and the demo: a real dbus-daemon with the system bus
//! policy plus Berth's, a real polkitd on it, and berthd serving a sysroot. Every process is
//! ours and stopped by PID when dropped.
//!
//! polkitd reads actions from /usr/share/polkit-1/actions and rules from
//! /etc/polkit-1/rules.d: callers run inside a private mount namespace where those are
//! private directories (tests/run-engine-tests.sh and tests/demo.sh bind-mount them).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the bus is set up.
#[derive(Debug, Clone, Default)]
pub struct BusOptions {
    /// Listen here instead of DIR/system_bus_socket (e.g. /run/dbus/system_bus_socket, the
    /// only path polkit's setuid agent helper talks to).
    pub socket: Option<PathBuf>,
    /// Let the bus start berthd on the first call (D-Bus activation) with this command line.
    /// The daemon then runs as root (the system bus's setuid launch helper only reads the
    /// host's own service directory), and it is a `session`-type bus so it forks the service
    /// itself; the policy is the same.
    pub activate: Option<Vec<String>>,
}

pub struct Bus {
    pub dir: PathBuf,
    pub address: String,
    socket: PathBuf,
    daemon: Child,
    polkitd: Option<Child>,
}

const STANDINS_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.freedesktop.NetworkManager"/>
    <allow own="org.freedesktop.UPower"/>
    <allow own="org.freedesktop.login1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.NetworkManager"/>
    <allow send_destination="org.freedesktop.UPower"/>
    <allow send_destination="org.freedesktop.login1"/>
  </policy>
</busconfig>
"#;

/// The repository root (the testkit lives in tests/testkit).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Bus {
    /// Starts dbus-daemon and polkitd; waits until polkitd owns its name.
    pub fn start(dir: &Path, opts: &BusOptions) -> Result<Bus> {
        std::fs::create_dir_all(dir)?;
        let socket = opts
            .socket
            .clone()
            .unwrap_or_else(|| dir.join("system_bus_socket"));
        if socket.exists() {
            // Never steal a live bus; a stale socket (a killed run) is ours to remove.
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                bail!("a bus already listens on {}", socket.display());
            }
            std::fs::remove_file(&socket)?;
        }
        let policy_dir = dir.join("system.d");
        std::fs::create_dir_all(&policy_dir)?;
        std::fs::copy(
            repo_root().join("dbus/org.berth.Berth1.conf"),
            policy_dir.join("org.berth.Berth1.conf"),
        )?;
        // The stand-ins for NetworkManager, UPower and logind (standins.rs) run as root.
        std::fs::write(policy_dir.join("standins.conf"), STANDINS_POLICY)?;
        let address = format!("unix:path={}", socket.display());
        let activation = match &opts.activate {
            Some(cmd) => {
                let services = dir.join("services");
                std::fs::create_dir_all(&services)?;
                std::fs::write(
                    services.join("org.berth.Berth1.service"),
                    format!(
                        "[D-BUS Service]\nName=org.berth.Berth1\nExec={}\n",
                        cmd.join(" ")
                    ),
                )?;
                format!("<servicedir>{}</servicedir>", services.display())
            }
            None => String::new(),
        };
        let (bus_type, user) = if opts.activate.is_some() {
            ("session", "")
        } else {
            ("system", "<user>messagebus</user>")
        };
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{bus_type}</type>
  {user}
  <auth>EXTERNAL</auth>
  <listen>{address}</listen>
  {activation}
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
  <includedir>{}</includedir>
</busconfig>
"#,
                policy_dir.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("bus.log"))?;
        let daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start dbus-daemon (apt-get install dbus-daemon)")?;
        let mut bus = Bus {
            dir: dir.to_path_buf(),
            address,
            socket,
            daemon,
            polkitd: None,
        };
        bus.wait_for_name("org.freedesktop.DBus", Duration::from_secs(10))?;
        let log = std::fs::File::create(dir.join("polkitd.log"))?;
        bus.polkitd = Some(
            Command::new("/usr/lib/polkit-1/polkitd")
                .arg("--no-debug")
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start polkitd (apt-get install polkitd)")?,
        );
        bus.wait_for_name("org.freedesktop.PolicyKit1", Duration::from_secs(10))?;
        Ok(bus)
    }

    /// (name, PID) of the bus's own processes.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut v = vec![("dbus-daemon", self.daemon.id())];
        if let Some(p) = &self.polkitd {
            v.push(("polkitd", p.id()));
        }
        v
    }

    /// A `busctl` command on this bus.
    pub fn busctl(&self) -> Command {
        let mut c = Command::new("busctl");
        c.arg(format!("--address={}", self.address));
        c
    }

    pub fn has_name(&self, name: &str) -> bool {
        self.busctl()
            .args(["status", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn wait_for_name(&self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.has_name(name) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{name} did not appear on the bus within {timeout:?}; see logs in {}",
            self.dir.display()
        )
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(p) = &mut self.polkitd {
            stop(p);
        }
        stop(&mut self.daemon);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// berthd serving a sysroot on a bus.
pub struct Berthd {
    child: Child,
    pub log: PathBuf,
}

impl Berthd {
    /// Starts `berthd serve` and waits until it owns org.berth.Berth1.
    pub fn start(
        bin: &Path,
        bus: &Bus,
        sysroot: &Path,
        config: &Path,
        idle_timeout_secs: u64,
    ) -> Result<Berthd> {
        let log = bus.dir.join(format!("berthd-{}.log", unique()));
        let child = Command::new(bin)
            .args(Self::args(&bus.address, sysroot, config, idle_timeout_secs))
            .env("BERTH_LOG", "info")
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(&log)?)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let d = Berthd { child, log };
        bus.wait_for_name("org.berth.Berth1", Duration::from_secs(20))
            .with_context(|| std::fs::read_to_string(&d.log).unwrap_or_default())?;
        Ok(d)
    }

    /// The arguments of `berthd serve` for this bus and sysroot.
    pub fn args(address: &str, sysroot: &Path, config: &Path, idle: u64) -> Vec<String> {
        vec![
            "--sysroot".into(),
            sysroot.display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "serve".into(),
            format!("--bus-address={address}"),
            format!("--idle-timeout={idle}"),
        ]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (e.g. idle exit); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// SIGTERM, then SIGKILL after 5 s; only for children we started.
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Test users, created in the private /etc/passwd of the test namespace.
pub mod users {
    /// No polkit grant: every mutating call needs an administrator.
    pub const PLAIN: &str = "berth-user";
    /// Granted check, update and reboot by tests/polkit/50-berth-tests.rules.
    pub const GRANTED: &str = "berth-granted";
    /// The administrator identity polkit asks for (tests/polkit rules); password below.
    pub const ADMIN: &str = "berth-admin";
    pub const ADMIN_PASSWORD: &str = "berth-admin-pw";
    /// The desktop app's test user: every Berth action granted (tests/polkit rules).
    pub const DESKTOP: &str = "berth-desktop";
    /// Web console users (tests/sandbox.sh): the operator may use sudo, i.e. Cockpit's
    /// administrative access; the viewer may not.
    pub const OPERATOR: &str = "berth-operator";
    pub const VIEWER: &str = "berth-viewer";
    pub const WEB_PASSWORD: &str = "berth-web-pw";
}

/// Runs a command as `user` (no session, like a cron job or an ssh command without logind).
pub fn as_user(user: &str, program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={user}"),
        &format!("--regid={user}"),
        "--init-groups",
        "--",
        program,
    ]);
    c
}
