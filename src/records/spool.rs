//! The spool directory: records as files that survive a crash at any instant.
//!
//! `<id>.json` waits for n8n; `dead/<id>.json` was refused by it, with its answer in
//! `dead/<id>.answer.txt`; `active/<id>.json` is the checkpoint of a call still running, already
//! shaped as the record it becomes should its worker die; `delivered/<id>.json` is one of the last
//! records n8n took (`delivered.rs`); `*.tmp` are writes in progress; `.lock` is held by the one
//! process using the spool. A file is written under a temporary name, fsynced, renamed into place and its
//! directory fsynced, so after a crash or a power cut a record is either whole under its name or
//! not there at all (and then its `submit` never returned). Leftover temporary files were never
//! acknowledged, so opening the spool removes them.
//!
//! Whoever holds the lock is the only writer of `active/`, so a checkpoint found there when the
//! spool is opened belongs to a call whose worker died: it becomes a waiting record (unless the
//! call's real record made it in before the death), and the call is delivered up to its last
//! checkpoint. Checkpoints are written, fsynced and renamed, without the directory fsync records
//! get: a power cut may cost the newest checkpoint, never a record.
//!
//! Records hold names, phones, emails and transcripts, so only the worker's user may read them:
//! the spool and `dead/` are created 0700 and every file in them 0600, whatever the umask; a spool
//! an earlier version (or a person) left open to others is used, with a warning saying how to
//! close it. `.lock` is never followed when it is a symbolic link: whoever can place one could
//! otherwise make the worker create or lock a file anywhere its user may write.
//!
//! A spool is opened in one of three ways: `open` (one process's spool, created if needed),
//! `create_locked` (a worker's new sub-spool, locked before it appears under its name) and
//! `open_orphan` (another worker's sub-spool, taken only if that worker is gone; see `workers`).
//!
//! Plain blocking `std::fs`: the outbox runs these on tokio's blocking threads.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::RecordsError;
use super::delivered::{self, DELIVERED};
use super::id::RecordId;

const LOCK: &str = ".lock";
const DEAD: &str = "dead";
const ACTIVE: &str = "active";
const RECORD: &str = ".json";
const ANSWER: &str = ".answer.txt";
const TMP: &str = ".tmp";

/// Only the worker's user may list or enter the spool and `dead/`.
const DIR_MODE: u32 = 0o700;
/// Only the worker's user may read or write records, answers and the lock.
const FILE_MODE: u32 = 0o600;
/// Permission bits that let the file's group or anyone else in.
const OPEN_TO_OTHERS: u32 = 0o077;

pub(super) struct Spool {
    dir: PathBuf,
    dead: PathBuf,
    active: PathBuf,
    delivered: PathBuf,
    /// Locked for the spool's lifetime. Two workers sharing a spool would send each record twice
    /// and race on its removal; the OS drops the lock when the process dies, even by kill -9.
    _lock: File,
    /// Makes "is this id free?" and "put it there" one step for concurrent submits (and
    /// promotions of checkpoints) of this process, so a second record under one id never replaces
    /// the first.
    publishing: Mutex<()>,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RecordsError {
    let path = path.to_path_buf();
    move |source| RecordsError::Io { action, path, source }
}

/// Makes renames and removals in `dir` survive a power cut, not only a crash.
fn sync_dir(dir: &Path) -> Result<(), RecordsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync", dir))
}

/// Writes `bytes` to a new file at `path` and flushes them to the disk; no file is left behind
/// on failure.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RecordsError> {
    let written = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|source| {
        let _ = fs::remove_file(path);
        RecordsError::Io { action: "write", path: path.to_path_buf(), source }
    })
}

/// A temporary name no other write uses, so concurrent writes never share a file.
fn temporary(dir: &Path, id: &RecordId) -> PathBuf {
    dir.join(format!("{id}.{:016x}{TMP}", rand::random::<u64>()))
}

impl Spool {
    /// Creates the spool if needed, takes its lock and removes what a crash left half-written.
    pub fn open(dir: &Path) -> Result<Self, RecordsError> {
        let existed = dir.is_dir();
        if !existed {
            // Directories above the spool hold nothing private; they get the usual permissions.
            let parent = parent_of(dir);
            fs::create_dir_all(parent).map_err(io_error("create", parent))?;
            create_private_dir(dir)?;
            sync_dir(parent)?;
        }
        create_places(dir)?;
        let lock_path = dir.join(LOCK);
        let lock = open_lock(&lock_path)?;
        if !try_lock(&lock, &lock_path)? {
            return Err(RecordsError::Locked { dir: dir.to_path_buf(), lock: lock_path });
        }
        Self::locked(dir, lock)
    }

