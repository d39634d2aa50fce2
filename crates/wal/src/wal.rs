//! The public handle: open and replay, append, rotate, release, shutdown.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::segment::{self, HEADER_LEN, RECORD_HEADER_LEN};
use crate::writer::{Command, Writer};

/// Where and how the log is written.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory holding the segment files; created when missing.
    pub dir: PathBuf,
    /// A segment is closed and the next one started once a batch would take it past this size.
    pub segment_max_bytes: u64,
    /// Largest accepted record payload (at most `u32::MAX`); replay treats larger lengths as
    /// corruption.
    pub max_record_bytes: usize,
    /// `fdatasync` every batch before acknowledging it. Turn off only for tests and benchmarks.
    pub fsync: bool,
}

impl WalOptions {
    /// Options with the defaults: 64 MiB segments, 64 MiB records, fsync on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_max_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
            fsync: true,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.max_record_bytes == 0 || self.max_record_bytes > u32::MAX as usize {
            return Err(Error::InvalidOptions(format!(
                "max_record_bytes must be between 1 and {}, got {}",
                u32::MAX,
                self.max_record_bytes
            )));
        }
        if self.segment_max_bytes <= HEADER_LEN + RECORD_HEADER_LEN {
            return Err(Error::InvalidOptions(format!(
                "segment_max_bytes must be above {}, got {}",
                HEADER_LEN + RECORD_HEADER_LEN,
                self.segment_max_bytes
            )));
        }
        Ok(())
    }
}

/// One record found at open, in the order it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedRecord {
    /// The segment holding the record; pass it to [`Wal::release_through`] once the data is
    /// stored elsewhere.
    pub segment: u64,
    /// The bytes given to [`Wal::append`].
    pub payload: Vec<u8>,
}

/// Counters since open, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records acknowledged as written.
    pub records: u64,
    /// Bytes written for those records, framing included.
    pub bytes: u64,
    /// Batches written (one `write_all` each).
    pub batches: u64,
    /// `fdatasync` calls that succeeded for batches.
    pub syncs: u64,
}

