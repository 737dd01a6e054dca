//! Python's literal syntax, as hermes' templates meet it.
//!
//! hermes renders an `attrsmapping` template and reads text results back as
//! a Python literal (`ast.literal_eval` on `ast.parse(text, mode="eval")`):
//! `"50037"` becomes the integer 50037, `"[1, 2]"` a list, `"True"` a
//! boolean, while `"007"`, `"E0042"` or `" 5"` are not literals and stay
//! text. [`literal_eval`] reads the same subset; [`python_str`] writes a
//! value as Python's `str()` does, which is how hermes joins the results of
//! several `{{ }}` in one template before reading them back.

use hermes_event::{Integer, Value, python_float_repr};

/// Nesting deeper than this is not read (the text stays a string).
const MAX_DEPTH: usize = 100;

/// `text` read as a Python literal, as hermes reads a template's text; `None`
/// when it is not one, or is one hermes keeps as text (a complex number).
///
/// Tuples and sets become lists (a set sorted, as hermes writes it), bytes
/// [`Value::Bytes`], and dict keys strings, as Python's `json` writes them.
pub fn literal_eval(text: &str) -> Option<Value> {
    let mut reader = Reader {
        text,
        at: skip_blank_lines(text),
        depth: 0,
    };
    // The first line may not be indented: Python's parser takes it for an
    // unexpected indent.
    if reader.rest().starts_with([' ', '\t']) {
        return None;
    }
    let value = reader.expressions()?;
    reader.trivia();
    reader.rest().is_empty().then_some(value)
}

/// Where the text starts once the lines holding only blanks or a comment
/// are skipped, as Python's tokenizer skips them.
fn skip_blank_lines(text: &str) -> usize {
    let mut at = 0;
    while at < text.len() {
        let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
        let line = text[at..line_end].trim_start_matches([' ', '\t', '\x0c', '\r', '\n']);
        if line.is_empty() || line.starts_with('#') {
            at = line_end;
        } else {
            break;
        }
    }
    at
}