    /// A new spool at `dir`, which must not exist yet, locked before it appears under its name:
    /// a worker scanning the directory above never sees it unlocked and takes it for an orphan.
    /// It is built under a hidden name (scans skip those) and renamed into place.
    pub fn create_locked(dir: &Path) -> Result<Self, RecordsError> {
        let parent = parent_of(dir);
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("spool");
        let staging = parent.join(format!(".{name}.new"));
        create_private_dir(&staging)?;
        create_places(&staging)?;
        let staged_lock = staging.join(LOCK);
        let lock = open_lock(&staged_lock)?;
        if !try_lock(&lock, &staged_lock)? {
            return Err(RecordsError::Locked { dir: staging, lock: staged_lock });
        }
        fs::rename(&staging, dir).map_err(io_error("move into place", &staging))?;
        sync_dir(parent)?;
        Self::locked(dir, lock)
    }

    /// Takes the spool at `dir` if no living process holds it: `None` while its worker lives, or
    /// when another process took it first (and may have removed it since).
    pub fn open_orphan(dir: &Path) -> Result<Option<Self>, RecordsError> {
        let lock_path = dir.join(LOCK);
        let lock = match open_lock(&lock_path) {
            Ok(lock) => lock,
            Err(RecordsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        if !try_lock(&lock, &lock_path)? {
            return Ok(None);
        }
        // Whoever adopted it before us removes the lock file while holding it: the file we locked
        // is then no longer the one under the name.
        let held = lock.metadata().map_err(io_error("inspect", &lock_path))?;
        match fs::symlink_metadata(&lock_path) {
            Ok(named) if named.ino() == held.ino() && named.dev() == held.dev() => {}
            _ => return Ok(None),
        }
        create_places(dir)?;
        Self::locked(dir, lock).map(Some)
    }

    /// The spool whose lock is held: removes what a crash left half-written and delivers the
    /// checkpoints of calls whose worker died.
    fn locked(dir: &Path, lock: File) -> Result<Self, RecordsError> {
        let spool = Self {
            dir: dir.to_path_buf(),
            dead: dir.join(DEAD),
            active: dir.join(ACTIVE),
            delivered: dir.join(DELIVERED),
            _lock: lock,
            publishing: Mutex::new(()),
        };
        for place in [&spool.dir, &spool.dead, &spool.active] {
            remove_unfinished(place)?;
            sync_dir(place)?;
        }
        spool.recover_orphans()?;
        if let Some(open) = exposure(&spool.dir)? {
            tracing::warn!(
                dir = %spool.dir.display(),
                mode = %format_args!("{:o}", open.mode),
                files_open_to_others = open.readable_files,
                "the call record spool is open to other users, and call records hold personal data; \
                 close it with `chmod -R go-rwx {}` (the worker creates new files private)",
                spool.dir.display()
            );
        }
        Ok(spool)
    }

    /// Moves everything `other` holds into this spool: its waiting records (its checkpoints
    /// became records when it was opened), its dead records with their answers and its delivered
    /// ones (the archive prunes itself at the next delivery). A rename
    /// each, between two locked spools, so a record is always in exactly one of them. Returns
    /// the records now waiting here.
    pub fn adopt_from(&self, other: &Spool, from: &str) -> Result<Vec<RecordId>, RecordsError> {
        let mut adopted = Vec::new();
        for id in other.list()? {
            let source = other.record(&id);
            let _publishing = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
            let to = self.record(&id);
            let dead = self.dead.join(format!("{id}{RECORD}"));
            match (to.try_exists(), dead.try_exists()) {
                (Ok(false), Ok(false)) => {
                    fs::rename(&source, &to).map_err(io_error("adopt", &source))?;
                    adopted.push(id);
                }
                (Ok(_), Ok(_)) => {
                    // The same call's record is here already: sending this one too would make
                    // n8n see the call twice, so it is kept aside for a person.
                    let aside = self.dead.join(format!("{id}{RECORD}.from-{from}"));
                    fs::rename(&source, &aside).map_err(io_error("adopt", &source))?;
                    tracing::warn!(%id, file = %aside.display(), "an adopted call record has the id of one already here; it is kept in dead/ and not sent");
                }
                (Err(source), _) => return Err(RecordsError::Io { action: "check", path: to, source }),
                (_, Err(source)) => return Err(RecordsError::Io { action: "check", path: dead, source }),
            }
        }
        for (theirs, ours) in [(&other.dead, &self.dead), (&other.delivered, &self.delivered)] {
            for entry in fs::read_dir(theirs).map_err(io_error("read", theirs))? {
                let entry = entry.map_err(io_error("read", theirs))?;
                if !entry.file_type().map_err(io_error("inspect", &entry.path()))?.is_file() {
                    continue;
                }
                let name = entry.file_name();
                let mut to = ours.join(&name);
                if to.try_exists().map_err(io_error("check", &to))? {
                    to = ours.join(format!("{}.from-{from}", name.to_string_lossy()));
                }
                fs::rename(entry.path(), &to).map_err(io_error("adopt", &entry.path()))?;
            }
        }
        for place in [&self.dir, &self.dead, &self.delivered, &other.dir, &other.dead, &other.delivered] {
            sync_dir(place)?;
        }
        Ok(adopted)
    }

    /// Removes an emptied spool while still holding its lock: `dead/`, `active/`, `delivered/`
    /// and `.lock`,
    /// and the directory itself when `whole` (the top of an older version's spool is kept, as
    /// the workers' spools live in it). Fails, leaving the rest, on anything left in it.
    pub fn retire(self, whole: bool) -> Result<(), RecordsError> {
        for place in [&self.active, &self.dead, &self.delivered] {
            fs::remove_dir(place).map_err(io_error("remove", place))?;
        }
        let lock = self.dir.join(LOCK);
        fs::remove_file(&lock).map_err(io_error("remove", &lock))?;
        if whole {
            fs::remove_dir(&self.dir).map_err(io_error("remove", &self.dir))?;
        }
        sync_dir(parent_of(&self.dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record(&self, id: &RecordId) -> PathBuf {
        self.dir.join(format!("{id}{RECORD}"))
    }

    fn checkpoint(&self, id: &RecordId) -> PathBuf {
        self.active.join(format!("{id}{RECORD}"))
    }

    /// Keeps the latest checkpoint of a running call, replacing the one before.
    pub fn save_active(&self, id: &RecordId, body: &[u8]) -> Result<(), RecordsError> {
        let tmp = temporary(&self.active, id);
        write_synced(&tmp, body)?;
        let path = self.checkpoint(id);
        fs::rename(&tmp, &path).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            RecordsError::Io { action: "rename into place", path, source }
        })
    }

    /// Forgets a call's checkpoint once its record is stored.
    pub fn remove_active(&self, id: &RecordId) -> Result<(), RecordsError> {
        let path = self.checkpoint(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RecordsError::Io { action: "remove", path, source }),
        }
    }

    /// Turns a call's checkpoint into its waiting record, unless the call's own record is
    /// already here (waiting or dead), in which case the checkpoint is dropped. True when a
    /// record was added.
    pub fn promote(&self, id: &RecordId) -> Result<bool, RecordsError> {
        let from = self.checkpoint(id);
        let promoted = {
            let _publishing = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
            let to = self.record(id);
            let dead = self.dead.join(format!("{id}{RECORD}"));
            match (from.try_exists(), to.try_exists(), dead.try_exists()) {
                (Ok(false), _, _) => return Ok(false),
                (Ok(true), Ok(false), Ok(false)) => {
                    fs::rename(&from, &to).map_err(io_error("move a checkpoint out of active/", &from))?;
                    true
                }
                (Ok(true), Ok(true), _) | (Ok(true), _, Ok(true)) => {
                    fs::remove_file(&from).map_err(io_error("remove", &from))?;
                    false
                }
                (Err(source), _, _) => return Err(RecordsError::Io { action: "check", path: from, source }),
                (_, Err(source), _) => return Err(RecordsError::Io { action: "check", path: to, source }),
                (_, _, Err(source)) => return Err(RecordsError::Io { action: "check", path: dead, source }),
            }
        };
        sync_dir(&self.active)?;
        sync_dir(&self.dir)?;
        Ok(promoted)
    }

    /// Every checkpoint in `active/` is a call whose worker died (the lock says no one else is
    /// writing them): each becomes a record to deliver.
    fn recover_orphans(&self) -> Result<(), RecordsError> {
        for entry in fs::read_dir(&self.active).map_err(io_error("read", &self.active))? {
            let entry = entry.map_err(io_error("read", &self.active))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(RECORD)).and_then(|n| RecordId::parse(n).ok())
            else {
                continue;
            };
            if self.promote(&id)? {
                tracing::warn!(
                    %id,
                    "a call was cut off when its worker died; its record up to the last turn is delivered with \
                     end_reason worker_lost"
                );
            }
        }
        Ok(())
    }

    /// Stores a record durably; it is refused when its id is already waiting or dead, because
    /// n8n would take a second record under the same `Idempotency-Key` for a duplicate.
    pub fn put(&self, id: &RecordId, body: &[u8]) -> Result<(), RecordsError> {
        let path = self.record(id);
        let tmp = temporary(&self.dir, id);
        write_synced(&tmp, body)?;
        let published = {
            let _publishing = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
            let dead = self.dead.join(format!("{id}{RECORD}"));
            match (path.try_exists(), dead.try_exists()) {
                (Ok(false), Ok(false)) => fs::rename(&tmp, &path).map_err(io_error("rename into place", &tmp)),
                (Ok(_), Ok(_)) => Err(RecordsError::Duplicate { id: id.to_string(), dir: self.dir.clone() }),
                (Err(source), _) => Err(RecordsError::Io { action: "check", path, source }),
                (_, Err(source)) => Err(RecordsError::Io { action: "check", path: dead, source }),
            }
        };
        if published.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        published?;
        sync_dir(&self.dir)
    }

    /// Every waiting record, oldest first (by modification time, which a rename keeps; ties by
    /// id), so a restart sends them in the order the calls ended.
    pub fn list(&self) -> Result<Vec<RecordId>, RecordsError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error("read", &self.dir))? {
            let entry = entry.map_err(io_error("read", &self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(RECORD)) else { continue };
            let Ok(id) = RecordId::parse(stem) else {
                tracing::warn!(file = %entry.path().display(), "not a call record name; it is never sent");
                continue;
            };
            let metadata = entry.metadata().map_err(io_error("read", &entry.path()))?;
            if metadata.is_file() {
                found.push((metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH), id));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// The record's bytes exactly as stored, or `None` when it is no longer in the spool.
    pub fn read(&self, id: &RecordId) -> Result<Option<Vec<u8>>, RecordsError> {
        let path = self.record(id);
        match fs::read(&path) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RecordsError::Io { action: "read", path, source }),
        }
    }

