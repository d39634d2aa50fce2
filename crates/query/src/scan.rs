//! Reading streams' entries in time order from their pieces (stored chunks, sealed chunks
//! in memory, head), with each distinct entry visited once.
//!
//! The visitor runs on the calling thread, in exactly the order of a sequential scan. Worker
//! threads (one per core) fetch, decompress and decode the blocks the scan will ask for
//! next, a bounded number ahead, so memory stays flat. A block nobody has started is
//! decoded by the caller itself, so the scan never waits on a worker that is busy elsewhere.
//!
//! Pieces whose time ranges do not overlap are streamed block by block. Overlapping pieces
//! (a flush in flight, out-of-order pushes across a seal, WAL replay after a crash) are
//! merged by timestamp as they stream; entries sharing one timestamp are ordered by line
//! and metadata and identical ones collapsed, the same rule Loki's merge iterator applies.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use fenrir_chunk::{
    decode_stored_block_parts, BlockMeta, BlockParts, ChunkDirectory, ChunkReader, DecodedBlock,
    EncodedChunk, DEFAULT_BLOCK_TARGET_RAW,
};
use fenrir_common::{Entry, LabelSet, Timestamp};
use fenrir_index::ChunkRef;
use fenrir_storage::{BlockingReader, ObjectStore};

use crate::{Direction, Error, Result};

/// One stream and where its data lives.
#[derive(Debug, Clone)]
pub(crate) struct StreamData {
    pub(crate) labels: LabelSet,
    pub(crate) pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Stored(ChunkRef),
    Sealed(Arc<EncodedChunk>),
    Head(Arc<Vec<Entry>>),
}

impl Piece {
    fn bounds(&self) -> (Timestamp, Timestamp) {
        match self {
            Piece::Stored(r) => (r.min_ts, r.max_ts),
            Piece::Sealed(c) => (c.meta.min_ts, c.meta.max_ts),
            Piece::Head(h) => (
                h.first().map_or(Timestamp::MAX, |e| e.ts),
                h.last().map_or(Timestamp::MIN, |e| e.ts),
            ),
        }
    }
}

/// What a visitor sees of an entry. Returns `false` to stop the scan of this stream.
pub(crate) type Visit<'v> = dyn FnMut(Timestamp, &str, &[(&str, &str)]) -> bool + 'v;

/// Stored chunks at least this long are read directory first, then block by block, when
/// the scan may stop early (log queries); smaller ones are read whole.
const SPARSE_READ_MIN_LEN: u64 = 128 << 10;
/// How much of a chunk's end to read for its directory on the first try.
const TAIL_GUESS: u64 = 4 << 10;

/// What a scan reads with: the object store, the query's cancel flag and the worker count.
#[derive(Clone)]
pub(crate) struct ScanContext {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The store's blocking reader, made for this query, when it has one: scan threads may
    /// block, and reading on them saves a trip through the runtime per chunk.
    pub(crate) reader: Option<Arc<dyn BlockingReader>>,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) cancel: Arc<AtomicBool>,
    /// Decoding threads, the caller's included; 0 or 1 decodes everything on the caller's
    /// thread.
    pub(crate) workers: usize,
    /// Blocks decompressed and decoded, over the engine's life.
    pub(crate) decoded: Arc<DecodeCounts>,
}

/// What scans decoded, over the engine's life.
#[derive(Debug, Default)]
pub(crate) struct DecodeCounts {
    /// Blocks decompressed and decoded.
    pub(crate) blocks: AtomicU64,
    /// Of those, blocks decoded without their line text.
    pub(crate) without_lines: AtomicU64,
    /// Of those, blocks decoded without their structured metadata.
    pub(crate) without_metadata: AtomicU64,
}

impl ScanContext {
    pub(crate) fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    fn fetch(&self, key: &str, range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
        Ok(match &self.reader {
            Some(reader) => reader.read_range(key, range)?,
            None => self.handle.block_on(self.store.get_range(key, range))?,
        })
    }
}

/// The limit of a log query once it has `limit` entries: entries on the far side cannot
/// win any more, so blocks holding only such entries are skipped without decoding.
/// The cutoff only ever moves towards the winning end, so a stale read is merely cautious.
#[derive(Debug)]
pub(crate) struct Cutoff {
    backward: bool,
    set: AtomicBool,
    ts: AtomicI64,
}

impl Cutoff {
    pub(crate) fn new(direction: Direction) -> Self {
        Cutoff {
            backward: direction == Direction::Backward,
            set: AtomicBool::new(false),
            ts: AtomicI64::new(0),
        }
    }

    /// Entries at `ts` or beyond it (older when backward, newer when forward) cannot win.
    pub(crate) fn raise(&self, ts: Timestamp) {
        self.ts.store(ts, Ordering::Relaxed);
        self.set.store(true, Ordering::Release);
    }

    /// Whether no entry in `[min_ts, max_ts]` can win.
    fn excludes(&self, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        if !self.set.load(Ordering::Acquire) {
            return false;
        }
        let cut = self.ts.load(Ordering::Relaxed);
        if self.backward {
            max_ts <= cut
        } else {
            min_ts >= cut
        }
    }
}

/// The time range and order of a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanRange {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) direction: Direction,
}

impl ScanRange {
    fn overlaps(&self, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        min_ts < self.end && max_ts >= self.start
    }

    fn contains(&self, ts: Timestamp) -> bool {
        ts >= self.start && ts < self.end
    }

    fn forward(&self) -> bool {
        self.direction == Direction::Forward
    }
}

