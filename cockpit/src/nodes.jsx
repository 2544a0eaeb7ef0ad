import React, { useState } from "react";
import {
    Alert, Button, Card, CardBody, CardHeader, CardTitle, EmptyState, Flex, EmptyStateBody, EmptyStateHeader, Form, FormGroup,
    FormHelperText, FormSelect, FormSelectOption, HelperText, HelperTextItem, Modal, PageSection, Spinner, Switch,
    TextInput,
} from "@patternfly/react-core";
import { Table, Thead, Tbody, Tr, Th, Td } from "@patternfly/react-table";

import { options, store, IFACE } from "./client.js";
import { describe, errorKind } from "./errors.js";
import { ChapFields, NO_CHAP, chapOptions, chapProblem } from "./chap.jsx";
import { StateLabel } from "./connections.jsx";
import { unvariant } from "./util.js";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

const DIGESTS = [
    ["", _("Unchanged")],
    ["none", _("None")],
    ["crc32c", _("CRC32C")],
    ["crc32c,none", _("CRC32C, else none")],
    ["none,crc32c", _("None, else CRC32C")],
];

function digestText(v) {
    if (!Array.isArray(v)) return "—";
    const found = DIGESTS.find(([k]) => k === v.join(","));
    return found ? found[1] : v.join(", ");
}

function authText(n) {
    if (n.AuthMethod !== "chap") return _("None");
    if (n.ReverseUsername) return cockpit.format(_("Mutual CHAP as $0"), n.Username);
    return cockpit.format(_("CHAP as $0"), n.Username);
}

// [property key, Update option, D-Bus type, label, help]
const TIMEOUTS = [
    ["Replacement", "replacement-timeout", "i", _("Replacement timeout"), _("Seconds IO waits for a lost connection to come back before it fails (-1: for ever, 0: at once).")],
    ["NoopInterval", "noop-interval", "u", _("NOP-Out interval"), _("Seconds of silence before the connection is checked with a ping (0: never).")],
    ["NoopTimeout", "noop-timeout", "u", _("NOP-Out timeout"), _("Seconds a ping may stay unanswered before the connection counts as lost (0: never).")],
];

