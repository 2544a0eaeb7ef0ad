// Errors in words. lunlinkd names its errors (org.lunlink.Initiator1.Error.<Name>) and puts
// details for a person in the message: the page picks its words from the name, never by matching
// message text, and shows the daemon's message after them.
const cockpit = window.cockpit;
const _ = cockpit.gettext;

export const PREFIX = "org.lunlink.Initiator1.Error.";

const WORDS = {
    AuthenticationFailed: _("Authentication failed: the target wants other CHAP credentials"),
    TargetNotFound: _("The portal does not offer this target"),
    ConnectionFailed: _("Cannot connect to the portal"),
    Timeout: _("No answer in time"),
    InUse: _("In use"),
    InvalidArgument: _("Invalid value"),
    NotFound: _("Not found: it is gone, or never existed"),
    LoginFailed: _("The target refused the login"),
    ProtocolError: _("The target broke the iSCSI protocol"),
    NotSupported: _("Not supported"),
    Failed: _("Failed"),
    NotAuthorized: _("Not permitted: this change needs administrative access"),
};

const BUS_WORDS = {
    "org.freedesktop.DBus.Error.AccessDenied": _("Not permitted: this change needs administrative access"),
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired": _("Not permitted: this change needs administrative access"),
    "org.freedesktop.DBus.Error.ServiceUnknown": _("lunlinkd is not running"),
    "org.freedesktop.DBus.Error.NameHasNoOwner": _("lunlinkd is not running"),
    "org.freedesktop.DBus.Error.NoReply": _("lunlinkd did not answer in time"),
    "org.freedesktop.DBus.Error.Timeout": _("lunlinkd did not answer in time"),
    "org.freedesktop.DBus.Error.UnknownObject": _("It is gone: logged out or deleted meanwhile"),
    "org.freedesktop.DBus.Error.UnknownMethod": _("This version of lunlinkd does not offer this"),
    "org.freedesktop.DBus.Error.UnknownInterface": _("This version of lunlinkd does not offer this"),
};

/// The short name of a lunlink error ("InUse"), or null for other errors.
export function errorKind(err) {
    const name = err && err.name;
    if (typeof name === "string" && name.startsWith(PREFIX)) return name.slice(PREFIX.length);
    return null;
}

/// { title, detail, kind }: the words for the error, the daemon's message, and its short name.
export function describe(err) {
    if (!err) return { title: _("Failed"), detail: "", kind: null };
    const kind = errorKind(err);
    const message = typeof err.message === "string" ? err.message : cockpit.message(err);
    let title;
    if (kind) title = WORDS[kind] || kind;
    else if (err.name && BUS_WORDS[err.name]) title = BUS_WORDS[err.name];
    else if (err.problem === "access-denied") title = WORDS.NotAuthorized;
    else if (err.problem) title = cockpit.message(err);
    else title = _("Failed");
    const detail = message && message !== title ? message : "";
    return { title, detail, kind };
}

/// One line: "words: message".
export function errorText(err) {
    const d = describe(err);
    return d.detail ? `${d.title}: ${d.detail}` : d.title;
}