/// Runs `body` with a [`Scanner`] over `streams`; decoding workers live as long as `body`.
/// `cutoff` (log queries) lets blocks that cannot win be skipped, and makes large stored
/// chunks be read block by block. `parts` says what the visitor reads of entries: blocks
/// of pieces that overlap no other are decoded with only those (the rest comes empty);
/// merged pieces are always decoded whole, since duplicates are found by line and
/// metadata.
pub(crate) fn with_scanner<T>(
    ctx: &ScanContext,
    streams: &[StreamData],
    range: ScanRange,
    cutoff: Option<&Cutoff>,
    parts: BlockParts,
    body: impl FnOnce(&mut Scanner<'_>) -> Result<T>,
) -> Result<T> {
    let plan = Plan::new(streams, range);
    // The caller decodes too (it helps rather than wait), so `ctx.workers` threads in all;
    // a worker per block beyond the first at most: tiny scans start no thread.
    let workers = ctx
        .workers
        .saturating_sub(1)
        .min(plan.blocks_hint.saturating_sub(1));
    // Log queries may stop early: read little ahead of them.
    let threads = workers + 1;
    let window = if cutoff.is_some() {
        threads
    } else {
        2 * threads
    };
    let shared = Shared {
        ctx,
        range,
        cutoff,
        sparse: cutoff.is_some(),
        parts,
        window,
        state: Mutex::new(State {
            pieces: plan.pieces.iter().map(|_| PieceState::default()).collect(),
            cursor: (0, 0),
            ahead: 0,
            done: false,
        }),
        wake: Condvar::new(),
        waiting: AtomicUsize::new(0),
        plan,
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| shared.work());
        }
        // Stops the workers however `body` ends.
        let _stop = StopOnDrop(&shared);
        let mut scanner = Scanner {
            shared: &shared,
            next_stream: 0,
        };
        body(&mut scanner)
    })
}

/// The order a sequential scan visits pieces in: streams in the given order, each
/// stream's groups of overlapping pieces in the scan's direction, each group's pieces in
/// the order a merge starts reading them.
struct Plan<'a> {
    pieces: Vec<&'a Piece>,
    /// Per piece, whether it is merged with others (a group of more than one).
    merged: Vec<bool>,
    /// Per stream, its groups as ranges of `pieces`.
    streams: Vec<Vec<std::ops::Range<usize>>>,
    /// About how many blocks the scan may read.
    blocks_hint: usize,
}

impl<'a> Plan<'a> {
    fn new(streams: &'a [StreamData], range: ScanRange) -> Self {
        let mut plan = Plan {
            pieces: Vec::new(),
            merged: Vec::new(),
            streams: Vec::with_capacity(streams.len()),
            blocks_hint: 0,
        };
        for data in streams {
            let mut pieces: Vec<&Piece> = data
                .pieces
                .iter()
                .filter(|p| {
                    let (lo, hi) = p.bounds();
                    range.overlaps(lo, hi)
                })
                .collect();
            pieces.sort_by_key(|p| p.bounds());
            // Group pieces whose time ranges overlap.
            let mut groups: Vec<Vec<&Piece>> = Vec::new();
            let mut group_end = Timestamp::MIN;
            for p in pieces {
                let (lo, hi) = p.bounds();
                match groups.last_mut() {
                    Some(g) if lo <= group_end => {
                        g.push(p);
                        group_end = group_end.max(hi);
                    }
                    _ => {
                        groups.push(vec![p]);
                        group_end = hi;
                    }
                }
            }
            if !range.forward() {
                groups.reverse();
                // A backward merge starts reading pieces by their newest entry.
                for g in &mut groups {
                    g.sort_by_key(|p| {
                        let (lo, hi) = p.bounds();
                        std::cmp::Reverse((hi, lo))
                    });
                }
            }
            let mut ranges = Vec::with_capacity(groups.len());
            for g in groups {
                let first = plan.pieces.len();
                let merged = g.len() > 1;
                for p in g {
                    let raw = match p {
                        Piece::Head(_) => 0,
                        Piece::Sealed(c) => c.meta.raw_bytes,
                        Piece::Stored(r) => r.raw_bytes,
                    };
                    if raw > 0 {
                        plan.blocks_hint += (raw as usize).div_ceil(DEFAULT_BLOCK_TARGET_RAW);
                    }
                    plan.pieces.push(p);
                    plan.merged.push(merged);
                }
                ranges.push(first..plan.pieces.len());
            }
            plan.streams.push(ranges);
        }
        plan
    }
}

/// A chunk ready for block reads.
struct Opened {
    source: Source,
    blocks: Vec<BlockMeta>,
    /// Indexes into `blocks` overlapping the scan range, in scan order.
    needed: Vec<usize>,
}

enum Source {
    /// The whole chunk is in memory.
    Whole(bytes::Bytes),
    Sealed(Arc<EncodedChunk>),
    /// Blocks are fetched one by one from the chunk at `ref.offset`.
    Sparse(ChunkRef),
}

#[derive(Default)]
enum Opening {
    #[default]
    NotYet,
    InProgress,
    Ready(Arc<Opened>),
    Failed(Option<Error>),
    /// Done with, or skipped: nothing more will be read from it.
    Released,
}

enum Slot {
    Idle,
    /// Being decoded (by a worker: counted in `State::ahead`).
    Decoding,
    Ready(DecodedBlock),
    Failed(Error),
    Skipped,
    Taken,
}

#[derive(Default)]
struct PieceState {
    open: Opening,
    /// One per `Opened::needed` entry.
    blocks: Vec<Slot>,
}

