//! The writer thread: drains queued appends, writes them with one `write_all` and one
//! `sync_data`, then completes every caller of the batch.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::segment::{self, HEADER_LEN, RECORD_HEADER_LEN};
use crate::wal::Shared;

/// Stop draining the queue once a batch holds this many bytes; the rest goes in the next batch.
const MAX_BATCH_BYTES: usize = 8 << 20;

pub(crate) enum Command {
    Append {
        payload: Vec<u8>,
        done: oneshot::Sender<Result<u64>>,
    },
    Rotate {
        /// Roll only when the active segment holds a record (an empty one is kept).
        only_if_written: bool,
        done: mpsc::SyncSender<Result<u64>>,
    },
    Shutdown,
}

struct Pending {
    payload: Vec<u8>,
    done: oneshot::Sender<Result<u64>>,
}

pub(crate) struct Writer {
    dir: PathBuf,
    segment_max_bytes: u64,
    fsync: bool,
    shared: Arc<Shared>,
    seq: u64,
    file: File,
    /// Offset just past the last durable record; the file may hold garbage beyond it after a
    /// failed write until `repair` succeeds.
    durable_len: u64,
    needs_repair: bool,
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(
        dir: PathBuf,
        segment_max_bytes: u64,
        fsync: bool,
        shared: Arc<Shared>,
        seq: u64,
        file: File,
    ) -> Self {
        Writer {
            dir,
            segment_max_bytes,
            fsync,
            shared,
            seq,
            file,
            durable_len: HEADER_LEN,
            needs_repair: false,
            buf: Vec::new(),
        }
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut control = None;
            let mut batch_bytes = 0;
            match first {
                Command::Append { payload, done } => {
                    batch_bytes += payload.len();
                    batch.push(Pending { payload, done });
                    while batch_bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(Command::Append { payload, done }) => {
                                batch_bytes += payload.len();
                                batch.push(Pending { payload, done });
                            }
                            Ok(other) => {
                                control = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                other => control = Some(other),
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            match control {
                Some(Command::Rotate {
                    only_if_written,
                    done,
                }) => {
                    let outcome = if only_if_written && self.durable_len == HEADER_LEN {
                        Ok(self.seq)
                    } else {
                        self.roll()
                    };
                    // The caller may have given up waiting; nothing to do then.
                    let _ = done.send(outcome);
                }
                Some(Command::Shutdown) => break,
                Some(Command::Append { .. }) | None => {}
            }
        }
        tracing::debug!(segment = self.seq, "wal writer stopped");
    }

    fn commit(&mut self, batch: &mut Vec<Pending>) {
        let batch_len: u64 = batch
            .iter()
            .map(|p| RECORD_HEADER_LEN + p.payload.len() as u64)
            .sum();
        let outcome = self.write_batch(batch, batch_len);
        // Counters first, so a caller that sees its answer also sees them.
        if outcome.is_ok() {
            let records = batch.len() as u64;
            self.shared.records.fetch_add(records, Ordering::Relaxed);
            self.shared.bytes.fetch_add(batch_len, Ordering::Relaxed);
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
        }
        for pending in batch.drain(..) {
            let reply = match &outcome {
                Ok(seq) => Ok(*seq),
                Err(e) => Err(Error::Append(Arc::clone(e))),
            };
            // A caller that dropped its future does not need the answer.
            let _ = pending.done.send(reply);
        }
    }

    fn write_batch(&mut self, batch: &[Pending], batch_len: u64) -> Result<u64, Arc<io::Error>> {
        if self.durable_len > HEADER_LEN && self.durable_len + batch_len > self.segment_max_bytes {
            self.roll().map_err(|e| Arc::new(into_io(e)))?;
        }
        if self.needs_repair {
            self.repair().map_err(Arc::new)?;
        }
        self.buf.clear();
        for pending in batch {
            segment::encode_record(&mut self.buf, &pending.payload);
        }
        match self.write_and_sync() {
            Ok(()) => {
                self.durable_len += batch_len;
                Ok(self.seq)
            }
            Err(e) => {
                tracing::error!(segment = self.seq, error = %e, records = batch.len(), "wal append failed");
                self.needs_repair = true;
                // Try at once so the segment on disk does not keep the partial batch; if this
                // fails too, the next batch tries again before writing.
                if let Err(repair) = self.repair() {
                    tracing::warn!(segment = self.seq, error = %repair, "wal could not truncate a failed write");
                }
                Err(Arc::new(e))
            }
        }
    }

    fn write_and_sync(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.shared.fail_next_write.swap(false, Ordering::SeqCst) {
            // Leave half the batch on disk, as a failing disk might.
            self.file.write_all(&self.buf[..self.buf.len() / 2])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.file.write_all(&self.buf)?;
        if self.fsync {
            self.file.sync_data()?;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Cuts the file back to the last durable record and moves the write position there.
    fn repair(&mut self) -> io::Result<()> {
        self.file.set_len(self.durable_len)?;
        self.file.seek(SeekFrom::Start(self.durable_len))?;
        if self.fsync {
            self.file.sync_all()?;
        }
        self.needs_repair = false;
        Ok(())
    }

    /// Closes the active segment and starts the next one; returns the new sequence number.
    fn roll(&mut self) -> Result<u64> {
        if self.needs_repair {
            if let Err(e) = self.repair() {
                // Replay stops at the garbage; records before it are intact.
                tracing::warn!(segment = self.seq, error = %e, "wal rolling past a segment with an untruncated failed write");
            }
        }
        let next = self.seq + 1;
        let file = segment::create_segment(&self.dir, next, self.fsync)?;
        self.seq = next;
        self.file = file;
        self.durable_len = HEADER_LEN;
        self.needs_repair = false;
        self.shared.active_segment.store(next, Ordering::SeqCst);
        tracing::debug!(segment = next, "wal segment started");
        Ok(next)
    }
}

fn into_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}