    /// Takes a record n8n has acknowledged out of the waiting ones, into `delivered/`, which
    /// keeps the last `keep`.
    pub fn deliver(&self, id: &RecordId, keep: usize) -> Result<(), RecordsError> {
        delivered::archive(&self.record(id), &self.delivered, keep)?;
        sync_dir(&self.delivered)?;
        sync_dir(&self.dir)
    }

    /// Moves a record n8n refused to `dead/`, with n8n's answer beside it, and returns where it
    /// now is: kept for a person to fix and resend, never sent again by itself.
    pub fn bury(&self, id: &RecordId, answer: &str) -> Result<PathBuf, RecordsError> {
        let answer_path = self.dead.join(format!("{id}{ANSWER}"));
        let tmp = temporary(&self.dead, id);
        write_synced(&tmp, answer.as_bytes())?;
        if let Err(error) = fs::rename(&tmp, &answer_path).map_err(io_error("rename into place", &tmp)) {
            let _ = fs::remove_file(&tmp);
            return Err(error);
        }
        let from = self.record(id);
        let to = self.dead.join(format!("{id}{RECORD}"));
        fs::rename(&from, &to).map_err(io_error("move to dead/", &from))?;
        sync_dir(&self.dead)?;
        sync_dir(&self.dir)?;
        Ok(to)
    }
}

