//! Body framing as a state machine: which bytes of the input are body data, and where the
//! message ends. Chunked framing is checked strictly (RFC 9112 section 7.1): a chunk size is
//! 1 to 16 hex digits, an extension is `;` and visible characters, every line ends in CRLF,
//! trailer lines are bounded; anything else is an error, never a guess.

use std::ops::Range;

use crate::framing::Framing;

/// Longest chunk line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// A chunk size that is not 1 to 16 hex digits.
    BadChunkSize,
    /// A chunk extension with a control character, or a chunk line over 4 KiB.
    BadChunkExtension,
    /// A line of the chunked framing not ended by CRLF.
    BadLineEnding,
    /// Trailer fields over 16 KiB or with control characters.
    BadTrailers,
    /// The connection closed before the body's end.
    Truncated,
}

impl BodyError {
    /// A sentence for logs and error pages.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadChunkSize => "invalid chunk size",
            Self::BadChunkExtension => "invalid chunk extension",
            Self::BadLineEnding => "invalid line ending in the chunked body",
            Self::BadTrailers => "invalid trailer section",
            Self::Truncated => "the body ended early",
        }
    }
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input used (framing and data). Bytes after them are not part of this
    /// body (the next message, or nothing).
    pub consumed: usize,
    /// Body data within the input (possibly empty).
    pub data: Range<usize>,
    /// The body is complete.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: optional whitespace and extensions (`started` once a `;` is seen),
    /// up to CR.
    Extension {
        line: usize,
        started: bool,
    },
    /// CR seen at the end of a chunk line; LF expected. `size` is the chunk's size.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: `line` bytes into the current line, `total` so far.
    Trailer {
        line: usize,
        total: usize,
    },
    TrailerLf {
        line: usize,
        total: usize,
    },
    Done,
}

/// Decodes one body. Make one per message with its [`Framing`].
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    pending_size: u64,
}

impl Decoder {
    /// A decoder for a body framed as `framing`.
    #[must_use]
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size {
                value: 0,
                digits: 0,
            },
            Framing::UntilClose => State::UntilClose,
        };
        Self {
            state,
            pending_size: 0,
        }
    }

    /// Whether the body is complete.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body's end is the connection's end.
    #[must_use]
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Advances over `input`: returns after a span of data, after the end of the body, or
    /// once all input is used. Call again with the rest (`input[step.consumed..]`) while it
    /// consumes something and is not done.
    ///
    /// # Errors
    /// Malformed chunked framing.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => break,
                State::UntilClose => {
                    return Ok(Step {
                        consumed: input.len(),
                        data: 0..input.len(),
                        done: false,
                    });
                }
                State::Length(remaining) | State::Data(remaining) => {
                    let n = remaining.min((input.len() - i) as u64) as usize;
                    let left = remaining - n as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                    return Ok(Step {
                        consumed: i + n,
                        data: i..i + n,
                        done: self.state == State::Done,
                    });
                }
                State::Size { value, digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits == 16 {
                            return Err(BodyError::BadChunkSize);
                        }
                        self.state = State::Size {
                            value: value << 4 | u64::from(d),
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(BodyError::BadChunkSize);
                    } else {
                        self.pending_size = value;
                        self.state = State::Extension {
                            line: 0,
                            started: false,
                        };
                        continue; // look at this byte again as part of the extension
                    }
                }
                State::Extension { line, started } => {
                    if line >= MAX_CHUNK_LINE {
                        return Err(BodyError::BadChunkExtension);
                    }
                    let next = |started| State::Extension {
                        line: line + 1,
                        started,
                    };
                    self.state = match b {
                        b'\r' => State::SizeLf {
                            size: self.pending_size,
                        },
                        b'\n' => return Err(BodyError::BadLineEnding),
                        // Whitespace may precede `;` (BWS); an extension starts with `;`.
                        b' ' | b'\t' => next(started),
                        b';' => next(true),
                        _ if started && is_ext_char(b) => next(true),
                        _ if started => return Err(BodyError::BadChunkExtension),
                        _ => return Err(BodyError::BadChunkSize),
                    };
                }
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(BodyError::BadLineEnding);
                    }
                    self.state = if size == 0 {
                        State::Trailer { line: 0, total: 0 }
                    } else {
                        State::Data(size)
                    };
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(BodyError::BadLineEnding);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadLineEnding);
                    }
                    self.state = State::Size {
                        value: 0,
                        digits: 0,
                    };
                }
                State::Trailer { line, total } => {
                    if total >= MAX_TRAILERS {
                        return Err(BodyError::BadTrailers);
                    }
                    match b {
                        b'\r' => self.state = State::TrailerLf { line, total },
                        b'\n' => return Err(BodyError::BadLineEnding),
                        b'\t' | b' '..=b'~' | 0x80..=0xff => {
                            self.state = State::Trailer {
                                line: line + 1,
                                total: total + 1,
                            };
                        }
                        _ => return Err(BodyError::BadTrailers),
                    }
                }
                State::TrailerLf { line, total } => {
                    if b != b'\n' {
                        return Err(BodyError::BadLineEnding);
                    }
                    if line == 0 {
                        self.state = State::Done;
                        return Ok(Step {
                            consumed: i + 1,
                            data: i + 1..i + 1,
                            done: true,
                        });
                    }
                    self.state = State::Trailer {
                        line: 0,
                        total: total + 2,
                    };
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: i..i,
            done: self.state == State::Done,
        })
    }

    /// The connection closed: whether that ends the body properly.
    ///
    /// # Errors
    /// [`BodyError::Truncated`] unless the body was complete or delimited by the close.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }
}

