//! How a message's body is delimited (RFC 9112 section 6), decided from its
//! `Transfer-Encoding` and `Content-Length` fields, strictly: every ambiguity that lets two
//! parsers disagree on where a message ends (request smuggling) is an error.
//!
//! The choices where the RFC leaves one, for requests: `Transfer-Encoding` together with
//! `Content-Length` is refused (400) rather than repaired (HAProxy drops the length and closes
//! after the response); `Transfer-Encoding` in an HTTP/1.0 request is refused. For responses,
//! `Transfer-Encoding` wins and the length is dropped, as the RFC says.

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// No body.
    #[default]
    Empty,
    /// Exactly this many bytes (never 0: that is [`Framing::Empty`]).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why the framing fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A `Content-Length` value that is not 1*DIGIT (a sign, a space inside, empty) or
    /// overflows 64 bits.
    BadContentLength,
    /// Several `Content-Length` values that differ.
    ConflictingContentLength,
    /// `chunked` is not the last transfer coding (in a request).
    ChunkedNotLast,
    /// `chunked` applied twice.
    ChunkedTwice,
    /// A request's last transfer coding is not `chunked`: its length cannot be known.
    UnknownLength,
    /// An empty `Transfer-Encoding`.
    EmptyTransferEncoding,
    /// Both `Transfer-Encoding` and `Content-Length` in a request.
    LengthAndChunked,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
}

impl FramingError {
    /// A sentence for logs and error pages.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadContentLength => "invalid Content-Length",
            Self::ConflictingContentLength => "several different Content-Length values",
            Self::ChunkedNotLast => "chunked is not the last transfer coding",
            Self::ChunkedTwice => "chunked is applied twice",
            Self::UnknownLength => "the last transfer coding is not chunked",
            Self::EmptyTransferEncoding => "empty Transfer-Encoding",
            Self::LengthAndChunked => "both Transfer-Encoding and Content-Length",
            Self::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
        }
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// `1*DIGIT` as a number, if it is one and fits in 64 bits (19 digits always do).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The length all `Content-Length` values agree on (each field may hold a comma-separated
/// list, RFC 9110 section 8.6), `None` without any.
///
/// # Errors
/// [`FramingError::BadContentLength`], [`FramingError::ConflictingContentLength`].
pub fn content_length<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    let mut agree = |n: u64| match length {
        Some(previous) if previous != n => Err(FramingError::ConflictingContentLength),
        _ => {
            length = Some(n);
            Ok(())
        }
    };
    for value in values {
        // The usual value is one number: no list to split.
        if let Some(n) = number(value) {
            agree(n)?;
            continue;
        }
        for element in value.split(|&b| b == b',') {
            agree(number(trim(element)).ok_or(FramingError::BadContentLength)?)?;
        }
    }
    Ok(length)
}

/// Whether the last transfer coding is `chunked`; `None` without `Transfer-Encoding`.
///
/// # Errors
/// `chunked` twice, `chunked` before another coding, or only empty elements.
pub fn transfer_encoding<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<bool>, FramingError> {
    let mut seen_field = false;
    let mut codings = 0usize;
    let mut chunked = 0usize;
    let mut last_chunked = false;
    for value in values {
        seen_field = true;
        for element in value.split(|&b| b == b',') {
            let coding = trim(element);
            if coding.is_empty() {
                continue;
            }
            // Parameters (`;q=...`) do not change the coding's name.
            let name = trim(coding.split(|&b| b == b';').next().unwrap_or(coding));
            codings += 1;
            last_chunked = crate::ascii::eq_lowercase(name, b"chunked");
            if last_chunked {
                chunked += 1;
            }
        }
    }
    if !seen_field {
        return Ok(None);
    }
    if codings == 0 {
        return Err(FramingError::EmptyTransferEncoding);
    }
    if chunked > 1 {
        return Err(FramingError::ChunkedTwice);
    }
    if chunked == 1 && !last_chunked {
        return Err(FramingError::ChunkedNotLast);
    }
    Ok(Some(last_chunked))
}

/// A request's framing (RFC 9112 section 6.3, items 3 to 6, with the choices above).
///
/// # Errors
/// See [`FramingError`].
pub fn request<'a>(
    minor_version: u8,
    transfer_encoding: impl IntoIterator<Item = &'a [u8]>,
    content_length: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Framing, FramingError> {
    let te = self::transfer_encoding(transfer_encoding)?;
    let cl = self::content_length(content_length)?;
    match (te, cl) {
        (Some(_), _) if minor_version == 0 => Err(FramingError::TransferEncodingInHttp10),
        (Some(_), Some(_)) => Err(FramingError::LengthAndChunked),
        (Some(true), None) => Ok(Framing::Chunked),
        (Some(false), None) => Err(FramingError::UnknownLength),
        (None, Some(0) | None) => Ok(Framing::Empty),
        (None, Some(n)) => Ok(Framing::Length(n)),
    }
}