/// The directory `dir` is in; `.` for a bare name.
fn parent_of(dir: &Path) -> &Path {
    dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates `dead/`, `active/` and `delivered/` in the spool `dir` where missing.
fn create_places(dir: &Path) -> Result<(), RecordsError> {
    for place in [dir.join(DEAD), dir.join(ACTIVE), dir.join(DELIVERED)] {
        if !place.is_dir() {
            create_private_dir(&place)?;
        }
    }
    Ok(())
}

/// Takes `lock` without waiting: false when another process holds it.
fn try_lock(lock: &File, path: &Path) -> Result<bool, RecordsError> {
    match lock.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(source)) => Err(RecordsError::Io { action: "lock", path: path.to_path_buf(), source }),
    }
}

/// Creates one directory only its owner may use, whatever the umask.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), RecordsError> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Another process made it in the meantime; its permissions are checked like any other.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(source) => return Err(RecordsError::Io { action: "create", path: dir.to_path_buf(), source }),
    }
    // A strict umask (0277) can take the owner's own bits away; this gives them back.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io_error("set permissions of", dir))
}

/// Opens (creates) the lock file without following a symbolic link in its place.
fn open_lock(path: &Path) -> Result<File, RecordsError> {
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(file) => Ok(file),
        // O_NOFOLLOW on a symbolic link fails with ELOOP.
        Err(_) if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            Err(RecordsError::SymlinkedLock { lock: path.to_path_buf() })
        }
        Err(source) => Err(RecordsError::Io { action: "open", path: path.to_path_buf(), source }),
    }
}

