//! Arbitrary bytes as a WAL segment file: opening the ingester replays them into heads or
//! returns an error, never panics.
//!
//! First byte even: the rest is the whole file. First byte odd: the rest is a list of
//! `u16 LE length | payload` records, framed here with a valid segment header and correct
//! checksums (so the fuzzer reaches the ingester's record decoding), and whatever does not
//! fit a whole record is appended as a torn tail.
#![no_main]

use std::sync::{Arc, OnceLock};

use fenrir_index::Index;
use fenrir_ingest::{IngestConfig, Ingester};
use fenrir_storage::InMemoryStore;
use libfuzzer_sys::fuzz_target;

fn frame(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() + 64);
    out.extend_from_slice(b"FWAL");
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut rest = records;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        if len == 0 || rest.len() - 2 < len {
            break;
        }
        let payload = &rest[2..2 + len];
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        out.extend_from_slice(payload);
        rest = &rest[2 + len..];
    }
    out.extend_from_slice(rest);
    out
}

fn index() -> Index {
    // Replay only fills heads; one index for every run keeps runs fast.
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX
        .get_or_init(|| Index::temporary().expect("temporary index"))
        .clone()
}

/// A fresh temporary directory, on tmpfs where there is one: creating and deleting files
/// on a disk file system costs more than the replay itself.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        frame(rest)
    };
    let dir = scratch_dir();
    let wal_dir = dir.path().join("wal");
    std::fs::create_dir(&wal_dir).expect("wal dir");
    std::fs::write(wal_dir.join("00000000000000000001.wal"), &file).expect("write segment");
    let mut cfg = IngestConfig::with_wal_dir(wal_dir);
    cfg.wal_fsync = false;
    // Small heads so that replay also seals chunks.
    cfg.head_max_bytes = 4096;
    cfg.block_bytes = 1024;
    cfg.zstd_level = 1;
    if let Ok(ingester) = Ingester::open(cfg, index(), Arc::new(InMemoryStore::new())) {
        ingester.shutdown_wal();
    }
});
