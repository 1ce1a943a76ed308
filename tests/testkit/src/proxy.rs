//! A fault-injecting HTTP proxy in front of the registry (loopback only): it answers blob
//! requests with 500s, cuts a blob transfer short, corrupts a blob's bytes, or slows it down.

use anyhow::Result;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The first N blob requests get HTTP 500.
    ServerError(usize),
    /// The first N blob responses end after this many body bytes.
    Cut { times: usize, after: usize },
    /// Every blob response has one byte flipped.
    Corrupt,
    /// Every request gets this status.
    Status(u16),
    /// Blob bodies flow at about this many bytes a second (a slow link, for long transfers).
    Throttle(usize),
    /// Every manifest request gets an endless body (no length given: it ends when the client
    /// hangs up), as a hostile registry could send.
    EndlessManifest,
    /// Every request gets this status with a plain-text body full of terminal escapes,
    /// a forged log line and 64 KiB of filler, as a hostile registry would send.
    HostileBody(u16),
}

/// What `Fault::HostileBody` sends: an escape that retitles the terminal, one that clears
/// it, a colour change, a newline starting a fake log line, and a long tail.
pub fn hostile_body() -> String {
    format!(
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mdenied\nberthd[1]: update finished: ok {}",
        "A".repeat(64 << 10)
    )
}

pub struct Proxy {
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Bytes of blob bodies sent to clients.
    pub blob_bytes: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: &str, fault: Fault) -> Result<Proxy> {
        Self::start_at("127.0.0.1:0", upstream, fault)
    }

    /// On a given address, such as that of a proxy just dropped (a registry coming back):
    /// tries for a few seconds while the old listener closes.
    pub fn start_at(addr: &str, upstream: &str, fault: Fault) -> Result<Proxy> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let blob_bytes = Arc::new(AtomicUsize::new(0));
        let remaining = Arc::new(AtomicUsize::new(match fault {
            Fault::ServerError(n) | Fault::Cut { times: n, .. } => n,
            _ => usize::MAX,
        }));
        let (upstream, stop2, bytes2) = (upstream.to_string(), stop.clone(), blob_bytes.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, remaining, bytes) =
                    (upstream.clone(), remaining.clone(), bytes2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, fault, &remaining, &bytes);
                });
            }
        });
        Ok(Proxy {
            addr,
            stop,
            blob_bytes,
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            break;
        }
        head.push(b[0]);
    }
    Ok(head)
}

fn take(remaining: &AtomicUsize) -> bool {
    remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// One request per connection: the proxy asks for `Connection: close` upstream.
fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: Fault,
    remaining: &AtomicUsize,
    bytes: &AtomicUsize,
) -> std::io::Result<()> {
    let head = read_head(&mut client)?;
    let text = String::from_utf8_lossy(&head).to_string();
    let first = text.lines().next().unwrap_or_default().to_string();
    let is_blob_get = first.starts_with("GET ") && first.contains("/blobs/sha256:");
    let fail = |client: &mut TcpStream, code: u16| {
        let kind = match code {
            401 => "UNAUTHORIZED",
            403 => "DENIED",
            404 => "NAME_UNKNOWN",
            _ => "UNKNOWN",
        };
        let body =
            format!("{{\"errors\":[{{\"code\":\"{kind}\",\"message\":\"injected {code}\"}}]}}");
        let _ = write!(client, "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    };
    if let Fault::Status(code) = fault {
        fail(&mut client, code);
        return Ok(());
    }
    if matches!(fault, Fault::EndlessManifest) && first.contains("/manifests/") {
        write!(client, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n")?;
        let chunk = [b' '; 65536];
        while client.write_all(&chunk).is_ok() {}
        return Ok(());
    }
    if let Fault::HostileBody(code) = fault {
        let body = hostile_body();
        let _ = write!(client, "HTTP/1.1 {code} Hostile\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        return Ok(());
    }
    if is_blob_get && matches!(fault, Fault::ServerError(_)) && take(remaining) {
        fail(&mut client, 500);
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut rewritten = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("host:") {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    up.write_all(rewritten.as_bytes())?;
    let resp_head = read_head(&mut up)?;
    client.write_all(&resp_head)?;
    let cut_after = match fault {
        Fault::Cut { after, .. } if is_blob_get && take(remaining) => Some(after),
        _ => None,
    };
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    let mut flipped = false;
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = buf[..n].to_vec();
        if is_blob_get && matches!(fault, Fault::Corrupt) && !flipped {
            chunk[n / 2] ^= 0xff;
            flipped = true;
        }
        if let Some(limit) = cut_after {
            let allowed = limit.saturating_sub(sent).min(chunk.len());
            client.write_all(&chunk[..allowed])?;
            sent += allowed;
            if is_blob_get {
                bytes.fetch_add(allowed, Ordering::SeqCst);
            }
            if sent >= limit {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            continue;
        }
        if let (Fault::Throttle(rate), true) = (fault, is_blob_get) {
            std::thread::sleep(std::time::Duration::from_secs_f64(
                n as f64 / rate.max(1) as f64,
            ));
        }
        client.write_all(&chunk)?;
        sent += n;
        if is_blob_get {
            bytes.fetch_add(n, Ordering::SeqCst);
        }
    }
    Ok(())
}
