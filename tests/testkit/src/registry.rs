//! A real `docker-registry` on 127.0.0.1 (a free port), stopped by PID when dropped.

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    pub addr: String,
    dir: PathBuf,
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Registry {
    /// Starts a registry with its storage under `dir`.
    pub fn start(dir: &Path) -> Result<Registry> {
        Self::start_with_log(dir, "error")
    }

    /// Starts a registry that logs every response (`info`), for [`Registry::blob_bytes_sent`].
    pub fn start_logging_requests(dir: &Path) -> Result<Registry> {
        Self::start_with_log(dir, "info")
    }

    fn start_with_log(dir: &Path, level: &str) -> Result<Registry> {
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: {level}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {addr}}}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start docker-registry (apt-get install docker-registry)")?;
        let reg = Registry {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&reg.addr).is_ok() {
                return Ok(reg);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("registry on {} did not start", reg.addr)
    }

    /// Blob body bytes the registry has sent so far, from its own request log (a registry
    /// started with [`Registry::start_logging_requests`]): an outside view of what a client
    /// really downloaded.
    pub fn blob_bytes_sent(&self) -> Result<u64> {
        let log = std::fs::read_to_string(self.dir.join("registry.log"))?;
        Ok(log
            .lines()
            .filter(|l| l.contains("response completed"))
            .filter(|l| l.contains("http.request.method=GET") && l.contains("/blobs/sha256:"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix("http.response.written="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum())
    }

    /// Pushes `layout:tag` (an image, or an index with all its images) to `NAME:tag` with
    /// skopeo; returns the reference.
    pub fn push(&self, layout: &Path, tag: &str, name: &str) -> Result<String> {
        let dest = format!("{}/{name}:{tag}", self.addr);
        let out = Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{dest}"))
            .stdin(Stdio::null())
            .output()
            .context("run skopeo")?;
        if !out.status.success() {
            bail!(
                "skopeo push {dest}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(dest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