function SettingsDialog({ node, onClose }) {
    const [header, setHeader] = useState("");
    const [data, setData] = useState("");
    const [auth, setAuth] = useState({ ...NO_CHAP, method: "keep" });
    const hasTimeouts = node.Timeouts !== undefined;
    const [timeouts, setTimeouts] = useState(() => {
        const t = {};
        for (const [k] of TIMEOUTS) t[k] = hasTimeouts && node.Timeouts[k] !== undefined ? String(unvariant(node.Timeouts[k])) : "";
        return t;
    });
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const timeoutProblem = k => {
        const v = (timeouts[k] || "").trim();
        if (v === "") return null;
        const min = k === "Replacement" ? -1 : 0;
        if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > 86400)
            return cockpit.format(_("A whole number of seconds from $0 to 86400"), min);
        return null;
    };
    const problem = chapProblem(auth) || (hasTimeouts ? TIMEOUTS.map(([k]) => timeoutProblem(k)).find(Boolean) : null);

    const save = () => {
        if (problem) return;
        const o = { ...chapOptions(auth) };
        if (header) o["header-digest"] = header.split(",");
        if (data) o["data-digest"] = data.split(",");
        const dict = options(o);
        if (hasTimeouts) {
            for (const [k, opt, type] of TIMEOUTS) {
                const v = timeouts[k].trim();
                const before = node.Timeouts[k] !== undefined ? String(unvariant(node.Timeouts[k])) : "";
                if (v !== "" && v !== before) dict[opt] = cockpit.variant(type, Number(v));
            }
        }
        setBusy(true);
        setError(null);
        store.call(node.path, IFACE.node, "Update", [dict])
                .then(([when]) => onClose(when))
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };

    return (
        <Modal
            variant="medium"
            isOpen
            id="node-settings"
            onClose={() => onClose(null)}
            title={cockpit.format(_("Settings of $0"), node.Target)}
            description={node.Portal}
            actions={[
                <Button key="save" id="node-settings-save" variant="primary" onClick={save} isDisabled={busy || !!problem} isLoading={busy}>{_("Save")}</Button>,
                <Button key="cancel" id="node-settings-cancel" variant="link" onClick={() => onClose(null)}>{_("Cancel")}</Button>,
            ]}
        >
            <Form isHorizontal onSubmit={ev => { ev.preventDefault(); save() }}>
                <FormGroup label={_("Header digest")} fieldId="node-header-digest">
                    <FormSelect id="node-header-digest" value={header} onChange={(_ev, v) => setHeader(v)}>
                        {DIGESTS.map(([k, l]) => <FormSelectOption key={k} value={k} label={l} />)}
                    </FormSelect>
                    <FormHelperText><HelperText><HelperTextItem>{cockpit.format(_("Now: $0"), digestText(node.HeaderDigest))}</HelperTextItem></HelperText></FormHelperText>
                </FormGroup>
                <FormGroup label={_("Data digest")} fieldId="node-data-digest">
                    <FormSelect id="node-data-digest" value={data} onChange={(_ev, v) => setData(v)}>
                        {DIGESTS.map(([k, l]) => <FormSelectOption key={k} value={k} label={l} />)}
                    </FormSelect>
                    <FormHelperText><HelperText><HelperTextItem>{cockpit.format(_("Now: $0"), digestText(node.DataDigest))}</HelperTextItem></HelperText></FormHelperText>
                </FormGroup>
                {hasTimeouts
                    ? TIMEOUTS.map(([k, , , label, help]) => (
                        <FormGroup key={k} label={label} fieldId={`node-timeout-${k}`}>
                            <TextInput id={`node-timeout-${k}`} value={timeouts[k]} inputMode="numeric" validated={timeoutProblem(k) ? "error" : "default"} onChange={(_ev, v) => setTimeouts(t => ({ ...t, [k]: v }))} />
                            <FormHelperText><HelperText><HelperTextItem variant={timeoutProblem(k) ? "error" : "default"}>{timeoutProblem(k) || help}</HelperTextItem></HelperText></FormHelperText>
                        </FormGroup>
                    ))
                    : (
                        <FormGroup label={_("Timeouts")} fieldId="node-timeouts-note">
                            <HelperText id="node-timeouts-note"><HelperTextItem>{_("This lunlinkd takes the replacement and NOP-Out timeouts from [timeouts] in /etc/lunlink/lunlink.toml for every node; a session's details show the values in effect.")}</HelperTextItem></HelperText>
                        </FormGroup>
                    )}
                <ChapFields
                    idPrefix="node-auth"
                    label={_("Authentication")}
                    choices={[["keep", _("Unchanged")], ["none", _("None")], ["chap", _("CHAP")], ["mutual", _("Mutual CHAP")]]}
                    value={auth}
                    onChange={setAuth}
                />
                {chapProblem(auth) && <HelperText><HelperTextItem variant="error">{chapProblem(auth)}</HelperTextItem></HelperText>}
                {error && <Alert variant="danger" isInline id="node-settings-error" title={describe(error).title}>{describe(error).detail}</Alert>}
            </Form>
        </Modal>
    );
}

function DeleteDialog({ node, onClose }) {
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const del = () => {
        setBusy(true);
        setError(null);
        store.call(node.path, IFACE.node, "Delete", [])
                .then(() => onClose())
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };
    const inUse = error && errorKind(error) === "InUse";
    return (
        <Modal
            variant="small"
            titleIconVariant="warning"
            isOpen
            id="node-delete"
            onClose={onClose}
            title={_("Delete node?")}
            actions={[
                <Button key="delete" id="node-delete-confirm" variant="danger" onClick={del} isDisabled={busy} isLoading={busy}>{_("Delete")}</Button>,
                <Button key="cancel" id="node-delete-cancel" variant="link" onClick={onClose}>{_("Cancel")}</Button>,
            ]}
        >
            <p>{cockpit.format(_("$0 on $1 is forgotten with its settings; discovery finds it again."), node.Target, node.Portal)}</p>
            {error && (
                <Alert variant="danger" isInline id="node-delete-error" title={inUse ? _("It is logged in: disconnect its session first") : describe(error).title}>
                    {describe(error).detail}
                </Alert>
            )}
        </Modal>
    );
}

