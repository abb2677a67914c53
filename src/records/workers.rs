//! Many workers on one spool volume (`docker compose up --scale worker=N`).
//!
//! Each worker keeps its records in its own sub-spool, `SPOOL_DIR/workers/<worker id>/`, laid out
//! like a single spool and locked while the worker lives: workers never touch each other's
//! records, so nothing is sent twice. A worker that dies leaves its sub-spool behind, its lock
//! released by the OS (even after kill -9); the next worker to start takes that lock, moves the
//! records in (checkpoints of cut-off calls become `worker_lost` records as they are opened),
//! delivers them as its own and removes the emptied sub-spool (its `delivered/` archive moves
//! along). Records an older version kept
//! directly in `SPOOL_DIR` are adopted the same way, once no older worker holds `SPOOL_DIR/.lock`.
//!
//! Moving a record is one rename between two locked spools, so at any instant it is in exactly
//! one of them: a crash mid-adoption leaves the rest for the next start.

use std::fs;
use std::path::Path;

use super::RecordsError;
use super::spool::{Spool, create_private_dir};

/// The folder of `SPOOL_DIR` holding one sub-spool per worker.
pub(super) const WORKERS: &str = "workers";

/// What an older version's spool, kept directly in `SPOOL_DIR`, always has.
const LEGACY_MARKS: [&str; 4] = [".lock", "dead", "active", "delivered"];

/// A new id for this worker process: its host name (the container's, under compose), so a
/// person can tell whose sub-spool is whose, and a random part, as a restarted container keeps
/// its host name but must not take its former self for a living worker.
pub fn new_worker_id() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(63).collect();
    let random = rand::random::<u32>();
    if host.is_empty() { format!("worker-{random:08x}") } else { format!("{host}-{random:08x}") }
}

/// Opens this worker's sub-spool of the shared `dir` (a new one, locked before it is visible),
/// then adopts the sub-spools of workers that are gone and what an older version left in `dir`.
/// What cannot be adopted now (still locked, or a disk error) is left for a later start.
pub(super) fn open_shared(dir: &Path, worker: &str) -> Result<Spool, RecordsError> {
    if worker.is_empty()
        || worker.len() > 128
        || !worker.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(RecordsError::InvalidWorker { worker: worker.to_owned() });
    }
    let workers = dir.join(WORKERS);
    for place in [dir, &workers] {
        if !place.is_dir() {
            if let Some(parent) = place.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|source| RecordsError::Io {
                    action: "create",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            create_private_dir(place)?;
        }
    }
    let own = Spool::create_locked(&workers.join(worker))?;
    if holds_legacy(dir)? {
        adopt(&own, dir, "spool-dir", false);
    }
    let entries =
        fs::read_dir(&workers).map_err(|source| RecordsError::Io { action: "read", path: workers.clone(), source })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Hidden names are sub-spools being created; symbolic links are never followed.
        if name == worker || name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        adopt(&own, &entry.path(), name, true);
    }
    Ok(own)
}

/// Whether `dir` holds a spool of an older version: its lock, places or records.
fn holds_legacy(dir: &Path) -> Result<bool, RecordsError> {
    if LEGACY_MARKS.iter().any(|mark| dir.join(mark).exists()) {
        return Ok(true);
    }
    let entries =
        fs::read_dir(dir).map_err(|source| RecordsError::Io { action: "read", path: dir.to_path_buf(), source })?;
    Ok(entries.flatten().any(|entry| entry.file_name().to_string_lossy().ends_with(".json")))
}

