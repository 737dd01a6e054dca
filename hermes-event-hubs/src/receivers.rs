//! Who receives from a partition of a consumer group, and the epochs
//! (owner levels) that decide it, as the service decides:
//!
//! - a receiver with an epoch takes the partition from every receiver with
//!   a lower or equal epoch and from those without one: they are detached
//!   with `amqp:link:stolen`;
//! - a receiver whose epoch is lower than the holder's, or without one when
//!   the holder has one, is refused;
//! - receivers without an epoch share a partition, five at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How many receivers without an epoch may share a partition of a
/// consumer group.
pub const MAX_SHARED: usize = 5;

/// A partition of a consumer group: the hub and the group in lower case,
/// the partition's number.
pub type Key = (String, String, u32);

struct Holder {
    id: u64,
    epoch: Option<i64>,
    /// Told why, when another receiver takes the partition over.
    stolen: oneshot::Sender<String>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    holders: HashMap<Key, Vec<Holder>>,
}

/// Every receiver of the endpoint.
#[derive(Default, Clone)]
pub struct Receivers(Arc<Mutex<Registry>>);

/// Why a receiver may not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A receiver with a higher epoch holds the partition (or one with an
    /// epoch, when this one has none): `amqp:link:stolen`.
    Epoch(String),
    /// The partition has as many receivers as it may:
    /// `amqp:resource-limit-exceeded`.
    Full(String),
}

/// A receiver's hold on a partition, given up when dropped.
pub struct Claim {
    receivers: Receivers,
    key: Key,
    id: u64,
    /// Resolves with the reason when a newer receiver takes over.
    pub stolen: oneshot::Receiver<String>,
}

impl Receivers {
    /// Attaches a receiver with `epoch` to the partition `key`, detaching
    /// those it takes it from.
    pub fn claim(&self, key: Key, epoch: Option<i64>) -> Result<Claim, Refused> {
        let Ok(mut registry) = self.0.lock() else {
            return Err(Refused::Full(
                "the endpoint's receivers are unavailable".into(),
            ));
        };
        registry.next_id += 1;
        let id = registry.next_id;
        let holders = registry.holders.entry(key.clone()).or_default();
        let held = holders.iter().filter_map(|h| h.epoch).max();
        match (epoch, held) {
            (Some(new), Some(old)) if new < old => {
                return Err(Refused::Epoch(format!(
                    "a receiver with the higher epoch {old} holds the partition; \
                     one with epoch {new} cannot be created"
                )));
            }
            (None, Some(old)) => {
                return Err(Refused::Epoch(format!(
                    "a receiver with epoch {old} holds the partition; \
                     one without an epoch cannot be created"
                )));
            }
            (None, None) if holders.len() >= MAX_SHARED => {
                return Err(Refused::Full(format!(
                    "the partition has the most receivers a consumer group may have on it, \
                     {MAX_SHARED}"
                )));
            }
            (Some(new), _) => {
                for holder in holders.drain(..) {
                    let was = holder
                        .epoch
                        .map_or_else(|| "no epoch".to_owned(), |e| format!("epoch {e}"));
                    let _ = holder.stolen.send(format!(
                        "a new receiver with epoch {new} took the partition; \
                         this one, with {was}, is disconnected"
                    ));
                }
            }
            (None, None) => {}
        }
        let (stolen_tx, stolen) = oneshot::channel();
        holders.push(Holder {
            id,
            epoch,
            stolen: stolen_tx,
        });
        Ok(Claim {
            receivers: self.clone(),
            key,
            id,
            stolen,
        })
    }

    /// How many receivers hold the partition `key`.
    pub fn count(&self, key: &Key) -> usize {
        self.0
            .lock()
            .map_or(0, |r| r.holders.get(key).map_or(0, Vec::len))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut registry) = self.receivers.0.lock()
            && let Some(holders) = registry.holders.get_mut(&self.key)
        {
            holders.retain(|h| h.id != self.id);
            if holders.is_empty() {
                registry.holders.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        ("hub1".into(), "$default".into(), 0)
    }

    #[test]
    fn a_higher_or_equal_epoch_takes_the_partition_and_a_lower_is_refused() {
        let receivers = Receivers::default();
        let mut first = receivers.claim(key(), Some(1)).expect("first");
        let mut second = receivers.claim(key(), Some(1)).expect("an equal epoch");
        let why = first.stolen.try_recv().expect("the first is told");
        assert!(why.contains("epoch 1") && why.contains("took"), "{why}");
        assert!(second.stolen.try_recv().is_err(), "the second holds on");
        assert_eq!(receivers.count(&key()), 1);

        let refused = receivers.claim(key(), Some(0)).err().expect("lower");
        assert!(matches!(&refused, Refused::Epoch(w) if w.contains("higher epoch 1")));
        let refused = receivers.claim(key(), None).err().expect("none");
        assert!(matches!(refused, Refused::Epoch(_)));
        assert_eq!(receivers.count(&key()), 1);

        let _third = receivers.claim(key(), Some(7)).expect("higher");
        assert!(second.stolen.try_recv().is_ok());
        // Another partition, another group: another holder.
        let other = ("hub1".to_owned(), "$default".to_owned(), 1);
        let _elsewhere = receivers.claim(other.clone(), Some(0)).expect("free");
        assert_eq!(receivers.count(&other), 1);
    }

    #[test]
    fn receivers_without_an_epoch_share_up_to_the_limit_and_yield_to_one_with() {
        let receivers = Receivers::default();
        let mut shared: Vec<Claim> = (0..MAX_SHARED)
            .map(|_| receivers.claim(key(), None).expect("shared"))
            .collect();
        let refused = receivers.claim(key(), None).err().expect("full");
        assert!(matches!(refused, Refused::Full(_)));
        // One leaves: there is room again.
        shared.pop();
        let again = receivers.claim(key(), None).expect("room");
        shared.push(again);
        let _owner = receivers.claim(key(), Some(0)).expect("takes over");
        for claim in &mut shared {
            let why = claim.stolen.try_recv().expect("each is told");
            assert!(why.contains("no epoch"), "{why}");
        }
        assert_eq!(receivers.count(&key()), 1);
        drop(shared);
        assert_eq!(
            receivers.count(&key()),
            1,
            "the stolen leave nothing behind"
        );
    }
}
