//! What each fuzz target of lunlink-proto does with its input, shared by the cargo-fuzz
//! targets (`fuzz_targets/<name>.rs`, nightly) and by the stable replay test
//! (`daemon/proto/tests/fuzz_corpus.rs`, which includes this file), so the two never drift.
//!
//! Every function takes any bytes, must not panic, and asserts what must hold of whatever
//! decodes (round trips, ranges). Only the public API of `lunlink_proto` is used.

use lunlink_proto::chap::{ChapAlgorithm, ChapConfig, ChapInitiator, Secret, RANDOM_LEN};
use lunlink_proto::discovery::{parse_send_targets, parse_target_address, Portal};
use lunlink_proto::login::{Auth, Login, LoginParams, LoginStep, SessionType, Stage};
use lunlink_proto::negotiate::{Digest, Negotiator, Offer, MAX_LENGTH, MIN_LENGTH};
use lunlink_proto::pdu::{
    parse_frame, Decoder, Digests, FrameConfig, FrameStatus, Header, Pdu, Reject, ScsiResponse, BHS_LEN,
};
use lunlink_proto::text::{self, TextKeys};

/// A fuzz target: its name (`fuzz_targets/<name>.rs`) and what it does with an input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate.
pub const TARGETS: &[Target] = &[
    ("pdu", pdu),
    ("text_keys", text_keys),
    ("negotiate", negotiate),
    ("chap", chap),
    ("login_responses", login_responses),
    ("send_targets", send_targets),
    ("portal", portal),
];

/// Splits `data` at every 0xff byte (never part of UTF-8 text) into the segments a
/// multi-step target feeds one by one.
fn segments(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == 0xff)
}

/// Text keys that decode must encode to text that decodes to the same keys.
fn assert_text_roundtrip(keys: &TextKeys) {
    let again = TextKeys::decode_list(&keys.encode()).expect("encoded text keys decode");
    assert_eq!(&again, keys);
}

