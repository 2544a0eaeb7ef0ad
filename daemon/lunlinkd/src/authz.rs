//! Who may do what: every method that changes state asks polkit for its action, with the
//! caller identified by its unique bus name (never by a uid it claims), as udisks2 and
//! systemd-networkd do. The D-Bus adaptor calls [`Authorizer::check`] before the domain.
//!
//! - uid 0 is allowed at once (polkitd would allow it too);
//! - interactive authentication only when the call carries ALLOW_INTERACTIVE_AUTHORIZATION;
//! - polkitd absent or not answering: root only, and the log says so.
//!
//! The actions are shipped in `systemd/org.lunlink.initiator1.policy`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lunlink_dbus::Error;
use zbus::message::{Flags, Header};
use zbus::Connection;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// The polkit actions, one per kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Discover,
    Login,
    Logout,
    ManageNodes,
    ManageAuth,
}

impl Action {
    pub fn id(self) -> &'static str {
        match self {
            Action::Discover => "org.lunlink.initiator1.discover",
            Action::Login => "org.lunlink.initiator1.login",
            Action::Logout => "org.lunlink.initiator1.logout",
            Action::ManageNodes => "org.lunlink.initiator1.manage-nodes",
            Action::ManageAuth => "org.lunlink.initiator1.manage-auth",
        }
    }

    /// What the action allows, for refusals.
    fn what(self) -> &'static str {
        match self {
            Action::Discover => "discover iSCSI targets",
            Action::Login => "log in to iSCSI targets",
            Action::Logout => "log out of iSCSI sessions",
            Action::ManageNodes => "change iSCSI node records",
            Action::ManageAuth => "change the default iSCSI credentials",
        }
    }
}

/// How long polkitd may take to answer a check that cannot involve a person.
const CHECK_LIMIT: Duration = Duration::from_secs(10);
/// How long a person may take to authenticate, when the caller allowed it.
const INTERACTIVE_LIMIT: Duration = Duration::from_secs(300);

/// Asks polkitd; remembers whether it was missing, to log that once rather than per call.
#[derive(Default)]
pub struct Authorizer {
    warned_absent: AtomicBool,
}

impl Authorizer {
    /// Ok when the caller of the message with header `hdr` may perform `action`. `details`
    /// (e.g. target and portal) go to polkit for its message.
    pub async fn check(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        action: Action,
        details: &[(&str, &str)],
    ) -> Result<(), Error> {
        let refuse = |why: &str| {
            Error::NotAuthorized(format!("not authorized to {} (polkit action {}){why}", action.what(), action.id()))
        };
        let Some(sender) = hdr.sender() else {
            return Err(refuse(": the call has no sender"));
        };
        let dbus = zbus::fdo::DBusProxy::new(conn).await.map_err(|e| Error::Failed(e.to_string()))?;
        let uid = dbus
            .get_connection_unix_user(zbus::names::BusName::Unique(sender.clone()))
            .await
            .map_err(|e| Error::Failed(format!("cannot identify the caller {sender}: {e}")))?;
        if uid == 0 {
            return Ok(());
        }
        let interactive = hdr.primary().flags().contains(Flags::AllowInteractiveAuth);
        let subject = Subject::new_for_message_header(hdr).map_err(|e| Error::Failed(e.to_string()))?;
        let details: HashMap<&str, &str> = details.iter().copied().collect();
        let flags = if interactive { CheckAuthorizationFlags::AllowUserInteraction.into() } else { Default::default() };
        let limit = if interactive { INTERACTIVE_LIMIT } else { CHECK_LIMIT };
        let answer = async {
            let authority = AuthorityProxy::new(conn).await?;
            authority.check_authorization(&subject, action.id(), &details, flags, "").await
        };
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(r)) if r.is_authorized => {
                tracing::info!(caller = %sender, uid, action = action.id(), "authorized by polkit");
                Ok(())
            }
            Ok(Ok(r)) if r.is_challenge => Err(refuse(if interactive {
                ": authentication is required and did not succeed"
            } else {
                ": authentication is required; allow interactive authorization (lunlinkctl does, from a terminal) \
                 or have an administrator grant the action"
            })),
            Ok(Ok(_)) => Err(refuse("")),
            Ok(Err(e)) if polkit_absent(&e) => Err(self.absent(uid, action, &refuse)),
            Ok(Err(e)) => {
                tracing::warn!(action = action.id(), "polkit check failed: {e}");
                Err(refuse(&format!(": the polkit check failed: {e}")))
            }
            Err(_) => Err(self.absent(uid, action, &refuse)),
        }
    }

    /// Without polkitd only root may change anything.
    fn absent(&self, uid: u32, action: Action, refuse: &dyn Fn(&str) -> Error) -> Error {
        if !self.warned_absent.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "polkitd is not running or not answering: only root may change anything \
                 (refused uid {uid} for {})",
                action.id()
            );
        }
        refuse(": polkit is not available, so only root may do this")
    }
}

fn polkit_absent(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::MethodError(name, _, _) => matches!(
            name.as_str(),
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.Timeout"
                | "org.freedesktop.DBus.Error.UnknownObject"
                | "org.freedesktop.DBus.Error.UnknownMethod"
        ),
        zbus::Error::FDO(e) => matches!(
            **e,
            zbus::fdo::Error::ServiceUnknown(_)
                | zbus::fdo::Error::NameHasNoOwner(_)
                | zbus::fdo::Error::NoReply(_)
                | zbus::fdo::Error::Timeout(_)
                | zbus::fdo::Error::UnknownObject(_)
                | zbus::fdo::Error::UnknownMethod(_)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_the_shipped_ones() {
        let policy = include_str!("../../../systemd/org.lunlink.initiator1.policy");
        for a in [Action::Discover, Action::Login, Action::Logout, Action::ManageNodes, Action::ManageAuth] {
            assert!(policy.contains(&format!("<action id=\"{}\">", a.id())), "{} missing from the policy", a.id());
        }
    }
}
