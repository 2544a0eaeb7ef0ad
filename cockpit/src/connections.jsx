import React, { useState } from "react";
import {
    Alert, AlertActionCloseButton, Button, Card, CardBody, CardHeader, CardTitle, Checkbox,
    DescriptionList, DescriptionListDescription, DescriptionListGroup, DescriptionListTerm,
    EmptyState, EmptyStateBody, EmptyStateFooter, EmptyStateHeader, Form, FormGroup, FormHelperText,
    HelperText, HelperTextItem, Label, List, ListItem, Modal, PageSection, Spinner, Stack,
    StackItem, TextInput,
} from "@patternfly/react-core";
import { ExpandableRowContent, Table, Thead, Tbody, Tr, Th, Td } from "@patternfly/react-table";

import { options, sessionLuns, store, useFreshUsedBy } from "./client.js";
import { describe, errorKind, errorText } from "./errors.js";
import { LunTable, sharedDeviceError, usedBy } from "./luns.jsx";
import { STATE_COLOR, STATE_WORDS } from "./util.js";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

export function StateLabel({ state }) {
    return <Label color={STATE_COLOR[state] || "grey"} className="lunlink-state">{STATE_WORDS[state] || state || "—"}</Label>;
}

export function sessionId(path) {
    return path.split("/").pop();
}

