use hermes_guest::redis::{Command, Reply, command};
use hermes_guest::{BusError, Category, Event, Offset, Producer};

use crate::connection::Link;
use crate::entry::{CATEGORY, EVENT};
use crate::settings::Settings;

/// Appends each event with `XADD`; a batch is one `MULTI` ... `EXEC`
/// pipeline, so it is stored whole or not at all.
pub struct StreamProducer {
    settings: Settings,
    link: Option<Link>,
}

impl StreamProducer {
    /// `XADD <stream> [MAXLEN ~ n] * category <category> event <json>`, the
    /// event's text moved in as it is.
    fn xadd(&self, event: Event) -> Command {
        let mut args: Vec<Vec<u8>> = command(["XADD", self.settings.stream.as_str()]);
        if let Some(maxlen) = self.settings.maxlen {
            args.extend(command(["MAXLEN", "~", &maxlen.to_string()]));
        }
        let category = match event.category {
            Category::Base => "base",
            Category::Initsync => "initsync",
        };
        args.extend(command(["*", CATEGORY, category, EVENT]));
        args.push(event.json.into_bytes());
        args
    }

    fn link(&mut self) -> Result<&mut Link, BusError> {
        self.link.as_mut().ok_or(BusError::NotOpen)
    }
}

fn offset(reply: &Reply) -> Result<Offset, BusError> {
    match reply {
        Reply::Error(message) => Err(BusError::Other(format!("XADD: {message}"))),
        reply => reply
            .as_str()
            .map(|id| Offset::Str(id.to_string()))
            .ok_or_else(|| BusError::Other(format!("XADD answered {reply:?}, not an ID"))),
    }
}

impl Producer for StreamProducer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        Ok(StreamProducer {
            settings,
            link: None,
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        let mut link = Link::new(&self.settings.url);
        link.connect()?;
        self.link = Some(link);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.link = None;
        Ok(())
    }

    fn send(&mut self, event: Event) -> Result<Offset, BusError> {
        let xadd = self.xadd(event);
        let args: Vec<&[u8]> = xadd.iter().map(Vec::as_slice).collect();
        let reply = self.link()?.command(&args, None)?;
        offset(&reply)
    }

    fn send_batch(&mut self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        if events.is_empty() {
            self.link()?;
            return Ok(Vec::new());
        }
        let mut commands = Vec::with_capacity(events.len() + 2);
        commands.push(command(["MULTI"]));
        let count = events.len();
        commands.extend(events.into_iter().map(|event| self.xadd(event)));
        commands.push(command(["EXEC"]));
        let replies = self.link()?.pipeline(&commands)?;
        match replies.last() {
            Some(Reply::Array(ids)) if ids.len() == count => ids.iter().map(offset).collect(),
            Some(Reply::Error(message)) => {
                // EXECABORT: a queued command was refused; nothing was stored.
                let why = replies
                    .iter()
                    .find_map(|r| match r {
                        Reply::Error(m) if m != message => Some(m.as_str()),
                        _ => None,
                    })
                    .unwrap_or(message);
                Err(BusError::Other(format!("XADD batch refused: {why}")))
            }
            other => Err(BusError::Other(format!(
                "EXEC answered {other:?} for a batch of {count}"
            ))),
        }
    }
}
