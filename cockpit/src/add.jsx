import React, { useState } from "react";
import {
    ActionGroup, Alert, Button, Card, CardBody, CardTitle, Checkbox, Flex, FlexItem, Form, FormGroup,
    FormHelperText, HelperText, HelperTextItem, PageSection, Spinner, Stack, StackItem, TextInput,
} from "@patternfly/react-core";
import { Table, Thead, Tbody, Tr, Th, Td } from "@patternfly/react-table";

import { options, sessionLuns, store, IFACE } from "./client.js";
import { describe } from "./errors.js";
import { devicesText } from "./luns.jsx";
import { ChapFields, NO_CHAP, chapOptions, chapProblem } from "./chap.jsx";
import { portalOf, validHost, validPort } from "./util.js";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

const key = t => `${t.target}\n${t.portal}\n${t.tpgt}`;

/// The session a discovered target has now, if any.
function sessionOf(snap, t) {
    const node = snap.nodes.find(n => n.Target === t.target && n.Portal === t.portal && n.Tpgt === t.tpgt);
    const path = node && node.Session && node.Session !== "/" ? node.Session : null;
    const s = path ? snap.sessions.find(x => x.path === path) : snap.sessions.find(x => x.Target === t.target && x.Portal === t.portal);
    return s || null;
}

function Result({ snap, t, result }) {
    const session = sessionOf(snap, t);
    if (result && result.busy) {
        return <span className="lunlink-progress"><Spinner size="sm" aria-label={_("Connecting")} /> {_("Connecting…")}</span>;
    }
    if (result && result.err && !session) {
        const d = describe(result.err);
        return (
            <HelperText className="lunlink-result">
                <HelperTextItem variant="error" hasIcon>
                    <strong>{d.title}</strong>{d.detail && <span className="lunlink-detail">{d.detail}</span>}
                </HelperTextItem>
            </HelperText>
        );
    }
    if (session) {
        return (
            <HelperText className="lunlink-result">
                <HelperTextItem variant="success" hasIcon>{devicesText(sessionLuns(snap, session))}</HelperTextItem>
            </HelperText>
        );
    }
    return <span className="lunlink-muted">{_("Not connected")}</span>;
}