struct State {
    pieces: Vec<PieceState>,
    /// The next (piece, needed block) workers consider.
    cursor: (usize, usize),
    /// Blocks workers decoded or are decoding that the scan has not taken yet.
    ahead: usize,
    done: bool,
}

struct Shared<'a> {
    ctx: &'a ScanContext,
    plan: Plan<'a>,
    range: ScanRange,
    cutoff: Option<&'a Cutoff>,
    sparse: bool,
    /// What the visitor reads of single pieces' entries.
    parts: BlockParts,
    window: usize,
    state: Mutex<State>,
    wake: Condvar,
    /// Threads waiting on `wake`: a notification with none costs no system call.
    waiting: AtomicUsize,
}

struct StopOnDrop<'s, 'a>(&'s Shared<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.lock().done = true;
        self.0.notify();
    }
}

enum Job {
    Open(usize),
    Decode(usize, usize, Arc<Opened>),
}

enum Next {
    Job(Job),
    Wait,
    End,
}

impl<'a> Shared<'a> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the state consistent enough to stop.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a change of the state. Counted while the lock is held, so that a thread
    /// that changed the state since sees the waiter when it comes to notify.
    fn wait<'g>(&self, guard: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Wakes the waiting threads, after a change of the state made under the lock.
    fn notify(&self) {
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.wake.notify_all();
        }
    }

    fn excluded(&self, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        self.cutoff.is_some_and(|c| c.excludes(min_ts, max_ts))
    }

    /// A worker: reads ahead in plan order until the plan ends or the scan stops.
    fn work(&self) {
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if st.done || self.ctx.cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    match self.next_job(&mut st) {
                        Next::Job(job) => break job,
                        Next::Wait => st = self.wait(st),
                        Next::End => return,
                    }
                }
            };
            self.run(job);
        }
    }

    /// Does a read-ahead job and publishes its result.
    fn run(&self, job: Job) {
        match job {
            Job::Open(p) => {
                let result = self.open_piece(p);
                let mut st = self.lock();
                st.pieces[p].set_opened(result);
            }
            Job::Decode(p, k, opened) => {
                let result = self.decode(p, &opened, k);
                let mut st = self.lock();
                let slot = &mut st.pieces[p].blocks[k];
                if matches!(slot, Slot::Decoding) {
                    *slot = match result {
                        Ok(b) => Slot::Ready(b),
                        Err(e) => Slot::Failed(e),
                    };
                } else {
                    // The scan gave up on the piece meanwhile.
                    st.ahead -= 1;
                }
            }
        }
        self.notify();
    }

    /// Waits for a worker to finish something the scan needs. Rather than sleep, the
    /// scan's thread does the next read-ahead job itself when there is one: a sleep and a
    /// wake-up per block cost more than the waiting saves.
    fn help_or_wait<'g>(&'g self, mut st: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        if st.done {
            return self.wait(st);
        }
        match self.next_job(&mut st) {
            Next::Job(job) => {
                drop(st);
                self.run(job);
                self.lock()
            }
            Next::Wait | Next::End => self.wait(st),
        }
    }

    /// The next job at or after the cursor.
    fn next_job(&self, st: &mut State) -> Next {
        loop {
            let (p, k) = st.cursor;
            let Some(&piece) = self.plan.pieces.get(p) else {
                return Next::End;
            };
            let next_piece = (p + 1, 0);
            if matches!(piece, Piece::Head(_)) {
                st.cursor = next_piece;
                continue;
            }
            match &st.pieces[p].open {
                Opening::NotYet => {
                    let (lo, hi) = piece.bounds();
                    if self.excluded(lo, hi) {
                        st.pieces[p].open = Opening::Released;
                        st.cursor = next_piece;
                        continue;
                    }
                    if st.ahead >= self.window {
                        return Next::Wait;
                    }
                    st.pieces[p].open = Opening::InProgress;
                    return Next::Job(Job::Open(p));
                }
                Opening::InProgress => return Next::Wait,
                Opening::Failed(_) | Opening::Released => st.cursor = next_piece,
                Opening::Ready(opened) => {
                    let opened = opened.clone();
                    let Some(&b) = opened.needed.get(k) else {
                        st.cursor = next_piece;
                        continue;
                    };
                    let slot = &mut st.pieces[p].blocks[k];
                    if !matches!(slot, Slot::Idle) {
                        st.cursor = (p, k + 1);
                        continue;
                    }
                    let meta = &opened.blocks[b];
                    if self.excluded(meta.min_ts, meta.max_ts) {
                        *slot = Slot::Skipped;
                        st.cursor = (p, k + 1);
                        continue;
                    }
                    if st.ahead >= self.window {
                        return Next::Wait;
                    }
                    *slot = Slot::Decoding;
                    st.ahead += 1;
                    st.cursor = (p, k + 1);
                    return Next::Job(Job::Decode(p, k, opened));
                }
            }
        }
    }

    /// Reads a chunk's directory (and, unless sparse, its blocks).
    fn open_piece(&self, p: usize) -> Result<Opened> {
        let (source, blocks) = match self.plan.pieces[p] {
            Piece::Head(_) => unreachable!("heads are not opened"),
            Piece::Sealed(chunk) => {
                let blocks = ChunkReader::open(&chunk.bytes)?.blocks().to_vec();
                (Source::Sealed(chunk.clone()), blocks)
            }
            Piece::Stored(r) if self.sparse && r.len >= SPARSE_READ_MIN_LEN => {
                let header_len = ChunkDirectory::HEADER_LEN as u64;
                let header = self
                    .ctx
                    .fetch(&r.object_key, r.offset..r.offset + header_len)?;
                let end = r.offset + r.len;
                let mut tail = self.ctx.fetch(&r.object_key, end - TAIL_GUESS..end)?;
                let footer = &tail[tail.len() - ChunkDirectory::FOOTER_LEN..];
                let tail_len = ChunkDirectory::tail_len(footer)? as u64;
                if tail_len > TAIL_GUESS && tail_len <= r.len {
                    tail = self.ctx.fetch(&r.object_key, end - tail_len..end)?;
                }
                let directory = ChunkDirectory::parse(&header, &tail, r.len)?;
                (Source::Sparse(r.clone()), directory.blocks)
            }
            Piece::Stored(r) => {
                let bytes = self.ctx.fetch(&r.object_key, r.offset..r.offset + r.len)?;
                let blocks = ChunkReader::open(&bytes)?.blocks().to_vec();
                (Source::Whole(bytes), blocks)
            }
        };
        let mut needed: Vec<usize> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| self.range.overlaps(b.min_ts, b.max_ts))
            .map(|(i, _)| i)
            .collect();
        if !self.range.forward() {
            needed.reverse();
        }
        Ok(Opened {
            source,
            blocks,
            needed,
        })
    }

    /// Fetches (if sparse), checks, decompresses and decodes needed block `k` of piece `p`.
    fn decode(&self, p: usize, opened: &Opened, k: usize) -> Result<DecodedBlock> {
        let meta = &opened.blocks[opened.needed[k]];
        let parts = if self.plan.merged[p] {
            BlockParts::ALL
        } else {
            self.parts
        };
        let span = |len: usize| -> Result<std::ops::Range<usize>> {
            let start = meta.offset as usize;
            let end = start + meta.len as usize;
            if end > len {
                return Err(Error::Chunk(fenrir_chunk::Error::Truncated {
                    what: "chunk block",
                    need: end as u64,
                    have: len as u64,
                }));
            }
            Ok(start..end)
        };
        let block = match &opened.source {
            Source::Whole(bytes) => {
                decode_stored_block_parts(&bytes[span(bytes.len())?], meta, parts)?
            }
            Source::Sealed(chunk) => {
                decode_stored_block_parts(&chunk.bytes[span(chunk.bytes.len())?], meta, parts)?
            }
            Source::Sparse(r) => {
                if meta.offset + u64::from(meta.len) > r.len {
                    return Err(Error::Chunk(fenrir_chunk::Error::Truncated {
                        what: "chunk block",
                        need: meta.offset + u64::from(meta.len),
                        have: r.len,
                    }));
                }
                let start = r.offset + meta.offset;
                let stored = self
                    .ctx
                    .fetch(&r.object_key, start..start + u64::from(meta.len))?;
                decode_stored_block_parts(&stored, meta, parts)?
            }
        };
        let counts = &self.ctx.decoded;
        counts.blocks.fetch_add(1, Ordering::Relaxed);
        if !parts.lines {
            counts.without_lines.fetch_add(1, Ordering::Relaxed);
        }
        if !parts.metadata {
            counts.without_metadata.fetch_add(1, Ordering::Relaxed);
        }
        Ok(block)
    }

    /// The opened piece `p`, opening it on this thread if no worker has started.
    fn opened(&self, p: usize) -> Result<Option<Arc<Opened>>> {
        let mut st = self.lock();
        loop {
            self.ctx.check_cancel()?;
            match &mut st.pieces[p].open {
                Opening::Ready(o) => return Ok(Some(o.clone())),
                Opening::Released => return Ok(None),
                Opening::Failed(e) => {
                    let e = e
                        .take()
                        .unwrap_or(Error::Internal("chunk failed to open".into()));
                    st.pieces[p].open = Opening::Released;
                    return Err(e);
                }
                Opening::InProgress => st = self.help_or_wait(st),
                Opening::NotYet => {
                    st.pieces[p].open = Opening::InProgress;
                    drop(st);
                    let result = self.open_piece(p);
                    st = self.lock();
                    st.pieces[p].set_opened(result);
                    self.notify();
                }
            }
        }
    }

    /// Needed block `k` of piece `p`; `None` when skipped because it cannot win.
    fn take(&self, p: usize, k: usize, opened: &Opened) -> Result<Option<DecodedBlock>> {
        let mut st = self.lock();
        loop {
            self.ctx.check_cancel()?;
            let slot = &mut st.pieces[p].blocks[k];
            match slot {
                Slot::Decoding => st = self.help_or_wait(st),
                Slot::Ready(_) | Slot::Failed(_) | Slot::Skipped | Slot::Taken => {
                    let taken = std::mem::replace(slot, Slot::Taken);
                    let result = match taken {
                        Slot::Ready(b) => {
                            st.ahead -= 1;
                            self.notify();
                            Ok(Some(b))
                        }
                        Slot::Failed(e) => {
                            st.ahead -= 1;
                            self.notify();
                            Err(e)
                        }
                        _ => Ok(None),
                    };
                    return result;
                }
                Slot::Idle => {
                    let meta = &opened.blocks[opened.needed[k]];
                    if self.excluded(meta.min_ts, meta.max_ts) {
                        *slot = Slot::Taken;
                        return Ok(None);
                    }
                    *slot = Slot::Decoding;
                    drop(st);
                    let result = self.decode(p, opened, k);
                    self.lock().pieces[p].blocks[k] = Slot::Taken;
                    return result.map(Some);
                }
            }
        }
    }

    /// Frees what piece `p` holds; workers skip what they have not read of it.
    fn release(&self, p: usize) {
        let mut st = self.lock();
        let mut freed = 0;
        let piece = &mut st.pieces[p];
        for slot in &mut piece.blocks {
            // A worker still decoding finds the slot taken and gives its place back itself.
            if matches!(slot, Slot::Ready(_) | Slot::Failed(_)) {
                freed += 1;
            }
            *slot = Slot::Taken;
        }
        // An open in progress finds the piece released and drops what it read.
        piece.open = Opening::Released;
        st.ahead -= freed;
        drop(st);
        if freed > 0 {
            self.notify();
        }
    }
}

