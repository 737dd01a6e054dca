//! The consumer: follows the segments from a position, never writing.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use hermes_guest::{BusError, ConsumedEvent, Consumer, Offset, log};

use crate::Settings;
use crate::record::{self, HEADER_LEN, Slot, io_error};

/// Reads the log from its own position.
pub struct FileLogConsumer {
    dir: PathBuf,
    /// The offset of the next event to read.
    next_offset: u64,
    /// The open segment and the byte position of `next_offset` in it, once found.
    cursor: Option<Cursor>,
    open: bool,
}

/// Reads are buffered: each read of the file is a call to the host, and a
/// buffer turns two calls per record into one per 64 KiB.
struct Cursor {
    first: u64,
    reader: BufReader<File>,
    /// Byte position of the next record; the reader stands there unless
    /// `astray` (after a look at an incomplete or damaged record).
    pos: u64,
    astray: bool,
}

const READ_BUFFER: usize = 64 * 1024;

impl Consumer for FileLogConsumer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        Ok(FileLogConsumer {
            dir: PathBuf::from(&settings.path),
            next_offset: 0,
            cursor: None,
            open: false,
        })
    }

    /// A log that does not exist yet is an empty bus, but only where the
    /// producer could create it: its parent directory must be reachable, or
    /// the consumer would wait forever on a path the sandbox hides.
    fn open(&mut self) -> Result<(), BusError> {
        if !self.dir.exists() {
            let parent = self
                .dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::metadata(parent)
                .map_err(|e| io_error(&format!("cannot reach {}", parent.display()), e))?;
        }
        self.open = true;
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.open = false;
        self.cursor = None;
        Ok(())
    }

    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        let segments = record::list_segments(&self.dir)?;
        self.next_offset = segments.first().copied().unwrap_or(0);
        self.cursor = None;
        Ok(())
    }

    fn seek(&mut self, offset: &Offset) -> Result<(), BusError> {
        let wanted = int_offset(offset)?;
        self.position_at(wanted, wanted, |oldest, end| {
            oldest <= wanted && wanted <= end
        })
    }

    /// Any offset the log gave is valid, held or not: after one retention
    /// deleted, the next read reports what it deleted after it.
    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        let wanted = int_offset(offset)?;
        self.position_at(wanted, wanted.saturating_add(1), |_, end| wanted < end)
    }

    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        self.advance(record::read_slot, record::decode)
    }

    /// Steps over the next record with [`record::skip_slot`]: its checksum
    /// is checked, its event never held.
    fn skip(&mut self) -> Result<Option<Offset>, BusError> {
        self.advance(record::skip_slot, |head, _| {
            let offset = u64::from_le_bytes(head[0..8].try_into().unwrap_or_default());
            Ok(Offset::Int(offset as i64))
        })
    }
}