function NodeRow({ node, snap, onSettings, onDelete, note, setNote }) {
    const [busy, setBusy] = useState(false);
    const session = node.Session && node.Session !== "/" ? snap.sessions.find(s => s.path === node.Session) : null;
    const id = node.path.split("/").pop();
    const automatic = node.Startup === "automatic";
    const [loggingIn, setLoggingIn] = useState(false);
    const login = () => {
        setLoggingIn(true);
        setNote(null);
        store.call(node.path, IFACE.node, "Login", [options({})])
                .catch(err => setNote({ err }))
                .finally(() => setLoggingIn(false));
    };
    const toggle = on => {
        setBusy(true);
        setNote(null);
        store.call(node.path, IFACE.node, "Update", [options({ startup: on ? "automatic" : "manual" })])
                .then(() => setNote(null))
                .catch(err => setNote({ err }))
                .finally(() => setBusy(false));
    };
    return (
        <>
        <Tr data-node={node.Target} data-portal={node.Portal} className={note ? "lunlink-has-note" : undefined}>
            <Td dataLabel={_("Target")} className="lunlink-target">{node.Target}</Td>
            <Td dataLabel={_("Portal")}>{node.Portal}</Td>
            <Td dataLabel={_("TPGT")}>{node.Tpgt}</Td>
            <Td dataLabel={_("Log in at start")}>
                <Switch
                    id={`node-startup-${id}`}
                    className="lunlink-startup"
                    aria-label={cockpit.format(_("Log in to $0 at start"), node.Target)}
                    label={_("Automatic")}
                    labelOff={_("Manual")}
                    isChecked={automatic}
                    isDisabled={busy}
                    onChange={(_ev, on) => toggle(on)}
                />
            </Td>
            <Td dataLabel={_("Authentication")}>{authText(node)}</Td>
            <Td dataLabel={_("Session")} className="lunlink-nowrap">
                {session && <StateLabel state={session.State} />}
                {!session && !loggingIn && <span className="lunlink-muted">{_("Not logged in")}</span>}
                {!session && loggingIn && <><Spinner size="sm" aria-label={_("Logging in")} /> {_("Logging in…")}</>}
            </Td>
            <Td isActionCell>
                <Flex flexWrap={{ default: "nowrap" }} spaceItems={{ default: "spaceItemsSm" }} justifyContent={{ default: "justifyContentFlexEnd" }}>
                    {!session && (
                        <Button variant="secondary" size="sm" onClick={login} isDisabled={loggingIn} id={`node-login-${id}`} aria-label={cockpit.format(_("Log in to $0 on $1"), node.Target, node.Portal)}>{_("Log in")}</Button>
                    )}
                    <Button variant="secondary" size="sm" onClick={onSettings} id={`node-settings-${id}`} aria-label={cockpit.format(_("Settings of $0"), node.Target)}>{_("Settings")}</Button>
                    <Button variant="secondary" isDanger size="sm" onClick={onDelete} id={`node-delete-${id}`} aria-label={cockpit.format(_("Delete $0"), node.Target)}>{_("Delete")}</Button>
                </Flex>
            </Td>
        </Tr>
        {note && (
            <Tr data-node-note={node.Target} data-portal={node.Portal} className="lunlink-note-row">
                <Td colSpan={7}>
                    {note.err && (
                        <HelperText className="lunlink-row-error">
                            <HelperTextItem variant="error" hasIcon>
                                <strong>{describe(note.err).title}</strong>
                                {describe(note.err).detail && <span className="lunlink-detail">{describe(note.err).detail}</span>}
                            </HelperTextItem>
                        </HelperText>
                    )}
                    {note.when && (
                        <HelperText><HelperTextItem variant="success" hasIcon>{note.when === "now" ? _("Saved, in effect now") : _("Saved, in effect at the next login")}</HelperTextItem></HelperText>
                    )}
                </Td>
            </Tr>
        )}
        </>
    );
}

