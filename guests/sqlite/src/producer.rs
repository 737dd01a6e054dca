use hermes_guest::sqlite::{Access, Database, Value};
use hermes_guest::{BusError, Event, Offset, Producer, log};

use crate::settings::ProducerSettings;
use crate::table;

/// Seconds in a day, for the retention.
const DAY: f64 = 86_400.0;

/// Inserts each event as one row; a batch is one transaction.
pub struct SqliteProducer {
    settings: ProducerSettings,
    db: Option<Database>,
}

impl SqliteProducer {
    fn db(&self) -> Result<&Database, BusError> {
        self.db.as_ref().ok_or(BusError::NotOpen)
    }

    fn fail(&self, e: hermes_guest::sqlite::SqliteError) -> BusError {
        table::bus_error(&self.settings.uri, e)
    }

    fn insert(&self, db: &Database, event: Event, at: f64) -> Result<Offset, BusError> {
        let row = [Value::Text(event.json), Value::Real(at)];
        let outcome = db.execute(table::INSERT, &row).map_err(|e| self.fail(e))?;
        Ok(Offset::Int(outcome.last_insert_rowid))
    }
}

impl Producer for SqliteProducer {
    type Settings = ProducerSettings;

    fn new(settings: ProducerSettings) -> Result<Self, BusError> {
        Ok(SqliteProducer { settings, db: None })
    }

    fn open(&mut self) -> Result<(), BusError> {
        let db = Database::open(&self.settings.uri, Access::ReadWrite).map_err(|e| self.fail(e))?;
        db.execute(table::CREATE, &[]).map_err(|e| self.fail(e))?;
        let limit = table::now() - f64::from(self.settings.retention_in_days) * DAY;
        let purged = db
            .execute(table::PURGE, &[Value::Real(limit)])
            .map_err(|e| self.fail(e))?;
        if purged.changes > 0 {
            log::info(format!(
                "{}: purged {} events older than {} days",
                self.settings.uri, purged.changes, self.settings.retention_in_days
            ));
        }
        db.execute("VACUUM", &[]).map_err(|e| self.fail(e))?;
        self.db = Some(db);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.db = None;
        Ok(())
    }

    fn send(&mut self, event: Event) -> Result<Offset, BusError> {
        let db = self.db()?;
        self.insert(db, event, table::now())
    }

    fn send_batch(&mut self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        let db = self.db()?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        db.begin().map_err(|e| self.fail(e))?;
        // One transaction, one time, one call: the rows are stored together.
        let at = table::now();
        let rows: Vec<Vec<Value>> = events
            .into_iter()
            .map(|event| vec![Value::Text(event.json), Value::Real(at)])
            .collect();
        let inserted = db
            .execute_many(table::INSERT, &rows)
            .map_err(|e| self.fail(e))
            .map(|outcomes| {
                outcomes
                    .iter()
                    .map(|o| Offset::Int(o.last_insert_rowid))
                    .collect::<Vec<_>>()
            });
        match inserted.and_then(|offsets| {
            db.commit().map_err(|e| self.fail(e))?;
            Ok(offsets)
        }) {
            Ok(offsets) => Ok(offsets),
            Err(e) => {
                // Nothing of the batch is stored; the error says why.
                let _ = db.rollback();
                Err(e)
            }
        }
    }
}
