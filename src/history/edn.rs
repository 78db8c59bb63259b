//! A small EDN reader, just enough for Jepsen and porcupine histories.
//!
//! It is a byte-level scanner over a `&str` that borrows keywords, symbols
//! and escape-free strings from the source, so reading a history allocates
//! little more than one vector per map. Every value records the 1-based line
//! it starts on, so a caller can name the line of whatever it rejects.
//!
//! [`Events`] streams the elements of a file that is either one big vector
//! or list, or a plain sequence of values, without ever holding the whole
//! history as one tree: a 100 MB history costs the memory of its ops, not of
//! its syntax.
//!
//! Supported: `nil`, booleans, 64-bit integers (with an optional `N`
//! suffix), floats (kept as [`EdnKind::Float`] so that a float in a field the
//! caller ignores does not reject the file), strings with escapes,
//! characters, keywords, symbols, lists, vectors, maps, sets, tagged values,
//! `#_` discards, `;` comments, and commas as whitespace.

use std::borrow::Cow;
use std::fmt;

/// Nesting deeper than this is refused rather than risking the stack on
/// hostile input; real histories nest two or three levels.
const MAX_DEPTH: usize = 256;

/// One EDN value and the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Edn<'a> {
    /// 1-based line of the value's first character.
    pub line: usize,
    /// The value itself.
    pub kind: EdnKind<'a>,
}