impl PieceState {
    fn set_opened(&mut self, result: Result<Opened>) {
        if matches!(self.open, Opening::Released) {
            return;
        }
        self.open = match result {
            Ok(o) => {
                self.blocks = o.needed.iter().map(|_| Slot::Idle).collect();
                Opening::Ready(Arc::new(o))
            }
            Err(e) => Opening::Failed(Some(e)),
        };
    }
}

/// The caller's side of a scan: streams are scanned in plan order.
pub(crate) struct Scanner<'s> {
    shared: &'s Shared<'s>,
    next_stream: usize,
}

impl Scanner<'_> {
    /// Visits the entries of stream `stream` (an index into the scanned streams, called in
    /// increasing order) in the scan's range and direction.
    pub(crate) fn scan_stream(&mut self, stream: usize, visit: &mut Visit<'_>) -> Result<()> {
        let shared = self.shared;
        // Streams the caller passed over are not read ahead any more.
        for skipped in self.next_stream..stream {
            for g in &shared.plan.streams[skipped] {
                g.clone().for_each(|p| shared.release(p));
            }
        }
        self.next_stream = stream + 1;
        let groups = &shared.plan.streams[stream];
        let mut result = Ok(());
        for g in groups {
            let go_on = if g.len() == 1 {
                self.scan_piece(g.start, visit)
            } else {
                self.scan_merged(g.clone(), visit)
            };
            match go_on {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        for g in groups {
            g.clone().for_each(|p| shared.release(p));
        }
        result
    }

    fn scan_piece(&mut self, p: usize, visit: &mut Visit<'_>) -> Result<bool> {
        let shared = self.shared;
        let range = shared.range;
        if let Piece::Head(entries) = shared.plan.pieces[p] {
            let iter: Box<dyn Iterator<Item = &Entry>> = if range.forward() {
                Box::new(entries.iter())
            } else {
                Box::new(entries.iter().rev())
            };
            // One buffer for every entry's metadata: no allocation per line.
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            for e in iter {
                if !range.contains(e.ts) {
                    continue;
                }
                pairs.clear();
                pairs.extend(
                    e.structured_metadata
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                if !visit(e.ts, &e.line, &pairs) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let Some(opened) = shared.opened(p)? else {
            return Ok(true);
        };
        for k in 0..opened.needed.len() {
            let Some(block) = shared.take(p, k, &opened)? else {
                continue;
            };
            // One buffer per block for every entry's metadata: no allocation per line.
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            let (timestamps, n) = (block.timestamps(), block.len());
            for j in 0..n {
                let i = if range.forward() { j } else { n - 1 - j };
                // The timestamp first: entries out of range cost no further lookup.
                if !range.contains(timestamps[i]) {
                    continue;
                }
                let Some(e) = block.get(i) else {
                    break;
                };
                pairs.clear();
                if shared.parts.metadata {
                    pairs.extend(e.structured_metadata.iter());
                }
                if !visit(e.ts, e.line, &pairs) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Overlapping pieces, merged by timestamp as they stream. Only pieces whose range has
    /// been reached are open at any time.
    fn scan_merged(
        &mut self,
        group: std::ops::Range<usize>,
        visit: &mut Visit<'_>,
    ) -> Result<bool> {
        let shared = self.shared;
        let range = shared.range;
        let forward = range.forward();
        // `a` comes before `b` in scan order.
        let before = |a: Timestamp, b: Timestamp| if forward { a < b } else { a > b };
        let mut active: Vec<MergeCursor> = Vec::new();
        let mut next_inactive = group.start;
        let mut batch: Vec<Entry> = Vec::new();
        loop {
            let mut best: Option<Timestamp> = None;
            for c in &active {
                if let Some(ts) = c.ts() {
                    if best.is_none_or(|b| before(ts, b)) {
                        best = Some(ts);
                    }
                }
            }
            // Start every piece that may hold an entry at or before `best`.
            if next_inactive < group.end {
                let (lo, hi) = shared.plan.pieces[next_inactive].bounds();
                let reach = if forward { lo } else { hi };
                if best.is_none_or(|b| !before(b, reach)) {
                    if let Some(c) = MergeCursor::start(shared, next_inactive)? {
                        active.push(c);
                    }
                    next_inactive += 1;
                    continue;
                }
            }
            let Some(ts) = best else {
                return Ok(true);
            };
            let mut at = active
                .iter()
                .enumerate()
                .filter(|(_, c)| c.ts() == Some(ts));
            let first = at.next().map(|(i, _)| i).unwrap_or_default();
            let single = at.next().is_none() && active[first].following_ts() != Some(ts);
            if single && active[first].following_ts().is_some() {
                // The common case: one entry at this timestamp, visited in place.
                if !active[first].visit(visit) {
                    return Ok(false);
                }
                active[first].advance(shared)?;
            } else {
                batch.clear();
                for c in &mut active {
                    while c.ts() == Some(ts) {
                        batch.push(c.entry());
                        c.advance(shared)?;
                    }
                }
                batch.sort_by(|a, b| {
                    a.line
                        .cmp(&b.line)
                        .then_with(|| a.structured_metadata.cmp(&b.structured_metadata))
                });
                batch.dedup();
                let mut emit = |e: &Entry| {
                    let md = e
                        .structured_metadata
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()));
                    with_pairs(md, |pairs| visit(e.ts, &e.line, pairs))
                };
                let go_on = if forward {
                    batch.iter().all(&mut emit)
                } else {
                    batch.iter().rev().all(&mut emit)
                };
                if !go_on {
                    return Ok(false);
                }
            }
            active.retain(|c| {
                let live = c.ts().is_some();
                if !live {
                    shared.release(c.piece);
                }
                live
            });
        }
    }
}

/// Calls `f` with an entry's metadata pairs, without allocating for the usual few.
fn with_pairs<'x, R>(
    mut md: impl ExactSizeIterator<Item = (&'x str, &'x str)>,
    f: impl FnOnce(&[(&'x str, &'x str)]) -> R,
) -> R {
    const INLINE: usize = 8;
    if md.len() <= INLINE {
        let mut buf = [("", ""); INLINE];
        let n = md.len();
        for slot in buf.iter_mut().take(n) {
            *slot = md.next().unwrap_or_default();
        }
        f(&buf[..n])
    } else {
        let pairs: Vec<(&str, &str)> = md.collect();
        f(&pairs)
    }
}

/// One piece's position in a merge: the current entry is in range, or the piece is done.
struct MergeCursor {
    piece: usize,
    source: CursorSource,
    /// Entries left in the current block or head, in scan order; the current one first.
    front: usize,
    back: usize,
    forward: bool,
    range: ScanRange,
}

enum CursorSource {
    Head(Arc<Vec<Entry>>),
    Chunk {
        opened: Arc<Opened>,
        next_block: usize,
        block: Option<DecodedBlock>,
    },
}

impl MergeCursor {
    fn start(shared: &Shared<'_>, p: usize) -> Result<Option<Self>> {
        let range = shared.range;
        let source = match shared.plan.pieces[p] {
            Piece::Head(entries) => CursorSource::Head(entries.clone()),
            Piece::Sealed(_) | Piece::Stored(_) => match shared.opened(p)? {
                Some(opened) => CursorSource::Chunk {
                    opened,
                    next_block: 0,
                    block: None,
                },
                None => return Ok(None),
            },
        };
        let len = match &source {
            CursorSource::Head(entries) => entries.len(),
            CursorSource::Chunk { .. } => 0,
        };
        let mut c = MergeCursor {
            piece: p,
            source,
            front: 0,
            back: len,
            forward: range.forward(),
            range,
        };
        c.settle(shared)?;
        Ok(Some(c))
    }

    /// Index of the current entry in the current block or head.
    fn index(&self) -> Option<usize> {
        if self.front >= self.back {
            None
        } else if self.forward {
            Some(self.front)
        } else {
            Some(self.back - 1)
        }
    }

    fn ts_at(&self, i: usize) -> Timestamp {
        match &self.source {
            CursorSource::Head(entries) => entries[i].ts,
            CursorSource::Chunk { block, .. } => {
                block.as_ref().map_or(Timestamp::MIN, |b| b.timestamps()[i])
            }
        }
    }

    fn ts(&self) -> Option<Timestamp> {
        self.index().map(|i| self.ts_at(i))
    }

    /// The next entry's timestamp if it is in the same block; `None` at a block's end.
    fn following_ts(&self) -> Option<Timestamp> {
        if self.back - self.front < 2 {
            return None;
        }
        let i = if self.forward {
            self.front + 1
        } else {
            self.back - 2
        };
        Some(self.ts_at(i))
    }

    fn step(&mut self) {
        if self.forward {
            self.front += 1;
        } else {
            self.back -= 1;
        }
    }

    fn advance(&mut self, shared: &Shared<'_>) -> Result<()> {
        self.step();
        self.settle(shared)
    }

    /// Moves to the first entry in range at or after the current position, loading
    /// blocks as needed.
    fn settle(&mut self, shared: &Shared<'_>) -> Result<()> {
        loop {
            while let Some(i) = self.index() {
                if self.range.contains(self.ts_at(i)) {
                    return Ok(());
                }
                self.step();
            }
            let CursorSource::Chunk {
                opened,
                next_block,
                block,
            } = &mut self.source
            else {
                return Ok(());
            };
            *block = None;
            if *next_block >= opened.needed.len() {
                return Ok(());
            }
            let k = *next_block;
            *next_block += 1;
            if let Some(b) = shared.take(self.piece, k, opened)? {
                self.front = 0;
                self.back = b.len();
                *block = Some(b);
            }
        }
    }

    fn visit(&self, visit: &mut Visit<'_>) -> bool {
        let Some(i) = self.index() else {
            return true;
        };
        match &self.source {
            CursorSource::Head(entries) => {
                let e = &entries[i];
                let md = e
                    .structured_metadata
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                with_pairs(md, |pairs| visit(e.ts, &e.line, pairs))
            }
            CursorSource::Chunk { block, .. } => match block.as_ref().and_then(|b| b.get(i)) {
                Some(e) => with_pairs(e.structured_metadata.iter(), |pairs| {
                    visit(e.ts, e.line, pairs)
                }),
                None => true,
            },
        }
    }

    fn entry(&self) -> Entry {
        let Some(i) = self.index() else {
            return Entry::new(0, "");
        };
        match &self.source {
            CursorSource::Head(entries) => entries[i].clone(),
            CursorSource::Chunk { block, .. } => block
                .as_ref()
                .and_then(|b| b.get(i))
                .map_or_else(|| Entry::new(0, ""), |e| e.to_entry()),
        }
    }
}

#[cfg(test)]
mod tests {
    use fenrir_chunk::{decode_all, ChunkBuilder};
    use fenrir_storage::InMemoryStore;

    use super::*;

    const KEY: &str = "t/seg/x.seg";

    fn labels() -> LabelSet {
        LabelSet::from_pairs([("app", "a")])
    }

    fn entry(ts: i64, line: &str, md: &[(&str, &str)]) -> Entry {
        Entry {
            ts,
            line: line.to_string(),
            structured_metadata: md
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A chunk of `entries` with small blocks, so that scans cross many of them.
    fn chunk(entries: &[Entry]) -> EncodedChunk {
        let mut b = ChunkBuilder::new(&labels(), 64);
        for e in entries {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b.finish(1).unwrap()
    }

    /// Builds pieces; stored ones go into one object of `store`.
    struct Fixture {
        store: Arc<InMemoryStore>,
        object: Vec<u8>,
        pieces: Vec<Piece>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                store: Arc::new(InMemoryStore::new()),
                object: Vec::new(),
                pieces: Vec::new(),
            }
        }

        fn stored(&mut self, entries: &[Entry]) -> &mut Self {
            let c = chunk(entries);
            let offset = self.object.len() as u64;
            self.object.extend_from_slice(&c.bytes);
            self.pieces.push(Piece::Stored(ChunkRef {
                chunk_id: offset,
                object_key: KEY.to_string(),
                offset,
                len: c.bytes.len() as u64,
                min_ts: c.meta.min_ts,
                max_ts: c.meta.max_ts,
                entries: c.meta.entries,
                raw_bytes: c.meta.raw_bytes,
            }));
            self
        }

        fn sealed(&mut self, entries: &[Entry]) -> &mut Self {
            self.pieces.push(Piece::Sealed(Arc::new(chunk(entries))));
            self
        }

        fn head(&mut self, entries: &[Entry]) -> &mut Self {
            self.pieces.push(Piece::Head(Arc::new(entries.to_vec())));
            self
        }

        fn stream(&mut self) -> StreamData {
            StreamData {
                labels: labels(),
                pieces: std::mem::take(&mut self.pieces),
            }
        }

        fn context(&self, rt: &tokio::runtime::Runtime, workers: usize) -> ScanContext {
            rt.block_on(self.store.put(KEY, bytes::Bytes::from(self.object.clone())))
                .unwrap();
            ScanContext {
                store: self.store.clone(),
                reader: None,
                handle: rt.handle().clone(),
                cancel: Arc::new(AtomicBool::new(false)),
                workers,
                decoded: Arc::default(),
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap()
    }

    /// Every visited entry, per stream, stopping a stream after `stop_after` entries.
    fn scan_all(
        ctx: &ScanContext,
        streams: &[StreamData],
        range: ScanRange,
        stop_after: usize,
    ) -> Result<Vec<Vec<Entry>>> {
        with_scanner(ctx, streams, range, None, BlockParts::ALL, |scanner| {
            let mut out = Vec::new();
            for i in 0..streams.len() {
                let mut got = Vec::new();
                let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| {
                    got.push(entry(ts, line, md));
                    got.len() < stop_after
                };
                scanner.scan_stream(i, &mut visit)?;
                out.push(got);
            }
            Ok(out)
        })
    }

    /// What a scan must produce: the old, fully materialising algorithm.
    fn reference(streams: &[StreamData], range: ScanRange, store: &[u8]) -> Vec<Vec<Entry>> {
        streams
            .iter()
            .map(|data| {
                let plan = Plan::new(std::slice::from_ref(data), range);
                let mut out = Vec::new();
                for g in &plan.streams[0] {
                    let mut all = Vec::new();
                    for p in &plan.pieces[g.clone()] {
                        let mut entries = match p {
                            Piece::Head(h) => h.to_vec(),
                            Piece::Sealed(c) => decode_all(&c.bytes).unwrap(),
                            Piece::Stored(r) => {
                                decode_all(&store[r.offset as usize..(r.offset + r.len) as usize])
                                    .unwrap()
                            }
                        };
                        entries.retain(|e| range.contains(e.ts));
                        all.extend(entries);
                    }
                    if g.len() > 1 {
                        all.sort_by(|a, b| {
                            a.ts.cmp(&b.ts)
                                .then_with(|| a.line.cmp(&b.line))
                                .then_with(|| a.structured_metadata.cmp(&b.structured_metadata))
                        });
                        all.dedup();
                    }
                    if !range.forward() {
                        all.reverse();
                    }
                    out.extend(all);
                }
                out
            })
            .collect()
    }

    fn lines(from: i64, to: i64, step: i64, tag: &str) -> Vec<Entry> {
        (from..to)
            .step_by(step as usize)
            .map(|ts| {
                entry(
                    ts,
                    &format!("{tag} line {ts} {}", "x".repeat((ts % 7) as usize)),
                    &[],
                )
            })
            .collect()
    }

    fn fixture_streams(f: &mut Fixture) -> Vec<StreamData> {
        let mut streams = Vec::new();
        // In order, no overlap: stored, sealed, head.
        f.stored(&lines(0, 100, 1, "a"))
            .sealed(&lines(100, 200, 1, "a"))
            .head(&lines(200, 230, 1, "a"));
        streams.push(f.stream());
        // Chained edge overlaps (out-of-order pushes across seals), a retried batch
        // (exact duplicates), equal timestamps with different lines, metadata.
        let mut dup = lines(40, 60, 2, "b");
        dup.push(entry(58, "b same ts", &[("k", "v")]));
        dup.sort_by_key(|e| e.ts);
        let mut head = lines(95, 130, 1, "b");
        head.insert(3, entry(98, "b same ts", &[]));
        f.stored(&lines(0, 50, 1, "b"))
            .stored(&lines(48, 100, 2, "b"))
            .sealed(&dup)
            .head(&head);
        streams.push(f.stream());
        // A flush in flight: the same chunk stored and sealed.
        let same = lines(10, 90, 3, "c");
        f.stored(&same).sealed(&same);
        streams.push(f.stream());
        streams
    }

    #[test]
    fn scans_match_the_materialising_merge_in_both_directions() {
        let rt = runtime();
        let mut f = Fixture::new();
        let streams = fixture_streams(&mut f);
        let groups = |s: usize| {
            let plan = Plan::new(
                &streams[s..=s],
                ScanRange {
                    start: 0,
                    end: 1000,
                    direction: Direction::Forward,
                },
            );
            plan.streams[0].iter().map(|g| g.len()).collect::<Vec<_>>()
        };
        assert_eq!(
            (groups(0), groups(1), groups(2)),
            (vec![1, 1, 1], vec![4], vec![2])
        );
        // Reading through the runtime, and on the scan's threads.
        for (workers, blocking) in [(0, false), (1, false), (3, false), (0, true), (3, true)] {
            let mut ctx = f.context(&rt, workers);
            if blocking {
                ctx.reader = f.store.blocking_reader().map(Arc::from);
                assert!(ctx.reader.is_some());
            }
            for direction in [Direction::Forward, Direction::Backward] {
                for (start, end) in [(0, 1000), (45, 120), (99, 100), (500, 600)] {
                    let range = ScanRange {
                        start,
                        end,
                        direction,
                    };
                    let got = scan_all(&ctx, &streams, range, usize::MAX).unwrap();
                    let want = reference(&streams, range, &f.object);
                    assert_eq!(got, want, "{workers} workers, {blocking}, {range:?}");
                    // Stopping early gives a prefix.
                    let got = scan_all(&ctx, &streams, range, 7).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!(g[..], w[..g.len()]);
                        assert_eq!(g.len(), w.len().min(7));
                    }
                }
            }
        }
    }

    #[test]
    fn a_cancelled_scan_stops_within_the_read_ahead() {
        let rt = runtime();
        let mut f = Fixture::new();
        let mut streams = Vec::new();
        for s in 0..20 {
            f.stored(&lines(0, 400, 1, &format!("s{s}")));
            streams.push(f.stream());
        }
        let range = ScanRange {
            start: 0,
            end: 1000,
            direction: Direction::Forward,
        };
        for workers in [0, 2] {
            let ctx = f.context(&rt, workers);
            let all = {
                scan_all(&ctx, &streams, range, usize::MAX).unwrap();
                ctx.decoded.blocks.swap(0, Ordering::Relaxed)
            };
            assert!(all > 200, "{all} blocks");
            let mut seen = 0;
            let result = with_scanner(&ctx, &streams, range, None, BlockParts::ALL, |scanner| {
                for i in 0..streams.len() {
                    let mut visit = |_: Timestamp, _: &str, _: &[(&str, &str)]| {
                        seen += 1;
                        if seen == 1000 {
                            ctx.cancel.store(true, Ordering::Relaxed);
                        }
                        true
                    };
                    scanner.scan_stream(i, &mut visit)?;
                }
                Ok(())
            });
            assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
            let decoded = ctx.decoded.blocks.load(Ordering::Relaxed);
            // The blocks holding the first 1000 entries, plus at most the read-ahead.
            let needed = all * 1000 / (20 * 400) + 1;
            assert!(
                decoded <= needed + 2 * workers as u64 + 1,
                "{workers} workers: {decoded} blocks decoded, {needed} needed of {all}"
            );
            assert!(seen < 1100, "{seen} entries visited after the cancel");
        }
    }

    #[test]
    fn a_cutoff_skips_blocks_that_cannot_win() {
        let rt = runtime();
        let mut f = Fixture::new();
        // Incompressible lines, so that the chunk is read sparsely, and a directory longer
        // than the first guess at its tail.
        let mut state = 1u64;
        let noisy: Vec<Entry> = (0..4000)
            .map(|ts| {
                let line: String = (0..8)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        format!("{:016x}", state)
                    })
                    .collect();
                entry(ts, &line, &[])
            })
            .collect();
        f.stored(&noisy);
        let Piece::Stored(r) = &f.pieces[0] else {
            unreachable!()
        };
        assert!(r.len >= SPARSE_READ_MIN_LEN);
        let streams = vec![f.stream()];
        let ctx = f.context(&rt, 2);
        let range = ScanRange {
            start: 0,
            end: 5000,
            direction: Direction::Backward,
        };
        let cutoff = Cutoff::new(Direction::Backward);
        let mut got = Vec::new();
        with_scanner(
            &ctx,
            &streams,
            range,
            Some(&cutoff),
            BlockParts::ALL,
            |scanner| {
                let mut visit = |ts: Timestamp, _: &str, _: &[(&str, &str)]| {
                    got.push(ts);
                    if got.len() == 10 {
                        cutoff.raise(ts);
                    }
                    got.len() < 10
                };
                scanner.scan_stream(0, &mut visit)
            },
        )
        .unwrap();
        assert_eq!(got, (3990..4000).rev().collect::<Vec<_>>());
        let decoded = ctx.decoded.blocks.load(Ordering::Relaxed);
        // One line per block here: the ten needed, plus at most the read-ahead (2).
        assert!(decoded <= 12, "{decoded} blocks decoded for 10 entries");
    }
}
