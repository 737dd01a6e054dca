use std::collections::VecDeque;
use std::time::Duration;

use hermes_guest::sqlite::{Access, Database, SqliteError, Value};
use hermes_guest::{BusError, Category, ConsumedEvent, Consumer, Offset, Timestamp};

use crate::settings::ConsumerSettings;
use crate::table;

/// The most rows read from the database at a time.
const PAGE: i64 = 256;

/// The most bytes of events a page holds, unless its first row alone is
/// larger: a row the plugin cannot read is then read by itself, and the
/// rows before it are delivered first.
const PAGE_BYTES: i64 = 8 << 20;

/// How often a waiting consumer looks for new rows (hermes' own plugin
/// looks every 0.5 s).
const POLL: Duration = Duration::from_millis(100);

/// Reads `hermesmessages` in msgid order, from a read-only connection.
pub struct SqliteConsumer {
    settings: ConsumerSettings,
    open: bool,
    /// None while the database file does not exist.
    db: Option<Database>,
    /// The next msgid to read: every row with `msgid >= next`.
    next: i64,
    /// Whether `next` is the msgid that must come next (after a seek or a
    /// read), rather than "the oldest there is": msgids are given one after
    /// another and rows only leave by retention, so a first row past an
    /// exact `next` means rows were deleted before this consumer read them.
    exact: bool,
    /// Rows read ahead, all at or after `next`.
    ahead: VecDeque<ConsumedEvent>,
    /// How many rows the next page may hold: one when the instance is made,
    /// doubling with each page read, up to [`PAGE`]. A
    /// row that makes the plugin trap then fails a page of its own, so the
    /// host's fresh instance delivers every row before it and the client's
    /// `skip` steps over that row, not an earlier one.
    page: i64,
    /// Whether the table was seen: it is never dropped once created.
    table: bool,
}

impl SqliteConsumer {
    fn fail(&self, e: SqliteError) -> BusError {
        table::bus_error(&self.settings.uri, e)
    }

