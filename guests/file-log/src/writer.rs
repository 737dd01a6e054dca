//! The producer: appends records to the newest segment.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hermes_guest::{BusError, Event, Offset, Producer, log};

use crate::record::{self, HEADER_LEN, MAGIC, Slot, io_error};
use crate::{Fsync, Settings};

/// Writes the log. See the crate documentation for the format.
pub struct FileLogProducer {
    settings: Settings,
    dir: PathBuf,
    active: Option<Active>,
}

/// The segment being appended to.
struct Active {
    file: File,
    path: PathBuf,
    /// Bytes of valid data in the segment; the file never holds more after a
    /// call returns.
    len: u64,
    next_offset: u64,
    last_sync: Instant,
}

impl Producer for FileLogProducer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        Ok(FileLogProducer {
            dir: PathBuf::from(&settings.path),
            settings,
            active: None,
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        create_dir(&self.dir)?;
        let segments = record::list_segments(&self.dir)?;
        self.apply_retention(&segments)?;
        let active = match segments.last() {
            Some(&first) => self.recover(first)?,
            None => self.create_segment(0)?,
        };
        self.active = Some(active);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        if let Some(mut active) = self.active.take() {
            sync(&mut active)?;
        }
        Ok(())
    }

    fn send(&mut self, event: Event) -> Result<Offset, BusError> {
        let offsets = self.send_batch(vec![event])?;
        offsets
            .into_iter()
            .next()
            .ok_or_else(|| BusError::Other("empty send".into()))
    }

    fn send_batch(&mut self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        let mut offsets = Vec::with_capacity(events.len());
        let mut pending: Vec<u8> = Vec::new();
        // The events of one call are stored together: one time for them all.
        let at = record::now();
        for event in events {
            let active = self.active.as_mut().ok_or(BusError::NotOpen)?;
            let len = record::record_len(event.json.len());
            let full = active.len + pending.len() as u64 + len > self.settings.segment_max_bytes;
            if full && active.len + pending.len() as u64 > HEADER_LEN {
                self.flush(&mut pending)?;
                self.roll()?;
            }
            let active = self.active.as_mut().ok_or(BusError::NotOpen)?;
            record::encode_into(
                &mut pending,
                active.next_offset,
                &at,
                event.category,
                &event.json,
            );
            offsets.push(Offset::Int(active.next_offset as i64));
            active.next_offset += 1;
            if self.settings.fsync == Fsync::Always {
                self.flush(&mut pending)?;
            }
        }
        self.flush(&mut pending)?;
        Ok(offsets)
    }
}

impl FileLogProducer {
    /// Appends `pending` to the active segment and syncs as the policy says.
    /// On failure the segment is cut back to its last valid length, so no
    /// partial record stays behind.
    fn flush(&mut self, pending: &mut Vec<u8>) -> Result<(), BusError> {
        let policy = self.settings.fsync;
        let interval = Duration::from_millis(self.settings.fsync_interval_ms);
        let active = self.active.as_mut().ok_or(BusError::NotOpen)?;
        if pending.is_empty() {
            return Ok(());
        }
        // A log has one producer. One that another process appended to since
        // this one wrote would get offsets that are already taken.
        let on_disk = active
            .file
            .metadata()
            .map_err(|e| io_error(&format!("cannot stat {}", active.path.display()), e))?
            .len();
        if on_disk != active.len {
            active.next_offset -= count_records(pending);
            pending.clear();
            return Err(BusError::Other(format!(
                "{} holds {on_disk} bytes where this producer left {}: another producer \
                 writes to this log; a log takes one producer at a time (nothing was written)",
                active.path.display(),
                active.len
            )));
        }
        let written = active
            .file
            .write_all(pending)
            .and_then(|()| active.file.flush());
        if let Err(e) = written {
            let _ = active.file.set_len(active.len);
            let _ = active.file.seek(SeekFrom::Start(active.len));
            active.next_offset -= count_records(pending);
            pending.clear();
            return Err(io_error(
                &format!("cannot append to {}", active.path.display()),
                e,
            ));
        }
        active.len += pending.len() as u64;
        pending.clear();
        let due = match policy {
            Fsync::Always | Fsync::Batch => true,
            Fsync::Interval => active.last_sync.elapsed() >= interval,
        };
        if due { sync(active) } else { Ok(()) }
    }

    /// Closes the full segment and starts the next one.
    fn roll(&mut self) -> Result<(), BusError> {
        let Some(mut old) = self.active.take() else {
            return Err(BusError::NotOpen);
        };
        sync(&mut old)?;
        self.active = Some(self.create_segment(old.next_offset)?);
        Ok(())
    }