function validName(name) {
    const n = name.trim();
    if (!n) return _("Enter an iSCSI name");
    if (!/^(iqn\.\d{4}-\d{2}\.[^\s]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$/.test(n))
        return _("An iSCSI name looks like iqn.2024-01.com.example:host1, eui.<16 hex digits> or naa.<16 or 32 hex digits>");
    return null;
}

function InitiatorNameDialog({ current, sessions, onClose }) {
    const [name, setName] = useState(current || "");
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const invalid = validName(name);
    const save = () => {
        setBusy(true);
        setError(null);
        store.manager_call("SetInitiatorName", [name.trim()])
                .then(() => onClose())
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };
    return (
        <Modal
            variant="small"
            isOpen
            id="initiator-name-dialog"
            onClose={onClose}
            title={_("Change the initiator name")}
            actions={[
                <Button key="save" id="initiator-name-save" variant="primary" onClick={save} isDisabled={busy || !!invalid} isLoading={busy}>{_("Change")}</Button>,
                <Button key="cancel" variant="link" onClick={onClose}>{_("Cancel")}</Button>,
            ]}
        >
            <Form onSubmit={ev => { ev.preventDefault(); if (!invalid && !busy) save() }}>
                <FormGroup label={_("Initiator name")} fieldId="initiator-name-input" isRequired>
                    <TextInput id="initiator-name-input" value={name} onChange={(_ev, v) => setName(v)} validated={invalid ? "error" : "default"} />
                    <FormHelperText>
                        <HelperText>
                            <HelperTextItem variant={invalid ? "error" : "default"}>
                                {invalid || _("Targets grant access by this name: change it only together with their access lists.")}
                            </HelperTextItem>
                        </HelperText>
                    </FormHelperText>
                </FormGroup>
                {sessions > 0 && (
                    <Alert variant="warning" isInline title={_("Sessions are open")}>
                        {_("lunlinkd refuses a new name while sessions exist: disconnect them first.")}
                    </Alert>
                )}
                {error && <Alert variant="danger" isInline title={describe(error).title} id="initiator-name-error">{describe(error).detail}</Alert>}
            </Form>
        </Modal>
    );
}

function InitiatorCard({ snap }) {
    const [dialog, setDialog] = useState(false);
    const m = snap.manager || {};
    const canSet = snap.managerMethods.has("SetInitiatorName");
    return (
        <Card id="initiator-card">
            <CardTitle component="h2">{_("Initiator")}</CardTitle>
            <CardBody>
                <DescriptionList isHorizontal isCompact>
                    <DescriptionListGroup>
                        <DescriptionListTerm>{_("Initiator name")}</DescriptionListTerm>
                        <DescriptionListDescription>
                            <code id="initiator-name">{m.InitiatorName || "—"}</code>
                            {canSet && (
                                <Button variant="link" isInline id="initiator-name-change" className="lunlink-inline-action" onClick={() => setDialog(true)}>{_("Change")}</Button>
                            )}
                            {!canSet && (
                                <HelperText><HelperTextItem>{_("This lunlinkd sets the name at start: change “name” under [initiator] in /etc/lunlink/lunlink.toml and restart it.")}</HelperTextItem></HelperText>
                            )}
                        </DescriptionListDescription>
                    </DescriptionListGroup>
                    <DescriptionListGroup>
                        <DescriptionListTerm>{_("lunlinkd version")}</DescriptionListTerm>
                        <DescriptionListDescription>{m.Version || "—"}</DescriptionListDescription>
                    </DescriptionListGroup>
                </DescriptionList>
                {dialog && <InitiatorNameDialog current={m.InitiatorName} sessions={snap.sessions.length} onClose={() => setDialog(false)} />}
            </CardBody>
        </Card>
    );
}

export function ForceDialog({ refusals, snap, onConfirm, onClose }) {
    return (
        <Modal
            variant="medium"
            titleIconVariant="warning"
            isOpen
            id="force-dialog"
            onClose={onClose}
            title={_("Disconnect anyway?")}
            actions={[
                <Button key="force" id="force-confirm" variant="danger" onClick={onConfirm}>{_("Disconnect anyway")}</Button>,
                <Button key="cancel" id="force-cancel" variant="link" onClick={onClose}>{_("Cancel")}</Button>,
            ]}
        >
            <Stack hasGutter>
                <StackItem>
                    <Alert variant="danger" isInline title={_("Data may be lost")}>
                        {_("The block devices are removed while they are still mounted or held. Data not yet written to the target is lost, and programs using the devices get I/O errors. Unmount them and stop their users first if you can.")}
                    </Alert>
                </StackItem>
                <StackItem>
                    <List>
                        {refusals.map(r => {
                            const s = snap.sessions.find(x => x.path === r.path);
                            return <ListItem key={r.path}>{s ? s.Target : r.path}: {describe(r.err).detail}</ListItem>;
                        })}
                    </List>
                </StackItem>
            </Stack>
        </Modal>
    );
}

function InUseAlert({ refusals, snap, onForce, onClose }) {
    return (
        <Alert
            variant="warning"
            isInline
            id="inuse-alert"
            title={_("Not disconnected: in use")}
            actionClose={<AlertActionCloseButton onClose={onClose} />}
            actionLinks={<Button variant="link" isInline id="disconnect-anyway" onClick={onForce}>{_("Disconnect anyway…")}</Button>}
        >
            <List>
                {refusals.map(r => {
                    const s = snap.sessions.find(x => x.path === r.path);
                    const holders = s ? sessionLuns(snap, s).filter(l => Array.isArray(l.UsedBy) && l.UsedBy.length) : [];
                    return (
                        <ListItem key={r.path}>
                            <strong>{s ? s.Target : r.path}</strong>: {describe(r.err).detail}
                            {holders.length > 0 && (
                                <List>
                                    {holders.map(l => <ListItem key={l.path}>{l.Device || cockpit.format(_("LUN $0"), l.Lun)}: {usedBy(l)}</ListItem>)}
                                </List>
                            )}
                        </ListItem>
                    );
                })}
            </List>
        </Alert>
    );
}

function SessionsCard({ snap: live, active }) {
    // What uses each device is read on demand (lunlinkd does not signal it).
    const [usedByToken, setUsedByToken] = useState(0);
    const luns = useFreshUsedBy(live.luns, active, usedByToken);
    const snap = { ...live, luns };
    const [selected, setSelected] = useState(() => new Set());
    const [expanded, setExpanded] = useState(() => new Set()); // collapsed rows; expanded by default
    const [busy, setBusy] = useState(() => new Set());
    const [errors, setErrors] = useState([]);
    const [refusals, setRefusals] = useState([]);
    const [confirm, setConfirm] = useState(false);

    const sessions = snap.sessions;
    const present = new Set(sessions.map(s => s.path));
    const chosen = [...selected].filter(p => present.has(p) && !busy.has(p));
    const allSelected = sessions.length > 0 && sessions.every(s => selected.has(s.path));
    const someSelected = sessions.some(s => selected.has(s.path));

    const toggle = (path, on) => {
        const next = new Set(selected);
        if (on) next.add(path);
        else next.delete(path);
        setSelected(next);
    };
    const selectAll = on => setSelected(on ? new Set(sessions.map(s => s.path)) : new Set());

    const disconnect = (paths, force) => {
        setErrors([]);
        setRefusals([]);
        setBusy(prev => new Set([...prev, ...paths]));
        Promise.all(paths.map(p =>
            store.manager_call("Logout", [p, options(force ? { force: true } : {})]).then(() => null, err => ({ path: p, err }))
        )).then(results => {
            const failed = results.filter(Boolean);
            setBusy(prev => new Set([...prev].filter(p => !paths.includes(p))));
            setSelected(prev => new Set([...prev].filter(p => failed.some(f => f.path === p))));
            setRefusals(failed.filter(f => errorKind(f.err) === "InUse"));
            if (failed.length) setUsedByToken(t => t + 1);
            setErrors(failed.filter(f => errorKind(f.err) !== "InUse"));
        });
    };

    const targetOf = path => (sessions.find(s => s.path === path) || {}).Target || path;
    const sharedError = sharedDeviceError(snap.luns);

    return (
        <Card id="sessions-card">
            <CardHeader
                actions={{
                    actions: (
                        <Button
                            id="disconnect-selected"
                            variant="secondary"
                            isDisabled={chosen.length === 0}
                            onClick={() => disconnect(chosen, false)}
                        >
                            {chosen.length > 1 ? cockpit.format(_("Disconnect $0"), chosen.length) : _("Disconnect")}
                        </Button>
                    ),
                    hasNoOffset: false,
                }}
            >
                <CardTitle component="h2">{_("Sessions")}</CardTitle>
            </CardHeader>
            <CardBody>
                {sharedError && (
                    <Alert variant="warning" isInline isPlain id="no-devices" title={_("LUNs have no block devices")} className="lunlink-shared-error">
                        {sharedError}
                    </Alert>
                )}
                {refusals.length > 0 && (
                    <InUseAlert refusals={refusals} snap={snap} onForce={() => setConfirm(true)} onClose={() => setRefusals([])} />
                )}
                {errors.length > 0 && (
                    <Alert variant="danger" isInline id="disconnect-error" title={_("Not disconnected")}>
                        <List>{errors.map(e => <ListItem key={e.path}>{targetOf(e.path)}: {errorText(e.err)}</ListItem>)}</List>
                    </Alert>
                )}
                {confirm && (
                    <ForceDialog
                        refusals={refusals}
                        snap={snap}
                        onClose={() => setConfirm(false)}
                        onConfirm={() => {
                            setConfirm(false);
                            disconnect(refusals.map(r => r.path), true);
                        }}
                    />
                )}
                {sessions.length === 0
                    ? (
                        <EmptyState variant="sm" id="no-sessions">
                            <EmptyStateHeader titleText={_("No sessions")} headingLevel="h3" />
                            <EmptyStateBody>
                                {_("Find targets on a portal and connect to them.")}
                            </EmptyStateBody>
                            <EmptyStateFooter>
                                <Button variant="primary" component="a" href="#/add" id="empty-add-connection">{_("Add connection")}</Button>
                            </EmptyStateFooter>
                        </EmptyState>
                    )
                    : (
                        <Table aria-label={_("iSCSI sessions")} id="sessions-table" variant="compact">
                            <Thead>
                                <Tr>
                                    <Th screenReaderText={_("Show LUNs")} />
                                    <Th className="pf-v5-c-table__check">
                                        <Checkbox
                                            id="select-all-sessions"
                                            aria-label={_("Select all sessions")}
                                            isChecked={allSelected ? true : someSelected ? null : false}
                                            onChange={(_ev, on) => selectAll(on)}
                                        />
                                    </Th>
                                    <Th>{_("Target")}</Th>
                                    <Th>{_("Portal")}</Th>
                                    <Th>{_("State")}</Th>
                                    <Th>{_("LUNs")}</Th>
                                    <Th screenReaderText={_("Details")} />
                                </Tr>
                            </Thead>
                            {sessions.map((s, i) => {
                                const luns = sessionLuns(snap, s);
                                const open = !expanded.has(s.path);
                                const id = sessionId(s.path);
                                return (
                                    <Tbody key={s.path} isExpanded={open} data-session={s.Target} data-portal={s.Portal} className="lunlink-session">
                                        <Tr>
                                            <Td
                                                expand={{
                                                    rowIndex: i,
                                                    isExpanded: open,
                                                    expandId: `session-${id}-expand`,
                                                    onToggle: () => {
                                                        const next = new Set(expanded);
                                                        if (open) next.add(s.path);
                                                        else next.delete(s.path);
                                                        setExpanded(next);
                                                    },
                                                }}
                                            />
                                            <Td className="pf-v5-c-table__check">
                                                <Checkbox
                                                    id={`select-session-${id}`}
                                                    aria-label={cockpit.format(_("Select $0 on $1"), s.Target, s.Portal)}
                                                    isChecked={selected.has(s.path)}
                                                    isDisabled={busy.has(s.path)}
                                                    onChange={(_ev, on) => toggle(s.path, on)}
                                                />
                                            </Td>
                                            <Td dataLabel={_("Target")} className="lunlink-target">{s.Target}</Td>
                                            <Td dataLabel={_("Portal")}>{s.Portal}</Td>
                                            <Td dataLabel={_("State")}>
                                                {busy.has(s.path)
                                                    ? <><Spinner size="sm" aria-label={_("Disconnecting")} /> {_("Disconnecting…")}</>
                                                    : <StateLabel state={s.State} />}
                                            </Td>
                                            <Td dataLabel={_("LUNs")}>{luns.length}</Td>
                                            <Td isActionCell>
                                                <Button variant="link" isInline component="a" href={`#/session/${id}`} aria-label={cockpit.format(_("Details of $0"), s.Target)}>{_("Details")}</Button>
                                            </Td>
                                        </Tr>
                                        <Tr isExpanded={open}>
                                            <Td colSpan={7}>
                                                <ExpandableRowContent>
                                                    <LunTable luns={luns} label={cockpit.format(_("LUNs of $0"), s.Target)} sharedError={sharedError} />
                                                </ExpandableRowContent>
                                            </Td>
                                        </Tr>
                                    </Tbody>
                                );
                            })}
                        </Table>
                    )}
            </CardBody>
        </Card>
    );
}

export function Connections({ snap, active }) {
    return (
        <PageSection>
            <Stack hasGutter>
                <StackItem><InitiatorCard snap={snap} /></StackItem>
                <StackItem><SessionsCard snap={snap} active={active} /></StackItem>
            </Stack>
        </PageSection>
    );
}
