//! Segment files: naming, header, record framing and replay of one file.
//!
//! Layout: `MAGIC (4) | version u32 LE` then records `len u32 LE | crc32c(payload) u32 LE | payload`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 4] = *b"FWAL";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 8;
pub(crate) const RECORD_HEADER_LEN: u64 = 8;
const SUFFIX: &str = ".wal";
const SEQ_DIGITS: usize = 20;

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

/// The sequence number in a segment file name, or `None` for any other file.
fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != SEQ_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// All segment sequence numbers in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates a new, empty segment (header only) and makes it durable when `fsync` is set.
pub(crate) fn create_segment(dir: &Path, seq: u64, fsync: bool) -> Result<File> {
    let path = segment_path(dir, seq);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&MAGIC);
    header[4..].copy_from_slice(&VERSION.to_le_bytes());
    file.write_all(&header).map_err(|e| Error::io(&path, e))?;
    if fsync {
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Appends one framed record to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // Callers cap payloads at `max_record_bytes`, which `WalOptions` keeps within u32.
    let len = u32::try_from(payload.len()).expect("record length checked against u32 limit");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Why replay of a segment stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The file ends inside a header or record, or the rest of it is zeros: an interrupted
    /// write. Safe to truncate.
    TornTail,
    /// A record whose checksum does not match.
    BadCrc,
    /// A length field above the limit.
    OversizedRecord,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::TornTail => "torn tail",
            Stop::BadCrc => "checksum mismatch",
            Stop::OversizedRecord => "record length above the limit",
        }
    }
}

/// What replaying one segment produced.
#[derive(Debug)]
pub(crate) struct SegmentReplay {
    pub(crate) records: Vec<Vec<u8>>,
    /// Offset just past the last good record (0 when even the header is torn).
    pub(crate) valid_len: u64,
    pub(crate) stop: Option<Stop>,
}

/// Reads every intact record of one segment. Corruption stops the segment, it is not an error;
/// only I/O failures and a foreign or future header are.
pub(crate) fn read_segment(path: &Path, max_record_bytes: usize) -> Result<SegmentReplay> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let io_err = |e| Error::io(path, e);
    let mut replay = SegmentReplay {
        records: Vec::new(),
        valid_len: 0,
        stop: None,
    };

    let mut header = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        replay.stop = Some(Stop::TornTail);
        return Ok(replay);
    }
    reader.read_exact(&mut header).map_err(io_err)?;
    if header.iter().all(|&b| b == 0) {
        // Created but the header never reached the disk.
        replay.stop = Some(Stop::TornTail);
        return Ok(replay);
    }
    if header[..4] != MAGIC {
        return Err(Error::BadHeader {
            path: path.to_owned(),
            reason: "bad magic".into(),
        });
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != VERSION {
        return Err(Error::BadHeader {
            path: path.to_owned(),
            reason: format!("unsupported version {version}"),
        });
    }

    let mut offset = HEADER_LEN;
    replay.valid_len = offset;
    while offset < file_len {
        if file_len - offset < RECORD_HEADER_LEN {
            replay.stop = Some(Stop::TornTail);
            break;
        }
        let mut frame = [0u8; RECORD_HEADER_LEN as usize];
        reader.read_exact(&mut frame).map_err(io_err)?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len == 0 {
            // Appends refuse empty records, so a zero length is either a zero-filled tail
            // (space allocated, data never written) or corruption.
            let rest_is_zero = crc == 0 && rest_is_zero(&mut reader).map_err(io_err)?;
            replay.stop = Some(if rest_is_zero {
                Stop::TornTail
            } else {
                Stop::BadCrc
            });
            break;
        }
        if len as usize > max_record_bytes {
            replay.stop = Some(Stop::OversizedRecord);
            break;
        }
        if file_len - offset - RECORD_HEADER_LEN < u64::from(len) {
            replay.stop = Some(Stop::TornTail);
            break;
        }
        // Bounded by max_record_bytes and by the bytes the file really has.
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).map_err(io_err)?;
        if crc32c::crc32c(&payload) != crc {
            replay.stop = Some(Stop::BadCrc);
            break;
        }
        replay.records.push(payload);
        offset += RECORD_HEADER_LEN + u64::from(len);
        replay.valid_len = offset;
    }
    Ok(replay)
}