export function AddConnection({ snap }) {
    const [host, setHost] = useState("");
    const [port, setPort] = useState("3260");
    const [discAuth, setDiscAuth] = useState(NO_CHAP);
    const [touched, setTouched] = useState(false);
    const [discovering, setDiscovering] = useState(false);
    const [discoverError, setDiscoverError] = useState(null);
    const [targets, setTargets] = useState(null);
    const [asked, setAsked] = useState("");
    const [selected, setSelected] = useState(() => new Set());
    const [sessAuth, setSessAuth] = useState(NO_CHAP);
    const [remember, setRemember] = useState(true);
    const [results, setResults] = useState(() => new Map());
    const [connectError, setConnectError] = useState(null);

    const hostProblem = validHost(host);
    const portProblem = validPort(port);
    const discProblem = chapProblem(discAuth);
    const sessProblem = chapProblem(sessAuth);

    const discover = () => {
        setTouched(true);
        if (hostProblem || portProblem || discProblem) return;
        const portal = portalOf(host, port);
        setDiscovering(true);
        setDiscoverError(null);
        store.manager_call("Discover", [portal, options(chapOptions(discAuth))])
                .then(([found]) => {
                    const list = found.map(([target, p, tpgt]) => ({ target, portal: p, tpgt }));
                    list.sort((a, b) => a.target.localeCompare(b.target) || a.portal.localeCompare(b.portal));
                    setTargets(list);
                    setAsked(portal);
                    setResults(new Map());
                    // Everything not yet connected is selected: "All targets" is the usual case.
                    setSelected(new Set(list.filter(t => !sessionOf(store.getSnapshot(), t)).map(key)));
                    setDiscAuth(a => ({ ...a, password: "", reversePassword: "" }));
                })
                .catch(err => setDiscoverError(err))
                .finally(() => setDiscovering(false));
    };

    const connect = () => {
        if (sessProblem) {
            setConnectError(sessProblem);
            return;
        }
        setConnectError(null);
        const chosen = targets.filter(t => selected.has(key(t)));
        const opts = options(chapOptions(sessAuth));
        const creds = chapOptions(sessAuth);
        const keep = remember && (sessAuth.method === "chap" || sessAuth.method === "mutual");
        setResults(prev => {
            const next = new Map(prev);
            for (const t of chosen) next.set(key(t), { busy: true });
            return next;
        });
        for (const t of chosen) {
            store.manager_call("Login", [t.target, t.portal, opts])
                    .then(async ([session]) => {
                        if (keep) {
                            // Store the credentials in the node record, so later logins (and
                            // startup=automatic) use them too.
                            const s = await store.getAll(session, IFACE.session);
                            await store.call(s.Node, IFACE.node, "Update", [options(creds)]);
                        }
                        return { session };
                    })
                    .catch(err => ({ err }))
                    .then(r => setResults(prev => new Map(prev).set(key(t), r)));
        }
        setSessAuth(a => ({ ...a, password: "", reversePassword: "" }));
    };

    const all = targets && targets.length > 0 && targets.every(t => selected.has(key(t)));
    const some = targets && targets.some(t => selected.has(key(t)));
    const connecting = [...results.values()].some(r => r.busy);

    return (
        <PageSection>
            <Stack hasGutter>
                <StackItem>
                    <Card id="discover-card">
                        <CardTitle component="h2">{_("Find targets")}</CardTitle>
                        <CardBody>
                            <Form isHorizontal onSubmit={ev => { ev.preventDefault(); discover() }}>
                                <FormGroup label={_("Host")} fieldId="discover-host" isRequired>
                                    <TextInput
                                        id="discover-host"
                                        value={host}
                                        onChange={(_ev, v) => setHost(v)}
                                        validated={touched && hostProblem ? "error" : "default"}
                                    />
                                    <FormHelperText>
                                        <HelperText>
                                            <HelperTextItem variant={touched && hostProblem ? "error" : "default"}>
                                                {touched && hostProblem ? hostProblem : _("Host name, IPv4 or IPv6 address of the target's portal")}
                                            </HelperTextItem>
                                        </HelperText>
                                    </FormHelperText>
                                </FormGroup>
                                <FormGroup label={_("Port")} fieldId="discover-port">
                                    <TextInput
                                        id="discover-port"
                                        className="lunlink-port"
                                        value={port}
                                        inputMode="numeric"
                                        onChange={(_ev, v) => setPort(v)}
                                        validated={portProblem ? "error" : "default"}
                                    />
                                    {portProblem && <FormHelperText><HelperText><HelperTextItem variant="error">{portProblem}</HelperTextItem></HelperText></FormHelperText>}
                                </FormGroup>
                                <ChapFields
                                    idPrefix="discover-auth"
                                    label={_("Discovery authentication")}
                                    choices={[["default", _("Default")], ["chap", _("CHAP")], ["mutual", _("Mutual CHAP")]]}
                                    hint={discAuth.method === "default" ? _("“Default” uses the discovery settings of Authentication options.") : null}
                                    value={discAuth}
                                    onChange={setDiscAuth}
                                />
                                {touched && discProblem && <HelperText><HelperTextItem variant="error">{discProblem}</HelperTextItem></HelperText>}
                                <ActionGroup>
                                    <Button id="discover" variant="primary" type="submit" isDisabled={discovering} isLoading={discovering}>
                                        {discovering ? _("Discovering…") : _("Discover")}
                                    </Button>
                                </ActionGroup>
                                {discoverError && (
                                    <Alert variant="danger" isInline id="discover-error" title={describe(discoverError).title}>
                                        {describe(discoverError).detail}
                                    </Alert>
                                )}
                            </Form>
                        </CardBody>
                    </Card>
                </StackItem>
                {targets && (
                    <StackItem>
                        <Card id="targets-card">
                            <CardTitle component="h2">{cockpit.format(_("Targets at $0"), asked)}</CardTitle>
                            <CardBody>
                                {targets.length === 0
                                    ? <p id="no-targets">{_("The portal offers no target to this initiator.")}</p>
                                    : (
                                        <Stack hasGutter>
                                            <StackItem>
                                                <Checkbox
                                                    id="select-all-targets"
                                                    label={_("All targets")}
                                                    isChecked={all ? true : some ? null : false}
                                                    onChange={(_ev, on) => setSelected(on ? new Set(targets.map(key)) : new Set())}
                                                />
                                            </StackItem>
                                            <StackItem>
                                                <Table aria-label={_("Targets found")} id="targets-table" variant="compact">
                                                    <Thead>
                                                        <Tr>
                                                            <Th screenReaderText={_("Select")} />
                                                            <Th>{_("Target")}</Th>
                                                            <Th>{_("Portal")}</Th>
                                                            <Th>{_("TPGT")}</Th>
                                                            <Th>{_("Status")}</Th>
                                                        </Tr>
                                                    </Thead>
                                                    <Tbody>
                                                        {targets.map((t, i) => (
                                                            <Tr key={key(t)} data-target={t.target} data-portal={t.portal}>
                                                                <Td className="pf-v5-c-table__check">
                                                                    <Checkbox
                                                                        id={`select-target-${i}`}
                                                                        aria-label={cockpit.format(_("Select $0 on $1"), t.target, t.portal)}
                                                                        isChecked={selected.has(key(t))}
                                                                        onChange={(_ev, on) => {
                                                                            const next = new Set(selected);
                                                                            if (on) next.add(key(t));
                                                                            else next.delete(key(t));
                                                                            setSelected(next);
                                                                        }}
                                                                    />
                                                                </Td>
                                                                <Td dataLabel={_("Target")} className="lunlink-target">{t.target}</Td>
                                                                <Td dataLabel={_("Portal")}>{t.portal}</Td>
                                                                <Td dataLabel={_("TPGT")}>{t.tpgt}</Td>
                                                                <Td dataLabel={_("Status")} className="lunlink-status" id={`target-result-${i}`}>
                                                                    <Result snap={snap} t={t} result={results.get(key(t))} />
                                                                </Td>
                                                            </Tr>
                                                        ))}
                                                    </Tbody>
                                                </Table>
                                            </StackItem>
                                            <StackItem>
                                                <Form isHorizontal onSubmit={ev => { ev.preventDefault(); connect() }}>
                                                    <ChapFields
                                                        idPrefix="session-auth"
                                                        label={_("Session authentication")}
                                                        choices={[["default", _("Default")], ["chap", _("CHAP")], ["mutual", _("Mutual CHAP")]]}
                                                        hint={sessAuth.method === "default" ? _("“Default” uses each node's own CHAP settings, else the session settings of Authentication options.") : null}
                                                        value={sessAuth}
                                                        onChange={setSessAuth}
                                                    />
                                                    {(sessAuth.method === "chap" || sessAuth.method === "mutual") && (
                                                        <FormGroup fieldId="session-auth-remember" label={_("Keep")}>
                                                            <Checkbox
                                                                id="session-auth-remember"
                                                                label={_("Store these credentials in the targets' node records")}
                                                                description={_("Later logins, and logins at start for automatic nodes, then use them. Secrets are kept readable by root only and never shown.")}
                                                                isChecked={remember}
                                                                onChange={(_ev, on) => setRemember(on)}
                                                            />
                                                        </FormGroup>
                                                    )}
                                                    <ActionGroup>
                                                        <Flex alignItems={{ default: "alignItemsCenter" }}>
                                                            <FlexItem>
                                                                <Button id="connect" variant="primary" type="submit" isDisabled={!some} isLoading={connecting}>
                                                                    {_("Connect")}
                                                                </Button>
                                                            </FlexItem>
                                                            {connectError && (
                                                                <FlexItem>
                                                                    <HelperText id="connect-error"><HelperTextItem variant="error">{connectError}</HelperTextItem></HelperText>
                                                                </FlexItem>
                                                            )}
                                                        </Flex>
                                                    </ActionGroup>
                                                </Form>
                                            </StackItem>
                                        </Stack>
                                    )}
                            </CardBody>
                        </Card>
                    </StackItem>
                )}
            </Stack>
        </PageSection>
    );
}
