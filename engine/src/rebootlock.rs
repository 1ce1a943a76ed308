//! The fleet's reboot semaphore in etcd, as Container Linux's locksmith kept one, with each
//! slot under a lease so a machine that dies holding it frees it when the lease runs out.
//! Keys, under `berth/reboot-lock/<group>/`:
//!
//! - `holders/<id>`: one per machine holding a slot, attached to that machine's lease; the
//!   value says what it reboots into and since when (JSON, for people reading etcd).
//! - `guard`: rewritten by every acquisition. An acquisition reads the guard and the holders
//!   in one transaction, then writes its holder key only if the guard's mod revision is
//!   still what it read, so two machines can never both take the last free slot. Releases
//!   and expiries only delete holder keys, which can only leave more room.

use crate::config::Coordination;
use crate::error::Result;
use crate::etcd::{Client, ModRevisionIs, Op};

const ROOT: &str = "berth/reboot-lock";
/// Acquisitions raced by other machines before this one reports contention.
const ATTEMPTS: usize = 8;

pub struct RebootLock {
    client: Client,
    group: String,
    id: String,
    max: u32,
    lease_seconds: u64,
}

/// What an acquisition came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This machine holds a slot under this lease.
    Slot { lease: i64 },
    /// Every slot is held, by these machines.
    Full { holders: Vec<String> },
}

impl RebootLock {
    /// `machine_id` names this machine unless the configuration does.
    pub fn new(c: &Coordination, machine_id: &str) -> Result<RebootLock> {
        Ok(RebootLock {
            client: Client::new(c)?,
            group: c.group.clone(),
            id: c.id.clone().unwrap_or_else(|| machine_id.to_string()),
            max: c.max_concurrent,
            lease_seconds: c.lease_seconds,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    fn guard(&self) -> String {
        format!("{ROOT}/{}/guard", self.group)
    }

    fn holders_prefix(&self) -> String {
        format!("{ROOT}/{}/holders/", self.group)
    }

    fn holder_key(&self) -> String {
        format!("{}{}", self.holders_prefix(), self.id)
    }

    /// Takes a slot to reboot into `target` (a digest, for the record), unless all are held.
    /// A slot this machine still holds from before (berthd restarted) is taken over.
    pub async fn acquire(&self, target: &str) -> Result<Acquired> {
        let (guard, prefix) = (self.guard(), self.holders_prefix());
        let end = prefix_end(&prefix);
        for _ in 0..ATTEMPTS {
            let (_, read) = self
                .client
                .txn(
                    &[],
                    &[
                        Op::Range {
                            key: &guard,
                            end: None,
                        },
                        Op::Range {
                            key: &prefix,
                            end: Some(&end),
                        },
                    ],
                )
                .await?;
            let guard_revision = read
                .first()
                .and_then(|kvs| kvs.first())
                .map_or(0, |kv| kv.mod_revision);
            let others: Vec<String> = read
                .get(1)
                .into_iter()
                .flatten()
                .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_string))
                .filter(|id| *id != self.id)
                // Other machines' names reach Blocked, the journal and the clients.
                .map(|id| crate::text::outside(&id))
                .collect();
            if others.len() >= self.max as usize {
                return Ok(Acquired::Full { holders: others });
            }
            let lease = self.client.grant(self.lease_seconds).await?;
            let value = serde_json::json!({
                "id": self.id,
                "target": target,
                "since": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .to_string();
            let (won, _) = self
                .client
                .txn(
                    &[ModRevisionIs {
                        key: &guard,
                        revision: guard_revision,
                    }],
                    &[
                        Op::Put {
                            key: &guard,
                            value: &self.id,
                            lease: 0,
                        },
                        Op::Put {
                            key: &self.holder_key(),
                            value: &value,
                            lease,
                        },
                    ],
                )
                .await?;
            if won {
                return Ok(Acquired::Slot { lease });
            }
            // Another machine acquired in between: look again.
            let _ = self.client.revoke(lease).await;
        }
        Err(crate::error::Error::Coordination(format!(
            "the reboot slots of group {} changed {ATTEMPTS} times while this machine tried to take one",
            self.group
        )))
    }

    /// Renews the slot's lease; false when it already ran out (the slot is gone).
    pub async fn renew(&self, lease: i64) -> Result<bool> {
        Ok(self.client.keep_alive(lease).await? > 0)
    }

    /// Gives the slot back.
    pub async fn release(&self, lease: i64) -> Result<()> {
        self.client.revoke(lease).await?;
        // The key outlives the lease only if it was put again under another one.
        self.client
            .txn(
                &[],
                &[Op::Delete {
                    key: &self.holder_key(),
                }],
            )
            .await
            .map(|_| ())
    }

    /// The machines holding a slot now.
    pub async fn holders(&self) -> Result<Vec<String>> {
        let prefix = self.holders_prefix();
        let kvs = self.client.range(&prefix, &prefix_end(&prefix)).await?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }
}

/// The end of the range of keys starting with `prefix` (which ends in '/').
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    end.pop();
    end.push('0'); // '/' + 1
    end
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefix_range_ends_just_after_the_slash() {
        assert_eq!(super::prefix_end("a/b/"), "a/b0");
    }
}
