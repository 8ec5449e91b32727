//! Request and response heads, parsed in place with `httparse`: every part of the head is a
//! [`Span`] of the caller's buffer, and the field list keeps its allocation from one message
//! to the next.

use std::mem::MaybeUninit;

use crate::ascii::eq_lowercase;
use crate::framing::{self, Framing, FramingError};

/// Size limits of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole head, request line and final empty line included (431 beyond; HAProxy's
    /// `tune.bufsize` is 16 KiB).
    pub max_head: usize,
    /// The request target (414 beyond).
    pub max_uri: usize,
    /// Header fields (431 beyond).
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_uri: 8 * 1024,
            max_fields: 100,
        }
    }
}

/// Whether a head is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Parsed: the head is `len` bytes long.
    Complete,
    /// Read more and call again with the longer buffer.
    Partial,
}

/// Why a head is refused, with the status a proxy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed (400 for a request, 502 for a response).
    Invalid(&'static str),
    /// Framing fields that could be read two ways (400 / 502).
    Framing(FramingError),
    /// Over [`Limits::max_head`] or [`Limits::max_fields`] (431 / 502).
    TooLarge,
    /// Request target over [`Limits::max_uri`] (414).
    UriTooLong,
}

impl HeadError {
    /// The status to answer a client whose request head this is.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Framing(_) => 400,
            Self::TooLarge => 431,
            Self::UriTooLong => 414,
        }
    }

    /// A sentence for logs and error pages.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid(why) => why,
            Self::Framing(e) => e.reason(),
            Self::TooLarge => "the request header fields are too large",
            Self::UriTooLong => "the request target is too long",
        }
    }
}

/// A range of the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn within(buf: &[u8], part: &[u8]) -> Self {
        // Both are slices of `buf` (httparse only hands out sub-slices): plain address
        // arithmetic, no unsafe.
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Self {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes of this span in `buf` (empty if `buf` is not the parsed buffer).
    #[must_use]
    pub fn of(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// Its place in the buffer.
    #[must_use]
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Its length.
    #[must_use]
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Field {
    /// Name, as received.
    pub name: Span,
    /// Value, without surrounding whitespace.
    pub value: Span,
}

/// What the `Connection` field says, with the version's default applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    /// The connection may carry another message after this one.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
    /// `Connection` names options beyond `close`, `keep-alive` and `upgrade`: fields a proxy
    /// must not forward (RFC 9110 section 7.6.1).
    pub options: bool,
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The values of the fields whose name `is` accepts, in order.
fn values_where<'a>(
    buf: &'a [u8],
    fields: &'a [Field],
    is: impl Fn(&[u8]) -> bool + 'a,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |f| is(f.name.of(buf)))
        .map(move |f| f.value.of(buf))
}

/// The values of the fields called `lower` (lowercase letters and `-`), in order.
fn fields_named<'a>(
    buf: &'a [u8],
    fields: &'a [Field],
    lower: &'static [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values_where(buf, fields, move |name| eq_lowercase(name, lower))
}

fn connection(buf: &[u8], fields: &[Field], minor: u8) -> Connection {
    let (mut close, mut keep_alive, mut upgrade, mut options) = (false, false, false, false);
    let mut option = |token: &[u8]| {
        if eq_lowercase(token, b"close") {
            close = true;
        } else if eq_lowercase(token, b"keep-alive") {
            keep_alive = true;
        } else if eq_lowercase(token, b"upgrade") {
            upgrade = true;
        } else {
            options = true;
        }
    };
    for value in fields_named(buf, fields, b"connection") {
        // The usual value is one option (the codec trimmed it): no list to split.
        if value.contains(&b',') {
            tokens(value).for_each(&mut option);
        } else if !value.is_empty() {
            option(value);
        }
    }
    Connection {
        keep_alive: !close && (minor == 1 || keep_alive),
        // Only an upgrade `Connection` names sends anyone looking for `Upgrade`.
        upgrade: upgrade && fields_named(buf, fields, b"upgrade").next().is_some(),
        options,
    }
}

