//! A connection's read buffer as both sides use it: room made for the next read, and body
//! data taken out of it with the `h1` codec's decoder (split off, no copy).

use bytes::{Bytes, BytesMut};
use h1::Decoder;

/// What a connection's read buffer starts with and grows by: a head and a small body fit.
pub(crate) const READ_BUFFER: usize = 8 * 1024;

/// Makes sure `buf` has room for a read, growing it only when little is left.
///
/// An empty buffer first goes back to the start of its allocation when nothing split off it
/// is still alive (no copy, no allocation). Without this, each message is read past the last
/// one and a keep-alive connection walks its whole buffer, so every read lands on cache lines
/// nobody touched since the buffer was last reclaimed; with it, every message reuses the same
/// few lines. Asking for one byte more than the capacity is what makes `try_reclaim` move
/// back when it can, and do nothing when the buffer already starts its allocation.
pub(crate) fn make_room(buf: &mut BytesMut) {
    if buf.is_empty() {
        let _ = buf.try_reclaim(buf.capacity() + 1);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `message` into `buf` as a connection would, then splits it off as a parsed head.
    fn read_and_take(buf: &mut BytesMut, message: &[u8]) -> Bytes {
        make_room(buf);
        buf.extend_from_slice(message);
        buf.split_to(message.len()).freeze()
    }

    #[test]
    fn an_emptied_buffer_reads_the_next_message_where_the_first_one_was() {
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        let message = [b'x'; 300];
        let first = read_and_take(&mut buf, &message);
        let start = first.as_ptr();
        drop(first);
        for _ in 0..100 {
            let next = read_and_take(&mut buf, &message);
            assert_eq!(next.as_ptr(), start, "each message reuses the same bytes");
        }
        make_room(&mut buf);
        assert_eq!(
            buf.capacity(),
            READ_BUFFER,
            "the whole allocation is room again"
        );
    }

    #[test]
    fn a_buffer_still_shared_moves_on_without_copying_or_losing_bytes() {
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        let first = read_and_take(&mut buf, b"GET / HTTP/1.1\r\n\r\n");
        // The head is still in use (its fields point into it): the next read goes after it.
        let second = read_and_take(&mut buf, b"GET /b HTTP/1.1\r\n\r\n");
        assert_eq!(second.as_ptr(), first[first.len()..].as_ptr());
        assert_eq!(&first[..], b"GET / HTTP/1.1\r\n\r\n");
        // Pipelined bytes already buffered are never moved away from under the parser.
        buf.extend_from_slice(b"partial");
        drop((first, second));
        make_room(&mut buf);
        assert_eq!(&buf[..], b"partial");
    }
}
