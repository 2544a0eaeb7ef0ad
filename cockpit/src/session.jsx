import React, { useEffect, useState } from "react";
import {
    Alert, Breadcrumb, BreadcrumbItem, Button, Card, CardBody, CardHeader, CardTitle, DescriptionList,
    DescriptionListDescription, DescriptionListGroup, DescriptionListTerm, EmptyState, EmptyStateBody,
    EmptyStateHeader, Flex, FlexItem, Gallery, PageSection, Stack, StackItem, Title,
} from "@patternfly/react-core";

import { options, sessionLuns, store, useFreshUsedBy, IFACE } from "./client.js";
import { describe, errorKind } from "./errors.js";
import { LunIdentity, LunTable } from "./luns.jsx";
import { ForceDialog, StateLabel } from "./connections.jsx";
import { formatBytes, variantText } from "./util.js";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

function Pairs({ entries, id, columns }) {
    if (!entries.length) return <p className="lunlink-muted">—</p>;
    return (
        <DescriptionList
            isHorizontal
            isCompact
            id={id}
            className="lunlink-pairs"
            horizontalTermWidthModifier={{ default: columns ? "15rem" : "9rem" }}
            columnModifier={columns ? { default: "1Col", md: "2Col", xl: "3Col" } : undefined}
        >
            {entries.map(([k, v]) => (
                <DescriptionListGroup key={k}>
                    <DescriptionListTerm>{k}</DescriptionListTerm>
                    <DescriptionListDescription>{v}</DescriptionListDescription>
                </DescriptionListGroup>
            ))}
        </DescriptionList>
    );
}

const TIMEOUT_WORDS = {
    Login: _("Login"),
    Logout: _("Logout"),
    NoopInterval: _("NOP-Out interval"),
    NoopTimeout: _("NOP-Out timeout"),
    Command: _("Command"),
    Replacement: _("Replacement"),
};

function seconds(k, v) {
    const n = Number(v);
    if (k === "Replacement" && n === -1) return _("For ever");
    if (n === 0 && (k === "NoopInterval" || k === "NoopTimeout")) return _("Off");
    return cockpit.format(_("$0 s"), n);
}

function Counters({ path }) {
    const [values, setValues] = useState(null);
    const [error, setError] = useState(null);
    const [busy, setBusy] = useState(false);
    // The daemon does not signal these (they change with every command): read them when the
    // view opens and when asked.
    const read = () => {
        setBusy(true);
        store.getAll(path, IFACE.session)
                .then(v => { setValues(v); setError(null) })
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };
    useEffect(read, [path]);
    const entries = values
        ? [
            [_("Commands"), String(values.Commands ?? "—")],
            [_("Read"), formatBytes(values.BytesRead)],
            [_("Written"), formatBytes(values.BytesWritten)],
            [_("Errors"), String(values.Errors ?? "—")],
            ...(values.Retries !== undefined ? [[_("Retries"), String(values.Retries)]] : []),
            ...(values.UnitAttentions !== undefined ? [[_("Unit attentions"), String(values.UnitAttentions)]] : []),
        ]
        : [];
    return (
        <Card id="session-counters">
            <CardHeader actions={{ actions: <Button variant="secondary" size="sm" id="counters-refresh" onClick={read} isLoading={busy} isDisabled={busy}>{_("Refresh")}</Button>, hasNoOffset: false }}>
                <CardTitle component="h2">{_("Counters")}</CardTitle>
            </CardHeader>
            <CardBody>
                {error && <Alert variant="danger" isInline title={describe(error).title}>{describe(error).detail}</Alert>}
                <Pairs entries={entries} id="counters" />
            </CardBody>
        </Card>
    );
}

