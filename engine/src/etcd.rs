//! A small client for etcd's v3 API through the JSON gateway every etcd since 3.4 serves on
//! its client URLs (`POST /v3/kv/txn`, `/v3/lease/grant`, ...), on the HTTP client Berth
//! already has: the gRPC client crates would add a protobuf and gRPC stack to build for the
//! handful of calls the reboot semaphore makes. Keys and values travel base64-encoded,
//! 64-bit numbers as strings, as the gateway's JSON mapping says.
//!
//! Each call goes to the endpoints in order until one answers, so a cluster that lost a
//! member (or its leader, for a moment) still serves.

use crate::config::Coordination;
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;

/// gRPC status codes (etcd's errors carry them) after which another member may answer.
const UNAVAILABLE: i64 = 14;
const DEADLINE_EXCEEDED: i64 = 4;
const UNAUTHENTICATED: i64 = 16;
const NOT_FOUND: i64 = 5;

pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

/// One comparison of a transaction: the key's mod revision equals `revision` (0: absent).
pub struct ModRevisionIs<'a> {
    pub key: &'a str,
    pub revision: i64,
}

/// One operation of a transaction.
pub enum Op<'a> {
    /// Every key from `key` up to (not including) `end`; no end: `key` alone.
    Range {
        key: &'a str,
        end: Option<&'a str>,
    },
    Put {
        key: &'a str,
        value: &'a str,
        lease: i64,
    },
    Delete {
        key: &'a str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
    pub lease: i64,
}

