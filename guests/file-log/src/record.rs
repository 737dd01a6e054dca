//! The on-disk format: segment files and the records in them.
//!
//! A segment starts with the 8-byte magic `HRMSLOG1`, then records:
//!
//! ```text
//! u32 LE  body length
//! u32 LE  CRC-32 of the body
//! body:   u64 LE offset | i64 LE seconds | u32 LE nanoseconds | u8 category | event JSON
//! ```

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use hermes_guest::{BusError, ConsumedEvent, Offset};
/// The types a record holds, for native readers and writers of the format.
pub use hermes_guest::{Category, Timestamp};

pub const MAGIC: &[u8; 8] = b"HRMSLOG1";
pub const HEADER_LEN: u64 = 8;
const FRAME_LEN: usize = 8;
pub const BODY_FIXED_LEN: usize = 8 + 8 + 4 + 1;
/// A record body larger than this is damage, not data: hermes events are
/// small, and a bad length must not make a reader allocate gigabytes.
const MAX_BODY_LEN: u32 = 256 * 1024 * 1024;
const SUFFIX: &str = ".log";
/// Room set aside for an event's text before it is read: any real event fits.
const PREALLOCATE: usize = 1 << 20;

/// The file name of the segment whose first record has this offset.
pub fn segment_name(first_offset: u64) -> String {
    format!("{first_offset:020}{SUFFIX}")
}

/// The first offsets of the segments in `dir`, oldest first. A missing
/// directory is an empty log.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, BusError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&format!("cannot list {}", dir.display()), e)),
    };
    let mut firsts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&format!("cannot list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if stem.len() == 20
            && let Ok(first) = stem.parse()
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

pub fn segment_path(dir: &Path, first_offset: u64) -> PathBuf {
    dir.join(segment_name(first_offset))
}

/// The length of the record, frame included, that holds an event text of
/// `json_len` bytes.
pub fn record_len(json_len: usize) -> u64 {
    (FRAME_LEN + BODY_FIXED_LEN + json_len) as u64
}

/// Appends one record, frame included, to `out`.
pub fn encode_into(
    out: &mut Vec<u8>,
    offset: u64,
    at: &Timestamp,
    category: Category,
    event_json: &str,
) {
    let body_len = BODY_FIXED_LEN + event_json.len();
    out.reserve(FRAME_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body_at = out.len();
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&at.seconds.to_le_bytes());
    out.extend_from_slice(&at.nanoseconds.to_le_bytes());
    out.push(match category {
        Category::Base => 0,
        Category::Initsync => 1,
    });
    out.extend_from_slice(event_json.as_bytes());
    let crc = crc32fast::hash(&out[body_at..]);
    out[crc_at..body_at].copy_from_slice(&crc.to_le_bytes());
}

/// One record, frame included.
#[cfg(test)]
pub fn encode(offset: u64, at: &Timestamp, category: Category, event_json: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, offset, at, category, event_json);
    out
}

/// What sits at a position of a segment.
#[derive(Debug)]
pub enum Slot {
    /// A whole record whose checksum matches: its fixed fields, the event's
    /// text, and its length in the segment, frame included.
    Record {
        offset: u64,
        head: [u8; BODY_FIXED_LEN],
        json: Vec<u8>,
        len: u64,
    },
    /// Nothing, or the start of a record not wholly written yet.
    Incomplete,
    /// Bytes that cannot be a valid record, and why.
    Damaged(String),
}

/// The shortest a record can be, frame included.
const MIN_RECORD_LEN: u64 = (FRAME_LEN + BODY_FIXED_LEN) as u64;

/// How much of a segment is looked at at once when scanning for a record.
const SCAN_WINDOW: usize = 1 << 20;

/// Whether a whole, valid record starts anywhere in `file` after byte
/// `from`, holding an offset from `next_offset` on: then what stands at
/// `from` is damage inside the log, which must never be cut off, and not a
/// tail torn by a crash. Every byte position is a candidate; one is checked
/// (its checksum read) only if its frame is possible and its offset field is
/// one the records after `from` could hold, so the scan reads the rest of
/// the segment about once.
pub fn valid_record_after(
    file: &mut (impl Read + Seek),
    from: u64,
    next_offset: u64,
) -> io::Result<bool> {
    let size = file.seek(SeekFrom::End(0))?;
    let highest = next_offset.saturating_add(size.saturating_sub(from) / MIN_RECORD_LEN);
    // Each candidate needs its frame and its offset field in view.
    const PEEK: usize = FRAME_LEN + 8;
    let mut window = vec![0u8; SCAN_WINDOW + PEEK];
    let mut start = from + 1;
    while start + MIN_RECORD_LEN <= size {
        file.seek(SeekFrom::Start(start))?;
        let got = read_full(file, &mut window)?;
        for i in 0..got.saturating_sub(PEEK - 1).min(SCAN_WINDOW) {
            let word =
                |at: usize| u32::from_le_bytes(window[at..at + 4].try_into().unwrap_or_default());
            let len = word(i);
            let offset = u64::from_le_bytes(window[i + 8..i + 16].try_into().unwrap_or_default());
            let at = start + i as u64;
            let possible = (BODY_FIXED_LEN as u32..=MAX_BODY_LEN).contains(&len)
                && at + FRAME_LEN as u64 + u64::from(len) <= size
                && (next_offset..=highest).contains(&offset);
            if possible {
                file.seek(SeekFrom::Start(at))?;
                if matches!(skip_slot(file)?, Slot::Record { .. }) {
                    return Ok(true);
                }
            }
        }
        if got < window.len() {
            break;
        }
        start += SCAN_WINDOW as u64;
    }
    Ok(false)
}