/// The kinds of EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum EdnKind<'a> {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A floating-point number (`1.5`, `1e3`, `2M`, `##Inf`).
    Float(f64),
    /// A string (or a character literal, which reads as a one-char string).
    Str(Cow<'a, str>),
    /// A keyword, without its leading colon (`:a/b` is `a/b`).
    Keyword(&'a str),
    /// A symbol other than `nil`, `true` and `false`.
    Symbol(&'a str),
    /// `[...]`.
    Vector(Vec<Edn<'a>>),
    /// `(...)`.
    List(Vec<Edn<'a>>),
    /// `#{...}`, in source order.
    Set(Vec<Edn<'a>>),
    /// `{...}`, entries in source order (duplicates are kept).
    Map(Vec<(Edn<'a>, Edn<'a>)>),
    /// `#tag value`, e.g. `#inst "..."` or a record `#jepsen.history.Op{...}`.
    Tagged(&'a str, Box<Edn<'a>>),
}

impl<'a> Edn<'a> {
    /// The entries of a map, looking through a tag so that a record literal
    /// such as `#jepsen.history.Op{...}` reads like a plain map.
    pub fn map_entries(&self) -> Option<&[(Edn<'a>, Edn<'a>)]> {
        match &self.kind {
            EdnKind::Map(entries) => Some(entries),
            EdnKind::Tagged(_, inner) => inner.map_entries(),
            _ => None,
        }
    }

    /// The value under keyword `name` (given without its colon) in a map,
    /// if this is a map and the key is present. The first occurrence wins.
    pub fn get(&self, name: &str) -> Option<&Edn<'a>> {
        self.map_entries()?
            .iter()
            .find(|(k, _)| matches!(k.kind, EdnKind::Keyword(kw) if kw == name))
            .map(|(_, v)| v)
    }

    /// A short description for error messages, e.g. `keyword :foo` or `a map`.
    pub fn describe(&self) -> String {
        match &self.kind {
            EdnKind::Nil => "nil".to_string(),
            EdnKind::Bool(b) => format!("boolean {b}"),
            EdnKind::Int(i) => format!("integer {i}"),
            EdnKind::Float(x) => format!("float {x}"),
            EdnKind::Str(s) => {
                // Long strings would drown the message; the line number
                // already says where to look.
                let shown: String = s.chars().take(40).collect();
                let dots = if shown.len() < s.len() { "..." } else { "" };
                format!("string {shown:?}{dots}")
            }
            EdnKind::Keyword(k) => format!("keyword :{k}"),
            EdnKind::Symbol(s) => format!("symbol `{s}`"),
            EdnKind::Vector(_) => "a vector".to_string(),
            EdnKind::List(_) => "a list".to_string(),
            EdnKind::Set(_) => "a set".to_string(),
            EdnKind::Map(_) => "a map".to_string(),
            EdnKind::Tagged(tag, _) => format!("a #{tag} value"),
        }
    }
}

/// A syntax error, with the 1-based line it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for EdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for EdnError {}

type PResult<T> = Result<T, EdnError>;

const WS: u8 = 1;
const DELIM: u8 = 2;

/// Byte classes, looked up instead of matched: the token and whitespace
/// loops run once per input byte.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let ws = b" \t\n\r,\x0c";
    let mut i = 0;
    while i < ws.len() {
        table[ws[i] as usize] = WS | DELIM;
        i += 1;
    }
    let delims = b"()[]{}\";";
    let mut i = 0;
    while i < delims.len() {
        table[delims[i] as usize] = DELIM;
        i += 1;
    }
    table
};

fn is_whitespace(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

fn is_delimiter(b: u8) -> bool {
    CLASS[b as usize] & DELIM != 0
}

fn is_closer(b: u8) -> bool {
    matches!(b, b')' | b']' | b'}')
}

/// A reader of EDN values from a string.
#[derive(Clone, Debug)]
pub struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `src`, which is line 1.
    pub fn new(src: &'a str) -> Self {
        Self::starting_at_line(src, 1)
    }

    /// A parser at the start of `src`, numbering lines from `line`: for a
    /// snippet cut out of a larger file, such as the value of a log line.
    pub fn starting_at_line(src: &'a str, line: usize) -> Self {
        Parser {
            src,
            pos: 0,
            line,
            depth: 0,
        }
    }

    /// The line the parser is on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next top-level value, or `None` at the end of the input.
    pub fn next_value(&mut self) -> PResult<Option<Edn<'a>>> {
        self.skip_ws()?;
        match self.peek() {
            None => Ok(None),
            Some(b) if is_closer(b) => Err(self.err(format!(
                "unexpected `{}` with no matching opening bracket",
                b as char
            ))),
            Some(_) => self.parse_value().map(Some),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src
            .as_bytes()
            .get(self.pos.checked_add(ahead)?)
            .copied()
    }

    fn err(&self, message: impl Into<String>) -> EdnError {
        EdnError {
            line: self.line,
            message: message.into(),
        }
    }

    fn slice(&self, start: usize, end: usize) -> PResult<&'a str> {
        // Slices always end at ASCII bytes, hence on char boundaries; the
        // check only keeps a logic slip from turning into a panic.
        self.src
            .get(start..end)
            .ok_or_else(|| self.err("internal error: slice off a character boundary"))
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Skips whitespace, commas, comments and `#_` discarded values.
    fn skip_ws(&mut self) -> PResult<()> {
        let bytes = self.src.as_bytes();
        loop {
            match bytes.get(self.pos) {
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(&b) if is_whitespace(b) => self.pos += 1,
                Some(b';') => {
                    let rest = bytes.get(self.pos..).unwrap_or_default();
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(n) => self.pos += n,
                        None => self.pos = bytes.len(),
                    }
                }
                Some(b'#') if self.peek_at(1) == Some(b'_') => {
                    let line = self.line;
                    self.pos += 2;
                    self.enter()?;
                    self.skip_ws()?;
                    match self.peek() {
                        Some(b) if !is_closer(b) => {
                            self.parse_value()?;
                        }
                        _ => {
                            return Err(EdnError {
                                line,
                                message: "`#_` with no value after it to discard".into(),
                            })
                        }
                    }
                    self.leave();
                }
                _ => return Ok(()),
            }
        }
    }

    /// Parses the value at the current position, which must not be
    /// whitespace, a comment, a closing bracket or the end of input.
    fn parse_value(&mut self) -> PResult<Edn<'a>> {
        let line = self.line;
        let Some(b) = self.peek() else {
            return Err(self.err("unexpected end of input"));
        };
        let kind = match b {
            b'[' => EdnKind::Vector(self.parse_seq(b']')?),
            b'(' => EdnKind::List(self.parse_seq(b')')?),
            b'{' => self.parse_map()?,
            b'"' => EdnKind::Str(self.parse_string()?),
            b':' => self.parse_keyword()?,
            b'\\' => self.parse_char()?,
            b'#' => self.parse_dispatch()?,
            b if is_closer(b) => {
                return Err(self.err(format!("unexpected `{}`", b as char)));
            }
            _ => self.parse_token()?,
        };
        Ok(Edn { line, kind })
    }

    /// Parses the elements of a collection whose opening bracket is at the
    /// current position, through the matching `close`.
    fn parse_seq(&mut self, close: u8) -> PResult<Vec<Edn<'a>>> {
        let mut items = Vec::new();
        self.parse_items(close, &mut |item| items.push(item))?;
        Ok(items)
    }

    fn parse_map(&mut self) -> PResult<EdnKind<'a>> {
        let line = self.line;
        // Pairing while parsing spares a second vector per map, and maps
        // are nearly all of a history.
        let mut entries = Vec::with_capacity(8);
        let mut key = None;
        let count = self.parse_items(b'}', &mut |item| match key.take() {
            None => key = Some(item),
            Some(k) => entries.push((k, item)),
        })?;
        if key.is_some() {
            return Err(EdnError {
                line,
                message: format!("map has {count} forms: a key is missing its value"),
            });
        }
        Ok(EdnKind::Map(entries))
    }

    /// Feeds the elements of the collection opened at the current position
    /// to `push`, through the matching `close`; returns how many there were.
    fn parse_items(&mut self, close: u8, push: &mut impl FnMut(Edn<'a>)) -> PResult<usize> {
        let open_line = self.line;
        let open = self.peek().unwrap_or(b'?') as char;
        self.pos += 1;
        self.enter()?;
        let mut count = 0;
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => {
                    return Err(EdnError {
                        line: open_line,
                        message: format!(
                            "`{open}` opened on this line is never closed (input ends on line {})",
                            self.line
                        ),
                    })
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    break;
                }
                Some(b) if is_closer(b) => {
                    return Err(self.err(format!(
                        "unexpected `{}`: expected `{}` to close the `{open}` of line {open_line}",
                        b as char, close as char
                    )))
                }
                Some(_) => {
                    push(self.parse_value()?);
                    count += 1;
                }
            }
        }
        self.leave();
        Ok(count)
    }

    /// Reads a token (symbol, number, keyword body) up to the next delimiter.
    fn read_token(&mut self) -> PResult<&'a str> {
        let start = self.pos;
        let rest = self.src.as_bytes().get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| is_delimiter(b))
            .unwrap_or(rest.len());
        self.pos = start + len;
        self.slice(start, self.pos)
    }

    fn parse_token(&mut self) -> PResult<EdnKind<'a>> {
        let tok = self.read_token()?;
        let bytes = tok.as_bytes();
        let first = bytes.first().copied().unwrap_or(b' ');
        let second = bytes.get(1).copied();
        if first.is_ascii_digit()
            || (matches!(first, b'+' | b'-') && second.is_some_and(|b| b.is_ascii_digit()))
        {
            return parse_number(tok).map_err(|m| self.err(m));
        }
        match tok {
            "nil" => return Ok(EdnKind::Nil),
            "true" => return Ok(EdnKind::Bool(true)),
            "false" => return Ok(EdnKind::Bool(false)),
            _ => {}
        }
        let symbol_start =
            first.is_ascii_alphabetic() || first >= 0x80 || b".*+!-_?$%&=<>/".contains(&first);
        if !symbol_start || tok.is_empty() {
            let shown = tok.chars().next().unwrap_or(first as char);
            return Err(self.err(format!("unexpected character `{shown}`")));
        }
        Ok(EdnKind::Symbol(tok))
    }

    fn parse_keyword(&mut self) -> PResult<EdnKind<'a>> {
        self.pos += 1;
        let tok = self.read_token()?;
        // `::foo` is Clojure's namespace-qualified shorthand; keep the name.
        let name = tok.strip_prefix(':').unwrap_or(tok);
        if name.is_empty() {
            return Err(self.err("`:` with no keyword name after it"));
        }
        Ok(EdnKind::Keyword(name))
    }

    fn parse_char(&mut self) -> PResult<EdnKind<'a>> {
        self.pos += 1;
        let rest = self.src.get(self.pos..).unwrap_or_default();
        let Some(c) = rest.chars().next() else {
            return Err(self.err("`\\` at end of input"));
        };
        // The first char is taken even if it is a delimiter: `\(` is a char.
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        let more = self.read_token()?;
        let ch = if more.is_empty() {
            c
        } else {
            let name = self.slice(self.pos - more.len() - c.len_utf8(), self.pos)?;
            match name {
                "newline" => '\n',
                "space" => ' ',
                "tab" => '\t',
                "return" => '\r',
                "formfeed" => '\x0c',
                "backspace" => '\x08',
                _ => name
                    .strip_prefix('u')
                    .filter(|h| h.len() == 4 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                    .ok_or_else(|| self.err(format!("unknown character literal `\\{name}`")))?,
            }
        };
        Ok(EdnKind::Str(Cow::Owned(ch.to_string())))
    }

    fn parse_dispatch(&mut self) -> PResult<EdnKind<'a>> {
        match self.peek_at(1) {
            Some(b'{') => {
                self.pos += 1;
                Ok(EdnKind::Set(self.parse_seq(b'}')?))
            }
            Some(b'#') => {
                self.pos += 2;
                match self.read_token()? {
                    "Inf" => Ok(EdnKind::Float(f64::INFINITY)),
                    "-Inf" => Ok(EdnKind::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(EdnKind::Float(f64::NAN)),
                    other => Err(self.err(format!("unknown symbolic value `##{other}`"))),
                }
            }
            Some(b'"') => {
                // A regex literal; nothing here interprets it, so its text
                // is all a caller could want.
                self.pos += 1;
                Ok(EdnKind::Str(self.parse_string()?))
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let line = self.line;
                self.pos += 1;
                let tag = self.read_token()?;
                self.enter()?;
                self.skip_ws()?;
                let value = match self.peek() {
                    Some(b) if !is_closer(b) => self.parse_value()?,
                    _ => {
                        return Err(EdnError {
                            line,
                            message: format!("tag `#{tag}` has no value after it"),
                        })
                    }
                };
                self.leave();
                Ok(EdnKind::Tagged(tag, Box::new(value)))
            }
            Some(b'_') => {
                // Only reachable if a caller skipped `skip_ws`; handle it the
                // same way rather than reporting a confusing error.
                self.skip_ws()?;
                if self.peek().is_some_and(|b| !is_closer(b)) {
                    self.enter()?;
                    let value = self.parse_value()?;
                    self.leave();
                    Ok(value.kind)
                } else {
                    Err(self.err("`#_` with no value after it to discard"))
                }
            }
            other => {
                let shown = other.map(|b| (b as char).to_string()).unwrap_or_default();
                Err(self.err(format!("unexpected `#{shown}`")))
            }
        }
    }

    /// Parses a string whose opening quote is at the current position.
    fn parse_string(&mut self) -> PResult<Cow<'a, str>> {
        let start_line = self.line;
        let bytes = self.src.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        // Fast path: no escapes, so the string can borrow from the source.
        loop {
            match bytes.get(i) {
                None => return Err(self.unterminated(start_line)),
                Some(b'"') => {
                    self.pos = i + 1;
                    return self.slice(start, i).map(Cow::Borrowed);
                }
                Some(b'\\') => break,
                Some(b'\n') => {
                    self.line += 1;
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(self.slice(start, i)?);
        loop {
            match bytes.get(i) {
                None => return Err(self.unterminated(start_line)),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    let escaped = match bytes.get(i + 1) {
                        None => return Err(self.unterminated(start_line)),
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'b') => '\x08',
                        Some(b'f') => '\x0c',
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'u') => {
                            let (c, used) = self.unicode_escape(i)?;
                            out.push(c);
                            i += used;
                            continue;
                        }
                        Some(&other) => {
                            let shown = if other.is_ascii_graphic() {
                                (other as char).to_string()
                            } else {
                                format!("\\x{other:02x}")
                            };
                            return Err(self.err(format!("unknown escape `\\{shown}` in string")));
                        }
                    };
                    out.push(escaped);
                    i += 2;
                }
                Some(_) => {
                    let run_start = i;
                    while let Some(&b) = bytes.get(i) {
                        match b {
                            b'"' | b'\\' => break,
                            b'\n' => self.line += 1,
                            _ => {}
                        }
                        i += 1;
                    }
                    out.push_str(self.slice(run_start, i)?);
                }
            }
        }
    }

    fn unterminated(&self, start_line: usize) -> EdnError {
        EdnError {
            line: start_line,
            message: format!(
                "string starting on this line is never closed (input ends on line {})",
                self.line
            ),
        }
    }

    /// Decodes `\uXXXX` (and a following low surrogate) at byte `at`;
    /// returns the char and the bytes consumed.
    fn unicode_escape(&self, at: usize) -> PResult<(char, usize)> {
        let hex4 = |from: usize| -> Option<u32> {
            let digits = self.src.as_bytes().get(from..from.checked_add(4)?)?;
            if !digits.iter().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
        };
        let bad = || self.err("invalid `\\u` escape in string");
        let hi = hex4(at + 2).ok_or_else(bad)?;
        if (0xD800..0xDC00).contains(&hi) {
            let bytes = self.src.as_bytes();
            if bytes.get(at + 6) == Some(&b'\\') && bytes.get(at + 7) == Some(&b'u') {
                let lo = hex4(at + 8).ok_or_else(bad)?;
                if (0xDC00..0xE000).contains(&lo) {
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return char::from_u32(c).map(|c| (c, 12)).ok_or_else(bad);
                }
            }
            return Err(bad());
        }
        char::from_u32(hi).map(|c| (c, 6)).ok_or_else(bad)
    }
}

