//! Which connections a server takes: a total cap and a per-client cap, counted by slots that
//! give themselves back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::client::client_key;

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    Full,
    /// This client holds `max_connections_per_client` already.
    ClientFull,
}

#[derive(Debug)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// The connection counts of one server.
#[derive(Debug, Clone)]
pub struct Admission {
    max_total: usize,
    max_per_client: Option<usize>,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    key: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_client: Option<usize>) -> Self {
        Self {
            max_total,
            max_per_client,
            counts: Arc::new(Mutex::new(Counts { total: 0, per_client: HashMap::new() })),
        }
    }

    /// Takes a place for a connection from `peer`, or says why there is none.
    pub fn admit(&self, peer: IpAddr) -> Result<Slot, Refusal> {
        let key = client_key(peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let held = counts.per_client.get(&key).copied().unwrap_or(0);
        if self.max_per_client.is_some_and(|max| held >= max) {
            return Err(Refusal::ClientFull);
        }
        counts.total += 1;
        counts.per_client.insert(key, held + 1);
        Ok(Slot { key, counts: self.counts.clone() })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        // Clients with no connection are forgotten, so the map is as small as the connections.
        if let Some(held) = counts.per_client.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.per_client.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("a valid address")
    }

    #[test]
    fn the_total_cap_refuses_until_a_slot_is_dropped() {
        let admission = Admission::new(2, None);
        let first = admission.admit(ip("10.0.0.1")).expect("first");
        let _second = admission.admit(ip("10.0.0.2")).expect("second");
        assert_eq!(admission.admit(ip("10.0.0.3")).map(|_| ()), Err(Refusal::Full));
        drop(first);
        assert!(admission.admit(ip("10.0.0.3")).is_ok(), "a dropped slot is free again");
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let admission = Admission::new(10, Some(2));
        let slots: Vec<Slot> = (0..2).map(|_| admission.admit(ip("10.0.0.1")).expect("within its share")).collect();
        assert_eq!(admission.admit(ip("10.0.0.1")).map(|_| ()), Err(Refusal::ClientFull));
        assert!(admission.admit(ip("10.0.0.2")).is_ok(), "another client still gets in");
        drop(slots);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn addresses_of_one_ipv6_64_are_one_client() {
        let admission = Admission::new(10, Some(1));
        let _slot = admission.admit(ip("2001:db8::1")).expect("first");
        assert_eq!(admission.admit(ip("2001:db8::ffff")).map(|_| ()), Err(Refusal::ClientFull));
        assert!(admission.admit(ip("2001:db8:0:1::1")).is_ok(), "the next /64 is another client");
    }

    #[test]
    fn counts_return_to_zero_and_forget_clients() {
        let admission = Admission::new(10, Some(3));
        let slots: Vec<Slot> = (1..=3).map(|n| admission.admit(ip(&format!("10.0.0.{n}"))).expect("room")).collect();
        assert_eq!(admission.held(), 3);
        drop(slots);
        assert_eq!(admission.held(), 0);
        assert!(admission.counts.lock().expect("not poisoned").per_client.is_empty());
    }
}