/// A value as Python's `str()` writes it: strings as they are, the rest as
/// `repr()` (`None`, `True`, `2048.0`, `['a', 1]`, `{'k': None}`).
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => {
            let mut out = String::new();
            write_repr(&mut out, other);
            out
        }
    }
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Integer(n) => out.push_str(&n.to_string()),
        Value::Float(x) => out.push_str(&python_float_repr(*x)),
        Value::String(text) => write_str_repr(out, text),
        Value::Bytes(bytes) => write_bytes_repr(out, bytes),
        Value::Datetime(at) => {
            // repr() of a datetime names its class; hermes' values are
            // rarely joined, and str() is what a reader expects.
            out.push_str(&at.format("%Y-%m-%d %H:%M:%S").to_string())
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(out, key);
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds one
/// and no double quote.
fn write_str_repr(out: &mut String, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn write_bytes_repr(out: &mut String, bytes: &[u8]) {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
}

/// A literal being read: the text, the position, the bracket depth (inside
/// brackets, line breaks are blanks).
struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

/// A string literal's kind: text or bytes; two adjacent ones must agree.
#[derive(PartialEq, Clone, Copy)]
enum StrKind {
    Text,
    Bytes,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Skips blanks, comments and line continuations; line breaks too
    /// inside brackets.
    fn trivia(&mut self) {
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else { return };
            match c {
                ' ' | '\t' | '\x0c' => self.at += 1,
                '\r' | '\n' if self.depth > 0 => self.at += 1,
                // At the top, only line breaks that end the text are blanks.
                '\r' | '\n' if rest.trim_start_matches(['\r', '\n', ' ', '\t']).is_empty() => {
                    self.at = self.text.len()
                }
                '\r' | '\n' => {
                    let after = rest.trim_start_matches(['\r', '\n', ' ', '\t', '\x0c']);
                    if after.starts_with('#') {
                        self.at = self.text.len() - after.len();
                    } else {
                        return;
                    }
                }
                '#' => {
                    self.at += rest.find('\n').unwrap_or(rest.len());
                }
                '\\' if rest[1..].starts_with('\n') => self.at += 2,
                '\\' if rest[1..].starts_with("\r\n") => self.at += 3,
                _ => return,
            }
        }
    }

    /// The top level: one expression, or several separated by commas (a
    /// tuple without parentheses).
    fn expressions(&mut self) -> Option<Value> {
        self.trivia();
        let first = self.expression()?;
        self.trivia();
        if !self.eat(',') {
            return Some(first);
        }
        let mut items = vec![first];
        loop {
            self.trivia();
            if self.rest().is_empty() {
                break;
            }
            items.push(self.expression()?);
            self.trivia();
            if !self.eat(',') {
                break;
            }
        }
        Some(Value::List(items))
    }

    /// One literal: a constant, a signed number, or a container.
    fn expression(&mut self) -> Option<Value> {
        self.trivia();
        let c = self.peek()?;
        let value = match c {
            '+' | '-' => {
                self.at += 1;
                self.trivia();
                // One sign, on a number only (`--1`, `-True` are refused).
                let number = self.number()?;
                if c == '-' { negate(number)? } else { number }
            }
            '0'..='9' | '.' => self.number()?,
            '[' => self.list()?,
            '(' => self.parenthesized()?,
            '{' => self.braces()?,
            c if c.is_alphabetic() || c == '_' => {
                let name_end = self
                    .rest()
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(self.rest().len());
                let name = &self.rest()[..name_end];
                let after = &self.rest()[name_end..];
                if after.starts_with(['\'', '"']) {
                    self.strings()?
                } else {
                    self.at += name_end;
                    match name {
                        "True" => Value::Bool(true),
                        "False" => Value::Bool(false),
                        "None" => Value::Null,
                        // `set()`, the empty set.
                        "set" => {
                            self.depth += 1;
                            self.trivia();
                            let opened = self.eat('(');
                            self.trivia();
                            let closed = self.eat(')');
                            self.depth -= 1;
                            if !(opened && closed) {
                                return None;
                            }
                            Value::List(Vec::new())
                        }
                        _ => return None,
                    }
                }
            }
            '\'' | '"' => self.strings()?,
            _ => return None,
        };
        // A binary operation (`1+2j`) is a complex number or no literal,
        // and either way stays text; so is anything else that follows.
        Some(value)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Items up to `close`, separated by commas, a trailing one allowed;
    /// also whether a comma was met.
    fn items(&mut self, close: char) -> Option<(Vec<Value>, bool)> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.trivia();
            if self.eat(close) {
                return Some((items, comma));
            }
            items.push(self.expression()?);
            self.trivia();
            if self.eat(',') {
                comma = true;
            } else if self.eat(close) {
                return Some((items, comma));
            } else {
                return None;
            }
        }
    }

    fn list(&mut self) -> Option<Value> {
        self.enter()?;
        self.at += 1;
        let (items, _) = self.items(']')?;
        self.depth -= 1;
        Some(Value::List(items))
    }

    /// `()`, `(x,)`, `(x, y)`: tuples; `(x)`: x.
    fn parenthesized(&mut self) -> Option<Value> {
        self.enter()?;
        self.at += 1;
        let (mut items, comma) = self.items(')')?;
        self.depth -= 1;
        if items.len() == 1 && !comma {
            items.pop()
        } else {
            Some(Value::List(items))
        }
    }

    /// `{}` and `{k: v, ...}`: dicts; `{x, ...}`: a set.
    fn braces(&mut self) -> Option<Value> {
        self.enter()?;
        self.at += 1;
        self.trivia();
        if self.eat('}') {
            self.depth -= 1;
            return Some(Value::empty_object());
        }
        let first = self.expression()?;
        self.trivia();
        let value = if self.eat(':') {
            let mut entries: Vec<(String, Value)> = Vec::new();
            let mut key = first;
            loop {
                self.trivia();
                let item = self.expression()?;
                let name = dict_key(&key)?;
                // A repeated key keeps its first place and its last value.
                match entries.iter_mut().find(|(k, _)| *k == name) {
                    Some(entry) => entry.1 = item,
                    None => entries.push((name, item)),
                }
                self.trivia();
                if self.eat('}') {
                    break;
                }
                if !self.eat(',') {
                    return None;
                }
                self.trivia();
                if self.eat('}') {
                    break;
                }
                key = self.expression()?;
                self.trivia();
                if !self.eat(':') {
                    return None;
                }
            }
            Value::Object(entries)
        } else {
            let mut items = vec![first];
            if !self.eat('}') {
                if !self.eat(',') {
                    return None;
                }
                items.extend(self.items('}')?.0);
            }
            if items
                .iter()
                .any(|i| matches!(i, Value::List(_) | Value::Object(_)))
            {
                // Lists and dicts cannot be in a set.
                return None;
            }
            let mut set: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                if !set.contains(&item) {
                    set.push(item);
                }
            }
            set.sort_by(super::order::compare);
            Value::List(set)
        };
        self.depth -= 1;
        Some(value)
    }

    /// A number: an integer (decimal, `0x`, `0o`, `0b`, with `_` between
    /// digits) or a float; imaginary numbers are refused.
    fn number(&mut self) -> Option<Value> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let radix = match (bytes.first(), bytes.get(1)) {
            (Some(b'0'), Some(b'x' | b'X')) => 16,
            (Some(b'0'), Some(b'o' | b'O')) => 8,
            (Some(b'0'), Some(b'b' | b'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            // Digits, each optionally after one underscore.
            let mut end = 2;
            let mut digits = String::new();
            loop {
                let underscore = bytes.get(end) == Some(&b'_');
                let at = end + usize::from(underscore);
                match bytes.get(at).map(|b| (*b as char).to_digit(radix)) {
                    Some(Some(_)) => {
                        digits.push(bytes[at] as char);
                        end = at + 1;
                    }
                    _ => break,
                }
            }
            if digits.is_empty() || continues_name(&rest[end..]) {
                return None;
            }
            self.at += end;
            let n = u128::from_str_radix(&digits, radix).ok()?;
            return Some(Value::Integer(n.to_string().parse::<Integer>().ok()?));
        }
        let digit_part = |from: usize| -> usize {
            // The end of `[0-9](_?[0-9])*` from `from`, or `from` if none.
            let mut end = from;
            if !bytes.get(end).is_some_and(u8::is_ascii_digit) {
                return end;
            }
            end += 1;
            loop {
                let underscore = bytes.get(end) == Some(&b'_');
                let at = end + usize::from(underscore);
                if bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    end = at + 1;
                } else {
                    return end;
                }
            }
        };
        let int_end = digit_part(0);
        let mut end = int_end;
        let mut float = false;
        if bytes.get(end) == Some(&b'.') {
            let frac_end = digit_part(end + 1);
            if int_end == 0 && frac_end == end + 1 {
                return None; // a lone `.`
            }
            float = true;
            end = frac_end;
        } else if int_end == 0 {
            return None;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            let exp_end = digit_part(end + 1 + sign);
            if exp_end > end + 1 + sign {
                float = true;
                end = exp_end;
            } else {
                return None;
            }
        }
        if matches!(bytes.get(end), Some(b'j' | b'J')) || continues_name(&rest[end..]) {
            // Imaginary, or a name glued to the number.
            return None;
        }
        let literal: String = rest[..end].chars().filter(|c| *c != '_').collect();
        self.at += end;
        if float {
            let literal = if literal.starts_with('.') {
                format!("0{literal}")
            } else {
                literal.replace(".e", ".0e").replace(".E", ".0E")
            };
            return literal.parse::<f64>().ok().map(Value::Float);
        }
        // Decimal integers other than zero have no leading zero.
        if literal.len() > 1 && literal.starts_with('0') && literal.bytes().any(|b| b != b'0') {
            return None;
        }
        literal.parse::<Integer>().ok().map(Value::Integer)
    }

    /// One string literal or several adjacent ones, joined.
    fn strings(&mut self) -> Option<Value> {
        let mut text = String::new();
        let mut bytes = Vec::new();
        let mut kind = None;
        loop {
            let (part_kind, part) = self.string()?;
            if kind.is_some_and(|k| k != part_kind) {
                return None; // bytes and text cannot be joined
            }
            kind = Some(part_kind);
            match part_kind {
                StrKind::Text => text.push_str(std::str::from_utf8(&part).ok()?),
                StrKind::Bytes => bytes.extend(part),
            }
            self.trivia();
            let prefix_len = self
                .rest()
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(0);
            if !self.rest()[prefix_len..].starts_with(['\'', '"']) || prefix_len > 2 {
                break;
            }
        }
        Some(match kind? {
            StrKind::Text => Value::String(text),
            StrKind::Bytes => Value::Bytes(bytes),
        })
    }

    /// One string literal with its prefix; the text as UTF-8 for text.
    fn string(&mut self) -> Option<(StrKind, Vec<u8>)> {
        let rest = self.rest();
        let prefix_len = rest.find(['\'', '"'])?;
        let prefix = rest[..prefix_len].to_ascii_lowercase();
        let (kind, raw) = match prefix.as_str() {
            "" | "u" => (StrKind::Text, false),
            "r" => (StrKind::Text, true),
            "b" => (StrKind::Bytes, false),
            "br" | "rb" => (StrKind::Bytes, true),
            // f-strings are not literals; other prefixes are not strings.
            _ => return None,
        };
        let body = &rest[prefix_len..];
        let quote = &body[..1];
        let triple = body.starts_with(&quote.repeat(3));
        let delimiter = if triple {
            quote.repeat(3)
        } else {
            quote.into()
        };
        let content_start = prefix_len + delimiter.len();
        let mut out = Vec::new();
        let mut chars = rest[content_start..].char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            let here = &rest[content_start + i..];
            if here.starts_with(delimiter.as_str()) {
                break content_start + i + delimiter.len();
            }
            match c {
                '\n' | '\r' if !triple => return None,
                '\\' => {
                    let (_, next) = chars.next()?;
                    if raw {
                        // Kept as written; it only stops the quote ending.
                        out.push(b'\\');
                        push_char(&mut out, next, kind)?;
                        continue;
                    }
                    match next {
                        '\n' => {}
                        '\\' => out.push(b'\\'),
                        '\'' => out.push(b'\''),
                        '"' => out.push(b'"'),
                        'a' => out.push(0x07),
                        'b' => out.push(0x08),
                        'f' => out.push(0x0c),
                        'n' => out.push(b'\n'),
                        'r' => out.push(b'\r'),
                        't' => out.push(b'\t'),
                        'v' => out.push(0x0b),
                        '0'..='7' => {
                            let mut code = next.to_digit(8)?;
                            for _ in 0..2 {
                                let following = chars.clone().next();
                                match following.and_then(|(_, c)| c.to_digit(8)) {
                                    Some(d) => {
                                        code = code * 8 + d;
                                        chars.next();
                                    }
                                    None => break,
                                }
                            }
                            push_code(&mut out, code, kind)?;
                        }
                        'x' => {
                            let code = hex_digits(&mut chars, 2)?;
                            push_code(&mut out, code, kind)?;
                        }
                        'u' if kind == StrKind::Text => {
                            push_code(&mut out, hex_digits(&mut chars, 4)?, kind)?
                        }
                        'U' if kind == StrKind::Text => {
                            push_code(&mut out, hex_digits(&mut chars, 8)?, kind)?
                        }
                        // Named characters are not looked up: not read.
                        'N' if kind == StrKind::Text => return None,
                        // An unknown escape keeps its backslash.
                        other => {
                            out.push(b'\\');
                            push_char(&mut out, other, kind)?;
                        }
                    }
                }
                c => push_char(&mut out, c, kind)?,
            }
        };
        self.at += end;
        Some((kind, out))
    }
}

