//! The last records n8n took, kept in `SPOOL_DIR/delivered/` for the operator's view (`/admin`
//! on the token server): a delivered record moves there instead of being deleted, and the
//! oldest beyond the bound are deleted, so the archive never grows past `keep` files. Like the
//! rest of the spool it holds personal data: the directory is 0700 and the files keep the 0600
//! they were written with (a rename keeps a file's mode).

use std::fs::{self, File, FileTimes};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::RecordsError;

pub(super) const DELIVERED: &str = "delivered";

/// How many delivered records a spool keeps unless told otherwise (RECORDS_KEEP_DELIVERED).
pub const DEFAULT_KEEP_DELIVERED: usize = 50;

/// Moves the delivered record at `record` into `archive` and deletes the oldest archived records
/// beyond `keep`. The moved file's time is set to now, so the archive's order is the order of
/// delivery, not of the calls.
pub(super) fn archive(record: &Path, archive: &Path, keep: usize) -> Result<(), RecordsError> {
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordsError::Io { action, path, source }
    };
    let Some(name) = record.file_name() else { return Ok(()) };
    let to = archive.join(name);
    match fs::rename(record, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RecordsError::Io { action: "move to delivered/", path: record.to_path_buf(), source });
        }
    }
    let now = FileTimes::new().set_modified(SystemTime::now());
    File::options().write(true).open(&to).and_then(|f| f.set_times(now)).map_err(io_error("touch", &to))?;
    prune(archive, keep)
}

/// Deletes the oldest records in `archive` beyond `keep`.
pub(super) fn prune(archive: &Path, keep: usize) -> Result<(), RecordsError> {
    let mut records = Vec::new();
    for entry in fs::read_dir(archive).map_err(|source| RecordsError::Io {
        action: "read",
        path: archive.to_path_buf(),
        source,
    })? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(metadata) = entry.metadata() else { continue };
        if metadata.is_file() && path.extension().is_some_and(|e| e == "json") {
            records.push((metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH), path));
        }
    }
    if records.len() <= keep {
        return Ok(());
    }
    records.sort();
    let excess = records.len() - keep;
    for (_, path) in records.into_iter().take(excess) {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(RecordsError::Io { action: "remove", path, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::time::Duration;

    use super::*;

    fn write(path: &Path) {
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("written");
    }

    #[test]
    fn the_archive_keeps_the_last_delivered_records_private() {
        let dir = tempfile::tempdir().expect("a directory");
        let kept = dir.path().join(DELIVERED);
        fs::create_dir(&kept).expect("created");
        for n in 0..4 {
            let record = dir.path().join(format!("AJ_{n}.json"));
            write(&record);
            // Modification times must differ for the order to be defined on coarse clocks.
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + n);
            File::options()
                .write(true)
                .open(&record)
                .and_then(|f| f.set_times(FileTimes::new().set_modified(at)))
                .expect("set");
            archive(&record, &kept, 2).expect("archived");
            assert!(!record.exists(), "moved out of the waiting records");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut names: Vec<String> = fs::read_dir(&kept)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["AJ_2.json", "AJ_3.json"], "the last two delivered");
        let mode = fs::metadata(kept.join("AJ_3.json")).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        archive(&dir.path().join("AJ_gone.json"), &kept, 2).expect("a record already gone is no error");
    }

    #[test]
    fn keeping_none_deletes_every_delivered_record() {
        let dir = tempfile::tempdir().expect("a directory");
        let record = dir.path().join("AJ_1.json");
        write(&record);
        archive(&record, dir.path(), 0).expect("archived then pruned");
        assert_eq!(fs::read_dir(dir.path()).expect("read").count(), 0);
    }
}
