//! Performatives written whole, for the SDKs that read them by position.
//!
//! AMQP 1.0 lets a peer leave out a performative's trailing fields when they
//! are null or default, and AMQP libraries do (fe2o3-amqp among them). The
//! Python SDK (`azure-eventhub` 5.15.1, its `pyamqp`) reads every field by
//! position: a short list fails with `list index out of range`, and a null
//! `max-frame-size`, `channel-max` or `handle-max` fails its comparisons
//! with integers. [`complete`] rewrites one frame the endpoint writes so that
//! its performative carries all its fields: the missing ones as null, and
//! those three as their default values when null or missing, which means the
//! same to any AMQP peer. Everything else in the frame (the extended header,
//! a transfer's payload) is kept byte for byte.
//!
//! A frame grows by at most [`MAX_GROWTH`] bytes; the endpoint keeps that
//! much room under the peer's `max-frame-size` when it cuts frames.

use std::fmt;

/// The most bytes [`complete`] adds to a frame: 14 nulls (an attach with no
/// field at all but its first), three defaults written in place of nulls
/// (4 + 2 + 4 bytes more) and a list8 grown into a list32 (6 bytes).
pub const MAX_GROWTH: usize = 14 + 10 + 6;

/// A frame [`complete`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed AMQP frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

fn malformed(what: impl Into<String>) -> FrameError {
    FrameError(what.into())
}

/// A performative: its descriptor code, name and number of fields (AMQP 1.0,
/// part 2.7).
struct Performative {
    code: u64,
    name: &'static str,
    fields: usize,
}

const PERFORMATIVES: [Performative; 9] = [
    Performative {
        code: 0x10,
        name: "open",
        fields: 10,
    },
    Performative {
        code: 0x11,
        name: "begin",
        fields: 8,
    },
    Performative {
        code: 0x12,
        name: "attach",
        fields: 14,
    },
    Performative {
        code: 0x13,
        name: "flow",
        fields: 11,
    },
    Performative {
        code: 0x14,
        name: "transfer",
        fields: 11,
    },
    Performative {
        code: 0x15,
        name: "disposition",
        fields: 6,
    },
    Performative {
        code: 0x16,
        name: "detach",
        fields: 3,
    },
    Performative {
        code: 0x17,
        name: "end",
        fields: 1,
    },
    Performative {
        code: 0x18,
        name: "close",
        fields: 1,
    },
];

/// The fields written as their default value when null: (performative,
/// field index, encoded default). `max-frame-size` and `handle-max` are
/// uints (0x70) of 4294967295, `channel-max` a ushort (0x60) of 65535.
const DEFAULTS: [(u64, usize, &[u8]); 3] = [
    (0x10, 2, &[0x70, 0xff, 0xff, 0xff, 0xff]),
    (0x10, 3, &[0x60, 0xff, 0xff]),
    (0x11, 4, &[0x70, 0xff, 0xff, 0xff, 0xff]),
];

const NULL: u8 = 0x40;
/// The AMQP frame type; SASL frames (1) are left alone.
const AMQP_FRAME: u8 = 0;

/// `frame` (one whole frame: size, header, body) with its performative
/// complete; `None` when it already is, or is no performative (a heartbeat,
/// a SASL frame).
pub fn complete(frame: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
    rewrite(frame, |performative, fields| {
        let mut changed = fields.len() < performative.fields;
        fields.resize(performative.fields, vec![NULL]);
        for (code, index, default) in DEFAULTS {
            if code == performative.code && fields[index] == [NULL] {
                fields[index] = default.to_vec();
                changed = true;
            }
        }
        changed
    })
}