export function SessionDetails({ snap, id }) {
    const [busy, setBusy] = useState(null);
    const [error, setError] = useState(null);
    const [confirm, setConfirm] = useState(false);
    const session = snap.sessions.find(s => s.path.split("/").pop() === id);
    const [usedByToken, setUsedByToken] = useState(0);
    const freshLuns = useFreshUsedBy(session ? sessionLuns(snap, session) : [], !!session, usedByToken);

    const crumbs = (
        <Breadcrumb>
            <BreadcrumbItem to="#/connections">{_("Connections")}</BreadcrumbItem>
            <BreadcrumbItem isActive>{session ? session.Target : _("Session")}</BreadcrumbItem>
        </Breadcrumb>
    );
    if (!session) {
        return (
            <PageSection>
                {crumbs}
                <EmptyState id="session-gone">
                    <EmptyStateHeader titleText={_("This session is gone")} headingLevel="h2" />
                    <EmptyStateBody>{_("It was logged out, or lunlinkd restarted.")}</EmptyStateBody>
                </EmptyState>
            </PageSection>
        );
    }

    const luns = freshLuns.filter(l => l.Session === session.path).sort((a, b) => (a.Lun ?? 0) - (b.Lun ?? 0));
    const params = Object.keys(session.Parameters || {}).sort().map(k => [k, variantText(session.Parameters[k])]);
    const timeouts = Object.keys(session.Timeouts || {}).map(k => [TIMEOUT_WORDS[k] || k, seconds(k, variantText(session.Timeouts[k]))]);

    const run = (what, method, args) => {
        setBusy(what);
        setError(null);
        return store.call(session.path, IFACE.session, method, args)
                .then(() => { if (method === "Logout") cockpit.location.go(["connections"]) })
                .catch(err => {
                    setError({ what, err });
                    setUsedByToken(t => t + 1);
                })
                .finally(() => setBusy(null));
    };

    return (
        <PageSection>
            <Stack hasGutter>
                <StackItem>{crumbs}</StackItem>
                <StackItem>
                    <Flex alignItems={{ default: "alignItemsCenter" }}>
                        <FlexItem><Title headingLevel="h2" id="session-title">{session.Target}</Title></FlexItem>
                        <FlexItem><StateLabel state={session.State} /></FlexItem>
                        <FlexItem align={{ default: "alignRight" }}>
                            <Button variant="secondary" id="session-rescan" isDisabled={!!busy} isLoading={busy === "rescan"} onClick={() => run("rescan", "Rescan", [])}>{_("Rescan LUNs")}</Button>{" "}
                            <Button variant="secondary" isDanger id="session-disconnect" isDisabled={!!busy} isLoading={busy === "logout"} onClick={() => run("logout", "Logout", [options({})])}>{_("Disconnect")}</Button>
                        </FlexItem>
                    </Flex>
                </StackItem>
                {error && (
                    <StackItem>
                        <Alert
                            variant={errorKind(error.err) === "InUse" ? "warning" : "danger"}
                            isInline
                            id="session-error"
                            title={describe(error.err).title}
                            actionLinks={errorKind(error.err) === "InUse" && <Button variant="link" isInline onClick={() => setConfirm(true)}>{_("Disconnect anyway…")}</Button>}
                        >
                            {describe(error.err).detail}
                        </Alert>
                    </StackItem>
                )}
                {confirm && (
                    <ForceDialog
                        refusals={[{ path: session.path, err: error.err }]}
                        snap={{ ...snap, luns: freshLuns }}
                        onClose={() => setConfirm(false)}
                        onConfirm={() => {
                            setConfirm(false);
                            run("logout", "Logout", [options({ force: true })]);
                        }}
                    />
                )}
                <StackItem>
                    <Gallery hasGutter minWidths={{ default: "100%", lg: "24rem" }}>
                        <Card id="session-overview">
                            <CardTitle component="h2">{_("Session")}</CardTitle>
                            <CardBody>
                                <Pairs
                                    id="session-props"
                                    entries={[
                                        [_("Target"), session.Target],
                                        [_("Portal"), session.Portal],
                                        [_("State"), <StateLabel key="s" state={session.State} />],
                                        [_("ISID"), <code key="i">{session.Isid}</code>],
                                        [_("TSIH"), String(session.Tsih)],
                                    ]}
                                />
                            </CardBody>
                        </Card>
                        <Card id="session-timeouts">
                            <CardTitle component="h2">{_("Timeouts in effect")}</CardTitle>
                            <CardBody><Pairs entries={timeouts} id="timeouts" /></CardBody>
                        </Card>
                        <Counters path={session.path} />
                    </Gallery>
                </StackItem>
                <StackItem>
                    <Card id="session-parameters">
                        <CardTitle component="h2">{_("Negotiated parameters")}</CardTitle>
                        <CardBody><Pairs entries={params} id="parameters" columns /></CardBody>
                    </Card>
                </StackItem>
                <StackItem>
                    <Card id="session-luns">
                        <CardTitle component="h2">{_("LUNs")}</CardTitle>
                        <CardBody>
                            <Stack hasGutter>
                                <StackItem><LunTable luns={luns} label={cockpit.format(_("LUNs of $0"), session.Target)} /></StackItem>
                                <StackItem><LunIdentity luns={luns} label={cockpit.format(_("Identity of the LUNs of $0"), session.Target)} /></StackItem>
                            </Stack>
                        </CardBody>
                    </Card>
                </StackItem>
            </Stack>
        </PageSection>
    );
}