/// Log in to every node at once. With LoginAllWithResults each node's failure shows in its row;
/// an older lunlinkd's LoginAll only says how many sessions there are.
function LoginAll({ snap, setNotes }) {
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const [summary, setSummary] = useState(null);
    const withResults = snap.managerMethods.has("LoginAllWithResults");
    const run = () => {
        setBusy(true);
        setError(null);
        setSummary(null);
        store.manager_call(withResults ? "LoginAllWithResults" : "LoginAll", [options({})])
                .then(([res]) => {
                    if (!withResults) {
                        setSummary(cockpit.format(_("$0 sessions"), res.length));
                        return;
                    }
                    const failed = res.filter(r => r[2]);
                    setNotes(prev => {
                        const next = new Map(prev);
                        for (const [node, , name, message] of res) next.set(node, name ? { err: { name, message } } : null);
                        return next;
                    });
                    setSummary(failed.length
                        ? cockpit.format(_("$0 logged in, $1 failed: see their rows"), res.length - failed.length, failed.length)
                        : cockpit.format(_("$0 logged in"), res.length));
                })
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };
    return (
        <Flex alignItems={{ default: "alignItemsCenter" }} flexWrap={{ default: "nowrap" }}>
            {summary && <HelperText id="login-all-result"><HelperTextItem>{summary}</HelperTextItem></HelperText>}
            {error && <HelperText id="login-all-error"><HelperTextItem variant="error">{describe(error).title}: {describe(error).detail}</HelperTextItem></HelperText>}
            <Button id="login-all" variant="secondary" onClick={run} isLoading={busy} isDisabled={busy || snap.nodes.length === 0}>
                {_("Log in to all")}
            </Button>
        </Flex>
    );
}

export function Nodes({ snap }) {
    const [settings, setSettings] = useState(null);
    const [deleting, setDeleting] = useState(null);
    const [notes, setNotes] = useState(() => new Map());
    const setNote = path => v => setNotes(prev => new Map(prev).set(path, v));
    const header = <LoginAll snap={snap} setNotes={setNotes} />;
    const nodes = snap.nodes; // by target, then portal
    return (
        <PageSection>
            <Card id="nodes-card">
                <CardHeader actions={{ actions: header, hasNoOffset: false }}>
                    <CardTitle component="h2">{_("Nodes")}</CardTitle>
                </CardHeader>
                <CardBody>
                    {nodes.length === 0
                        ? (
                            <EmptyState variant="sm">
                                <EmptyStateHeader titleText={_("No nodes")} headingLevel="h3" />
                                <EmptyStateBody>{_("Discovery in “Add connection” creates a node for every target and portal it finds.")}</EmptyStateBody>
                            </EmptyState>
                        )
                        : (
                            <Table aria-label={_("Node records")} id="nodes-table" variant="compact">
                                <Thead>
                                    <Tr>
                                        <Th>{_("Target")}</Th>
                                        <Th>{_("Portal")}</Th>
                                        <Th>{_("TPGT")}</Th>
                                        <Th>{_("Log in at start")}</Th>
                                        <Th>{_("Authentication")}</Th>
                                        <Th>{_("Session")}</Th>
                                        <Th screenReaderText={_("Actions")} />
                                    </Tr>
                                </Thead>
                                <Tbody>
                                    {nodes.map(n => (
                                        <NodeRow
                                            key={n.path}
                                            node={n}
                                            snap={snap}
                                            note={notes.get(n.path)}
                                            setNote={setNote(n.path)}
                                            onSettings={() => setSettings(n.path)}
                                            onDelete={() => setDeleting(n.path)}
                                        />
                                    ))}
                                </Tbody>
                            </Table>
                        )}
                    {settings && snap.nodes.some(n => n.path === settings) && (
                        <SettingsDialog
                            node={snap.nodes.find(n => n.path === settings)}
                            onClose={when => {
                                if (when) setNote(settings)({ when });
                                setSettings(null);
                            }}
                        />
                    )}
                    {deleting && snap.nodes.some(n => n.path === deleting) && (
                        <DeleteDialog node={snap.nodes.find(n => n.path === deleting)} onClose={() => setDeleting(null)} />
                    )}
                </CardBody>
            </Card>
        </PageSection>
    );
}
