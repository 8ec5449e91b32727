//! A DNS stub resolver for server names: one A (then AAAA) question, or SRV for a
//! `server_template`, over UDP to the
//! configured resolvers (`[global] resolvers`, or the `nameserver`s of /etc/resolv.conf), in
//! order, each within `resolve_timeout`. Answers are read strictly (id, question, response
//! bit, compression pointers bounded); what they mean for a server is decided by
//! `lb_core::discovery`.
//!
//! Not a full resolver: no TCP fallback (a truncated answer is a failure), no search
//! domains, no cache (the interval is the cache).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use lb_core::Lookup;
use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// Where and how names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolvers {
    /// Asked in order; the next one when one does not answer.
    pub servers: Vec<SocketAddr>,
    /// One question's deadline, per server.
    pub timeout: Duration,
}

impl Resolvers {
    /// The `nameserver` lines of a resolv.conf text, on port 53.
    pub fn from_resolv_conf(text: &str, timeout: Duration) -> Self {
        let servers = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("nameserver"))
                    .then(|| words.next())
                    .flatten()
                    .and_then(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .collect();
        Self { servers, timeout }
    }

    /// The addresses of `name`: its A records, or its AAAA records when it has none.
    pub async fn lookup(&self, name: &str) -> Lookup {
        self.lookup_why(name).await.0
    }

    /// [`Resolvers::lookup`], and why it failed when it did.
    pub async fn lookup_why(&self, name: &str) -> (Lookup, Option<Failure>) {
        match self.ask(name, TYPE_A).await {
            (Lookup::Addresses(a), _) if a.is_empty() => match self.ask(name, TYPE_AAAA).await {
                (Lookup::Addresses(aaaa), _) if aaaa.is_empty() => (Lookup::NoSuchName, None),
                other => other,
            },
            other => other,
        }
    }

    /// One question to each server in turn until one answers.
    async fn ask(&self, name: &str, qtype: u16) -> (Lookup, Option<Failure>) {
        match self.exchange_any(name, qtype).await {
            Some((reply, query)) => match decode_reply(&reply, &query, qtype) {
                Some(Lookup::Failed) | None => (Lookup::Failed, Some(Failure::of(&reply))),
                Some(lookup) => (lookup, None),
            },
            None => (Lookup::Failed, Some(Failure::NoAnswer)),
        }
    }

    /// The SRV records of `name` (`_api._tcp.veza.internal`), lowest priority first, then
    /// heaviest; their targets are not resolved here.
    pub async fn lookup_srv(&self, name: &str) -> SrvLookup {
        let Some((reply, query)) = self.exchange_any(name, TYPE_SRV).await else {
            return SrvLookup::Failed(Failure::NoAnswer);
        };
        match decode_srv(&reply, &query) {
            Some(SrvLookup::Failed(_)) | None => SrvLookup::Failed(Failure::of(&reply)),
            Some(lookup) => lookup,
        }
    }

    /// A reply to one question about `name` from the first server that gives one, with the
    /// query it answers.
    async fn exchange_any(&self, name: &str, qtype: u16) -> Option<(Vec<u8>, Vec<u8>)> {
        let query = encode_query(query_id(name), name, qtype)?;
        for server in &self.servers {
            let answer = tokio::time::timeout(self.timeout, exchange(*server, &query)).await;
            match answer {
                Ok(Ok(reply)) if parse(&reply, &query).is_some() => return Some((reply, query)),
                Ok(Ok(_)) => tracing::debug!("{server}: not an answer to our question for {name}"),
                Ok(Err(e)) => tracing::debug!("{server}: {e}"),
                Err(_) => tracing::debug!("{server}: no answer within {:?}", self.timeout),
            }
        }
        None
    }
}

/// Why a question got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No resolver answered within the timeout.
    NoAnswer,
    /// A resolver answered with this error code (`SERVFAIL` 2, `REFUSED` 5...).
    Rcode(u8),
    /// The answer was truncated (it would need TCP).
    Truncated,
    /// The answer could not be read.
    Malformed,
}

