//! Interactive polkit authentication on a terminal, as systemctl does it: a `pkttyagent`
//! registered for this process, ready before the first privileged call.

use rustix::fd::AsRawFd;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

pub struct TtyAgent {
    child: Child,
}

impl TtyAgent {
    /// Starts pkttyagent when stdin is a terminal; None otherwise or if it cannot run
    /// (the call then fails with a clear authorization error instead of hanging).
    pub fn start() -> Option<TtyAgent> {
        if !rustix::termios::isatty(std::io::stdin()) {
            return None;
        }
        let (read_end, write_end) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        let notify = write_end.as_raw_fd();
        let mut cmd = Command::new("pkttyagent");
        cmd.args([
            "--notify-fd",
            &notify.to_string(),
            // Registered for this process: polkit finds it from the caller's bus name.
            "--process",
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
        // SAFETY: between fork and exec we only clear FD_CLOEXEC on the notify descriptor
        // (fcntl is async-signal-safe), so pkttyagent inherits it.
        unsafe {
            cmd.pre_exec(move || {
                let fd = rustix::fd::BorrowedFd::borrow_raw(notify);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                Ok(())
            });
        }
        let child = cmd.spawn().ok()?;
        drop(write_end);
        // The agent closes its end once it is registered with polkit.
        let mut ready = std::fs::File::from(read_end);
        let _ = ready.read(&mut [0u8; 1]);
        Some(TtyAgent { child })
    }
}

impl Drop for TtyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