fn hex_digits(chars: &mut std::str::CharIndices<'_>, n: usize) -> Option<u32> {
    let mut code = 0;
    for _ in 0..n {
        code = code * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(code)
}

/// A character as written in a literal: bytes literals hold ASCII only.
fn push_char(out: &mut Vec<u8>, c: char, kind: StrKind) -> Option<()> {
    if kind == StrKind::Bytes && !c.is_ascii() {
        return None;
    }
    let mut buffer = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
    Some(())
}

/// A character given by its code: a byte in bytes, a code point in text.
fn push_code(out: &mut Vec<u8>, code: u32, kind: StrKind) -> Option<()> {
    match kind {
        StrKind::Bytes => out.push(u8::try_from(code).ok()?),
        StrKind::Text => {
            let mut buffer = [0; 4];
            out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut buffer).as_bytes());
        }
    }
    Some(())
}

/// Whether a name's character follows, which would make the number a
/// syntax error (`1abc`, `1_`).
fn continues_name(rest: &str) -> bool {
    rest.chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

fn negate(value: Value) -> Option<Value> {
    match value {
        Value::Float(x) => Some(Value::Float(-x)),
        Value::Integer(n) => {
            let text = n.to_string();
            let negated = match text.strip_prefix('-') {
                Some(positive) => positive.to_owned(),
                None => format!("-{text}"),
            };
            negated.parse::<Integer>().ok().map(Value::Integer)
        }
        _ => None,
    }
}

/// A dict key as Python's `json` writes it: strings as they are, numbers,
/// booleans and `None` as their JSON text; other keys cannot be written.
fn dict_key(key: &Value) -> Option<String> {
    match key {
        Value::String(text) => Some(text.clone()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Float(x) if x.is_finite() => Some(python_float_repr(*x)),
        Value::Float(x) if x.is_nan() => Some("NaN".into()),
        Value::Float(x) => Some(if *x > 0.0 { "Infinity" } else { "-Infinity" }.into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str) -> Option<String> {
        literal_eval(text).map(|v| v.to_json_compact())
    }

    #[test]
    fn numbers_read_as_python_reads_them() {
        // What CPython 3.11's literal_eval(parse(text, mode="eval")) gives.
        for (text, expected) in [
            ("50037", Some("50037")),
            ("0", Some("0")),
            ("000", Some("0")),
            ("007", None),
            ("-5", Some("-5")),
            ("+5", Some("5")),
            ("- 5", Some("-5")),
            ("--5", None),
            ("1_000", Some("1000")),
            ("1__000", None),
            ("1_", None),
            ("0x1F", Some("31")),
            ("0o17", Some("15")),
            ("0b101", Some("5")),
            ("0x_ff", Some("255")),
            ("2048.0", Some("2048.0")),
            ("1.", Some("1.0")),
            (".5", Some("0.5")),
            ("1e3", Some("1000.0")),
            ("1.024e+18", Some("1.024e+18")),
            ("007.5", Some("7.5")),
            ("1e400", Some("Infinity")),
            (
                "123456789012345678901234567890",
                Some("123456789012345678901234567890"),
            ),
            ("2j", None),
            ("1+2j", None),
            ("1+2", None),
            ("1abc", None),
            ("E0042", None),
            ("inf", None),
            ("nan", None),
            (" 5", None),
            ("\t5", None),
            ("5 ", Some("5")),
            ("5\n", Some("5")),
            ("\n5", Some("5")),
            ("5 # note", Some("5")),
            ("5\n6", None),
            ("-True", None),
        ] {
            assert_eq!(eval(text).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn constants_strings_and_containers() {
        for (text, expected) in [
            ("True", Some("true")),
            ("False", Some("false")),
            ("None", Some("null")),
            ("true", None),
            ("'abc'", Some(r#""abc""#)),
            (r#""it's""#, Some(r#""it's""#)),
            ("'a' 'b'", Some(r#""ab""#)),
            ("'a' b'b'", None),
            (r"'\x41\n\u00e9\101\q'", Some(r#""A\n\u00e9A\\q""#)),
            (r"r'\n'", Some(r#""\\n""#)),
            ("b'ab'", Some(r#""HermesBytes(YWI=)""#)),
            ("b'\u{e9}'", None),
            ("f'x'", None),
            ("'''a\nb'''", Some(r#""a\nb""#)),
            ("'a\nb'", None),
            ("'unterminated", None),
            ("[1, 'a', None]", Some(r#"[1,"a",null]"#)),
            ("[1, 2,]", Some("[1,2]")),
            ("[\n1,\n2\n]", Some("[1,2]")),
            ("[]", Some("[]")),
            ("(1, 2)", Some("[1,2]")),
            ("(1,)", Some("[1]")),
            ("(1)", Some("1")),
            ("()", Some("[]")),
            ("1, 2", Some("[1,2]")),
            ("1,", Some("[1]")),
            ("{'a': 1, 2: [3]}", Some(r#"{"a":1,"2":[3]}"#)),
            ("{'a': 1, 'a': 2}", Some(r#"{"a":2}"#)),
            ("{}", Some("{}")),
            ("{3, 1, 2, 1}", Some("[1,2,3]")),
            ("{[1]}", None),
            ("set()", Some("[]")),
            ("set(1)", None),
            ("[1, x]", None),
            ("[1", None),
            ("John Smith", None),
            ("a@example.com", None),
            ("", None),
            ("# only", None),
            ("1975-08-15 05:15:25", None),
        ] {
            assert_eq!(eval(text).as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_not_read() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(eval(&deep), None);
        let fine = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert!(eval(&fine).is_some());
    }

    #[test]
    fn str_writes_as_python() {
        let value = Value::List(vec![
            Value::from("it's"),
            Value::from("a'b\"c"),
            Value::Null,
            Value::Bool(true),
            Value::Float(2048.0),
            Value::Float(1e18),
            Value::from(-3),
            Value::Object(vec![("k".into(), Value::Bytes(b"x'".to_vec()))]),
        ]);
        assert_eq!(
            python_str(&value),
            r#"["it's", 'a\'b"c', None, True, 2048.0, 1e+18, -3, {'k': b"x'"}]"#
        );
        assert_eq!(python_str(&Value::from("plain")), "plain");
        // What str() writes, literal_eval reads back.
        let back = literal_eval(&python_str(&value)).expect("a literal");
        assert_eq!(back, value);
    }
}
