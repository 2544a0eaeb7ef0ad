import React, { useEffect, useState } from "react";
import { Alert, Page, PageSection, Spinner, Tab, TabTitleText, Tabs, Title } from "@patternfly/react-core";

import { usePermission, useStore } from "./client.js";
import { Connections } from "./connections.jsx";
import { AddConnection } from "./add.jsx";
import { Authentication } from "./auth.jsx";
import { Nodes } from "./nodes.jsx";
import { SessionDetails } from "./session.jsx";

const cockpit = window.cockpit;
const _ = cockpit.gettext;


const VIEWS = [
    ["connections", _("Connections")],
    ["add", _("Add connection")],
    ["authentication", _("Authentication options")],
    ["nodes", _("Nodes")],
];

function useLocationPath() {
    const [path, setPath] = useState(cockpit.location.path);
    useEffect(() => {
        const changed = () => setPath(cockpit.location.path);
        cockpit.addEventListener("locationchanged", changed);
        return () => cockpit.removeEventListener("locationchanged", changed);
    }, []);
    return path;
}

function StatusAlerts({ snap, allowed }) {
    const alerts = [];
    if (snap.running === false) {
        alerts.push(
            <Alert key="down" id="alert-not-running" variant="danger" isInline title={_("lunlinkd is not running")}>
                {_("Nothing can be shown or changed until the lunlink daemon runs on the system bus: start it with “systemctl start lunlinkd”. This page updates by itself once it is up.")}
            </Alert>
        );
    } else if (snap.problem && snap.running !== true) {
        alerts.push(
            <Alert key="problem" variant="danger" isInline title={_("No connection to the system bus")}>
                {cockpit.message(snap.problem)}
            </Alert>
        );
    }
    if (allowed === false) {
        alerts.push(
            <Alert key="admin" id="alert-limited-access" variant="info" isInline title={_("Changes need administrative access")}>
                {_("You can see every connection and setting. Connecting, disconnecting and changing settings need administrative access: turn it on with the “Limited access” button at the top of Cockpit. Without it, lunlinkd refuses changes unless its polkit rules allow them to you.")}
            </Alert>
        );
    }
    return alerts.length ? <div className="lunlink-alerts">{alerts}</div> : null;
}

export function Application() {
    const snap = useStore();
    const allowed = usePermission();
    const path = useLocationPath();
    let view = path[0] || "connections";
    if (view !== "session" && !VIEWS.some(([k]) => k === view)) view = "connections";

    return (
        <Page id="lunlink" className="lunlink-page">
            <PageSection variant="light" className="lunlink-header">
                <Title headingLevel="h1" size="2xl">{_("iSCSI Initiator")}</Title>
                <StatusAlerts snap={snap} allowed={allowed} />
                {view !== "session" && (
                    <Tabs
                        component="nav"
                        aria-label={_("iSCSI initiator views")}
                        activeKey={view}
                        onSelect={(_ev, key) => cockpit.location.go([key])}
                        className="lunlink-tabs"
                    >
                        {VIEWS.map(([key, label]) => (
                            <Tab key={key} eventKey={key} id={`tab-${key}`} href={`#/${key}`} title={<TabTitleText>{label}</TabTitleText>} />
                        ))}
                    </Tabs>
                )}
            </PageSection>
            {!snap.ready && snap.running !== false
                ? (
                    <PageSection>
                        <Spinner size="lg" aria-label={_("Loading")} /> {_("Loading…")}
                    </PageSection>
                )
                : (
                    <>
                        {/* Views stay mounted while hidden: a discovery or login started in
                            one goes on, and its result is there when the person comes back. */}
                        <div hidden={view !== "connections"} id="view-connections"><Connections snap={snap} active={view === "connections"} /></div>
                        <div hidden={view !== "add"} id="view-add"><AddConnection snap={snap} /></div>
                        <div hidden={view !== "authentication"} id="view-authentication"><Authentication snap={snap} /></div>
                        <div hidden={view !== "nodes"} id="view-nodes"><Nodes snap={snap} /></div>
                        {view === "session" && <div id="view-session"><SessionDetails snap={snap} id={path[1]} /></div>}
                    </>
                )}
        </Page>
    );
}
