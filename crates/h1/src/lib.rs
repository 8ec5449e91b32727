//! veza-lb's HTTP/1.1 codec, without I/O: bytes in, heads and body events out.
//!
//! - [`RequestHead`] and [`ResponseHead`] parse a head in place from the caller's buffer
//!   (fields are [`Span`]s into it; the field list keeps its allocation between messages) and
//!   apply the framing rules of RFC 9112 strictly: a message that could be read two ways is
//!   refused, never guessed at ([`framing`]).
//! - [`Decoder`] is the body framing as a state machine (Content-Length, chunked,
//!   until-close): it says which bytes of the input are body data and where the message ends,
//!   and refuses a malformed chunk line, extension or line ending.
//! - [`encode`] writes heads (with the proxy's edits) and chunked framing.
//!
//! Nothing here allocates per message once the buffers are warm, reads a clock or panics on
//! any input (a property test feeds it arbitrary bytes).
//!
//! ```
//! use h1::{Framing, Limits, Parse, RequestHead};
//!
//! let buf = b"POST /api/v1/tracks HTTP/1.1\r\nHost: veza\r\nContent-Length: 5\r\n\r\nhello";
//! let mut head = RequestHead::default();
//! assert_eq!(head.parse(buf, &Limits::default()), Ok(Parse::Complete));
//! assert_eq!(head.method(buf), b"POST");
//! assert_eq!(head.framing, Framing::Length(5));
//! assert_eq!(&buf[head.len..], b"hello");
//! ```

mod ascii;
mod body;
pub mod encode;
pub mod framing;
mod head;

pub use ascii::eq_lowercase;
pub use body::{BodyError, Decoder, Step};
pub use framing::{Framing, FramingError};
pub use head::{Connection, Field, HeadError, Limits, Parse, RequestHead, ResponseHead, Span};