impl Failure {
    /// What a reply that gave no usable answer says about why.
    fn of(reply: &[u8]) -> Failure {
        match (reply.get(2), reply.get(3)) {
            (Some(flags), Some(codes)) => match codes & 0x0f {
                0 if flags & 0x02 != 0 => Failure::Truncated,
                0 => Failure::Malformed,
                rcode => Failure::Rcode(rcode),
            },
            _ => Failure::Malformed,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoAnswer => f.write_str("no resolver answered"),
            Failure::Rcode(2) => f.write_str("the resolver answered SERVFAIL"),
            Failure::Rcode(5) => f.write_str("the resolver answered REFUSED"),
            Failure::Rcode(code) => write!(f, "the resolver answered with error code {code}"),
            Failure::Truncated => f.write_str("the answer was truncated (too large for UDP)"),
            Failure::Malformed => f.write_str("the answer could not be read"),
        }
    }
}

/// A query id that differs between names and between calls.
fn query_id(name: &str) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(name.as_bytes());
    hasher.finish() as u16
}

async fn exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 1232];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

/// A standard query for `name` (recursion desired); `None` if `name` cannot be a DNS name.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(out)
}

/// A reply's outcome and its answer records (type and rdata span).
struct Parsed {
    rcode: u8,
    truncated: bool,
    answers: Vec<(u16, std::ops::Range<usize>)>,
}

/// Reads a reply to `query`: `None` when it is not one (another id, not a response, a
/// different question, malformed): the caller asks the next server.
fn parse(reply: &[u8], query: &[u8]) -> Option<Parsed> {
    let header = reply.get(..12)?;
    if header[..2] != query[..2] || header[2] & 0x80 == 0 {
        return None;
    }
    // The question must be the one asked (same bytes, so no pointer in it).
    let question = query.get(12..)?;
    if reply.get(12..12 + question.len())? != question || reply[4..6] != [0, 1] {
        return None;
    }
    let count = u16::from_be_bytes([header[6], header[7]]);
    let mut at = 12 + question.len();
    let mut answers = Vec::new();
    for _ in 0..count {
        at = skip_name(reply, at)?;
        let fixed = reply.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        reply.get(at + 10..at + 10 + len)?;
        if class == CLASS_IN {
            answers.push((rtype, at + 10..at + 10 + len));
        }
        at += 10 + len;
    }
    Some(Parsed {
        rcode: header[3] & 0x0f,
        truncated: header[2] & 0x02 != 0,
        answers,
    })
}

/// What a reply's header says, when it is not "here are the records".
fn outcome(parsed: &Parsed) -> Option<Lookup> {
    match parsed.rcode {
        0 if parsed.truncated => Some(Lookup::Failed),
        0 => None,
        RCODE_NXDOMAIN => Some(Lookup::NoSuchName),
        _ => Some(Lookup::Failed),
    }
}

/// The addresses of an A or AAAA reply; `None` when it is not a reply to `query`.
pub fn decode_reply(reply: &[u8], query: &[u8], qtype: u16) -> Option<Lookup> {
    let parsed = parse(reply, query)?;
    if let Some(outcome) = outcome(&parsed) {
        return Some(outcome);
    }
    let mut addrs = Vec::new();
    // Records of another type (a CNAME on the way) are passed over.
    for (rtype, span) in parsed.answers.iter().filter(|(t, _)| *t == qtype) {
        let data = &reply[span.clone()];
        match (*rtype, data.len()) {
            (TYPE_A, 4) => addrs.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (TYPE_AAAA, 16) => {
                let bytes: [u8; 16] = data.try_into().ok()?;
                addrs.push(IpAddr::from(bytes));
            }
            _ => return None,
        }
    }
    Some(Lookup::Addresses(addrs))
}

/// A SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Share among records of one priority.
    pub weight: u16,
    /// The service's port on the target.
    pub port: u16,
    /// The target host (lowercase, no final dot).
    pub target: String,
}

/// What a SRV question returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvLookup {
    /// The records, lowest priority first, then heaviest, then by target.
    Records(Vec<SrvRecord>),
    /// NXDOMAIN, or no record.
    NoSuchName,
    /// No usable answer, and why.
    Failed(Failure),
}

