//! Discovery sessions: log in with SessionType=Discovery, ask SendTargets=All, log out.

use std::time::Duration;

use lunlink_proto::discovery::{DiscoveredTarget, Portal, SendTargets, SendTargetsStep};
use lunlink_proto::login::{Auth, LoginParams, SessionType};
use lunlink_proto::negotiate::Offer;
use lunlink_proto::pdu::{Header, LogoutReason, LogoutRequest, NopOut, Pdu, RESERVED_TAG};

use crate::error::EngineError;
use crate::transport::connect_and_login;

/// Asks the target portal which targets it offers (RFC 7143 §12, Appendix C).
pub async fn discover(
    portal: &Portal,
    initiator_name: &str,
    auth: Auth,
    timeout: Duration,
) -> Result<Vec<DiscoveredTarget>, EngineError> {
    let mut isid: [u8; 6] = rand::random();
    isid[0] = 0x80; // type 10b: random (§11.12.5)
    let params = LoginParams {
        initiator_name: initiator_name.to_owned(),
        initiator_alias: None,
        target_name: None,
        session_type: SessionType::Discovery,
        isid,
        tsih: 0,
        cid: 0,
        cmd_sn: 1,
        itt: 0,
        auth,
        offer: Offer::default(),
    };
    let (mut ch, done) = connect_and_login(portal, params, timeout, timeout).await?;
    let exchange = async {
        let mut st = SendTargets::new(1, done.cmd_sn, done.stat_sn);
        ch.send(&st.start()).await?;
        let targets = loop {
            let pdu = ch.recv("discovery").await?;
            match &pdu.header {
                Header::TextResponse(h) => match st.handle(h, &pdu.data)? {
                    SendTargetsStep::Send(next) => ch.send(&next).await?,
                    SendTargetsStep::Done(targets) => break targets,
                },
                Header::NopIn(h) if h.wants_reply() => {
                    let reply = NopOut {
                        immediate: true,
                        lun: h.lun,
                        itt: RESERVED_TAG,
                        ttt: h.ttt,
                        cmd_sn: st.cmd_sn(),
                        exp_stat_sn: st.exp_stat_sn(),
                    };
                    ch.send(&Pdu::new(reply, Vec::new())).await?;
                }
                Header::NopIn(_) | Header::AsyncMessage(_) => {}
                Header::Reject(r) => {
                    return Err(EngineError::Protocol(format!("the target rejected SendTargets: {}", r.describe())))
                }
                other => {
                    return Err(EngineError::Protocol(format!("unexpected {:?} during discovery", other.opcode())))
                }
            }
        };
        // Log out politely; the answer does not matter any more.
        let logout = LogoutRequest {
            immediate: true,
            reason: LogoutReason::CloseSession,
            itt: 2,
            cid: 0,
            cmd_sn: st.cmd_sn(),
            exp_stat_sn: st.exp_stat_sn(),
        };
        if ch.send(&Pdu::new(logout, Vec::new())).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), ch.recv("logout")).await;
        }
        Ok(targets)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| EngineError::Timeout("discovery", timeout))?
}