fn failed(detail: impl std::fmt::Display) -> Error {
    Error::Coordination(detail.to_string())
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

fn unb64(v: &Value) -> String {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The gateway writes int64 as strings and leaves out zeros.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

impl Client {
    pub fn new(c: &Coordination) -> Result<Client> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| failed(format!("cannot read {}: {e}", p.display())))
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15));
        if let Some(ca) = &c.ca_file {
            let cert = reqwest::Certificate::from_pem(&read(ca)?)
                .map_err(|e| failed(format!("{}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) {
            let id = reqwest::Identity::from_pkcs8_pem(&read(cert)?, &read(key)?)
                .map_err(|e| failed(format!("{} with {}: {e}", cert.display(), key.display())))?;
            b = b.identity(id);
        }
        let credentials = match (&c.username, &c.password_file) {
            (Some(user), Some(file)) => {
                let password = String::from_utf8_lossy(&read(file)?).trim_end().to_string();
                Some((user.clone(), password))
            }
            _ => None,
        };
        Ok(Client {
            http: b.build().map_err(failed)?,
            endpoints: c
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            credentials,
            token: Mutex::new(None),
        })
    }

    /// Calls `/v3/{path}` on the first endpoint that answers.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        self.call_raw(path, body).await.map_err(Error::from)
    }

    /// Like [`call`](Self::call), keeping etcd's own error apart; an unreachable cluster's
    /// error names every endpoint's failure.
    async fn call_raw(&self, path: &str, body: &Value) -> std::result::Result<Value, Failure> {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            match self.call_one(endpoint, path, body).await {
                Ok(v) => return Ok(v),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::NextMember(why)) => failures.push(format!("{endpoint}: {why}")),
            }
        }
        Err(Failure::Other(format!(
            "no etcd member answered: {}",
            failures.join("; ")
        )))
    }

    async fn call_one(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
    ) -> std::result::Result<Value, Attempt> {
        for fresh_token in [false, true] {
            let token = self.token(endpoint, fresh_token).await?;
            let url = format!("{endpoint}/v3/{path}");
            let v = self.post(&url, body, token.as_deref()).await?;
            let Some(message) = v.get("error").and_then(Value::as_str) else {
                return Ok(v);
            };
            match v.get("code").map(int).unwrap_or(0) {
                UNAUTHENTICATED if !fresh_token && self.credentials.is_some() => continue,
                UNAVAILABLE | DEADLINE_EXCEEDED => {
                    return Err(Attempt::NextMember(crate::text::outside(message)))
                }
                code => return Err(Attempt::Final(Failure::Etcd(EtcdError::new(code, message)))),
            }
        }
        Err(Attempt::Final(Failure::Other(
            "etcd refused a fresh token".into(),
        )))
    }

    /// One JSON request; a member that cannot answer (or is no etcd) leaves it to the next.
    async fn post(
        &self,
        url: &str,
        body: &Value,
        token: Option<&str>,
    ) -> std::result::Result<Value, Attempt> {
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            req = req.header(reqwest::header::AUTHORIZATION, token);
        }
        let next = |e: reqwest::Error| Attempt::NextMember(chain(&e));
        let resp = req.send().await.map_err(next)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(next)?;
        serde_json::from_slice(&bytes).map_err(|_| Attempt::NextMember(not_json(status, &bytes)))
    }

    /// etcd's auth token for `endpoint`, fetched once and again when it expired.
    async fn token(
        &self,
        endpoint: &str,
        fresh: bool,
    ) -> std::result::Result<Option<String>, Attempt> {
        let Some((name, password)) = &self.credentials else {
            return Ok(None);
        };
        let mut cached = self.token.lock().await;
        if let (Some(t), false) = (cached.as_ref(), fresh) {
            return Ok(Some(t.clone()));
        }
        let url = format!("{endpoint}/v3/auth/authenticate");
        let body = json!({ "name": name, "password": password });
        let v = self.post(&url, &body, None).await?;
        match v.get("token").and_then(Value::as_str) {
            Some(t) => {
                *cached = Some(t.to_string());
                Ok(Some(t.to_string()))
            }
            None => Err(Attempt::Final(Failure::Other(format!(
                "etcd refused user {name}: {}",
                crate::text::outside(v.get("error").and_then(Value::as_str).unwrap_or("no token"))
            )))),
        }
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn grant(&self, ttl: u64) -> Result<i64> {
        let v = self
            .call("lease/grant", &json!({ "TTL": ttl.to_string() }))
            .await?;
        match v.get("ID").map(int) {
            Some(id) if id != 0 => Ok(id),
            _ => Err(failed(format!("etcd granted no lease: {v}"))),
        }
    }

    /// Renews a lease; the seconds it has left, 0 when it is gone.
    pub async fn keep_alive(&self, lease: i64) -> Result<u64> {
        let v = self
            .call("lease/keepalive", &json!({ "ID": lease.to_string() }))
            .await?;
        let ttl = v.pointer("/result/TTL").map(int).unwrap_or(0);
        Ok(ttl.max(0) as u64)
    }

    /// Ends a lease and deletes its keys; a lease already gone is no error.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        match self
            .call_raw("lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
        {
            Err(Failure::Etcd(e)) if e.code == NOT_FOUND => Ok(()),
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    /// Every key in `[key, end)`.
    pub async fn range(&self, key: &str, end: &str) -> Result<Vec<KeyValue>> {
        let v = self
            .call(
                "kv/range",
                &json!({ "key": b64(key), "range_end": b64(end) }),
            )
            .await?;
        Ok(kvs(&v))
    }

    /// Runs `ops` if every comparison holds; whether they held, and each op's key-values
    /// (ranges only; empty for the others).
    pub async fn txn(
        &self,
        compare: &[ModRevisionIs<'_>],
        ops: &[Op<'_>],
    ) -> Result<(bool, Vec<Vec<KeyValue>>)> {
        let compare: Vec<Value> = compare
            .iter()
            .map(|c| {
                json!({ "key": b64(c.key), "target": "MOD", "result": "EQUAL",
                        "mod_revision": c.revision.to_string() })
            })
            .collect();
        let success: Vec<Value> = ops
            .iter()
            .map(|op| match op {
                Op::Range { key, end } => {
                    let mut r = json!({ "key": b64(key) });
                    if let Some(end) = end {
                        r["range_end"] = Value::from(b64(end));
                    }
                    json!({ "request_range": r })
                }
                Op::Put { key, value, lease } => json!({ "request_put":
                    { "key": b64(key), "value": b64(value), "lease": lease.to_string() } }),
                Op::Delete { key } => json!({ "request_delete_range": { "key": b64(key) } }),
            })
            .collect();
        let v = self
            .call("kv/txn", &json!({ "compare": compare, "success": success }))
            .await?;
        let succeeded = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let results = v
            .get("responses")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .map(|r| r.get("response_range").map(kvs).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok((succeeded, results))
    }
}

/// An HTTP error with its causes (reqwest's own text leaves out the TLS or socket error).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        // TLS errors repeat their cause in their own text.
        if !text.contains(&more) {
            text.push_str(&format!(": {more}"));
        }
        source = s.source();
    }
    text
}

/// What an endpoint that is not etcd's gateway (or a proxy's error page) said, made inert.
fn not_json(status: reqwest::StatusCode, body: &[u8]) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    format!(
        "HTTP {status}, not etcd's JSON gateway: {}",
        crate::text::outside(head.trim())
    )
}

fn kvs(range: &Value) -> Vec<KeyValue> {
    range
        .get("kvs")
        .and_then(Value::as_array)
        .map(|kvs| {
            kvs.iter()
                .map(|kv| KeyValue {
                    key: unb64(&kv["key"]),
                    value: unb64(&kv["value"]),
                    mod_revision: int(&kv["mod_revision"]),
                    lease: int(&kv["lease"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

enum Attempt {
    /// This member could not answer; another may.
    NextMember(String),
    /// The cluster answered: no other member will answer otherwise.
    Final(Failure),
}

enum Failure {
    Etcd(EtcdError),
    Other(String),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::Etcd(e) => Error::Coordination(e.to_string()),
            Failure::Other(s) => Error::Coordination(s),
        }
    }
}

/// An error etcd itself returned, with its gRPC status code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("etcd: {message} (code {code})")]
pub struct EtcdError {
    pub code: i64,
    pub message: String,
}

impl EtcdError {
    fn new(code: i64, message: &str) -> EtcdError {
        EtcdError {
            code,
            message: crate::text::outside(message),
        }
    }
}