fn rest_is_zero(reader: &mut impl Read) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Replays one segment, warning when it stops early. A torn tail of the newest segment is
/// truncated; older segments were complete when the next one started, so damage there is
/// corruption and the file is left as evidence.
pub(crate) fn replay_segment(
    dir: &Path,
    seq: u64,
    is_newest: bool,
    max_record_bytes: usize,
    fsync: bool,
) -> Result<Vec<Vec<u8>>> {
    let path = segment_path(dir, seq);
    let replay = read_segment(&path, max_record_bytes)?;
    if let Some(stop) = replay.stop {
        tracing::warn!(
            segment = seq,
            offset = replay.valid_len,
            records = replay.records.len(),
            reason = stop.describe(),
            "wal segment replay stopped early"
        );
        if stop == Stop::TornTail && is_newest {
            truncate(&path, replay.valid_len, fsync)?;
        }
    }
    Ok(replay.records)
}

fn truncate(path: &Path, len: u64, fsync: bool) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(len).map_err(|e| Error::io(path, e))?;
    if fsync {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_segment(dir: &Path, seq: u64, payloads: &[&[u8]]) -> PathBuf {
        let mut file = create_segment(dir, seq, false).unwrap();
        let mut buf = Vec::new();
        for p in payloads {
            encode_record(&mut buf, p);
        }
        file.write_all(&buf).unwrap();
        segment_path(dir, seq)
    }

    #[test]
    fn names_round_trip_and_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 42);
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            "00000000000000000042.wal"
        );
        assert_eq!(parse_segment_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.tmp"), None);
        create_segment(dir.path(), 7, false).unwrap();
        create_segment(dir.path(), 3, false).unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![3, 7]);
    }

    #[test]
    fn reads_records_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, &[b"one", b"two", &[7u8; 1000]]);
        let replay = read_segment(&path, 1 << 20).unwrap();
        assert_eq!(replay.stop, None);
        assert_eq!(
            replay.records,
            vec![b"one".to_vec(), b"two".to_vec(), vec![7u8; 1000]]
        );
        assert_eq!(replay.valid_len, fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn zero_filled_tail_is_torn_but_zeros_then_data_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, &[b"one"]);
        let good = fs::metadata(&path).unwrap().len();
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 100]);
        fs::write(&path, &bytes).unwrap();
        let replay = read_segment(&path, 1 << 20).unwrap();
        assert_eq!(replay.stop, Some(Stop::TornTail));
        assert_eq!(replay.valid_len, good);
        assert_eq!(replay.records.len(), 1);

        bytes.push(1);
        fs::write(&path, &bytes).unwrap();
        let replay = read_segment(&path, 1 << 20).unwrap();
        assert_eq!(replay.stop, Some(Stop::BadCrc));
        assert_eq!(replay.records.len(), 1);
    }

    #[test]
    fn oversized_length_stops_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, &[b"one"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        fs::write(&path, &bytes).unwrap();
        let replay = read_segment(&path, 1 << 20).unwrap();
        assert_eq!(replay.stop, Some(Stop::OversizedRecord));
        assert_eq!(replay.records, vec![b"one".to_vec()]);
    }

    #[test]
    fn headers_torn_foreign_and_future() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.wal");
        fs::write(&path, b"FWA").unwrap();
        let replay = read_segment(&path, 1024).unwrap();
        assert_eq!((replay.stop, replay.valid_len), (Some(Stop::TornTail), 0));
        fs::write(&path, [0u8; 8]).unwrap();
        assert_eq!(
            read_segment(&path, 1024).unwrap().stop,
            Some(Stop::TornTail)
        );
        fs::write(&path, b"NOPE\x01\0\0\0").unwrap();
        let err = read_segment(&path, 1024).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        fs::write(&path, b"FWAL\x02\0\0\0").unwrap();
        let err = read_segment(&path, 1024).unwrap_err();
        assert!(err.to_string().contains("unsupported version 2"), "{err}");
    }
}
