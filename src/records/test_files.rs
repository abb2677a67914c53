//! What the records' unit tests look at: ids and the files of a spool.

use std::fs;
use std::path::Path;

use super::id::RecordId;

/// `text` as a record id; the tests give valid ones.
pub(super) fn id(text: &str) -> RecordId {
    RecordId::parse(text).expect("a valid id")
}

/// The names in `dir`, sorted.
pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
