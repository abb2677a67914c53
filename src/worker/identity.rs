//! The identity the agent joins a call's room under, which everyone in the room sees.
//!
//! LiveKit's default, `agent-<job id>`, would tell every caller the id of their call, which is the
//! call record's id and its `Idempotency-Key` at n8n: a caller knowing it could post a forged
//! record under that key before the real one arrives, and the workflow keeps the first it stores.
//! So the identity owes nothing to the job.

/// `agent-` and 64 random bits in hex: distinct for every call in practice, and no function of
/// the job, the room or the time.
pub(super) fn agent_identity() -> String {
    format!("agent-{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn identities_are_random_agent_names_of_one_shape() {
        let identities: HashSet<String> = (0..1000).map(|_| agent_identity()).collect();
        assert_eq!(identities.len(), 1000, "no two calls share an identity");
        for identity in &identities {
            let random = identity.strip_prefix("agent-").unwrap_or_else(|| panic!("{identity}"));
            assert!(random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()), "{identity}");
        }
    }
}