/// How far a spool is open to users other than its owner.
#[derive(Debug, PartialEq, Eq)]
struct Exposure {
    /// The spool directory's permission bits.
    mode: u32,
    /// Records and answers (waiting, in `dead/` or in `delivered/`) that others may read once in the directory.
    readable_files: usize,
}

/// `None` when only the owner may use the spool. The spool directory decides: others who cannot
/// enter it cannot reach what it holds, whatever the files' own permissions; through a directory
/// they may list they learn call ids, and through one they may enter they read records.
fn exposure(dir: &Path) -> Result<Option<Exposure>, RecordsError> {
    let mode = fs::metadata(dir).map_err(io_error("inspect", dir))?.permissions().mode() & 0o7777;
    if mode & OPEN_TO_OTHERS == 0 {
        return Ok(None);
    }
    let mut readable_files = 0;
    for place in [dir.to_path_buf(), dir.join(DEAD), dir.join(ACTIVE), dir.join(DELIVERED)] {
        for entry in fs::read_dir(&place).map_err(io_error("read", &place))? {
            let entry = entry.map_err(io_error("read", &place))?;
            let metadata = entry.metadata().map_err(io_error("inspect", &entry.path()))?;
            if metadata.is_file() && metadata.permissions().mode() & OPEN_TO_OTHERS != 0 {
                readable_files += 1;
            }
        }
    }
    Ok(Some(Exposure { mode, readable_files }))
}