fn store_fields(buf: &[u8], parsed: &[httparse::Header<'_>], out: &mut Vec<Field>) {
    out.clear();
    out.extend(parsed.iter().map(|h| Field {
        name: Span::within(buf, h.name.as_bytes()),
        value: Span::within(buf, h.value),
    }));
}

fn map_error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooLarge,
        httparse::Error::HeaderName => HeadError::Invalid("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Invalid("invalid header value"),
        httparse::Error::NewLine => HeadError::Invalid("invalid line ending"),
        httparse::Error::Status => HeadError::Invalid("invalid status"),
        httparse::Error::Token => HeadError::Invalid("invalid method"),
        httparse::Error::Version => HeadError::Invalid("unsupported HTTP version"),
    }
}

/// A head's length once httparse has it all, `None` while more may come; over
/// [`Limits::max_head`] either way is an error.
fn complete(
    parsed: httparse::Result<usize>,
    buffered: usize,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    match parsed.map_err(map_error)? {
        httparse::Status::Complete(len) if len <= limits.max_head => Ok(Some(len)),
        httparse::Status::Partial if buffered <= limits.max_head => Ok(None),
        _ => Err(HeadError::TooLarge),
    }
}

/// Space for httparse's field slices: on the stack, sized for [`Limits::max_fields`] up to
/// this bound, and left uninitialised (httparse writes each slot before it is read): 128
/// empty fields would be 3 KiB of stores on every head.
const MAX_FIELDS: usize = 128;

fn field_storage<'b>() -> [MaybeUninit<httparse::Header<'b>>; MAX_FIELDS] {
    [const { MaybeUninit::uninit() }; MAX_FIELDS]
}

/// A parsed request head. Reuse one per connection: parsing clears it.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    method: Span,
    target: Span,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Header fields, in order.
    pub fields: Vec<Field>,
    /// Length of the head in the buffer, final empty line included.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Persistence and upgrade.
    pub connection: Connection,
    /// The `Host` field's value, if present.
    pub host: Option<Span>,
    /// Where the path starts in an absolute-form target (0 for origin form).
    path_offset: u32,
}

impl RequestHead {
    /// Parses the request head at the start of `buf` and checks it: version, `Host` (exactly
    /// one in HTTP/1.1; an absolute-form target's authority must be the same), framing
    /// fields, sizes.
    ///
    /// # Errors
    /// See [`HeadError`]; the status to answer is [`HeadError::status`].
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Parse, HeadError> {
        let mut storage = field_storage();
        let max = limits.max_fields.clamp(1, MAX_FIELDS);
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(buf, &mut storage[..max]);
        let Some(len) = complete(parsed, buf.len(), limits)? else {
            return Ok(Parse::Partial);
        };
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HeadError::Invalid("incomplete request line"));
        };
        if target.len() > limits.max_uri {
            return Err(HeadError::UriTooLong);
        }
        self.method = Span::within(buf, method.as_bytes());
        self.target = Span::within(buf, target.as_bytes());
        self.minor = minor;
        self.len = len;
        store_fields(buf, req.headers, &mut self.fields);
        self.check_host(buf)?;
        self.framing = framing::request(
            minor,
            fields_named(buf, &self.fields, b"transfer-encoding"),
            fields_named(buf, &self.fields, b"content-length"),
        )
        .map_err(HeadError::Framing)?;
        self.connection = connection(buf, &self.fields, minor);
        Ok(Parse::Complete)
    }

    fn check_host(&mut self, buf: &[u8]) -> Result<(), HeadError> {
        let mut hosts = self
            .fields
            .iter()
            .filter(|f| eq_lowercase(f.name.of(buf), b"host"));
        self.host = hosts.next().map(|f| f.value);
        if hosts.next().is_some() {
            return Err(HeadError::Invalid("several Host fields"));
        }
        let host = self.host.map(|h| h.of(buf));
        if host.is_none() && self.minor == 1 {
            return Err(HeadError::Invalid("no Host field"));
        }
        let target = self.target.of(buf);
        self.path_offset = 0;
        if target.first() == Some(&b'/') || target == b"*" {
            return Ok(());
        }
        if self.method.of(buf) == b"CONNECT" {
            // Authority form (`host:port`), CONNECT's only form: whether to tunnel is the
            // caller's decision.
            return if target.is_empty() || target.contains(&b'/') || target.contains(&b'@') {
                Err(HeadError::Invalid("invalid CONNECT target"))
            } else {
                Ok(())
            };
        }
        // Absolute form: `scheme://authority[/path][?query]`.
        let Some(rest) = strip_scheme(target) else {
            return Err(HeadError::Invalid("invalid request target"));
        };
        let authority_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if authority.is_empty() || authority.contains(&b'@') {
            return Err(HeadError::Invalid(
                "invalid authority in the request target",
            ));
        }
        // RFC 9112 section 3.2.2: the target's authority wins; a Host that differs is a
        // request two parsers would route differently.
        if !host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return Err(HeadError::Invalid(
                "the request target's authority differs from Host",
            ));
        }
        self.path_offset = (target.len() - rest.len() + authority_len) as u32;
        Ok(())
    }

    /// The method.
    #[must_use]
    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.method.of(buf)
    }

    /// The target as received.
    #[must_use]
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.target.of(buf)
    }

    /// The target in origin form (`/path?query`): an absolute-form target without its
    /// scheme and authority (`/` when it has no path).
    #[must_use]
    pub fn origin_form<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let target = self.target.of(buf);
        match target.get(self.path_offset as usize..) {
            Some([]) => b"/",
            Some(path) => path,
            None => target,
        }
    }

    /// Values of the fields called `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, buf: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        values_where(buf, &self.fields, move |n| n.eq_ignore_ascii_case(name))
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let ok = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    let rest = target[colon..].strip_prefix(b"://")?;
    ok.then_some(rest)
}