/// Any PDU stream from a target (RFC 7143 §11): every PDU type's BHS and data segment.
///
/// The first byte picks the receive configuration (digests, MaxRecvDataSegmentLength) and how
/// the stream is cut into reads. Checks that every PDU found re-encodes to one that parses to
/// the same header, AHS and data; that the incremental [`Decoder`], fed in pieces, finds the
/// same PDUs and the same error as [`parse_frame`] on the whole buffer; and decodes the data
/// segments the engine reads (sense data, the rejected BHS of a Reject, text keys).
pub fn pdu(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else { return };
    let digests = Digests { header: mode & 1 != 0, data: mode & 2 != 0 };
    let max_recv_data_segment = match (mode >> 2) & 3 {
        0 => 8192,
        1 => 512,
        2 => 262_144,
        _ => MAX_LENGTH,
    };
    let cfg = FrameConfig { digests, max_recv_data_segment };

    // The whole buffer, PDU by PDU.
    let mut found = Vec::new();
    let mut at = 0;
    let end_error = loop {
        match parse_frame(&stream[at..], &cfg) {
            Ok(FrameStatus::Complete(frame, used)) => {
                assert!(used >= BHS_LEN && used <= stream.len() - at, "frame length {used} out of bounds");
                assert_eq!(usize::from(frame.bhs[4]) * 4, frame.ahs.len());
                let pdu = Pdu { header: frame.header, ahs: frame.ahs.to_vec(), data: frame.data.to_vec() };
                check_pdu(&pdu, &cfg);
                found.push(pdu);
                at += used;
            }
            Ok(FrameStatus::Incomplete(needed)) => {
                assert!(needed > stream.len() - at, "Incomplete({needed}) with {} bytes at hand", stream.len() - at);
                break None;
            }
            Err(e) => break Some(e),
        }
    };

    // The same bytes through the incremental decoder, in reads of a size the input picks.
    let chunk = usize::from(mode >> 4) * 7 + 1;
    let mut dec = Decoder::new(cfg);
    let mut got = Vec::new();
    let mut dec_error = None;
    'feed: for piece in stream.chunks(chunk) {
        dec.feed(piece);
        loop {
            match dec.next_pdu() {
                Ok(Some(p)) => got.push(p),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(dec.next_pdu().err(), Some(e.clone()), "decoder errors are sticky");
                    dec_error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got, found, "incremental decoding differs from whole-buffer parsing");
    assert_eq!(dec_error, end_error, "incremental decoding fails differently");
    if end_error.is_none() {
        assert_eq!(dec.pending(), stream.len() - at);
    }
}

/// One decoded PDU: header and frame round trips, and its data segment's decoders.
fn check_pdu(pdu: &Pdu, cfg: &FrameConfig) {
    let mut bhs = [0u8; BHS_LEN];
    pdu.header.encode(&mut bhs);
    assert_eq!(Header::decode(&bhs).as_ref(), Ok(&pdu.header), "BHS decode(encode(h)) != h");

    let mut wire = Vec::new();
    pdu.encode(&mut wire, cfg.digests);
    match parse_frame(&wire, cfg) {
        Ok(FrameStatus::Complete(f, used)) => {
            assert_eq!(used, wire.len());
            assert_eq!(f.header, pdu.header);
            assert_eq!(f.ahs, &pdu.ahs[..]);
            assert_eq!(f.data, &pdu.data[..]);
        }
        other => panic!("a re-encoded PDU does not parse back: {other:?}"),
    }

    match &pdu.header {
        Header::ScsiResponse(_) | Header::AsyncMessage(_) => {
            let sense = ScsiResponse::sense(&pdu.data);
            assert!(sense.len() + 2 <= pdu.data.len() || sense.is_empty());
        }
        Header::Reject(_) => {
            if let Some(itt) = Reject::rejected_itt(&pdu.data) {
                let rejected: &[u8; BHS_LEN] = pdu.data.first_chunk().expect("rejected_itt implies a whole BHS");
                assert_eq!(itt, u32::from_be_bytes([rejected[16], rejected[17], rejected[18], rejected[19]]));
                if let Ok(h) = Header::decode(rejected) {
                    let mut b = [0u8; BHS_LEN];
                    h.encode(&mut b);
                    assert_eq!(Header::decode(&b), Ok(h));
                }
            } else {
                assert!(pdu.data.len() < BHS_LEN);
            }
        }
        Header::TextResponse(_) | Header::LoginResponse(_) => {
            if let Ok(keys) = TextKeys::decode_list(&pdu.data) {
                assert_text_roundtrip(&keys);
            }
        }
        _ => {}
    }
}

/// Text key=value decoding and value parsing (RFC 7143 §6.1): what decodes encodes back to an
/// equivalent list; numbers and binary values that parse print back to the same value.
pub fn text_keys(data: &[u8]) {
    if let Ok(keys) = TextKeys::decode_list(data) {
        assert_text_roundtrip(&keys);
        for (k, v) in keys.iter() {
            if let Ok(n) = text::parse_number(k, v) {
                assert_eq!(text::parse_number(k, &n.to_string()), Ok(n));
            }
            if let Ok(b) = text::parse_binary(k, v) {
                assert_eq!(text::parse_binary(k, &text::encode_hex(&b)).ok(), (!b.is_empty()).then_some(b));
            }
            if let Ok(b) = text::parse_bool(k, v) {
                assert_eq!(text::fmt_bool(b), v);
            }
            let _ = text::parse_number_in(k, v, 512, 16_777_215);
        }
    }
    if let Ok(keys) = TextKeys::decode(data) {
        assert_text_roundtrip(&keys);
        let names: Vec<&str> = keys.iter().map(|(k, _)| k).collect();
        assert!(names.iter().enumerate().all(|(i, k)| !names[..i].contains(k)), "decode lets a key repeat");
    }
}

/// Operational negotiation (RFC 7143 §6.2, §13) against any target answers: the first byte
/// picks the offer and session kind, then each 0xff-separated segment is one round of the
/// target's keys. Our answers must be valid text, and whatever is negotiated must lie in the
/// RFC's ranges and respect our offer (Min results never exceed it, OR-Yes / AND-No hold).
pub fn negotiate(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let digests = match mode & 3 {
        0 => vec![Digest::None],
        1 => vec![Digest::Crc32c],
        2 => vec![Digest::Crc32c, Digest::None],
        _ => vec![Digest::None, Digest::Crc32c],
    };
    let offer = Offer {
        header_digest: digests.clone(),
        data_digest: digests,
        initial_r2t: mode & 4 != 0,
        immediate_data: mode & 8 != 0,
        max_burst_length: if mode & 16 != 0 { 1 << 20 } else { 262_144 },
        ..Offer::default()
    };
    assert_eq!(offer.validate(), Ok(()));
    let discovery = mode & 32 != 0;
    let leading = mode & 64 == 0;
    let mut neg = Negotiator::new(offer.clone(), discovery, leading);
    let mut ours = neg.offers().expect("our own offers encode");
    assert_text_roundtrip(&ours);
    for segment in segments(rest) {
        let Ok(theirs) = TextKeys::decode(segment) else { return };
        match neg.handle(&theirs) {
            Ok(answers) => {
                assert_text_roundtrip(&answers);
                ours = answers;
            }
            Err(_) => return,
        }
        // A second round of offers never repeats a key already offered or declared.
        if let Ok(more) = neg.offers() {
            assert!(more.iter().all(|(k, _)| ours.get(k).is_none() || k == "MaxRecvDataSegmentLength"));
        }
    }
    let Ok(p) = neg.finish() else { return };
    let in_len = |v: u32| (MIN_LENGTH..=MAX_LENGTH).contains(&v);
    assert_eq!(p.max_recv_data_segment_length, offer.max_recv_data_segment_length);
    assert!(in_len(p.max_xmit_data_segment_length), "{p:?}");
    assert!(in_len(p.max_burst_length) && p.max_burst_length <= offer.max_burst_length, "{p:?}");
    assert!(p.first_burst_length <= p.max_burst_length && p.first_burst_length <= offer.first_burst_length, "{p:?}");
    assert!(p.default_time2wait <= 3600 && p.default_time2retain <= 3600, "{p:?}");
    assert!(p.max_outstanding_r2t >= 1 && p.max_outstanding_r2t <= offer.max_outstanding_r2t, "{p:?}");
    assert!(p.max_connections >= 1 && p.max_connections <= offer.max_connections, "{p:?}");
    assert!(p.error_recovery_level <= offer.error_recovery_level, "{p:?}");
    // Session-wide (LO) keys are negotiated on the leading connection only (§13); another
    // connection's results for them are the defaults, whatever we would offer.
    if !discovery && leading {
        assert!(p.initial_r2t || !offer.initial_r2t, "InitialR2T=Yes OR anything is Yes: {p:?}");
        assert!(!p.immediate_data || offer.immediate_data, "ImmediateData=No AND anything is No: {p:?}");
    }
    assert!(!p.header_digest || offer.header_digest.contains(&Digest::Crc32c), "{p:?}");
    assert!(!p.data_digest || offer.data_digest.contains(&Digest::Crc32c), "{p:?}");
    if let Some(t) = neg.target_address() {
        let _ = parse_target_address(t);
    }
}

/// The initiator's CHAP (RFC 7143 §12.1.3) against any target values: the first byte picks
/// the algorithms and mutual CHAP; the first segment is the target's challenge, the second
/// its mutual answer. A response must carry our name and a digest of the chosen (offered)
/// algorithm's length; a mutual answer is accepted only if it is the right digest.
pub fn chap(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let algorithms = match mode & 3 {
        0 => vec![ChapAlgorithm::Md5],
        1 => vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
        2 => vec![ChapAlgorithm::Sha3_256, ChapAlgorithm::Sha1],
        _ => vec![ChapAlgorithm::Md5, ChapAlgorithm::Sha1, ChapAlgorithm::Sha256, ChapAlgorithm::Sha3_256],
    };
    let mutual = mode & 4 != 0;
    let target_secret = Secret::from("target-secret");
    let config = ChapConfig {
        algorithms: algorithms.clone(),
        mutual: mutual.then(|| ("iqn.2024-01.fuzz:t".to_owned(), target_secret.clone())),
        ..ChapConfig::new("user", "initiator-secret")
    };
    let random = [0x5a_u8; RANDOM_LEN];
    let mut chap = ChapInitiator::new(config, &random).expect("valid CHAP settings");
    let mut segs = segments(rest);
    let Some(Ok(challenge)) = segs.next().map(TextKeys::decode) else { return };
    for (k, v) in challenge.iter() {
        if let Ok(b) = text::parse_binary(k, v) {
            if !b.is_empty() {
                assert_eq!(text::parse_binary(k, &text::encode_hex(&b)), Ok(b));
            }
        }
    }
    let Ok(response) = chap.respond(&challenge) else { return };
    assert_text_roundtrip(&response);
    let alg = chap.chosen().expect("an answered challenge has an algorithm");
    assert!(algorithms.contains(&alg), "{alg} was not offered");
    assert_eq!(response.get("CHAP_N"), Some("user"));
    let r = text::parse_binary("CHAP_R", response.get("CHAP_R").expect("CHAP_R")).expect("our CHAP_R decodes");
    assert_eq!(r.len(), alg.digest_len());
    assert_eq!(response.get("CHAP_C").is_some(), mutual);

    let Some(Ok(answer)) = segs.next().map(TextKeys::decode) else { return };
    if let Ok(true) = chap.verify_target(&answer) {
        let got = text::parse_binary("CHAP_R", answer.get("CHAP_R").expect("verified answers have CHAP_R"));
        assert_eq!(got, Ok(alg.response(random[0], &target_secret, &random)), "a wrong mutual answer was accepted");
    }
}

/// The login machine (RFC 7143 §6.3) takes any stream of Login Responses without panicking.
/// The first byte picks the authentication; the rest is decoded as PDUs.
pub fn login_responses(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else { return };
    let auth = match mode % 3 {
        0 => Auth::None,
        1 => Auth::Chap(ChapConfig {
            algorithms: vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
            ..ChapConfig::new("user", "initiator-secret")
        }),
        _ => Auth::Chap(ChapConfig {
            mutual: Some(("target".into(), Secret::from("target-secret"))),
            ..ChapConfig::new("user", "initiator-secret")
        }),
    };
    let params = LoginParams {
        initiator_name: "iqn.2024-01.fuzz:i".into(),
        initiator_alias: None,
        target_name: if mode & 4 == 0 { Some("iqn.2024-01.fuzz:t".into()) } else { None },
        session_type: if mode & 4 == 0 { SessionType::Normal } else { SessionType::Discovery },
        isid: [0; 6],
        tsih: if mode & 8 == 0 { 0 } else { 1 },
        cid: 0,
        cmd_sn: 0,
        itt: 0,
        auth,
        offer: Offer::default(),
    };
    let Ok(mut login) = Login::new(params, [7; 32]) else { return };
    let _ = login.start();
    let mut dec = Decoder::new(FrameConfig::default());
    dec.feed(stream);
    while let Ok(Some(pdu)) = dec.next_pdu() {
        if let Header::LoginResponse(h) = &pdu.header {
            match login.handle(h, &pdu.data) {
                Ok(LoginStep::Send(mut next)) => {
                    // What we send must itself decode, to the same request (NSG is reserved
                    // when T is 0, §11.12.1) and to text a target can read.
                    let mut wire = Vec::new();
                    next.encode(&mut wire, Digests::default());
                    let mut check = Decoder::new(FrameConfig { max_recv_data_segment: MAX_LENGTH, ..FrameConfig::default() });
                    check.feed(&wire);
                    let Header::LoginRequest(req) = &mut next.header else { panic!("the login sent {next:?}") };
                    if !req.transit {
                        req.nsg = Stage::Security;
                    }
                    if !req.cont {
                        assert!(TextKeys::decode(&next.data).is_ok(), "our login text does not decode: {next:?}");
                    }
                    assert_eq!(check.next_pdu(), Ok(Some(next)));
                }
                _ => break,
            }
        }
    }
}

/// SendTargets answers (RFC 7143 Appendix D): every target has a name, and every portal
/// prints as text that parses to the same portal.
pub fn send_targets(data: &[u8]) {
    if let Ok(targets) = parse_send_targets(data) {
        for t in targets {
            assert!(!t.name.is_empty());
            for p in t.portals {
                assert_eq!(p.portal.to_string().parse::<Portal>().ok(), Some(p.portal));
            }
        }
    }
}

/// Portal and TargetAddress parsing (user text and target text): Display round-trips.
pub fn portal(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(p) = s.parse::<Portal>() {
        assert_eq!(p.to_string().parse::<Portal>().ok(), Some(p));
    }
    if let Ok(t) = parse_target_address(s) {
        assert_eq!(parse_target_address(&t.to_string()).ok(), Some(t));
    }
}