    /// The database, opening it if its file has appeared; none while the bus
    /// does not exist yet or its table is not created.
    fn db(&mut self) -> Result<Option<&Database>, BusError> {
        if !self.open {
            return Err(BusError::NotOpen);
        }
        if self.db.is_none() {
            match Database::open(&self.settings.uri, Access::ReadOnly) {
                Ok(db) => self.db = Some(db),
                Err(SqliteError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            }
        }
        let Some(db) = self.db.as_ref() else {
            return Ok(None);
        };
        if !self.table {
            let exists = db
                .query(table::EXISTS, &[])
                .map_err(|e| table::bus_error(&self.settings.uri, e))?;
            self.table = integer(&exists.rows, 0) == Some(1);
        }
        Ok(if self.table { self.db.as_ref() } else { None })
    }

    /// `(oldest msgid held, last msgid assigned)`.
    fn bounds(&mut self) -> Result<(Option<i64>, Option<i64>), BusError> {
        let uri = self.settings.uri.clone();
        let Some(db) = self.db()? else {
            return Ok((None, None));
        };
        let rows = db
            .query(table::BOUNDS, &[])
            .map_err(|e| table::bus_error(&uri, e))?;
        Ok((integer(&rows.rows, 0), integer(&rows.rows, 1)))
    }

    fn position(&mut self, next: i64, exact: bool) {
        self.next = next;
        self.exact = exact;
        self.ahead.clear();
    }

    /// Reads the next page, and doubles the page for the next.
    fn fill(&mut self) -> Result<(), BusError> {
        let filled = self.fill_page();
        self.page = (self.page * 2).min(PAGE);
        filled
    }

    fn fill_page(&mut self) -> Result<(), BusError> {
        let uri = self.settings.uri.clone();
        let (next, page) = (self.next, self.page);
        let Some(db) = self.db()? else {
            return Ok(());
        };
        let sizes = db
            .query(table::SIZES, &[Value::Integer(next), Value::Integer(page)])
            .map_err(|e| table::bus_error(&uri, e))?;
        let Some((first, last)) = page_bounds(&sizes.rows) else {
            return Ok(());
        };
        let rows = db
            .query(table::PAGE, &[Value::Integer(next), Value::Integer(last)])
            .map_err(|e| match table::bus_error(&uri, e) {
                // A page of one row failed: that row is the cause.
                BusError::Other(m) if first == last => {
                    BusError::Other(format!("msgid {first}: {m}"))
                }
                other => other,
            })?;
        let first = rows.rows.first().and_then(|row| match row.first() {
            Some(Value::Integer(msgid)) => Some(*msgid),
            _ => None,
        });
        for row in rows.rows {
            match consumed(&uri, row) {
                Ok(event) => self.ahead.push_back(event),
                // Deliver what comes before a damaged row; the next read
                // reaches it and reports it.
                Err(_) if !self.ahead.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        match first {
            Some(first) if self.exact && first > next => {
                // The rows read stay ahead: the next read delivers them.
                self.next = first;
                Err(gap(&uri, next, first))
            }
            _ => Ok(()),
        }
    }
}

/// The first and last msgid of the next page, from [`table::SIZES`]' rows:
/// as many rows as fit in [`PAGE_BYTES`], one at least.
fn page_bounds(sizes: &[Vec<Value>]) -> Option<(i64, i64)> {
    let mut bounds: Option<(i64, i64)> = None;
    let mut total = 0i64;
    for row in sizes {
        let Some(Value::Integer(msgid)) = row.first() else {
            break;
        };
        let size = match row.get(1) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        };
        total = total.saturating_add(size);
        match &mut bounds {
            None => bounds = Some((*msgid, *msgid)),
            Some(_) if total > PAGE_BYTES => break,
            Some((_, last)) => *last = *msgid,
        }
    }
    bounds
}

/// The gap a consumer meets when the row after `next` it expected is gone
/// and the first still held is `first`.
fn gap(uri: &str, next: i64, first: i64) -> BusError {
    let missed = if first - next == 1 {
        format!("msgid {next} was")
    } else {
        format!("msgid {next} to {} were", first - 1)
    };
    BusError::Gap(format!(
        "{uri}: {missed} deleted by retention before this consumer read them"
    ))
}

fn int_offset(offset: &Offset) -> Result<i64, BusError> {
    match offset {
        Offset::Int(n) => Ok(*n),
        other => Err(BusError::UnknownOffset(format!(
            "{other:?}: the sqlite bus's offsets are integers (msgid)"
        ))),
    }
}

fn integer(rows: &[Vec<Value>], column: usize) -> Option<i64> {
    match rows.first()?.get(column)? {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

/// One row as a consumed event; anything unexpected in it is `corrupted`.
/// `data` is handed on as it is: the host parses it.
fn consumed(uri: &str, row: Vec<Value>) -> Result<ConsumedEvent, BusError> {
    let corrupted = |what: String| BusError::Corrupted(format!("{uri}: {what}"));
    let [Value::Integer(msgid), data, timestamp, category] =
        <[Value; 4]>::try_from(row).map_err(|_| corrupted("a row without its columns".into()))?
    else {
        return Err(corrupted("a msgid that is not an integer".into()));
    };
    let Value::Text(json) = data else {
        return Err(corrupted(format!("msgid {msgid}: data is not text")));
    };
    let seconds = match timestamp {
        Value::Real(x) => x,
        Value::Integer(n) => n as f64,
        _ => {
            return Err(corrupted(format!(
                "msgid {msgid}: timestamp is not a number"
            )));
        }
    };
    let category = match category {
        Value::Text(c) if c == "base" => Category::Base,
        Value::Text(c) if c == "initsync" => Category::Initsync,
        Value::Null => {
            return Err(corrupted(format!(
                "msgid {msgid}: data is not a hermes event (not JSON, or no evcategory)"
            )));
        }
        other => {
            return Err(corrupted(format!(
                "msgid {msgid}: data is not a hermes event (evcategory {other:?})"
            )));
        }
    };
    Ok(ConsumedEvent {
        offset: Offset::Int(msgid),
        timestamp: to_timestamp(seconds),
        category,
        json,
    })
}

/// Unix seconds as a float, to the nearest microsecond (a float holds no more).
fn to_timestamp(seconds: f64) -> Timestamp {
    let micros = (seconds * 1e6).round();
    let whole = (micros / 1e6).floor();
    Timestamp {
        seconds: whole as i64,
        nanoseconds: ((micros - whole * 1e6) as u32).min(999_999) * 1000,
    }
}

impl Consumer for SqliteConsumer {
    type Settings = ConsumerSettings;

    fn new(settings: ConsumerSettings) -> Result<Self, BusError> {
        Ok(SqliteConsumer {
            settings,
            open: false,
            db: None,
            next: i64::MIN,
            exact: false,
            ahead: VecDeque::new(),
            table: false,
            page: 1,
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        self.open = true;
        match self.db() {
            Ok(_) => Ok(()),
            Err(e) => {
                self.open = false;
                Err(e)
            }
        }
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.open = false;
        self.db = None;
        self.table = false;
        self.ahead.clear();
        Ok(())
    }

    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        self.position(i64::MIN, false);
        Ok(())
    }

    /// hermes' rule: from the oldest msgid held to the next one to be
    /// assigned (the last assigned + 1). On an empty bus only that next one.
    fn seek(&mut self, offset: &Offset) -> Result<(), BusError> {
        let offset = int_offset(offset)?;
        let (oldest, last) = self.bounds()?;
        let next = last.unwrap_or(0).saturating_add(1);
        if oldest.unwrap_or(next) <= offset && offset <= next {
            self.position(offset, true);
            Ok(())
        } else {
            Err(BusError::UnknownOffset(format!(
                "{offset}: the bus holds msgid {} to {}",
                oldest.map_or("none".into(), |o| o.to_string()),
                last.map_or("none".into(), |l| l.to_string()),
            )))
        }
    }

    /// Any msgid the bus gave is valid, held or not: after one retention
    /// deleted, the next read reports what it deleted after it.
    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        let msgid = int_offset(offset)?;
        let (_, last) = self.bounds()?;
        match last {
            Some(last) if (1..=last).contains(&msgid) => {
                self.position(msgid.saturating_add(1), true);
                Ok(())
            }
            _ => Err(BusError::UnknownOffset(format!(
                "{msgid}: the bus gave no such msgid (the last it gave is {})",
                last.map_or("none".into(), |l| l.to_string())
            ))),
        }
    }

    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        if !self.open {
            return Err(BusError::NotOpen);
        }
        if self.ahead.is_empty() {
            self.fill()?;
        }
        let Some(consumed) = self.ahead.pop_front() else {
            return Ok(None);
        };
        if let Offset::Int(msgid) = consumed.offset {
            self.next = msgid.saturating_add(1);
            self.exact = true;
        }
        Ok(Some(consumed))
    }

    /// Steps over the row at the position reading only its msgid and the
    /// types of its columns, never its text: a row too large for the plugin
    /// is stepped over as easily as any. A row whose columns have the wrong
    /// types is `corrupted`; whether its text is a hermes event is not
    /// checked (reading it is what failed).
    fn skip(&mut self) -> Result<Option<Offset>, BusError> {
        if !self.open {
            return Err(BusError::NotOpen);
        }
        if let Some(consumed) = self.ahead.pop_front() {
            if let Offset::Int(msgid) = consumed.offset {
                self.next = msgid.saturating_add(1);
                self.exact = true;
            }
            return Ok(Some(consumed.offset));
        }
        let uri = self.settings.uri.clone();
        let next = self.next;
        let Some(db) = self.db()? else {
            return Ok(None);
        };
        let rows = db
            .query(table::STEP, &[Value::Integer(next)])
            .map_err(|e| table::bus_error(&uri, e))?;
        let Some(row) = rows.rows.into_iter().next() else {
            return Ok(None);
        };
        let corrupted = |what: String| BusError::Corrupted(format!("{uri}: {what}"));
        let [
            Value::Integer(msgid),
            Value::Text(data),
            Value::Text(timestamp),
        ] = <[Value; 3]>::try_from(row)
            .map_err(|_| corrupted("a row without its columns".into()))?
        else {
            return Err(corrupted("a msgid that is not an integer".into()));
        };
        if self.exact && msgid > next {
            self.next = msgid;
            return Err(gap(&uri, next, msgid));
        }
        if data != "text" {
            return Err(corrupted(format!("msgid {msgid}: data is not text")));
        }
        if timestamp != "real" && timestamp != "integer" {
            return Err(corrupted(format!(
                "msgid {msgid}: timestamp is not a number"
            )));
        }
        self.next = msgid.saturating_add(1);
        self.exact = true;
        Ok(Some(Offset::Int(msgid)))
    }

    fn wait(&mut self, at_most: Duration) -> Result<(), BusError> {
        std::thread::sleep(at_most.min(POLL));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(rows: &[(i64, i64)]) -> Vec<Vec<Value>> {
        rows.iter()
            .map(|&(msgid, size)| vec![Value::Integer(msgid), Value::Integer(size)])
            .collect()
    }

    #[test]
    fn a_page_holds_what_fits_in_its_bytes_and_one_row_at_least() {
        assert_eq!(page_bounds(&[]), None);
        assert_eq!(
            page_bounds(&sizes(&[(3, 10), (4, 10), (7, 10)])),
            Some((3, 7))
        );
        let half = PAGE_BYTES / 2;
        assert_eq!(
            page_bounds(&sizes(&[(1, half), (2, half), (3, 1)])),
            Some((1, 2)),
            "exactly the budget"
        );
        assert_eq!(
            page_bounds(&sizes(&[(1, 10), (2, PAGE_BYTES), (3, 10)])),
            Some((1, 1)),
            "the rows before a large one first"
        );
        assert_eq!(
            page_bounds(&sizes(&[(2, 3 * PAGE_BYTES), (3, 10)])),
            Some((2, 2)),
            "a large row by itself"
        );
        // octet_length of a NULL is NULL.
        let null = vec![vec![Value::Integer(5), Value::Null]];
        assert_eq!(page_bounds(&null), Some((5, 5)));
    }

    #[test]
    fn float_timestamps_keep_their_microseconds() {
        let t = to_timestamp(1_700_000_000.123_456);
        assert_eq!((t.seconds, t.nanoseconds), (1_700_000_000, 123_456_000));
        let t = to_timestamp(1_700_000_000.999_999_9);
        assert_eq!((t.seconds, t.nanoseconds), (1_700_000_001, 0));
        let t = to_timestamp(-0.5);
        assert_eq!((t.seconds, t.nanoseconds), (-1, 500_000_000));
    }
}