    fn create_segment(&self, first: u64) -> Result<Active, BusError> {
        let path = record::segment_path(&self.dir, first);
        let fail = |e| io_error(&format!("cannot create {}", path.display()), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(fail)?;
        file.write_all(MAGIC).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        // The segment's name must survive a power loss too, or its offsets
        // would be given out again.
        sync_dir(&self.dir)?;
        Ok(Active {
            file,
            path,
            len: HEADER_LEN,
            next_offset: first,
            last_sync: Instant::now(),
        })
    }

    /// Opens the newest segment for appending after its last valid record,
    /// cutting off a torn or damaged tail left by a crash.
    fn recover(&self, first: u64) -> Result<Active, BusError> {
        let path = record::segment_path(&self.dir, first);
        let fail = |e| io_error(&format!("cannot open {}", path.display()), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        if !record::read_magic(&mut file, &path)? {
            // Created but never written: start it again.
            file.set_len(0).map_err(fail)?;
            file.seek(SeekFrom::Start(0)).map_err(fail)?;
            file.write_all(MAGIC).map_err(fail)?;
            file.sync_all().map_err(fail)?;
            return Ok(Active {
                file,
                path,
                len: HEADER_LEN,
                next_offset: first,
                last_sync: Instant::now(),
            });
        }
        let mut valid = HEADER_LEN;
        let mut next_offset = first;
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        reader.seek(SeekFrom::Start(HEADER_LEN)).map_err(fail)?;
        let stop = loop {
            match record::skip_slot(&mut reader).map_err(fail)? {
                Slot::Record { offset, len, .. } if offset == next_offset => {
                    valid += len;
                    next_offset += 1;
                }
                Slot::Record { offset, .. } => {
                    return Err(BusError::Corrupted(format!(
                        "{} at byte {valid}: record has offset {offset}, expected {next_offset}",
                        path.display()
                    )));
                }
                Slot::Damaged(why) => break why,
                Slot::Incomplete => break "a record cut short".to_owned(),
            }
        };
        drop(reader);
        if record::valid_record_after(&mut file, valid, next_offset).map_err(fail)? {
            // Records follow the damage: cutting it off would lose them.
            return Err(BusError::Corrupted(format!(
                "{} at byte {valid} (offset {next_offset}): {stop}, with valid records after it; \
                 the producer will not cut them off: repair the segment or move it aside",
                path.display()
            )));
        }
        let size = file.metadata().map_err(fail)?.len();
        if size > valid {
            log::warn(format!(
                "{}: cutting off {} bytes after offset {} that are not a whole valid record (torn or damaged tail)",
                path.display(),
                size - valid,
                next_offset as i64 - 1,
            ));
            file.set_len(valid).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        file.seek(SeekFrom::Start(valid)).map_err(fail)?;
        Ok(Active {
            file,
            path,
            len: valid,
            next_offset,
            last_sync: Instant::now(),
        })
    }

    /// Deletes the segments, newest excepted, not written to within the
    /// retention period.
    fn apply_retention(&self, segments: &[u64]) -> Result<(), BusError> {
        let Some(days) = self.settings.retention_in_days else {
            return Ok(());
        };
        let keep = Duration::from_secs(u64::from(days) * 86_400);
        let Some(cutoff) = SystemTime::now().checked_sub(keep) else {
            return Ok(());
        };
        // Segments are written in order, so the expired ones come first.
        let mut deleted = false;
        for &first in segments.iter().take(segments.len().saturating_sub(1)) {
            let path = record::segment_path(&self.dir, first);
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| io_error(&format!("cannot stat {}", path.display()), e))?;
            if modified >= cutoff {
                break;
            }
            std::fs::remove_file(&path)
                .map_err(|e| io_error(&format!("cannot delete {}", path.display()), e))?;
            log::info(format!("retention: deleted {}", path.display()));
            deleted = true;
        }
        if deleted {
            // Deleted for good: a power loss must not bring a segment back
            // (a reader would see offsets come back after they were gone).
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Creates the log's directory and any parent missing, each made durable in
/// its parent.
fn create_dir(dir: &Path) -> Result<(), BusError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| io_error(&format!("cannot create {}", dir.display()), e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes the entries of `dir` (files created, renamed or deleted in it)
/// durable.
fn sync_dir(dir: &Path) -> Result<(), BusError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(&format!("cannot sync the directory {}", dir.display()), e))
}

fn sync(active: &mut Active) -> Result<(), BusError> {
    active
        .file
        .sync_data()
        .map_err(|e| io_error(&format!("cannot sync {}", active.path.display()), e))?;
    active.last_sync = Instant::now();
    Ok(())
}

/// How many records an encoded buffer holds.
fn count_records(mut buf: &[u8]) -> u64 {
    let mut n = 0;
    while buf.len() >= 8 {
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        buf = buf.get(8 + len..).unwrap_or_default();
        n += 1;
    }
    n
}
