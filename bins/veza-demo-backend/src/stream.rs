//! HLS content for `--kind stream`: a playlist and segment bytes that depend only on the path.
//!
//! Every instance must produce the same bytes for the same path, so a test can fetch a segment
//! through the load balancer, fetch it again from any backend directly, and compare. The
//! generator is therefore specified here rather than borrowed from a library whose output
//! could change between versions.

use bytes::{BufMut, Bytes, BytesMut};

/// File name of the playlist inside a track directory.
pub const PLAYLIST_FILE: &str = "index.m3u8";

/// Seconds announced for each segment in the playlist.
const SEGMENT_SECONDS: u32 = 4;

/// A request path of the form `/stream/<track_id>/<file>`, both parts non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPath<'a> {
    /// The track directory, e.g. `42` in `/stream/42/seg-0.ts`.
    pub track_id: &'a str,
    /// The file inside the track, e.g. `seg-0.ts` or `index.m3u8`.
    pub file: &'a str,
}

impl<'a> StreamPath<'a> {
    /// Splits `path`, or `None` when it is not exactly `/stream/<track_id>/<file>`.
    pub fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix("/stream/")?;
        let (track_id, file) = rest.split_once('/')?;
        if track_id.is_empty() || file.is_empty() || file.contains('/') {
            return None;
        }
        Some(Self { track_id, file })
    }

    /// Whether this path names the track's playlist rather than a segment.
    pub fn is_playlist(&self) -> bool {
        self.file == PLAYLIST_FILE
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(&self) -> &'static str {
        if self.is_playlist() {
            "application/vnd.apple.mpegurl"
        } else if self.file.ends_with(".ts") {
            "video/mp2t"
        } else {
            "application/octet-stream"
        }
    }
}

/// A VOD HLS playlist listing `segments` files named `seg-0.ts`, `seg-1.ts`, ... relative to
/// the playlist, so a player fetches them from the same `/stream/<track_id>/` directory.
///
/// ```
/// let playlist = veza_demo_backend::playlist(2);
/// assert!(playlist.starts_with("#EXTM3U\n"));
/// assert!(playlist.contains("\nseg-1.ts\n"));
/// assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
/// ```
pub fn playlist(segments: u32) -> String {
    use std::fmt::Write as _;

    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-TARGETDURATION:{SEGMENT_SECONDS}\n#EXT-X-MEDIA-SEQUENCE:0\n"
    );
    for index in 0..segments {
        // Writing to a String cannot fail.
        let _ = write!(out, "#EXTINF:{SEGMENT_SECONDS}.000,\nseg-{index}.ts\n");
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// `len` pseudo-random bytes determined only by `path`.
///
/// The function is specified so that any tool can reproduce it: the seed is the 64-bit
/// FNV-1a hash of the path's bytes; each following 8 bytes are the next SplitMix64 output
/// (Steele, Lea & Flood, 2014) in little-endian order; the last word is truncated to `len`.
///
/// ```
/// use veza_demo_backend::segment_bytes;
///
/// let a = segment_bytes("/stream/42/seg-0.ts", 100);
/// assert_eq!(a.len(), 100);
/// assert_eq!(a, segment_bytes("/stream/42/seg-0.ts", 100));
/// assert_ne!(a, segment_bytes("/stream/42/seg-1.ts", 100));
/// ```
pub fn segment_bytes(path: &str, len: usize) -> Bytes {
    let mut state = fnv1a_64(path.as_bytes());
    let mut out = BytesMut::with_capacity(len);
    while out.len() < len {
        let word = splitmix64(&mut state).to_le_bytes();
        let take = (len - out.len()).min(word.len());
        out.put_slice(&word[..take]);
    }
    out.freeze()
}

fn fnv1a_64(data: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_paths() {
        let path = StreamPath::parse("/stream/42/seg-3.ts").unwrap();
        assert_eq!(path.track_id, "42");
        assert_eq!(path.file, "seg-3.ts");
        assert_eq!(path.content_type(), "video/mp2t");
        assert!(!path.is_playlist());

        let playlist = StreamPath::parse("/stream/abc/index.m3u8").unwrap();
        assert!(playlist.is_playlist());
        assert_eq!(playlist.content_type(), "application/vnd.apple.mpegurl");

        assert_eq!(
            StreamPath::parse("/stream/abc/key.bin")
                .unwrap()
                .content_type(),
            "application/octet-stream"
        );
    }

    #[test]
    fn rejects_other_paths() {
        for path in [
            "/stream/",
            "/stream/42",
            "/stream/42/",
            "/stream//seg-0.ts",
            "/stream/42/a/b.ts",
            "/streams/42/seg-0.ts",
            "/api/v1/health",
        ] {
            assert_eq!(StreamPath::parse(path), None, "{path}");
        }
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Vectors from the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_matches_reference_output() {
        // Rosetta Code, "Pseudo-random numbers/Splitmix64": the first outputs for seed 1234567.
        let mut state = 1_234_567;
        assert_eq!(splitmix64(&mut state), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64(&mut state), 3_203_168_211_198_807_973);
    }

    #[test]
    fn segment_bytes_are_a_prefix_of_longer_segments() {
        let short = segment_bytes("/stream/1/seg-0.ts", 13);
        let long = segment_bytes("/stream/1/seg-0.ts", 4096);
        assert_eq!(short[..], long[..13]);
        assert!(segment_bytes("/x", 0).is_empty());
    }

    #[test]
    fn playlist_lists_every_segment_in_order() {
        let text = playlist(10);
        let segments: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let expected: Vec<String> = (0..10).map(|i| format!("seg-{i}.ts")).collect();
        assert_eq!(segments, expected);
        assert_eq!(text.matches("#EXTINF:").count(), 10);
    }
}