/// Characters allowed in a chunk extension after its `;`: token characters, `=`, quotes and
/// the visible characters of a quoted string, and whitespace.
fn is_ext_char(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and whether it ended.
    fn decode_all(
        framing: Framing,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), BodyError> {
        let mut d = Decoder::new(framing);
        let mut data = Vec::new();
        let mut used = 0;
        let mut fed = 0;
        while fed < input.len() && !d.is_done() {
            let end = (fed + step).min(input.len());
            let mut piece = &input[used..end];
            loop {
                let s = d.decode(piece)?;
                data.extend_from_slice(&piece[s.data.clone()]);
                used += s.consumed;
                piece = &piece[s.consumed..];
                if s.done || s.consumed == 0 || piece.is_empty() {
                    break;
                }
            }
            fed = end;
        }
        if !d.is_done() {
            d.finish()?;
        }
        Ok((data, used))
    }

    #[test]
    fn content_length_stops_at_the_length() {
        let (data, used) = decode_all(Framing::Length(5), b"helloGET /next", 3).unwrap();
        assert_eq!((data.as_slice(), used), (&b"hello"[..], 5));
        assert_eq!(
            decode_all(Framing::Length(5), b"hel", 3),
            Err(BodyError::Truncated)
        );
    }

    #[test]
    fn chunked_in_any_pieces() {
        let body = b"5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (data, used) = decode_all(Framing::Chunked, body, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
            assert_eq!(used, body.len() - 4, "step {step}");
        }
    }

    #[test]
    fn until_close_takes_everything() {
        let mut d = Decoder::new(Framing::UntilClose);
        let s = d.decode(b"abc").unwrap();
        assert_eq!((s.consumed, s.data, s.done), (3, 0..3, false));
        assert!(d.until_close());
        assert_eq!(d.finish(), Ok(()));
        assert!(d.is_done());
    }

    /// The chunked cases of docs/http1.md's table.
    #[test]
    fn malformed_chunked_framing_is_refused() {
        let cases: &[(&[u8], BodyError)] = &[
            (b"zz\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (b"\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (b"-5\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (b"0x5\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (b"11111111111111111\r\n", BodyError::BadChunkSize),
            (b"5 x\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (
                b"5;a\0b\r\nhello\r\n0\r\n\r\n",
                BodyError::BadChunkExtension,
            ),
            (b"5\nhello\r\n0\r\n\r\n", BodyError::BadLineEnding),
            (b"5\rhello\r\n0\r\n\r\n", BodyError::BadLineEnding),
            (b"5\r\nhelloX\r\n0\r\n\r\n", BodyError::BadLineEnding),
            (b"5\r\nhello\n0\r\n\r\n", BodyError::BadLineEnding),
            (b"5\r\nhello\r\n0\r\n\n", BodyError::BadLineEnding),
            (b"5\r\nhello\r\n0\r\nX: a\0\r\n\r\n", BodyError::BadTrailers),
            (b"5\r\nhel", BodyError::Truncated),
        ];
        for (body, want) in cases {
            assert_eq!(
                decode_all(Framing::Chunked, body, 64).map(|_| ()),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let long_ext = [b"5;".as_slice(), &[b'a'; 5000], b"\r\nhello\r\n0\r\n\r\n"].concat();
        assert_eq!(
            decode_all(Framing::Chunked, &long_ext, 64).map(|_| ()),
            Err(BodyError::BadChunkExtension)
        );
    }

    #[test]
    fn whitespace_before_an_extension_is_allowed() {
        let (data, _) = decode_all(Framing::Chunked, b"5 ;x=1\r\nhello\r\n0\r\n\r\n", 64).unwrap();
        assert_eq!(data, b"hello");
        let (data, _) = decode_all(Framing::Chunked, b"5  \r\nhello\r\n0\r\n\r\n", 64).unwrap();
        assert_eq!(data, b"hello");
    }
}
