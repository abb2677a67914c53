//! Record ids: the call's LiveKit job id, which becomes a file name and the `Idempotency-Key`.

use std::fmt;

use super::RecordsError;

/// The longest id accepted; LiveKit job ids are far shorter, and file names must stay short.
const MAX_LEN: usize = 128;

/// How much of a refused id an error shows, so a megabyte of garbage does not reach the logs.
const SHOWN: usize = 140;

/// An id that is safe as a file name on every file system: no separators, no dots, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RecordId(String);

impl RecordId {
    pub fn parse(id: &str) -> Result<Self, RecordsError> {
        let valid = (1..=MAX_LEN).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if valid {
            return Ok(Self(id.to_owned()));
        }
        let mut shown: String = id.chars().take(SHOWN).flat_map(char::escape_default).collect();
        if id.chars().count() > SHOWN {
            shown.push('…');
        }
        Err(RecordsError::InvalidId { id: shown })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_accepted() {
        for id in ["AJ_abc123", "a", "call-1_2", &"x".repeat(128)] {
            assert_eq!(RecordId::parse(id).expect("valid").as_str(), id);
        }
    }

    #[test]
    fn ids_that_could_escape_the_spool_or_clash_are_refused_by_name() {
        for id in ["", "../etc/passwd", "a/b", "a.json", "a b", "नमस्ते", "a\0b", &"x".repeat(129)] {
            let error = RecordId::parse(id).expect_err(id);
            let RecordsError::InvalidId { id: shown } = &error else { panic!("{error}") };
            assert!(error.to_string().contains(&format!("`{shown}`")), "{error}");
        }
        let error = RecordId::parse("../etc/passwd").expect_err("a path");
        assert!(error.to_string().contains("`../etc/passwd`"), "{error}");
    }

    #[test]
    fn a_huge_refused_id_is_shown_cut() {
        let error = RecordId::parse(&"é".repeat(10_000)).expect_err("too long");
        assert!(error.to_string().len() < 2_000 && error.to_string().contains('…'), "{error}");
    }
}