/// Removes the temporary files of writes a crash interrupted.
fn remove_unfinished(dir: &Path) -> Result<(), RecordsError> {
    for entry in fs::read_dir(dir).map_err(io_error("read", dir))? {
        let path = entry.map_err(io_error("read", dir))?.path();
        if path.is_file() && path.to_str().is_some_and(|p| p.ends_with(TMP)) {
            fs::remove_file(&path).map_err(io_error("remove", &path))?;
            tracing::info!(file = %path.display(), "removed a write that a crash interrupted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;
    use crate::records::test_files::{id, names};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("exists").permissions().mode() & 0o7777
    }

    #[test]
    fn a_record_is_stored_whole_under_its_name_and_read_back_exactly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path()).expect("opens");
        let body = b"{\"name\":\"\xe0\xa4\xa8\"}\n".to_vec();
        spool.put(&id("AJ_1"), &body).expect("stored");
        assert_eq!(fs::read(dir.path().join("AJ_1.json")).expect("on disk"), body);
        assert_eq!(
            names(dir.path()),
            [".lock", "AJ_1.json", "active", "dead", "delivered"],
            "no temporary file is left"
        );
        assert_eq!(spool.read(&id("AJ_1")).expect("readable"), Some(body.clone()));
        spool.deliver(&id("AJ_1"), 50).expect("delivered");
        assert_eq!(fs::read(dir.path().join("delivered/AJ_1.json")).expect("archived"), body);
        assert_eq!(spool.read(&id("AJ_1")).expect("readable"), None);
        assert!(spool.list().expect("listed").is_empty());
    }

    #[test]
    fn records_are_listed_oldest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path()).expect("opens");
        let base = SystemTime::now() - Duration::from_secs(60);
        for (name, age) in [("AJ_a", 1), ("AJ_b", 3), ("AJ_c", 2)] {
            spool.put(&id(name), b"{}").expect("stored");
            let file = File::options().write(true).open(dir.path().join(format!("{name}.json"))).expect("opens");
            file.set_modified(base - Duration::from_secs(age)).expect("settable");
        }
        fs::write(dir.path().join("notes.txt"), "not a record").expect("writable");
        let listed: Vec<String> = spool.list().expect("listed").iter().map(ToString::to_string).collect();
        assert_eq!(listed, ["AJ_b", "AJ_c", "AJ_a"]);
    }

    #[test]
    fn an_id_already_waiting_or_dead_is_refused_and_the_first_record_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path()).expect("opens");
        spool.put(&id("AJ_1"), b"first").expect("stored");
        let error = spool.put(&id("AJ_1"), b"second").expect_err("duplicate");
        assert!(matches!(error, RecordsError::Duplicate { .. }), "{error}");
        assert_eq!(spool.read(&id("AJ_1")).expect("readable").as_deref(), Some(&b"first"[..]));
        spool.bury(&id("AJ_1"), "HTTP 400").expect("buried");
        let error = spool.put(&id("AJ_1"), b"third").expect_err("dead duplicate");
        assert!(error.to_string().contains("AJ_1"), "{error}");
        assert_eq!(names(dir.path()), [".lock", "active", "dead", "delivered"], "no temporary file is left");
    }

    #[test]
    fn a_refused_record_moves_to_dead_with_the_answer_beside_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path()).expect("opens");
        spool.put(&id("AJ_1"), b"{\"a\":1}").expect("stored");
        let to = spool.bury(&id("AJ_1"), "HTTP 422\n\nmissing phone").expect("buried");
        assert_eq!(to, dir.path().join("dead/AJ_1.json"));
        assert_eq!(fs::read(&to).expect("moved"), b"{\"a\":1}");
        let answer = fs::read_to_string(dir.path().join("dead/AJ_1.answer.txt")).expect("answer kept");
        assert_eq!(answer, "HTTP 422\n\nmissing phone");
        assert!(spool.list().expect("listed").is_empty(), "never sent again");
    }

    #[test]
    fn opening_removes_interrupted_writes_and_keeps_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(Spool::open(dir.path()).expect("opens"));
        fs::write(dir.path().join("AJ_1.json"), "{}").expect("writable");
        fs::write(dir.path().join("AJ_2.0123456789abcdef.tmp"), "{\"half").expect("writable");
        fs::write(dir.path().join("dead/AJ_3.0123456789abcdef.tmp"), "HTTP").expect("writable");
        let spool = Spool::open(dir.path()).expect("opens");
        assert_eq!(names(dir.path()), [".lock", "AJ_1.json", "active", "dead", "delivered"]);
        assert!(names(&dir.path().join("dead")).is_empty());
        assert_eq!(spool.list().expect("listed"), [id("AJ_1")]);
    }

    #[test]
    fn a_checkpoint_replaces_the_one_before_privately_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path()).expect("opens");
        spool.save_active(&id("AJ_live"), b"{\"turns\":1}").expect("saved");
        spool.save_active(&id("AJ_live"), b"{\"turns\":2}").expect("saved again");
        let active = dir.path().join("active");
        assert_eq!(names(&active), ["AJ_live.json"]);
        assert_eq!(fs::read(active.join("AJ_live.json")).expect("readable"), b"{\"turns\":2}");
        assert_eq!(mode(&active), 0o700);
        assert_eq!(mode(&active.join("AJ_live.json")), 0o600);
        assert!(spool.list().expect("listed").is_empty(), "a running call's checkpoint is not sent");
        spool.remove_active(&id("AJ_live")).expect("removed");
        spool.remove_active(&id("AJ_live")).expect("removing twice is fine");
        assert!(names(&active).is_empty());
    }

    #[test]
    fn opening_turns_orphaned_checkpoints_into_records_unless_the_real_record_is_there() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let spool = Spool::open(dir.path()).expect("opens");
            spool.save_active(&id("AJ_lost"), b"{\"end_reason\":\"worker_lost\"}").expect("saved");
            spool.save_active(&id("AJ_ended"), b"checkpoint").expect("saved");
            spool.put(&id("AJ_ended"), b"the real record").expect("stored");
            spool.save_active(&id("AJ_refused"), b"checkpoint").expect("saved");
            spool.put(&id("AJ_refused"), b"refused").expect("stored");
            spool.bury(&id("AJ_refused"), "HTTP 400").expect("buried");
            fs::write(dir.path().join("active/AJ_half.0123456789abcdef.tmp"), "{\"tr").expect("writable");
        }
        // The worker died holding these; the next one to take the lock finds them.
        let spool = Spool::open(dir.path()).expect("opens again");
        assert!(names(&dir.path().join("active")).is_empty(), "every checkpoint is settled");
        let mut waiting: Vec<String> = spool.list().expect("listed").iter().map(ToString::to_string).collect();
        waiting.sort();
        assert_eq!(waiting, ["AJ_ended", "AJ_lost"]);
        assert_eq!(
            spool.read(&id("AJ_lost")).expect("readable").as_deref(),
            Some(&b"{\"end_reason\":\"worker_lost\"}"[..])
        );
        assert_eq!(spool.read(&id("AJ_ended")).expect("readable").as_deref(), Some(&b"the real record"[..]));
        assert_eq!(mode(&dir.path().join("AJ_lost.json")), 0o600);
    }

    #[test]
    fn a_second_opener_is_refused_naming_the_directory_until_the_first_closes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Spool::open(dir.path()).expect("opens");
        let Err(error) = Spool::open(dir.path()) else { panic!("a second opener must be refused") };
        assert!(matches!(error, RecordsError::Locked { .. }), "{error}");
        assert!(error.to_string().contains(&dir.path().display().to_string()), "{error}");
        drop(first);
        Spool::open(dir.path()).expect("free again");
    }

    #[test]
    fn a_spool_in_a_new_directory_is_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nested = dir.path().join("data/outbox");
        let spool = Spool::open(&nested).expect("creates");
        spool.put(&id("AJ_1"), b"{}").expect("stored");
        assert!(nested.join("dead").is_dir());
    }

    #[test]
    fn only_the_owner_may_read_the_spool_and_everything_written_in_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool_dir = dir.path().join("data/outbox");
        let spool = Spool::open(&spool_dir).expect("creates");
        spool.put(&id("AJ_kept"), b"{\"phone\":\"+919876543210\"}").expect("stored");
        spool.put(&id("AJ_refused"), b"{}").expect("stored");
        spool.bury(&id("AJ_refused"), "HTTP 400").expect("buried");
        assert_eq!(mode(&spool_dir), 0o700, "the spool");
        assert_eq!(mode(&spool_dir.join("dead")), 0o700, "dead/");
        for file in [".lock", "AJ_kept.json", "dead/AJ_refused.json", "dead/AJ_refused.answer.txt"] {
            assert_eq!(mode(&spool_dir.join(file)), 0o600, "{file}");
        }
        assert!(exposure(&spool_dir).expect("inspected").is_none());
    }

    #[test]
    fn a_spool_open_to_others_is_reported_with_its_readable_files_and_still_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("dead")).expect("creatable");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("settable");
        for file in ["AJ_old.json", "dead/AJ_older.json"] {
            fs::write(dir.path().join(file), "{}").expect("writable");
            fs::set_permissions(dir.path().join(file), fs::Permissions::from_mode(0o644)).expect("settable");
        }
        let spool = Spool::open(dir.path()).expect("an open spool is still used");
        assert_eq!(exposure(dir.path()).expect("inspected"), Some(Exposure { mode: 0o755, readable_files: 2 }));
        assert_eq!(spool.list().expect("listed"), [id("AJ_old")]);
        drop(spool);

        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("settable");
        assert_eq!(exposure(dir.path()).expect("inspected"), None, "files in a closed spool are out of reach");
    }

    #[test]
    fn a_symlinked_lock_is_refused_and_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool_dir = dir.path().join("outbox");
        fs::create_dir(&spool_dir).expect("creatable");
        let target = dir.path().join("elsewhere");
        symlink(&target, spool_dir.join(".lock")).expect("symlink");
        let Err(error) = Spool::open(&spool_dir) else { panic!("a symlinked lock must be refused") };
        assert!(matches!(error, RecordsError::SymlinkedLock { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains(&spool_dir.join(".lock").display().to_string()) && text.contains("symbolic link"),
            "{text}"
        );
        assert!(!target.exists(), "the link's target was not created");

        fs::write(&target, "someone's file").expect("writable");
        assert!(Spool::open(&spool_dir).is_err(), "nor opened when it exists");
        assert_eq!(fs::read_to_string(&target).expect("readable"), "someone's file");
    }
}