/// Moves the records of the spool at `dir` into `own` if its worker is gone, then removes it.
fn adopt(own: &Spool, dir: &Path, name: &str, whole: bool) {
    let orphan = match Spool::open_orphan(dir) {
        Ok(Some(orphan)) => orphan,
        Ok(None) => {
            tracing::debug!(spool = %dir.display(), "a call record spool in use by a living worker; left alone");
            return;
        }
        Err(error) => {
            tracing::warn!(spool = %dir.display(), %error, "cannot take over the call records of a worker that is gone; a later start will try again");
            return;
        }
    };
    match own.adopt_from(&orphan, name) {
        Ok(adopted) => {
            tracing::info!(from = %dir.display(), records = adopted.len(), "took over the call records of a worker that is gone");
        }
        Err(error) => {
            tracing::warn!(from = %dir.display(), %error, "took over only part of the call records of a worker that is gone; a later start takes the rest");
            return;
        }
    }
    if let Err(error) = orphan.retire(whole) {
        tracing::warn!(spool = %dir.display(), %error, "cannot remove the emptied spool of a worker that is gone; something else is in it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::id::RecordId;
    use crate::records::test_files::{id, names};

    fn sorted(ids: Vec<RecordId>) -> Vec<String> {
        let mut ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_gone_workers_records_checkpoints_and_dead_move_to_the_next_and_its_spool_is_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let gone = open_shared(dir.path(), "w-gone").expect("opens");
            gone.put(&id("AJ_wait"), b"waiting").expect("stored");
            gone.save_active(&id("AJ_cut"), b"{\"end_reason\":\"worker_lost\"}").expect("saved");
            gone.put(&id("AJ_bad"), b"refused").expect("stored");
            gone.bury(&id("AJ_bad"), "HTTP 400").expect("buried");
        }
        let next = open_shared(dir.path(), "w-next").expect("opens");
        assert_eq!(names(&dir.path().join(WORKERS)), ["w-next"], "the gone worker's spool is removed");
        assert_eq!(sorted(next.list().expect("listed")), ["AJ_cut", "AJ_wait"]);
        assert_eq!(
            next.read(&id("AJ_cut")).expect("readable").as_deref(),
            Some(&b"{\"end_reason\":\"worker_lost\"}"[..])
        );
        assert_eq!(names(&dir.path().join("workers/w-next/dead")), ["AJ_bad.answer.txt", "AJ_bad.json"]);
    }

    #[test]
    fn a_living_workers_spool_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let living = open_shared(dir.path(), "w-living").expect("opens");
        living.put(&id("AJ_mine"), b"mine").expect("stored");
        living.save_active(&id("AJ_running"), b"checkpoint").expect("saved");
        let other = open_shared(dir.path(), "w-other").expect("opens");
        assert!(other.list().expect("listed").is_empty(), "nothing taken from a living worker");
        assert_eq!(living.list().expect("listed"), [id("AJ_mine")]);
        assert_eq!(names(&dir.path().join("workers/w-living/active")), ["AJ_running.json"]);
        assert_eq!(names(&dir.path().join(WORKERS)), ["w-living", "w-other"]);
    }

    #[test]
    fn records_an_older_version_kept_in_spool_dir_are_adopted_once_it_is_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = Spool::open(dir.path()).expect("an older worker's spool");
        old.put(&id("AJ_old"), b"old").expect("stored");
        old.save_active(&id("AJ_oldcut"), b"cut").expect("saved");
        let first = open_shared(dir.path(), "w-1").expect("opens beside a running older worker");
        assert!(first.list().expect("listed").is_empty(), "the older worker still runs");
        drop(old);
        let second = open_shared(dir.path(), "w-2").expect("opens");
        assert_eq!(sorted(second.list().expect("listed")), ["AJ_old", "AJ_oldcut"]);
        assert_eq!(names(dir.path()), ["workers"], "the older layout is gone");
        drop(second);

        fs::write(dir.path().join("AJ_copied.json"), b"copied in by hand").expect("writable");
        let third = open_shared(dir.path(), "w-3").expect("opens");
        assert_eq!(
            sorted(third.list().expect("listed")),
            ["AJ_copied", "AJ_old", "AJ_oldcut"],
            "a record left in SPOOL_DIR is adopted, and so is the sub-spool of the worker that stopped"
        );
        drop(first);
    }

    #[test]
    fn a_record_already_here_under_the_same_id_is_kept_aside_not_sent_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let gone = open_shared(dir.path(), "w-gone").expect("opens");
            gone.put(&id("AJ_same"), b"theirs").expect("stored");
        }
        let own = Spool::create_locked(&dir.path().join("workers/w-own")).expect("created");
        own.put(&id("AJ_same"), b"ours").expect("stored");
        let orphan = Spool::open_orphan(&dir.path().join("workers/w-gone")).expect("opens").expect("free");
        assert!(own.adopt_from(&orphan, "w-gone").expect("adopted").is_empty());
        assert_eq!(own.read(&id("AJ_same")).expect("readable").as_deref(), Some(&b"ours"[..]));
        assert_eq!(fs::read(dir.path().join("workers/w-own/dead/AJ_same.json.from-w-gone")).expect("kept"), b"theirs");
    }

    #[test]
    fn a_spool_taken_and_removed_by_another_adopter_is_not_taken_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open_shared(dir.path(), "w-gone").expect("opens"));
        let gone = dir.path().join("workers/w-gone");
        let first = Spool::open_orphan(&gone).expect("opens").expect("free");
        assert!(Spool::open_orphan(&gone).expect("checked").is_none(), "held by the first adopter");
        first.retire(true).expect("removed");
        assert!(Spool::open_orphan(&gone).expect("checked").is_none(), "gone");
        assert!(!gone.exists(), "not created again");
    }

    #[test]
    fn workers_starting_together_share_out_a_gone_workers_records_each_exactly_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids: Vec<String> = (0..40).map(|n| format!("AJ_{n}")).collect();
        let gone: Vec<Spool> =
            ["w-gone-a", "w-gone-b"].iter().map(|w| open_shared(dir.path(), w).expect("opens")).collect();
        for (half, spool) in gone.iter().enumerate() {
            for id in ids.iter().skip(half).step_by(2) {
                spool.put(&RecordId::parse(id).expect("valid"), id.as_bytes()).expect("stored");
            }
        }
        drop(gone);
        let starting: Vec<_> = (0..4)
            .map(|n| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || open_shared(&dir, &format!("w-new-{n}")).expect("opens"))
            })
            .collect();
        let spools: Vec<Spool> = starting.into_iter().map(|t| t.join().expect("no panic")).collect();
        let mut adopted: Vec<String> =
            spools.iter().flat_map(|s| s.list().expect("listed")).map(|id| id.to_string()).collect();
        adopted.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(adopted, expected, "every record once, none twice");
        let left = names(&dir.path().join(WORKERS));
        assert!(left.iter().all(|name| name.starts_with("w-new-")), "the gone workers' spools are removed: {left:?}");
    }

    #[test]
    fn new_worker_ids_name_folders_and_differ() {
        let (a, b) = (new_worker_id(), new_worker_id());
        assert_ne!(a, b);
        let dir = tempfile::tempdir().expect("temp dir");
        open_shared(dir.path(), &a).expect("a valid folder name");
    }

    #[test]
    fn a_worker_id_that_cannot_name_a_folder_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        for bad in ["", "../x", "a/b", ".hidden"] {
            let Err(error) = open_shared(dir.path(), bad) else { panic!("`{bad}` must be refused") };
            assert!(error.to_string().contains("worker id"), "{error}");
        }
    }
}
