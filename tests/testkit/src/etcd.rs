//! A real etcd cluster (Debian's `etcd-server`) on 127.0.0.1, one process per member, each
//! stopped by PID; `etcdctl` (Debian's `etcd-client`) reads it back for the tests, apart from
//! the client under test.

use crate::registry::free_port;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Member {
    pub name: String,
    pub client_url: String,
    child: Option<Child>,
}

pub struct Cluster {
    pub members: Vec<Member>,
    dir: PathBuf,
    tls: Option<Tls>,
    /// etcdctl's `--user`, once authentication is on.
    pub user: Option<String>,
}

/// PEM files for a cluster that speaks TLS and asks clients for certificates.
#[derive(Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate (CN root) for etcdctl.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Tls {
    /// A CA, a certificate for 127.0.0.1, a client certificate of organization `client_o`
    /// (`client.pem`, `client.key`; without a CommonName, which etcd's JSON gateway refuses
    /// once users are on) and root's for etcdctl, made with openssl in `dir`.
    pub fn make(dir: &Path, client_o: &str) -> Result<Tls> {
        std::fs::create_dir_all(dir)?;
        let openssl = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()?;
            if !out.status.success() {
                bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
        ]);
        openssl(&ca)?;
        let client_subj = format!("/O={client_o}");
        for (name, subj, ext) in [
            (
                "server",
                "/CN=etcd",
                // etcd's gateway dials its own gRPC port with it: a client too.
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            ),
            (
                "client",
                client_subj.as_str(),
                "extendedKeyUsage=clientAuth\n",
            ),
            ("root", "/CN=root", "extendedKeyUsage=clientAuth\n"),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
            openssl(&req)?;
            let extfile = format!("{name}.ext");
            std::fs::write(dir.join(&extfile), ext)?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ])?;
        }
        Ok(Tls {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("root.pem"),
            client_key: dir.join("root.key"),
        })
    }
}

impl Cluster {
    /// Starts `n` members with their data under `dir`, and waits until the cluster serves.
    pub fn start(dir: &Path, n: usize) -> Result<Cluster> {
        Self::start_with(dir, n, None)
    }

    /// Like [`start`](Self::start); with `tls`, clients speak TLS and must show a
    /// certificate signed by its CA.
    pub fn start_with(dir: &Path, n: usize, tls: Option<Tls>) -> Result<Cluster> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<_>>()?;
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let initial: Vec<String> = names
            .iter()
            .zip(&ports)
            .map(|(name, (_, peer))| format!("{name}=http://127.0.0.1:{peer}"))
            .collect();
        let mut members = Vec::new();
        for (name, (client, peer)) in names.iter().zip(&ports) {
            let data = dir.join(name);
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut etcd = Command::new("etcd");
            if let Some(t) = &tls {
                etcd.arg("--cert-file")
                    .arg(&t.server_cert)
                    .arg("--key-file")
                    .arg(&t.server_key)
                    .arg("--trusted-ca-file")
                    .arg(&t.ca)
                    .arg("--client-cert-auth");
            }
            let child = etcd
                .arg("--name")
                .arg(name)
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "berth-test"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start etcd (apt-get install etcd-server)")?;
            members.push(Member {
                name: name.clone(),
                client_url,
                child: Some(child),
            });
        }
        let cluster = Cluster {
            members,
            dir: dir.to_path_buf(),
            tls,
            user: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = cluster.etcdctl(&["endpoint", "health", "--cluster"])?;
            if out.status.success() {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd did not become healthy: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    cluster.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Stops member `i` at once (SIGKILL, as a machine lost).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `etcdctl` (API v3) against the members still running.
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output> {
        let live: Vec<&str> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.as_str())
            .collect();
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", live.join(",")))
            .args(["--dial-timeout=2s", "--command-timeout=5s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        if let Some(user) = &self.user {
            cmd.arg(format!("--user={user}"));
        }
        cmd.args(args)
            .output()
            .context("run etcdctl (apt-get install etcd-client)")
    }

    /// `etcdctl -w json` parsed.
    pub fn etcdctl_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["-w", "json"];
        all.extend_from_slice(args);
        let out = self.etcdctl(&all)?;
        if !out.status.success() {
            bail!("etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Every member's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