/// The records of a SRV reply; `None` when it is not a reply to `query`.
pub fn decode_srv(reply: &[u8], query: &[u8]) -> Option<SrvLookup> {
    let parsed = parse(reply, query)?;
    match outcome(&parsed) {
        Some(Lookup::NoSuchName) => return Some(SrvLookup::NoSuchName),
        Some(_) => return Some(SrvLookup::Failed(Failure::of(reply))),
        None => {}
    }
    let mut records = Vec::new();
    for (_, span) in parsed.answers.iter().filter(|(t, _)| *t == TYPE_SRV) {
        let data = &reply[span.clone()];
        let field = |i: usize| Some(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
        let (priority, weight, port) = (field(0)?, field(2)?, field(4)?);
        let (target, end) = read_name(reply, span.start + 6)?;
        if end > span.end || target.is_empty() {
            // "." as target: the service is decidedly not available there.
            continue;
        }
        records.push(SrvRecord {
            priority,
            weight,
            port,
            target,
        });
    }
    if records.is_empty() {
        return Some(SrvLookup::NoSuchName);
    }
    records.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight), &a.target, a.port).cmp(&(
            b.priority,
            std::cmp::Reverse(b.weight),
            &b.target,
            b.port,
        ))
    });
    Some(SrvLookup::Records(records))
}