/// A parsed response head. Reuse one per connection: parsing clears it.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    reason: Span,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Header fields, in order.
    pub fields: Vec<Field>,
    /// Length of the head in the buffer, final empty line included.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Persistence and upgrade.
    pub connection: Connection,
    /// It had both `Transfer-Encoding` and `Content-Length`: the length must not be
    /// forwarded.
    pub drop_content_length: bool,
}

impl ResponseHead {
    /// Parses the response head at the start of `buf`. `head_request`: the request was
    /// `HEAD`, so the response has no body whatever its fields say.
    ///
    /// # Errors
    /// See [`HeadError`]; a proxy answers its client 502.
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_request: bool,
        limits: &Limits,
    ) -> Result<Parse, HeadError> {
        let mut storage = field_storage();
        let max = limits.max_fields.clamp(1, MAX_FIELDS);
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut storage[..max],
        );
        let Some(len) = complete(parsed, buf.len(), limits)? else {
            return Ok(Parse::Partial);
        };
        let (Some(status), Some(minor)) = (resp.code, resp.version) else {
            return Err(HeadError::Invalid("incomplete status line"));
        };
        self.status = status;
        self.reason = resp
            .reason
            .map_or(Span::default(), |r| Span::within(buf, r.as_bytes()));
        self.minor = minor;
        self.len = len;
        store_fields(buf, resp.headers, &mut self.fields);
        let bodiless =
            head_request || (100..200).contains(&status) || status == 204 || status == 304;
        let (framing, drop_length) = framing::response(
            bodiless,
            fields_named(buf, &self.fields, b"transfer-encoding"),
            fields_named(buf, &self.fields, b"content-length"),
        )
        .map_err(HeadError::Framing)?;
        self.framing = framing;
        self.drop_content_length = drop_length;
        self.connection = connection(buf, &self.fields, minor);
        if framing == Framing::UntilClose {
            self.connection.keep_alive = false;
        }
        Ok(Parse::Complete)
    }

    /// The reason phrase.
    #[must_use]
    pub fn reason<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.reason.of(buf)
    }

    /// Whether this is an interim response (1xx other than 101): the final one follows.
    #[must_use]
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// Values of the fields called `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, buf: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        values_where(buf, &self.fields, move |n| n.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests;
