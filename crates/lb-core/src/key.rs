//! Which part of a request is the hashing key of a jump-hash pool.

/// Where a jump-hash pool takes its key from.
///
/// The key is borrowed from the request, never copied: extraction is on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKeyRule {
    /// The URI path, query stripped, cut after `depth` segments:
    /// with depth 2, `/stream/42/seg-3.ts?x=1` keys on `/stream/42`. A path with fewer
    /// segments keys on the whole path.
    Path {
        /// Number of leading path segments that make the key (at least 1).
        depth: usize,
    },
    /// The raw (not percent-decoded) value of the first query parameter named `param`.
    Query {
        /// Parameter name, compared byte for byte.
        param: String,
    },
    /// The value of the first request header named `name` (case-insensitive).
    Header {
        /// Header name.
        name: String,
    },
}

impl HashKeyRule {
    /// Extracts the key from a request's path-and-query and headers.
    ///
    /// `header` looks up a header value by (lower-case) name. Returns `None` when the
    /// request carries no key (no such parameter or header, or an empty value): the pool then
    /// falls back to round-robin, as HAProxy does.
    ///
    /// ```
    /// use lb_core::HashKeyRule;
    /// let rule = HashKeyRule::Path { depth: 2 };
    /// let key = rule.extract("/stream/42/seg-3.ts?start=0", |_| None);
    /// assert_eq!(key, Some(&b"/stream/42"[..]));
    /// let rule = HashKeyRule::Query { param: "track_id".into() };
    /// assert_eq!(rule.extract("/play?a=1&track_id=42", |_| None), Some(&b"42"[..]));
    /// ```
    pub fn extract<'a>(
        &self,
        path_and_query: &'a str,
        header: impl FnOnce(&str) -> Option<&'a [u8]>,
    ) -> Option<&'a [u8]> {
        let non_empty = |k: &'a [u8]| (!k.is_empty()).then_some(k);
        match self {
            Self::Path { depth } => non_empty(path_prefix(path_and_query, *depth).as_bytes()),
            Self::Query { param } => query_param(path_and_query, param).and_then(non_empty),
            Self::Header { name } => header(name).and_then(non_empty),
        }
    }
}

/// The path of `path_and_query` without its query, cut after `depth` segments.
fn path_prefix(path_and_query: &str, depth: usize) -> &str {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    let mut segments = 0;
    for (i, byte) in path.bytes().enumerate() {
        // A '/' after a non-empty segment closes it; leading and doubled slashes do not count.
        if byte == b'/' && i > 0 && path.as_bytes()[i - 1] != b'/' {
            segments += 1;
            if segments == depth.max(1) {
                return &path[..i];
            }
        }
    }
    path
}

fn query_param<'a>(path_and_query: &'a str, param: &str) -> Option<&'a [u8]> {
    let (_, query) = path_and_query.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == param)
        .map(|(_, value)| value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str, depth: usize) -> Option<&[u8]> {
        HashKeyRule::Path { depth }.extract(p, |_| None)
    }

    #[test]
    fn path_depth_cuts_after_segments_and_strips_query() {
        assert_eq!(path("/stream/42/seg-3.ts", 2), Some(&b"/stream/42"[..]));
        assert_eq!(
            path("/stream/42/index.m3u8?x=1", 2),
            Some(&b"/stream/42"[..])
        );
        assert_eq!(path("/stream/42?x=1", 2), Some(&b"/stream/42"[..]));
        assert_eq!(path("/stream/42/", 2), Some(&b"/stream/42"[..]));
        assert_eq!(path("/stream", 2), Some(&b"/stream"[..]));
        assert_eq!(path("/a/b/c", 1), Some(&b"/a"[..]));
        assert_eq!(path("//a//b/c", 2), Some(&b"//a//b"[..]));
        assert_eq!(path("", 2), None);
    }

    #[test]
    fn every_segment_of_a_track_has_the_same_key() {
        let keys: Vec<_> = (0..10)
            .map(|i| path(&format!("/stream/track-9/seg-{i}.ts"), 2).map(<[u8]>::to_vec))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn query_param_is_found_anywhere_and_missing_is_none() {
        let rule = HashKeyRule::Query {
            param: "track_id".into(),
        };
        assert_eq!(rule.extract("/p?track_id=7", |_| None), Some(&b"7"[..]));
        assert_eq!(
            rule.extract("/p?a=1&track_id=7&b", |_| None),
            Some(&b"7"[..])
        );
        assert_eq!(rule.extract("/p?track_idx=7", |_| None), None);
        assert_eq!(rule.extract("/p?track_id=", |_| None), None);
        assert_eq!(rule.extract("/p", |_| None), None);
    }

    #[test]
    fn header_rule_uses_lookup() {
        let rule = HashKeyRule::Header {
            name: "x-track".into(),
        };
        assert_eq!(
            rule.extract("/", |n| (n == "x-track").then_some(&b"t1"[..])),
            Some(&b"t1"[..])
        );
        assert_eq!(rule.extract("/", |_| None), None);
    }
}