/// Classifies and parses a token that starts like a number.
fn parse_number(tok: &str) -> Result<EdnKind<'static>, String> {
    if let Some(int) = tok.strip_suffix('N') {
        return parse_int(int, tok);
    }
    if tok.contains('/') {
        return Err(format!("ratio `{tok}` is not supported"));
    }
    let decimal = tok.strip_suffix('M');
    let body = decimal.unwrap_or(tok);
    if decimal.is_some() || body.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let well_formed = body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        return match body.parse::<f64>() {
            Ok(x) if well_formed => Ok(EdnKind::Float(x)),
            _ => Err(format!("invalid number `{tok}`")),
        };
    }
    parse_int(tok, tok)
}

fn parse_int(digits: &str, tok: &str) -> Result<EdnKind<'static>, String> {
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits).as_bytes();
    if unsigned.is_empty() || !unsigned.iter().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid number `{tok}`"));
    }
    digits
        .parse::<i64>()
        .map(EdnKind::Int)
        .map_err(|_| format!("integer `{tok}` does not fit in a signed 64-bit integer"))
}

/// Parses `src` as exactly one value (surrounding whitespace and comments
/// allowed), numbering lines from `line`.
pub fn parse_one(src: &str, line: usize) -> Result<Edn<'_>, EdnError> {
    let mut parser = Parser::starting_at_line(src, line);
    let Some(value) = parser.next_value()? else {
        return Err(EdnError {
            line,
            message: "expected a value, found nothing".into(),
        });
    };
    parser.skip_ws()?;
    if parser.peek().is_some() {
        return Err(parser.err(format!(
            "unexpected text after {}: `{}`",
            value.describe(),
            parser.src.get(parser.pos..).unwrap_or_default().trim()
        )));
    }
    Ok(value)
}