/// Reads the record at the reader's position, leaving it after the record.
/// A short read is `Incomplete`, never an error: a writer may be mid-append.
/// The event's text is read straight into its own buffer, which becomes the
/// consumed event's string without a copy.
pub fn read_slot(file: &mut (impl Read + Seek)) -> io::Result<Slot> {
    let (len, crc, head) = match read_frame(file)? {
        Ok(frame) => frame,
        Err(slot) => return Ok(slot),
    };
    // Room for the text grows with what the file holds: a damaged length
    // must not make the reader allocate what is not there.
    let want = len as usize - BODY_FIXED_LEN;
    let mut json = Vec::with_capacity(want.min(PREALLOCATE));
    file.by_ref().take(want as u64).read_to_end(&mut json)?;
    if json.len() < want {
        return Ok(Slot::Incomplete);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head);
    hasher.update(&json);
    Ok(checked(len, crc, hasher, head, json))
}

/// Steps over the record at the reader's position as [`read_slot`] reads
/// it, checksum included, but a piece at a time: the event's text is never
/// held, so a record of any size is stepped over in a few KiB. A record it
/// returns has an empty `json`.
pub fn skip_slot(file: &mut (impl Read + Seek)) -> io::Result<Slot> {
    let (len, crc, head) = match read_frame(file)? {
        Ok(frame) => frame,
        Err(slot) => return Ok(slot),
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head);
    let mut left = len as usize - BODY_FIXED_LEN;
    let mut piece = [0u8; 8192];
    while left > 0 {
        let n = left.min(piece.len());
        if read_full(file, &mut piece[..n])? < n {
            return Ok(Slot::Incomplete);
        }
        hasher.update(&piece[..n]);
        left -= n;
    }
    Ok(checked(len, crc, hasher, head, Vec::new()))
}

/// A record's frame (body length, checksum) and its body's fixed fields.
type Frame = (u32, u32, [u8; BODY_FIXED_LEN]);

/// The frame at the reader's position, or what stands there instead of a
/// record.
fn read_frame(file: &mut impl Read) -> io::Result<Result<Frame, Slot>> {
    let mut frame = [0u8; FRAME_LEN + BODY_FIXED_LEN];
    let got = read_full(file, &mut frame[..FRAME_LEN])?;
    if got < FRAME_LEN {
        return Ok(Err(Slot::Incomplete));
    }
    let len = u32::from_le_bytes(frame[0..4].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(frame[4..8].try_into().unwrap_or_default());
    if (len as usize) < BODY_FIXED_LEN || len > MAX_BODY_LEN {
        return Ok(Err(Slot::Damaged(format!(
            "impossible record length {len}"
        ))));
    }
    if read_full(file, &mut frame[FRAME_LEN..])? < BODY_FIXED_LEN {
        return Ok(Err(Slot::Incomplete));
    }
    let mut head = [0u8; BODY_FIXED_LEN];
    head.copy_from_slice(&frame[FRAME_LEN..]);
    Ok(Ok((len, crc, head)))
}

/// The record whose body hashed to `hasher`, if that matches its checksum.
fn checked(
    len: u32,
    crc: u32,
    hasher: crc32fast::Hasher,
    head: [u8; BODY_FIXED_LEN],
    json: Vec<u8>,
) -> Slot {
    if hasher.finalize() != crc {
        return Slot::Damaged("checksum mismatch".into());
    }
    let offset = u64::from_le_bytes(head[0..8].try_into().unwrap_or_default());
    Slot::Record {
        offset,
        head,
        json,
        len: FRAME_LEN as u64 + u64::from(len),
    }
}

/// Decodes a checked record into the event it holds, the event's text
/// taken as it is.
pub fn decode(head: &[u8; BODY_FIXED_LEN], json: Vec<u8>) -> Result<ConsumedEvent, String> {
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..range.len()].copy_from_slice(&head[range]);
        out
    };
    let offset = u64::from_le_bytes(field(0..8));
    let seconds = i64::from_le_bytes(field(8..16));
    let nanoseconds = u32::from_le_bytes(field(16..20)[..4].try_into().unwrap_or_default());
    let category = match head[20] {
        0 => Category::Base,
        1 => Category::Initsync,
        other => return Err(format!("unknown category byte {other}")),
    };
    let json = String::from_utf8(json).map_err(|e| format!("the event is not UTF-8 text: {e}"))?;
    Ok(ConsumedEvent {
        offset: Offset::Int(offset as i64),
        timestamp: Timestamp {
            seconds,
            nanoseconds,
        },
        category,
        json,
    })
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads and checks a segment's magic. `Ok(false)` if the file is shorter
/// than the magic (a segment being created).
pub fn read_magic(file: &mut impl Read, path: &Path) -> Result<bool, BusError> {
    let mut magic = [0u8; 8];
    let n = read_full(file, &mut magic)
        .map_err(|e| io_error(&format!("cannot read {}", path.display()), e))?;
    if n < magic.len() {
        return Ok(false);
    }
    if &magic != MAGIC {
        return Err(BusError::Corrupted(format!(
            "{} is not a file-log segment",
            path.display()
        )));
    }
    Ok(true)
}