/// The peer's `open` frame with its `max-frame-size` lowered by
/// [`MAX_GROWTH`] (from 4294967295 when it sets none), as the endpoint's
/// AMQP library is to read it: frames cut to that size stay within the
/// peer's limit once complete. `None` for any other frame.
pub fn make_room(frame: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
    rewrite(frame, |performative, fields| {
        if performative.code != 0x10 {
            return false;
        }
        if fields.len() < 3 {
            fields.resize(3, vec![NULL]);
        }
        let limit = match fields[2].as_slice() {
            [0x70, a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
            [0x52, b] => u32::from(*b),
            [0x43] => 0,
            _ => u32::MAX,
        };
        let lowered = limit.saturating_sub(MAX_GROWTH as u32).to_be_bytes();
        fields[2] = [&[0x70][..], &lowered].concat();
        true
    })
}

/// `frame` with its performative's fields edited by `edit` (which says
/// whether it changed them); `None` when unchanged or no performative.
fn rewrite(
    frame: &[u8],
    edit: impl FnOnce(&Performative, &mut Vec<Vec<u8>>) -> bool,
) -> Result<Option<Vec<u8>>, FrameError> {
    let header = frame.get(..8).ok_or_else(|| {
        malformed(format!(
            "{} bytes, shorter than a frame header",
            frame.len()
        ))
    })?;
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if size != frame.len() {
        return Err(malformed(format!(
            "its size says {size} bytes, it has {}",
            frame.len()
        )));
    }
    let body_at = usize::from(header[4]) * 4;
    if body_at < 8 || body_at > frame.len() {
        return Err(malformed(format!(
            "data offset {} is out of the frame",
            header[4]
        )));
    }
    let body = &frame[body_at..];
    if header[5] != AMQP_FRAME || body.is_empty() {
        return Ok(None);
    }
    let (code, list_at) = descriptor(body)?;
    let Some(performative) = PERFORMATIVES.iter().find(|p| p.code == code) else {
        return Ok(None);
    };
    let list = List::read(body, list_at)
        .map_err(|e| malformed(format!("{}: {}", performative.name, e.0)))?;
    let mut fields: Vec<Vec<u8>> = list.fields.iter().map(|f| f.to_vec()).collect();
    if !edit(performative, &mut fields) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(frame.len() + MAX_GROWTH);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&frame[4..body_at]);
    out.extend_from_slice(&body[..list_at]);
    write_list(&mut out, &fields);
    out.extend_from_slice(&body[list.end..]);
    let size = u32::try_from(out.len()).map_err(|_| malformed("too large once rewritten"))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Some(out))
}

/// The descriptor code of the described value at the start of `body`, and
/// where its value begins.
fn descriptor(body: &[u8]) -> Result<(u64, usize), FrameError> {
    match body {
        [0x00, 0x53, code, ..] => Ok((u64::from(*code), 3)),
        [0x00, 0x80, rest @ ..] if rest.len() >= 8 => {
            let mut code = [0; 8];
            code.copy_from_slice(&rest[..8]);
            Ok((u64::from_be_bytes(code), 10))
        }
        // A symbolic descriptor, or no descriptor: not a performative.
        [0x00, 0xa3, ..] | [0x00, 0xb3, ..] => Ok((u64::MAX, 0)),
        _ => Err(malformed("the body does not start with a described type")),
    }
}

/// A list's fields, as the encoded bytes of each.
struct List<'a> {
    fields: Vec<&'a [u8]>,
    /// Where the list ends in the body.
    end: usize,
}

impl<'a> List<'a> {
    fn read(body: &'a [u8], at: usize) -> Result<List<'a>, FrameError> {
        let (count, mut next, end) = match body.get(at) {
            Some(0x45) => (0, at + 1, at + 1),
            Some(0xc0) => {
                let [size, count] = *bytes::<2>(body, at + 1)?;
                (usize::from(count), at + 3, at + 2 + usize::from(size))
            }
            Some(0xd0) => {
                let size = u32::from_be_bytes(*bytes::<4>(body, at + 1)?) as usize;
                let count = u32::from_be_bytes(*bytes::<4>(body, at + 5)?) as usize;
                (count, at + 9, at + 5 + size)
            }
            Some(other) => return Err(malformed(format!("0x{other:02x} is not a list"))),
            None => return Err(malformed("no list")),
        };
        if end > body.len() {
            return Err(malformed("the list runs past the frame"));
        }
        let mut fields = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let after = skip(&body[..end], next, 0)?;
            fields.push(&body[next..after]);
            next = after;
        }
        if next != end {
            return Err(malformed("the list's size does not match its fields"));
        }
        Ok(List { fields, end })
    }
}

/// `N` bytes of `data` from `at`.
fn bytes<const N: usize>(data: &[u8], at: usize) -> Result<&[u8; N], FrameError> {
    data.get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("a value runs past its list"))
}

/// How deep described values may nest in a field.
const MAX_DEPTH: usize = 32;

