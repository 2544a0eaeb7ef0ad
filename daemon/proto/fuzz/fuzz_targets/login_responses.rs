//! The login machine (RFC 7143 §6.3) takes any stream of Login Responses without panicking.
//! The first byte picks the authentication; the rest is decoded as PDUs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lunlink_proto::login::{Auth, ChapAlgorithm, ChapConfig, Login, LoginParams, LoginStep, Offer, Secret, SessionType};
use lunlink_proto::pdu::{Decoder, FrameConfig, Header};

fuzz_target!(|data: &[u8]| {
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
                Ok(LoginStep::Send(_)) => {}
                _ => break,
            }
        }
    }
});
