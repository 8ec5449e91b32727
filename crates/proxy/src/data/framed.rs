//! A connection's read buffer as both sides use it: room made for the next read, and body
//! data taken out of it with the `h1` codec's decoder (split off, no copy).

use bytes::{Bytes, BytesMut};
use h1::Decoder;

/// What a connection's read buffer starts with and grows by: a head and a small body fit.
pub(crate) const READ_BUFFER: usize = 8 * 1024;

/// Makes sure `buf` has room for a read, growing it only when little is left.
pub(crate) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUFFER);
    }
}

/// What the buffered bytes of a body hold.
pub(crate) enum Decoded {
    /// Body data, split off the buffer.
    Data(Bytes),
    /// The body is complete.
    End,
    /// Nothing more can be decoded before more input arrives.
    More,
}

/// Decodes from what `buf` holds until body data, the body's end, or the need for more input.
///
/// # Errors
/// Malformed chunked framing, as `InvalidData` (the sender's fault).
pub(crate) fn decode(decoder: &mut Decoder, buf: &mut BytesMut) -> std::io::Result<Decoded> {
    loop {
        if decoder.is_done() {
            return Ok(Decoded::End);
        }
        if buf.is_empty() {
            return Ok(Decoded::More);
        }
        let step = decoder
            .decode(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.reason()))?;
        let taken = buf.split_to(step.consumed);
        if !step.data.is_empty() {
            return Ok(Decoded::Data(taken.freeze().slice(step.data)));
        }
        if step.done {
            return Ok(Decoded::End);
        }
        if step.consumed == 0 {
            return Ok(Decoded::More);
        }
    }
}