/// Where the encoded value at `at` ends (AMQP 1.0, part 1.6: the
/// constructor's high nibble gives the width); `depth` described values
/// hold it.
fn skip(data: &[u8], at: usize, depth: usize) -> Result<usize, FrameError> {
    let constructor = *data
        .get(at)
        .ok_or_else(|| malformed("a value runs past its list"))?;
    let end = match constructor {
        // A described value: its descriptor, then the value.
        0x00 if depth >= MAX_DEPTH => return Err(malformed("described values nest too deep")),
        0x00 => {
            let value = skip(data, at + 1, depth + 1)?;
            return skip(data, value, depth + 1);
        }
        0x40..=0x4f => at + 1,
        0x50..=0x5f => at + 2,
        0x60..=0x6f => at + 3,
        0x70..=0x7f => at + 5,
        0x80..=0x8f => at + 9,
        0x90..=0x9f => at + 17,
        0xa0..=0xaf | 0xc0..=0xcf | 0xe0..=0xef => {
            let [size] = *bytes::<1>(data, at + 1)?;
            at + 2 + usize::from(size)
        }
        0xb0..=0xbf | 0xd0..=0xdf | 0xf0..=0xff => {
            let size = u32::from_be_bytes(*bytes::<4>(data, at + 1)?) as usize;
            at + 5 + size
        }
        other => return Err(malformed(format!("0x{other:02x} is not a constructor"))),
    };
    if end > data.len() {
        return Err(malformed("a value runs past its list"));
    }
    Ok(end)
}