impl FileLogConsumer {
    /// Moves past the record at the position, read by `read_at`, and gives
    /// what `finish` makes of it; `None` where the log does not go on yet.
    /// Damage inside the log is `corrupted`; a damaged tail of the newest
    /// segment is waited at, since the next producer cuts it off.
    fn advance<T>(
        &mut self,
        read_at: fn(&mut BufReader<File>) -> std::io::Result<Slot>,
        finish: impl Fn(&[u8; record::BODY_FIXED_LEN], Vec<u8>) -> Result<T, String>,
    ) -> Result<Option<T>, BusError> {
        loop {
            if self.cursor.is_none() && !self.place_cursor()? {
                return Ok(None);
            }
            let Some(cursor) = self.cursor.as_mut() else {
                return Ok(None);
            };
            // The path only for messages: not built on the way of every read.
            let (dir, first) = (&self.dir, cursor.first);
            let path = || record::segment_path(dir, first);
            let fail = |e| io_error(&format!("cannot read {}", path().display()), e);
            if cursor.astray {
                cursor
                    .reader
                    .seek(SeekFrom::Start(cursor.pos))
                    .map_err(fail)?;
                cursor.astray = false;
            }
            // Until a record is read whole, a failure may leave the reader
            // anywhere in it.
            cursor.astray = true;
            match read_at(&mut cursor.reader).map_err(fail)? {
                Slot::Record {
                    offset,
                    head,
                    json,
                    len,
                } => {
                    if offset != self.next_offset {
                        return Err(BusError::Corrupted(format!(
                            "{} at byte {}: record has offset {offset}, expected {}",
                            path().display(),
                            cursor.pos,
                            self.next_offset
                        )));
                    }
                    let consumed = finish(&head, json).map_err(|e| {
                        BusError::Corrupted(format!(
                            "{} at byte {}: {e}",
                            path().display(),
                            cursor.pos
                        ))
                    })?;
                    cursor.pos += len;
                    cursor.astray = false;
                    self.next_offset += 1;
                    return Ok(Some(consumed));
                }
                slot => {
                    // The end of this segment, for now. Move on only if the
                    // log went on in a newer segment.
                    let segments = record::list_segments(&self.dir)?;
                    if segments.contains(&self.next_offset) && self.next_offset != cursor.first {
                        self.cursor = None;
                        continue;
                    }
                    if !segments.contains(&cursor.first) {
                        // Retention deleted this segment while it was read (an
                        // open file reads on to its end): find where the log
                        // goes on now, a gap if not at the next offset.
                        self.cursor = None;
                        continue;
                    }
                    if let Slot::Damaged(why) = &slot {
                        let newer = segments.last().is_some_and(|&last| last > cursor.first);
                        let inside = newer
                            || record::valid_record_after(
                                cursor.reader.get_mut(),
                                cursor.pos,
                                self.next_offset,
                            )
                            .map_err(fail)?;
                        if inside {
                            return Err(BusError::Corrupted(format!(
                                "{} at byte {} (offset {}): {why}",
                                path().display(),
                                cursor.pos,
                                self.next_offset
                            )));
                        }
                        // The tail of the newest segment: a crashed producer
                        // left it, and cuts it off when it opens again.
                        log::debug(format!(
                            "{}: waiting at a damaged tail ({why})",
                            path().display()
                        ));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Positions at `next`, for `wanted`, if `valid(oldest, end)` says the log
    /// holds the place. Placing the cursor there walks its segment up to it, which
    /// proves the log reaches it and leaves the cursor ready for the next
    /// read; only when it does not is the whole newest segment read to find
    /// the end, for the rule and the message. On error, the position is
    /// unchanged.
    fn position_at(
        &mut self,
        wanted: u64,
        next: u64,
        valid: impl Fn(u64, u64) -> bool,
    ) -> Result<(), BusError> {
        let (was, had) = (self.next_offset, self.cursor.take());
        let oldest = record::list_segments(&self.dir)?.first().copied();
        if oldest.is_some_and(|oldest| oldest <= next) {
            self.next_offset = next;
            match self.place_cursor() {
                Ok(true) if valid(oldest.unwrap_or(0), next) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    (self.next_offset, self.cursor) = (was, had);
                    return Err(e);
                }
            }
        }
        self.cursor = None;
        let (oldest, end) = self.bounds()?;
        if valid(oldest, end) {
            self.next_offset = next;
            return Ok(());
        }
        (self.next_offset, self.cursor) = (was, had);
        Err(BusError::UnknownOffset(format!(
            "offset {wanted} is not in this log, which holds {}",
            held(oldest, end)
        )))
    }

    /// The oldest offset held and the offset the next event will get.
    fn bounds(&self) -> Result<(u64, u64), BusError> {
        let segments = record::list_segments(&self.dir)?;
        let (Some(&oldest), Some(&newest)) = (segments.first(), segments.last()) else {
            return Ok((0, 0));
        };
        let (mut file, _) = self.open_segment(newest)?;
        let mut end = newest;
        while let Slot::Record { offset, .. } = record::skip_slot(&mut file)
            .map_err(|e| io_error("cannot read the newest segment", e))?
        {
            if offset != end {
                break;
            }
            end += 1;
        }
        Ok((oldest, end))
    }

    /// Opens a segment positioned after its magic; `None` position if the
    /// segment is still being created.
    fn open_segment(&self, first: u64) -> Result<(BufReader<File>, bool), BusError> {
        let path = record::segment_path(&self.dir, first);
        let file = File::open(&path)
            .map_err(|e| io_error(&format!("cannot open {}", path.display()), e))?;
        let mut file = BufReader::with_capacity(READ_BUFFER, file);
        let ready = record::read_magic(&mut file, &path)?;
        Ok((file, ready))
    }

    /// Finds the segment and byte position of `next_offset`. `false` if the
    /// log does not reach it yet.
    fn place_cursor(&mut self) -> Result<bool, BusError> {
        if !self.open {
            return Err(BusError::NotOpen);
        }
        let segments = record::list_segments(&self.dir)?;
        let Some(&first) = segments
            .iter()
            .rev()
            .find(|&&first| first <= self.next_offset)
        else {
            if let Some(&oldest) = segments
                .first()
                .filter(|&&oldest| oldest > self.next_offset)
            {
                let missed = held(self.next_offset, oldest);
                let were = if oldest - self.next_offset == 1 {
                    "was"
                } else {
                    "were"
                };
                self.next_offset = oldest;
                return Err(BusError::Gap(format!(
                    "{missed} of {} {were} deleted by retention before this consumer read them",
                    self.dir.display()
                )));
            }
            return Ok(false);
        };
        let (mut file, ready) = self.open_segment(first)?;
        if !ready {
            return Ok(false);
        }
        let mut pos = HEADER_LEN;
        let mut offset = first;
        while offset < self.next_offset {
            match record::skip_slot(&mut file).map_err(|e| io_error("cannot read a segment", e))? {
                Slot::Record { len, .. } => {
                    pos += len;
                    offset += 1;
                }
                _ => return Ok(false),
            }
        }
        self.cursor = Some(Cursor {
            first,
            reader: file,
            pos,
            astray: false,
        });
        Ok(true)
    }
}

fn int_offset(offset: &Offset) -> Result<u64, BusError> {
    match offset {
        Offset::Int(i) if *i >= 0 => Ok(*i as u64),
        other => Err(BusError::UnknownOffset(format!(
            "file-log offsets are integers from 0, not {other:?}"
        ))),
    }
}

fn held(oldest: u64, end: u64) -> String {
    match end - oldest {
        0 => format!("no event (the next one will be {end})"),
        1 => format!("offset {oldest}"),
        _ => format!("offsets {oldest} to {}", end - 1),
    }
}