/// State shared by the handle and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) active_segment: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) syncs: AtomicU64,
    #[cfg(test)]
    pub(crate) fail_next_write: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Inner {
    opts: WalOptions,
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// A write-ahead log of opaque records with group commit. Cheap to clone; all clones share one
/// writer thread.
///
/// Appends from many tasks are queued; the writer thread writes everything queued with one
/// `write_all` and one `fdatasync`, then answers each caller. Dropping the last handle stops
/// the writer after it drains the queue.
#[derive(Debug, Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

impl Wal {
    /// Opens (creating if needed) the log in `opts.dir`, replays every segment in order and
    /// starts a fresh segment for new appends. Blocking: call it before serving, or from
    /// `spawn_blocking`.
    ///
    /// Corruption stops the replay of the affected segment with a warning: a torn tail of the
    /// newest segment is truncated; anything else (a checksum mismatch, damage in an older
    /// segment) leaves the file as it is. Replay goes on with the next segment either way.
    pub fn open(opts: WalOptions) -> Result<(Wal, Vec<ReplayedRecord>)> {
        opts.validate()?;
        fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
        let seqs = segment::list_segments(&opts.dir)?;
        let mut replayed = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let is_newest = i + 1 == seqs.len();
            let records = segment::replay_segment(
                &opts.dir,
                seq,
                is_newest,
                opts.max_record_bytes,
                opts.fsync,
            )?;
            replayed.extend(records.into_iter().map(|payload| ReplayedRecord {
                segment: seq,
                payload,
            }));
        }
        let active = seqs.last().map_or(1, |last| last + 1);
        let file = segment::create_segment(&opts.dir, active, opts.fsync)?;
        tracing::info!(
            dir = %opts.dir.display(),
            segments = seqs.len(),
            records = replayed.len(),
            active,
            "wal opened"
        );

        let shared = Arc::new(Shared::default());
        shared.active_segment.store(active, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            opts.dir.clone(),
            opts.segment_max_bytes,
            opts.fsync,
            Arc::clone(&shared),
            active,
            file,
        );
        let handle = std::thread::Builder::new()
            .name("fenrir-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(&opts.dir, e))?;
        let inner = Inner {
            opts,
            tx,
            shared,
            writer: Mutex::new(Some(handle)),
        };
        Ok((
            Wal {
                inner: Arc::new(inner),
            },
            replayed,
        ))
    }

    /// Appends one record and resolves once an `fdatasync` covering it has returned, with the
    /// sequence number of the segment holding it.
    ///
    /// Dropping the future does not withdraw the record: it may still be written.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64> {
        if payload.is_empty() {
            return Err(Error::EmptyRecord);
        }
        if payload.len() > self.inner.opts.max_record_bytes {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                max: self.inner.opts.max_record_bytes,
            });
        }
        let (done, reply) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Append { payload, done })
            .map_err(|_| Error::Closed)?;
        reply.await.map_err(|_| Error::Closed)?
    }

    /// Closes the active segment and starts a new one, returning its sequence number. Every
    /// append queued before this call is in an earlier segment.
    ///
    /// Blocks until the writer thread has done it (one file creation and sync): call it from
    /// `spawn_blocking` in async code.
    pub fn rotate(&self) -> Result<u64> {
        self.send_rotate(false)
    }

    /// As [`Wal::rotate`], but only when the active segment holds a record; returns the
    /// active segment's sequence number either way. Lets a caller whose data is all stored
    /// elsewhere close the segment so that it can be released, without leaving a trail of
    /// empty files when nothing was written.
    pub fn rotate_if_written(&self) -> Result<u64> {
        self.send_rotate(true)
    }

    fn send_rotate(&self, only_if_written: bool) -> Result<u64> {
        let (done, reply) = mpsc::sync_channel(1);
        self.inner
            .tx
            .send(Command::Rotate {
                only_if_written,
                done,
            })
            .map_err(|_| Error::Closed)?;
        reply.recv().map_err(|_| Error::Closed)?
    }

    /// Deletes every segment with sequence number `<= seq`, except the active one. Blocking
    /// (file deletions).
    pub fn release_through(&self, seq: u64) -> Result<()> {
        let dir = &self.inner.opts.dir;
        // The active segment only moves forward, so anything below the value read now is
        // closed for good.
        let active = self.active_segment();
        let mut removed = 0usize;
        for old in segment::list_segments(dir)? {
            if old > seq || old >= active {
                break;
            }
            let path = segment::segment_path(dir, old);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        if removed > 0 {
            if self.inner.opts.fsync {
                segment::sync_dir(dir)?;
            }
            tracing::debug!(through = seq, removed, "wal segments released");
        }
        Ok(())
    }

    /// The sequence number of the segment new appends go to.
    pub fn active_segment(&self) -> u64 {
        self.inner.shared.active_segment.load(Ordering::SeqCst)
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        let s = &self.inner.shared;
        WalStats {
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
        }
    }

    /// Writes everything queued so far, then stops the writer thread and waits for it. Later
    /// appends and rotations fail with [`Error::Closed`]. Blocking; idempotent.
    pub fn shutdown(&self) {
        // Fails only when the writer is already gone.
        let _ = self.inner.tx.send(Command::Shutdown);
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("wal writer thread panicked");
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn fail_next_write(&self) {
        self.inner
            .shared
            .fail_next_write
            .store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn open(dir: &Path) -> (Wal, Vec<ReplayedRecord>) {
        Wal::open(WalOptions::new(dir)).unwrap()
    }

    fn payloads(records: &[ReplayedRecord]) -> Vec<&[u8]> {
        records.iter().map(|r| r.payload.as_slice()).collect()
    }

    /// Counts WARN events emitted on the current thread.
    struct WarnCounter(Arc<AtomicUsize>);

    impl tracing::Subscriber for WarnCounter {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Opens the WAL and returns how many warnings the replay emitted.
    fn open_counting_warnings(dir: &Path) -> (Wal, Vec<ReplayedRecord>, usize) {
        let warnings = Arc::new(AtomicUsize::new(0));
        let (wal, replayed) =
            tracing::subscriber::with_default(WarnCounter(Arc::clone(&warnings)), || open(dir));
        (wal, replayed, warnings.load(Ordering::SeqCst))
    }

    #[test]
    fn append_then_replay_round_trip() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, replayed) = open(dir.path());
        assert!(replayed.is_empty());
        assert_eq!(wal.active_segment(), 1);
        for payload in [&b"alpha"[..], b"beta", &[0u8; 70_000]] {
            assert_eq!(rt.block_on(wal.append(payload.to_vec())).unwrap(), 1);
        }
        let stats = wal.stats();
        assert_eq!((stats.records, stats.batches, stats.syncs), (3, 3, 3));
        assert_eq!(stats.bytes, 3 * 8 + 5 + 4 + 70_000);
        wal.shutdown();

        let (wal, replayed, warnings) = open_counting_warnings(dir.path());
        assert_eq!(warnings, 0);
        assert_eq!(
            payloads(&replayed),
            vec![&b"alpha"[..], b"beta", &[0u8; 70_000]]
        );
        assert!(replayed.iter().all(|r| r.segment == 1));
        // Each open starts a fresh segment so replayed files are never appended to.
        assert_eq!(wal.active_segment(), 2);
        assert_eq!(rt.block_on(wal.append(b"gamma".to_vec())).unwrap(), 2);
        drop(wal);
        // Dropping the last handle stops the writer after draining; reopen sees everything.
        let (_, replayed) = open(dir.path());
        assert_eq!(
            payloads(&replayed),
            vec![&b"alpha"[..], b"beta", &[0u8; 70_000], b"gamma"]
        );
        assert_eq!(replayed[3].segment, 2);
    }

    #[test]
    fn concurrent_appenders_share_syncs() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path());
        const TASKS: u32 = 64;
        const PER_TASK: u32 = 8;
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let wal = wal.clone();
                    tokio::spawn(async move {
                        for i in 0..PER_TASK {
                            let payload = format!("task {t} record {i}").into_bytes();
                            assert_eq!(wal.append(payload).await.unwrap(), 1);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let stats = wal.stats();
        let total = u64::from(TASKS * PER_TASK);
        assert_eq!(stats.records, total);
        assert!(stats.syncs < total / 2, "{stats:?}");
        assert_eq!(stats.syncs, stats.batches);
        wal.shutdown();

        let (_, replayed) = open(dir.path());
        let mut got: Vec<String> = replayed
            .into_iter()
            .map(|r| String::from_utf8(r.payload).unwrap())
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..TASKS)
            .flat_map(|t| (0..PER_TASK).map(move |i| format!("task {t} record {i}")))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn torn_tail_at_every_offset_keeps_earlier_records_and_accepts_appends() {
        let rt = runtime();
        let source = tempfile::tempdir().unwrap();
        let (wal, _) = open(source.path());
        for payload in [&b"first"[..], b"second", b"the last record"] {
            rt.block_on(wal.append(payload.to_vec())).unwrap();
        }
        wal.shutdown();
        let bytes = fs::read(segment::segment_path(source.path(), 1)).unwrap();
        let last_start = bytes.len() - (8 + b"the last record".len());

        for cut in last_start..bytes.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = segment::segment_path(dir.path(), 1);
            fs::write(&path, &bytes[..cut]).unwrap();
            let (wal, replayed, warnings) = open_counting_warnings(dir.path());
            assert_eq!(
                payloads(&replayed),
                vec![&b"first"[..], b"second"],
                "cut {cut}"
            );
            // Cutting exactly at a record boundary leaves a clean segment.
            assert_eq!(warnings, usize::from(cut != last_start), "cut {cut}");
            assert_eq!(fs::metadata(&path).unwrap().len(), last_start as u64);
            rt.block_on(wal.append(b"after".to_vec())).unwrap();
            wal.shutdown();

            let (_, replayed, warnings) = open_counting_warnings(dir.path());
            assert_eq!(warnings, 0, "cut {cut}");
            assert_eq!(
                payloads(&replayed),
                vec![&b"first"[..], b"second", b"after"],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn flipped_byte_stops_its_segment_only() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path());
        for payload in [&b"one"[..], b"two", b"three"] {
            rt.block_on(wal.append(payload.to_vec())).unwrap();
        }
        assert_eq!(wal.rotate().unwrap(), 2);
        rt.block_on(wal.append(b"four".to_vec())).unwrap();
        wal.shutdown();

        let path = segment::segment_path(dir.path(), 1);
        let original = fs::read(&path).unwrap();
        let second_start = 8 + 8 + 3;
        // In turn: the length, the checksum and the payload of the second record.
        for flip in [second_start, second_start + 5, second_start + 9] {
            let mut bytes = original.clone();
            bytes[flip] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            let (wal, replayed, warnings) = open_counting_warnings(dir.path());
            assert_eq!(warnings, 1, "flip at {flip}");
            assert_eq!(
                payloads(&replayed),
                vec![&b"one"[..], b"four"],
                "flip at {flip}"
            );
            assert_eq!(
                replayed.iter().map(|r| r.segment).collect::<Vec<_>>(),
                vec![1, 2]
            );
            // Not a torn tail: the evidence stays on disk.
            assert_eq!(fs::read(&path).unwrap(), bytes);
            wal.shutdown();
        }
    }

    #[test]
    fn failed_write_is_reported_and_the_wal_recovers() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path());
        rt.block_on(wal.append(b"kept".to_vec())).unwrap();
        wal.fail_next_write();
        let err = rt.block_on(wal.append(vec![9u8; 4096])).unwrap_err();
        assert!(matches!(err, Error::Append(_)), "{err}");
        assert!(err.to_string().contains("injected write failure"), "{err}");
        assert_eq!(rt.block_on(wal.append(b"later".to_vec())).unwrap(), 1);
        assert_eq!(wal.stats().records, 2);
        wal.shutdown();

        let (_, replayed, warnings) = open_counting_warnings(dir.path());
        assert_eq!(warnings, 0);
        assert_eq!(payloads(&replayed), vec![&b"kept"[..], b"later"]);
    }

    #[test]
    fn segments_roll_by_size_and_on_rotate() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = WalOptions::new(dir.path());
        opts.segment_max_bytes = 100;
        let (wal, _) = Wal::open(opts.clone()).unwrap();
        // 8 header + 2 * (8 + 40) = 104 > 100: the second record starts segment 2.
        assert_eq!(rt.block_on(wal.append(vec![1; 40])).unwrap(), 1);
        assert_eq!(rt.block_on(wal.append(vec![2; 40])).unwrap(), 2);
        // A record larger than a whole segment still goes in, alone.
        assert_eq!(rt.block_on(wal.append(vec![3; 500])).unwrap(), 3);
        assert_eq!(rt.block_on(wal.append(vec![4; 10])).unwrap(), 4);
        assert_eq!(wal.rotate().unwrap(), 5);
        assert_eq!(wal.active_segment(), 5);
        assert_eq!(rt.block_on(wal.append(vec![5; 10])).unwrap(), 5);
        wal.shutdown();
        let (_, replayed) = Wal::open(opts).unwrap();
        let got: Vec<(u64, u8, usize)> = replayed
            .iter()
            .map(|r| (r.segment, r.payload[0], r.payload.len()))
            .collect();
        assert_eq!(
            got,
            vec![(1, 1, 40), (2, 2, 40), (3, 3, 500), (4, 4, 10), (5, 5, 10)]
        );
    }

    #[test]
    fn rotate_if_written_skips_an_empty_segment() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path());
        assert_eq!(wal.rotate_if_written().unwrap(), 1);
        rt.block_on(wal.append(vec![1])).unwrap();
        assert_eq!(wal.rotate_if_written().unwrap(), 2);
        assert_eq!(wal.rotate_if_written().unwrap(), 2);
        wal.release_through(1).unwrap();
        assert_eq!(segment::list_segments(dir.path()).unwrap(), vec![2]);
        wal.shutdown();
        let (_, replayed) = open(dir.path());
        assert!(replayed.is_empty());
    }

    #[test]
    fn release_deletes_closed_segments_only() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path());
        for i in 0..3u8 {
            rt.block_on(wal.append(vec![i + 1])).unwrap();
            wal.rotate().unwrap();
        }
        assert_eq!(
            segment::list_segments(dir.path()).unwrap(),
            vec![1, 2, 3, 4]
        );
        wal.release_through(2).unwrap();
        assert_eq!(segment::list_segments(dir.path()).unwrap(), vec![3, 4]);
        wal.release_through(u64::MAX).unwrap();
        assert_eq!(segment::list_segments(dir.path()).unwrap(), vec![4]);
        rt.block_on(wal.append(vec![9])).unwrap();
        wal.shutdown();
        let (_, replayed) = open(dir.path());
        assert_eq!(
            replayed,
            vec![ReplayedRecord {
                segment: 4,
                payload: vec![9]
            }]
        );
    }

    #[test]
    fn refuses_bad_records_options_and_use_after_shutdown() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = WalOptions::new(dir.path());
        opts.max_record_bytes = 16;
        let (wal, _) = Wal::open(opts.clone()).unwrap();
        let err = rt.block_on(wal.append(vec![0; 17])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wal record of 17 bytes exceeds the limit of 16 bytes"
        );
        assert!(matches!(
            rt.block_on(wal.append(Vec::new())),
            Err(Error::EmptyRecord)
        ));
        rt.block_on(wal.append(vec![0; 16])).unwrap();
        wal.shutdown();
        wal.shutdown();
        assert!(matches!(
            rt.block_on(wal.append(vec![1])),
            Err(Error::Closed)
        ));
        assert!(matches!(wal.rotate(), Err(Error::Closed)));

        opts.max_record_bytes = 0;
        assert!(matches!(
            Wal::open(opts.clone()),
            Err(Error::InvalidOptions(_))
        ));
        opts.max_record_bytes = 16;
        opts.segment_max_bytes = 16;
        assert!(matches!(Wal::open(opts), Err(Error::InvalidOptions(_))));
    }

    #[test]
    fn a_foreign_segment_header_fails_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment::segment_path(dir.path(), 1), b"NOTAWALFILE").unwrap();
        let err = Wal::open(WalOptions::new(dir.path())).unwrap_err();
        assert!(matches!(err, Error::BadHeader { .. }), "{err}");
    }
}