/// Writes `fields` as a list: list8 when it fits, else list32.
fn write_list<F: AsRef<[u8]>>(out: &mut Vec<u8>, fields: &[F]) {
    let len: usize = fields.iter().map(|f| f.as_ref().len()).sum();
    match (u8::try_from(len + 1), u8::try_from(fields.len())) {
        (Ok(size), Ok(count)) => out.extend_from_slice(&[0xc0, size, count]),
        _ => {
            out.push(0xd0);
            out.extend_from_slice(&((len + 4) as u32).to_be_bytes());
            out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        }
    }
    for field in fields {
        out.extend_from_slice(field.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole AMQP frame on `channel` around `body`.
    fn frame(kind: u8, channel: u16, body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&[2, kind]);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn list8(fields: &[&[u8]]) -> Vec<u8> {
        let out = list8_or_32(fields);
        assert_eq!(out[0], 0xc0);
        out
    }

    fn performative(code: u8, list: &[u8], payload: &[u8]) -> Vec<u8> {
        [&[0x00, 0x53, code][..], list, payload].concat()
    }

    const CONTAINER: &[u8] = &[0xa1, 0x03, b'h', b'u', b'b'];

    #[test]
    fn an_open_gets_its_ten_fields_and_its_limits_written_out() {
        let open = frame(0, 0, &performative(0x10, &list8(&[CONTAINER]), &[]));
        let done = complete(&open).expect("an open").expect("completed");
        let fields: [&[u8]; 10] = [
            CONTAINER,
            &[NULL],
            &[0x70, 0xff, 0xff, 0xff, 0xff],
            &[0x60, 0xff, 0xff],
            &[NULL],
            &[NULL],
            &[NULL],
            &[NULL],
            &[NULL],
            &[NULL],
        ];
        assert_eq!(done, frame(0, 0, &performative(0x10, &list8(&fields), &[])));
        assert!(done.len() - open.len() <= MAX_GROWTH);
        // Complete already: left alone.
        assert_eq!(complete(&done), Ok(None));
    }

    #[test]
    fn a_null_limit_is_written_as_its_default_and_set_ones_are_kept() {
        let frame_size: &[u8] = &[0x70, 0, 1, 0, 0];
        let open = frame(
            0,
            0,
            &performative(
                0x10,
                &list8(&[CONTAINER, &[NULL], frame_size, &[NULL]]),
                &[],
            ),
        );
        let done = complete(&open).expect("an open").expect("completed");
        let list = List::read(&done[8..], 3).expect("a list");
        assert_eq!(list.fields.len(), 10);
        assert_eq!(list.fields[2], frame_size);
        assert_eq!(list.fields[3], [0x60, 0xff, 0xff]);

        let begin = frame(0, 3, &performative(0x11, &[0x45], &[]));
        let done = complete(&begin).expect("a begin").expect("completed");
        let list = List::read(&done[8..], 3).expect("a list");
        assert_eq!(list.fields.len(), 8);
        assert_eq!(list.fields[4], [0x70, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&done[6..8], &[0, 3], "the channel is kept");
    }

    #[test]
    fn a_transfer_keeps_its_payload_after_the_completed_list() {
        let payload = [0x00, 0x53, 0x75, 0xa0, 0x03, 1, 2, 3];
        let fields: [&[u8]; 3] = [&[0x43], &[0x52, 7], &[0xa0, 0x01, 0x00]];
        let transfer = frame(0, 1, &performative(0x14, &list8(&fields), &payload));
        let done = complete(&transfer).expect("a transfer").expect("completed");
        let list = List::read(&done[8..], 3).expect("a list");
        assert_eq!(list.fields.len(), 11);
        assert_eq!(&list.fields[..3], &fields);
        assert!(list.fields[3..].iter().all(|f| *f == [NULL]));
        assert_eq!(&done[8 + list.end..], &payload);
        assert_eq!(
            u32::from_be_bytes([done[0], done[1], done[2], done[3]]) as usize,
            done.len()
        );
    }

    #[test]
    fn a_list32_and_a_ulong_descriptor_are_read_and_a_long_list_stays_a_list32() {
        let long = [0xb1, 0, 0, 1, 0]
            .into_iter()
            .chain(std::iter::repeat_n(b'x', 256))
            .collect::<Vec<u8>>();
        let mut body = vec![0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x16];
        body.push(0xd0);
        body.extend_from_slice(&((long.len() + 4) as u32).to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&long);
        let detach = frame(0, 0, &body);
        let done = complete(&detach).expect("a detach").expect("completed");
        assert_eq!(done[18], 0xd0);
        let list = List::read(&done[8..], 10).expect("a list");
        assert_eq!(list.fields, [&long[..], &[NULL], &[NULL]]);
    }

    #[test]
    fn the_peers_frame_limit_is_lowered_by_the_room_completion_takes() {
        let limit = |frame: &[u8]| {
            let list = List::read(&frame[8..], 3).expect("a list");
            match list.fields[2] {
                [0x70, a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                other => panic!("not a uint: {other:?}"),
            }
        };
        let room = MAX_GROWTH as u32;
        let set = frame(
            0,
            0,
            &performative(
                0x10,
                &list8(&[CONTAINER, &[NULL], &[0x70, 0, 1, 0, 0]]),
                &[],
            ),
        );
        let lowered = make_room(&set).expect("an open").expect("lowered");
        assert_eq!(limit(&lowered), 65536 - room);
        // None set: the default, 4294967295.
        let unset = frame(0, 0, &performative(0x10, &list8(&[CONTAINER]), &[]));
        let lowered = make_room(&unset).expect("an open").expect("lowered");
        assert_eq!(limit(&lowered), u32::MAX - room);
        // Other frames pass.
        let begin = frame(0, 0, &performative(0x11, &[0x45], &[]));
        assert_eq!(make_room(&begin), Ok(None));
    }

    #[test]
    fn heartbeats_sasl_frames_and_other_bodies_are_left_alone() {
        assert_eq!(complete(&frame(0, 0, &[])), Ok(None));
        let sasl_outcome = frame(1, 0, &performative(0x44, &list8(&[&[0x50, 0]]), &[]));
        assert_eq!(complete(&sasl_outcome), Ok(None));
        let not_a_performative = frame(0, 0, &performative(0x70, &[0x45], &[]));
        assert_eq!(complete(&not_a_performative), Ok(None));
    }

    #[test]
    fn a_malformed_frame_is_an_error_never_a_panic() {
        let open = frame(0, 0, &performative(0x10, &list8(&[CONTAINER]), &[]));
        // Every cut is an error, but at 8 bytes: an empty body is a heartbeat.
        for cut in (0..open.len()).filter(|cut| *cut != 8) {
            let mut short = open[..cut].to_vec();
            if short.len() >= 4 {
                short[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(complete(&short).is_err(), "cut at {cut}");
        }
        let mut lying = open.clone();
        lying[11] = 0xff; // the list's size
        assert!(complete(&lying).is_err());
        let mut offset = open.clone();
        offset[4] = 1;
        assert!(complete(&offset).is_err());
        // Arbitrary bytes after a valid header: an answer, whatever it is.
        for seed in 0..2000u32 {
            let mut state = seed.wrapping_mul(2_654_435_761);
            let body: Vec<u8> = (0..(seed % 40))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let mut body = [&[0x00, 0x53, 0x10 + (seed % 9) as u8][..], &body].concat();
            if seed % 3 == 0 && body.len() > 3 {
                body[3] = 0xc0;
            }
            let _ = complete(&frame(0, 0, &body));
        }
        // Descriptors within descriptors, a field deep: refused, not followed.
        let deep = [vec![0x00; 100_000], vec![NULL; 100_001]].concat();
        let close = frame(0, 0, &performative(0x18, &list8_or_32(&[&deep]), &[]));
        assert!(complete(&close).is_err());
    }

    fn list8_or_32(fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_list(&mut out, fields);
        out
    }
}