/// Classifies an I/O failure. A path the sandbox hides or refuses will not
/// come back by itself, nor will a record too large for the plugin's
/// memory; anything else (a full disk, a busy device) may pass, so the host
/// may retry.
pub fn io_error(context: &str, e: io::Error) -> BusError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound => BusError::Other(format!(
            "{context}: {e} (is it inside a directory granted to the plugin, \
             with write access for a producer?)"
        )),
        // Not a passing state: the same record needs the same memory.
        io::ErrorKind::OutOfMemory => BusError::Other(format!(
            "{context}: {e}: the record is larger than the plugin's memory cap \
             allows (`memory_mib`)"
        )),
        // The sandbox reports a write to a full disk as EIO (WASI errno 29).
        _ if e.raw_os_error() == Some(WASI_EIO) => {
            BusError::Unavailable(format!("{context}: {e} (is the disk full?)"))
        }
        _ => BusError::Unavailable(format!("{context}: {e}")),
    }
}

/// `EIO` as WASI numbers it.
const WASI_EIO: i32 = 29;

/// The Unix time now.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanoseconds: since.subsec_nanos(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    /// A record holds any text: the log never reads it.
    const EVENT: &str =
        "{\n    \"evcategory\": \"initsync\",\n    \"objattrs\": {\"\\u00e9\": 1}\n}";

    #[test]
    fn a_record_reads_back_and_a_flipped_bit_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg");
        let at = Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 42,
        };
        let record = encode(7, &at, Category::Initsync, EVENT);
        std::fs::write(&path, &record).expect("write");

        let mut file = File::open(&path).expect("open");
        let Slot::Record {
            offset,
            head,
            json,
            len,
        } = read_slot(&mut file).expect("read")
        else {
            panic!("expected a record");
        };
        assert_eq!((offset, len), (7, record.len() as u64));
        let consumed = decode(&head, json).expect("decodes");
        assert_eq!(consumed.offset, Offset::Int(7));
        assert_eq!(consumed.timestamp, at);
        assert_eq!(consumed.category, Category::Initsync);
        assert_eq!(consumed.json, EVENT);

        let mut damaged = record.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x10;
        std::fs::write(&path, &damaged).expect("write");
        let mut file = File::open(&path).expect("open");
        assert!(
            matches!(read_slot(&mut file).expect("read"), Slot::Damaged(why) if why == "checksum mismatch")
        );
    }

    #[test]
    fn a_torn_record_is_incomplete_not_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg");
        let record = encode(0, &now(), Category::Base, EVENT);
        for cut in [0, 3, FRAME_LEN, record.len() - 1] {
            let mut file = File::create(&path).expect("create");
            file.write_all(&record[..cut]).expect("write");
            let mut file = File::open(&path).expect("open");
            file.seek(SeekFrom::Start(0)).expect("seek");
            assert!(
                matches!(read_slot(&mut file).expect("read"), Slot::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_valid_record_anywhere_after_the_damage_is_found_and_garbage_is_not_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg");
        let at = now();
        // Damage at byte 0, then garbage longer than one scan window, then
        // record 5 (and a torn copy of record 6).
        let mut bytes = vec![0xffu8; 16];
        bytes.extend(std::iter::repeat_n(0x01, SCAN_WINDOW + 100));
        let garbage_end = bytes.len();
        bytes.extend(encode(5, &at, Category::Base, EVENT));
        let torn = encode(6, &at, Category::Base, EVENT);
        bytes.extend(&torn[..torn.len() - 1]);
        std::fs::write(&path, &bytes).expect("write");
        let mut file = File::open(&path).expect("open");
        assert!(
            valid_record_after(&mut file, 0, 5).expect("scan"),
            "record 5 is found"
        );
        assert!(
            !valid_record_after(&mut file, 0, 6).expect("scan"),
            "an offset before the damage is not one that can follow it"
        );
        assert!(
            !valid_record_after(&mut file, garbage_end as u64, 6).expect("scan"),
            "a torn record is not a valid one"
        );
        std::fs::write(&path, &bytes[..garbage_end]).expect("write");
        let mut file = File::open(&path).expect("open");
        assert!(
            !valid_record_after(&mut file, 0, 0).expect("scan"),
            "garbage only"
        );
    }
}