/// The name at `at` (following compression pointers, at most 16 of them) and the offset just
/// after it where it stands.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..16 {
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => {
                    let name = labels.join(".").to_ascii_lowercase();
                    return (name.len() <= 253).then_some((name, end.unwrap_or(at + 1)));
                }
                l if l & 0xc0 == 0xc0 => {
                    let pointer = usize::from(l & 0x3f) << 8 | usize::from(*msg.get(at + 1)?);
                    end.get_or_insert(at + 2);
                    at = pointer;
                    break;
                }
                l if l & 0xc0 == 0 => {
                    let label = msg.get(at + 1..at + 1 + usize::from(l))?;
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    at += 1 + usize::from(l);
                }
                _ => return None,
            }
        }
    }
    None
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            // A pointer ends the name where it stands.
            l if l & 0xc0 == 0xc0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query`: rcode, then answers as (type, rdata), each named by a pointer to
    /// the question.
    fn reply(query: &[u8], flags: u8, rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut out = query[..2].to_vec();
        out.extend_from_slice(&[0x81 | flags, 0x80 | rcode, 0, 1]);
        out.extend_from_slice(&u16::try_from(answers.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&query[12..]);
        for (rtype, data) in answers {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&60u32.to_be_bytes());
            out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn queries_are_standard_and_names_validated() {
        let q = encode_query(0xabcd, "api.veza.test.", TYPE_A).unwrap();
        assert_eq!(&q[..4], &[0xab, 0xcd, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03api\x04veza\x04test\x00\x00\x01\x00\x01");
        assert!(encode_query(1, "a..b", TYPE_A).is_none());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_none());
        assert!(encode_query(1, "", TYPE_A).is_none());
    }

    #[test]
    fn answers_give_addresses_and_rcodes_their_meaning() {
        let q = encode_query(7, "api.veza.test", TYPE_A).unwrap();
        let cname: &[u8] = b"\x05other\xc0\x0c";
        let two = reply(
            &q,
            0,
            0,
            &[
                (5, cname),
                (TYPE_A, &[10, 0, 0, 1]),
                (TYPE_A, &[10, 0, 0, 2]),
            ],
        );
        assert_eq!(
            decode_reply(&two, &q, TYPE_A),
            Some(Lookup::Addresses(vec![
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]))
        );
        assert_eq!(
            decode_reply(&reply(&q, 0, 3, &[]), &q, TYPE_A),
            Some(Lookup::NoSuchName)
        );
        assert_eq!(
            decode_reply(&reply(&q, 0, 2, &[]), &q, TYPE_A),
            Some(Lookup::Failed)
        );
        assert_eq!(
            decode_reply(&reply(&q, 0x02, 0, &[]), &q, TYPE_A),
            Some(Lookup::Failed)
        );
        // Why, for the log: a refusal is not a silence.
        assert_eq!(Failure::of(&reply(&q, 0, 5, &[])), Failure::Rcode(5));
        assert_eq!(
            Failure::of(&reply(&q, 0, 5, &[])).to_string(),
            "the resolver answered REFUSED"
        );
        assert_eq!(
            Failure::of(&reply(&q, 0, 2, &[])).to_string(),
            "the resolver answered SERVFAIL"
        );
        assert_eq!(Failure::of(&reply(&q, 0x02, 0, &[])), Failure::Truncated);
        assert_eq!(Failure::NoAnswer.to_string(), "no resolver answered");
        let aaaa = encode_query(8, "api.veza.test", TYPE_AAAA).unwrap();
        let six = reply(
            &aaaa,
            0,
            0,
            &[(
                TYPE_AAAA,
                &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            )],
        );
        assert_eq!(
            decode_reply(&six, &aaaa, TYPE_AAAA),
            Some(Lookup::Addresses(vec!["2001:db8::1".parse().unwrap()]))
        );
    }

    #[test]
    fn replies_that_are_not_ours_or_broken_are_refused() {
        let q = encode_query(7, "api.veza.test", TYPE_A).unwrap();
        let good = reply(&q, 0, 0, &[(TYPE_A, &[10, 0, 0, 1])]);
        let mut other_id = good.clone();
        other_id[1] ^= 1;
        assert_eq!(decode_reply(&other_id, &q, TYPE_A), None);
        let mut not_response = good.clone();
        not_response[2] &= 0x7f;
        assert_eq!(decode_reply(&not_response, &q, TYPE_A), None);
        let other_question = reply(
            &encode_query(7, "web.veza.test", TYPE_A).unwrap(),
            0,
            0,
            &[],
        );
        assert_eq!(decode_reply(&other_question, &q, TYPE_A), None);
        // Cut anywhere, it never panics and never invents an address.
        for cut in 0..good.len() {
            assert_eq!(decode_reply(&good[..cut], &q, TYPE_A), None, "cut at {cut}");
        }
        let bad_length = reply(&q, 0, 0, &[(TYPE_A, &[10, 0, 0])]);
        assert_eq!(decode_reply(&bad_length, &q, TYPE_A), None);
    }

    #[test]
    fn srv_records_are_read_with_compressed_targets_and_sorted() {
        let q = encode_query(9, "_api._tcp.veza.test", TYPE_SRV).unwrap();
        // Targets: "b.veza.test" written out, then "a" + pointer to ".veza.test" in it.
        let first: Vec<u8> =
            [&[0, 10, 0, 5, 0x1f, 0x90][..], b"\x01b\x04veza\x04test\x00"].concat();
        let mut r = reply(&q, 0, 0, &[(TYPE_SRV, &first)]);
        let veza_at = u8::try_from(r.len() - 11).unwrap();
        let second: Vec<u8> = [
            &[0, 10, 0, 9, 0x1f, 0x91][..],
            &[1, b'a', 0xc0, veza_at][..],
        ]
        .concat();
        r[7] = 2;
        r.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&u16::try_from(second.len()).unwrap().to_be_bytes());
        r.extend_from_slice(&second);
        let Some(SrvLookup::Records(records)) = decode_srv(&r, &q) else {
            panic!("{:?}", decode_srv(&r, &q));
        };
        let got: Vec<(String, u16, u16)> = records
            .iter()
            .map(|r| (r.target.clone(), r.port, r.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("a.veza.test".into(), 8081, 9),
                ("b.veza.test".into(), 8080, 5)
            ]
        );
        assert_eq!(
            decode_srv(&reply(&q, 0, 3, &[]), &q),
            Some(SrvLookup::NoSuchName)
        );
        assert_eq!(
            decode_srv(&reply(&q, 0, 0, &[]), &q),
            Some(SrvLookup::NoSuchName)
        );
        assert_eq!(
            decode_srv(&reply(&q, 0, 2, &[]), &q),
            Some(SrvLookup::Failed(Failure::Rcode(2)))
        );
        // A pointer loop ends, refused.
        let looping = [0xc0u8, 0];
        assert_eq!(read_name(&looping, 0), None);
    }

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let conf = "# comment\nsearch veza.test\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver junk\n";
        let r = Resolvers::from_resolv_conf(conf, Duration::from_secs(1));
        assert_eq!(
            r.servers,
            [
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