/// Streams the events of a history file: the elements of each top-level
/// vector or list, and every other top-level value as itself. This covers a
/// file that is one `[...]` or `(...)` of maps as well as a stream of maps.
#[derive(Clone, Debug)]
pub struct Events<'a> {
    parser: Parser<'a>,
    /// Closing bracket and line of the top-level collection being walked.
    open: Option<(u8, usize)>,
}

impl<'a> Events<'a> {
    /// Events of `src`, starting at line 1.
    pub fn new(src: &'a str) -> Self {
        Events {
            parser: Parser::new(src),
            open: None,
        }
    }

    /// The next event, or `None` at the end of the input.
    pub fn next_event(&mut self) -> Result<Option<Edn<'a>>, EdnError> {
        loop {
            self.parser.skip_ws()?;
            let Some(b) = self.parser.peek() else {
                return match self.open {
                    None => Ok(None),
                    Some((close, line)) => Err(EdnError {
                        line,
                        message: format!(
                            "`{}` opened on this line is never closed (input ends on line {})",
                            if close == b']' { '[' } else { '(' },
                            self.parser.line
                        ),
                    }),
                };
            };
            match self.open {
                Some((close, _)) if b == close => {
                    self.parser.pos += 1;
                    self.open = None;
                }
                None if b == b'[' || b == b'(' => {
                    let close = if b == b'[' { b']' } else { b')' };
                    self.open = Some((close, self.parser.line));
                    self.parser.pos += 1;
                }
                _ if is_closer(b) => {
                    let message = match self.open {
                        Some((close, line)) => format!(
                            "unexpected `{}`: expected `{}` to close the `{}` of line {line}",
                            b as char,
                            close as char,
                            if close == b']' { '[' } else { '(' }
                        ),
                        None => format!(
                            "unexpected `{}` with no matching opening bracket",
                            b as char
                        ),
                    };
                    return Err(self.parser.err(message));
                }
                _ => return self.parser.parse_value().map(Some),
            }
        }
    }
}