/// A response's framing, and whether its `Content-Length` must be dropped (it came with
/// `Transfer-Encoding`, which wins). `bodiless` is a response to `HEAD`, a 1xx, 204 or 304.
///
/// # Errors
/// Invalid or conflicting lengths, `chunked` twice or not last.
pub fn response<'a>(
    bodiless: bool,
    transfer_encoding: impl IntoIterator<Item = &'a [u8]>,
    content_length: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(Framing, bool), FramingError> {
    let te = self::transfer_encoding(transfer_encoding)?;
    let cl = self::content_length(content_length)?;
    let drop_length = te.is_some() && cl.is_some();
    let framing = match (bodiless, te, cl) {
        (true, _, _) => Framing::Empty,
        (false, Some(true), _) => Framing::Chunked,
        (false, Some(false), _) => Framing::UntilClose,
        (false, None, Some(0)) => Framing::Empty,
        (false, None, Some(n)) => Framing::Length(n),
        (false, None, None) => Framing::UntilClose,
    };
    Ok((framing, drop_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(values: &[&str]) -> Result<Option<u64>, FramingError> {
        content_length(values.iter().map(|v| v.as_bytes()))
    }

    fn te(values: &[&str]) -> Result<Option<bool>, FramingError> {
        transfer_encoding(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn content_length_is_digits_only_and_agreed() {
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&["42"]), Ok(Some(42)));
        assert_eq!(cl(&["42, 42"]), Ok(Some(42)));
        assert_eq!(cl(&["42", "42"]), Ok(Some(42)));
        assert_eq!(
            cl(&["18446744073709551615"]),
            Err(FramingError::BadContentLength)
        );
        assert_eq!(
            cl(&["9999999999999999999"]),
            Ok(Some(9_999_999_999_999_999_999))
        );
        for bad in ["+5", "-5", "5 5", "", "0x10", "5,", "1e3", "٣"] {
            assert_eq!(cl(&[bad]), Err(FramingError::BadContentLength), "{bad:?}");
        }
        assert_eq!(cl(&["5", "6"]), Err(FramingError::ConflictingContentLength));
        assert_eq!(cl(&["5, 6"]), Err(FramingError::ConflictingContentLength));
    }

    #[test]
    fn chunked_must_be_last_and_once() {
        assert_eq!(te(&[]), Ok(None));
        assert_eq!(te(&["chunked"]), Ok(Some(true)));
        assert_eq!(te(&["gzip, Chunked"]), Ok(Some(true)));
        assert_eq!(te(&["gzip", "chunked"]), Ok(Some(true)));
        assert_eq!(te(&["gzip"]), Ok(Some(false)));
        assert_eq!(te(&["chunked, chunked"]), Err(FramingError::ChunkedTwice));
        assert_eq!(te(&["chunked", "chunked"]), Err(FramingError::ChunkedTwice));
        assert_eq!(te(&["chunked, gzip"]), Err(FramingError::ChunkedNotLast));
        assert_eq!(te(&[" , "]), Err(FramingError::EmptyTransferEncoding));
    }

    #[test]
    fn request_framing_refuses_every_ambiguity() {
        let none: [&[u8]; 0] = [];
        assert_eq!(request(1, none, none), Ok(Framing::Empty));
        assert_eq!(request(1, none, [&b"0"[..]]), Ok(Framing::Empty));
        assert_eq!(request(1, none, [&b"7"[..]]), Ok(Framing::Length(7)));
        assert_eq!(request(1, [&b"chunked"[..]], none), Ok(Framing::Chunked));
        assert_eq!(
            request(1, [&b"chunked"[..]], [&b"7"[..]]),
            Err(FramingError::LengthAndChunked)
        );
        assert_eq!(
            request(1, [&b"gzip"[..]], none),
            Err(FramingError::UnknownLength)
        );
        assert_eq!(
            request(0, [&b"chunked"[..]], none),
            Err(FramingError::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn response_framing_lets_chunked_win() {
        let none: [&[u8]; 0] = [];
        assert_eq!(
            response(false, [&b"chunked"[..]], [&b"7"[..]]),
            Ok((Framing::Chunked, true))
        );
        assert_eq!(
            response(false, none, none),
            Ok((Framing::UntilClose, false))
        );
        assert_eq!(
            response(false, [&b"gzip"[..]], none),
            Ok((Framing::UntilClose, false))
        );
        assert_eq!(
            response(true, none, [&b"7"[..]]),
            Ok((Framing::Empty, false))
        );
        assert_eq!(
            response(false, none, [&b"7, 8"[..]]),
            Err(FramingError::ConflictingContentLength)
        );
    }
}
