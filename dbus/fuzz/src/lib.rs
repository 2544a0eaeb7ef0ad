//! What the fuzz target of lunlink-dbus does with its input, shared by the cargo-fuzz target
//! (`fuzz_targets/options.rs`, nightly) and by the stable replay test
//! (`dbus/tests/fuzz_corpus.rs`, which includes this file), so the two never drift.

use std::collections::HashMap;

use lunlink_dbus::zvariant::serialized::{Context, Data};
use lunlink_dbus::zvariant::{to_bytes, OwnedValue, Value, BE, LE};
use lunlink_dbus::{Call, Options, OptionsDict};

/// A fuzz target: its name (`fuzz_targets/<name>.rs`) and what it does with an input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate.
pub const TARGETS: &[Target] = &[("options", options)];

const CALLS: [Call; 7] =
    [Call::Discover, Call::Login, Call::LoginAll, Call::Logout, Call::CreateNode, Call::NodeUpdate, Call::SetDefaultAuth];

/// An options dictionary (`a{sv}`, `dbus/API.md`) as the daemon receives it: the D-Bus wire
/// bytes of the dictionary (the first input byte picks the byte order), checked against every
/// call. What a call accepts holds only keys it takes, goes back over the wire (`to_dict`) to
/// the same options, and prints (`Debug`) nothing of its secrets.
pub fn options(data: &[u8]) {
    let Some((&mode, wire)) = data.split_first() else { return };
    let ctxt = Context::new_dbus(if mode & 1 == 0 { LE } else { BE }, 0);
    let Ok((dict, _)) = Data::new(wire, ctxt).deserialize::<OptionsDict>() else { return };
    for call in CALLS {
        let Ok(o) = Options::from_dict(&dict, call) else { continue };
        assert!(dict.keys().all(|k| call.accepts(k)), "{call:?} took a key it does not accept");
        assert_eq!(o.is_empty(), dict.is_empty());

        let sent: HashMap<&str, Value<'_>> = o.to_dict();
        let bytes = to_bytes(ctxt, &sent).expect("options serialize");
        let (back, _) = bytes.deserialize::<OptionsDict>().expect("serialized options deserialize");
        assert_eq!(Options::from_dict(&back, call).as_ref().ok(), Some(&o), "to_dict does not round-trip");

        let mut blank = o.clone();
        for secret in [&mut blank.password, &mut blank.reverse_password].into_iter().flatten() {
            secret.clear();
        }
        assert_eq!(format!("{o:?}"), format!("{blank:?}"), "Debug shows a secret");
    }
    // Values of other types must not confuse the typed reader: the same keys, all as strings.
    let as_strings: OptionsDict = dict
        .keys()
        .filter_map(|k| Some((k.clone(), OwnedValue::try_from(Value::from(k.as_str())).ok()?)))
        .collect();
    for call in CALLS {
        let _ = Options::from_dict(&as_strings, call);
    }
}
