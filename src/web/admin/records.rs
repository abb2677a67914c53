//! The call records a worker has delivered or still holds, read from SPOOL_DIR for the operator's
//! view. Every spool layout is read the same way, at any depth (a spool per worker under
//! `workers/<id>/` included): a `*.json` file in a `dead/` folder was refused by n8n, one in a
//! `delivered/` folder was taken by it, any other is waiting. Symbolic links are not followed,
//! the walk and the files read are bounded, and a file that is not a record is skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// Folders below SPOOL_DIR the walk enters at most (`workers/<id>/dead/` is three).
const MAX_DEPTH: usize = 4;
/// Directory entries looked at in one listing, so a huge spool costs a bounded walk.
const MAX_ENTRIES: usize = 20_000;
/// A record is far smaller; a larger file is not one.
const MAX_RECORD_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting in the spool for n8n.
    Pending,
    /// Refused by n8n for good (`dead/`).
    Dead,
    /// Taken by n8n (`delivered/`).
    Delivered,
}

/// One record as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub status: Status,
    /// The spool it is in, relative to SPOOL_DIR (`""` for SPOOL_DIR itself, `workers/<id>`).
    pub spool: String,
    /// The record as the worker wrote it.
    pub record: Value,
}

struct Found {
    modified: SystemTime,
    path: PathBuf,
    status: Status,
    spool: String,
}

/// The newest `limit` records under `root`, newest first.
pub fn newest(root: &Path, limit: usize) -> Vec<RecordView> {
    let mut found = Vec::new();
    let mut entries = 0;
    let mut folders = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = folders.pop() {
        let Ok(listing) = fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            entries += 1;
            if entries > MAX_ENTRIES {
                break;
            }
            let path = entry.path();
            // `DirEntry::metadata` does not follow symbolic links.
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() && depth < MAX_DEPTH {
                folders.push((path, depth + 1));
            } else if metadata.is_file() && metadata.len() <= MAX_RECORD_BYTES && is_record(&path) {
                let (status, spool) = place(root, &dir);
                found.push(Found {
                    modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                    status,
                    spool,
                });
            }
        }
    }
    found.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.path.cmp(&b.path)));
    found
        .into_iter()
        .filter_map(|found| {
            let record: Value = serde_json::from_slice(&fs::read(&found.path).ok()?).ok()?;
            record.get("call_id")?.as_str()?;
            Some(RecordView { status: found.status, spool: found.spool, record })
        })
        .take(limit)
        .collect()
}

/// `<id>.json`; writes in progress end in `.tmp` and n8n's answers in `.answer.txt`.
fn is_record(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// What a record in `dir` is, and the spool it belongs to.
fn place(root: &Path, dir: &Path) -> (Status, String) {
    let status = match dir.file_name().and_then(|n| n.to_str()) {
        Some("dead") => Status::Dead,
        Some("delivered") => Status::Delivered,
        _ => Status::Pending,
    };
    let spool_dir = if status == Status::Pending { dir } else { dir.parent().unwrap_or(dir) };
    let spool = spool_dir.strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_default();
    (status, spool)
}

#[cfg(test)]
mod tests {
    use std::fs::{File, FileTimes};
    use std::time::Duration;

    use super::*;

    fn write(path: &Path, call_id: &str, age_secs: u64) {
        fs::create_dir_all(path.parent().expect("a parent")).expect("created");
        fs::write(path, serde_json::json!({"call_id": call_id, "transcript": []}).to_string()).expect("written");
        let at = SystemTime::now() - Duration::from_secs(age_secs);
        File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_times(FileTimes::new().set_modified(at)))
            .expect("set");
    }

    #[test]
    fn records_of_every_spool_are_found_newest_first_with_their_status() {
        let root = tempfile::tempdir().expect("a directory");
        let root = root.path();
        write(&root.join("AJ_waiting.json"), "AJ_waiting", 10);
        write(&root.join("dead/AJ_refused.json"), "AJ_refused", 20);
        write(&root.join("delivered/AJ_taken.json"), "AJ_taken", 5);
        write(&root.join("workers/AW_2/delivered/AJ_other.json"), "AJ_other", 1);
        write(&root.join("workers/AW_2/AJ_other_waiting.json"), "AJ_other_waiting", 30);
        fs::write(root.join("dead/AJ_refused.answer.txt"), "HTTP 400").expect("written");
        fs::write(root.join("AJ_half.json.tmp"), "{").expect("written");
        fs::write(root.join("broken.json"), "not json").expect("written");
        std::os::unix::fs::symlink(root.join("AJ_waiting.json"), root.join("AJ_link.json")).expect("linked");

        let found: Vec<(String, Status, String)> = newest(root, 10)
            .into_iter()
            .map(|r| (r.record["call_id"].as_str().unwrap_or_default().to_owned(), r.status, r.spool))
            .collect();
        assert_eq!(
            found,
            [
                ("AJ_other".to_owned(), Status::Delivered, "workers/AW_2".to_owned()),
                ("AJ_taken".to_owned(), Status::Delivered, String::new()),
                ("AJ_waiting".to_owned(), Status::Pending, String::new()),
                ("AJ_refused".to_owned(), Status::Dead, String::new()),
                ("AJ_other_waiting".to_owned(), Status::Pending, "workers/AW_2".to_owned()),
            ]
        );
        assert_eq!(newest(root, 2).len(), 2, "bounded");
        assert!(newest(&root.join("missing"), 10).is_empty());
    }
}
