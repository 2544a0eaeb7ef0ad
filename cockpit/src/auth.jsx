import React, { useState } from "react";
import {
    ActionGroup, Alert, Button, Card, CardBody, CardTitle, DescriptionList, DescriptionListDescription,
    DescriptionListGroup, DescriptionListTerm, Flex, FlexItem, Form, Gallery, HelperText, HelperTextItem,
    PageSection, Stack, StackItem,
} from "@patternfly/react-core";

import { options, store } from "./client.js";
import { describe } from "./errors.js";
import { ChapFields, NO_CHAP, chapOptions, chapProblem } from "./chap.jsx";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

const SCOPES = {
    session: {
        title: _("Sessions"),
        help: _("Used to log in to targets whose node has no CHAP settings of its own."),
        method: "DefaultAuthMethod",
        username: "DefaultUsername",
        reverse: "DefaultReverseUsername",
    },
    discovery: {
        title: _("Discovery"),
        help: _("Used to ask portals for their targets (SendTargets) when “Add connection” says “Default”."),
        method: "DiscoveryAuthMethod",
        username: "DiscoveryUsername",
        reverse: "DiscoveryReverseUsername",
    },
};

function Current({ scope, m }) {
    const s = SCOPES[scope];
    const method = m[s.method];
    const chap = method === "chap";
    const reverse = m[s.reverse]; // undefined: this lunlinkd does not say
    let methodText = _("None");
    if (chap) methodText = reverse ? _("Mutual CHAP") : _("CHAP");
    else if (method === undefined) methodText = "—";
    const set = v => v ? _("Set") : _("Not set");
    return (
        <DescriptionList isHorizontal isCompact id={`auth-${scope}-current`}>
            <DescriptionListGroup>
                <DescriptionListTerm>{_("Method")}</DescriptionListTerm>
                <DescriptionListDescription className="lunlink-auth-method">{methodText}</DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
                <DescriptionListTerm>{_("CHAP username")}</DescriptionListTerm>
                <DescriptionListDescription className="lunlink-auth-username">{(chap && m[s.username]) || "—"}</DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
                <DescriptionListTerm>{_("CHAP secret")}</DescriptionListTerm>
                <DescriptionListDescription className="lunlink-auth-secret">{set(chap)}</DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
                <DescriptionListTerm>{_("Target's username")}</DescriptionListTerm>
                <DescriptionListDescription>{(chap && reverse) || "—"}</DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
                <DescriptionListTerm>{_("Target's secret")}</DescriptionListTerm>
                <DescriptionListDescription>{reverse === undefined ? "—" : set(chap && !!reverse)}</DescriptionListDescription>
            </DescriptionListGroup>
        </DescriptionList>
    );
}

/// The form starts from what is in effect (secrets excepted: they cannot be read back).
function initial(scope, m) {
    const s = SCOPES[scope];
    if (m[s.method] !== "chap") return { ...NO_CHAP, method: "none" };
    return {
        ...NO_CHAP,
        method: m[s.reverse] ? "mutual" : "chap",
        username: m[s.username] || "",
        reverseUsername: m[s.reverse] || "",
    };
}

function ScopeCard({ scope, snap }) {
    const m = snap.manager || {};
    const [value, setValue] = useState(() => initial(scope, m));
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const [saved, setSaved] = useState(false);
    const [touched, setTouched] = useState(false);
    const problem = chapProblem(value);
    const s = SCOPES[scope];

    const save = () => {
        setTouched(true);
        if (problem) return;
        setBusy(true);
        setError(null);
        setSaved(false);
        store.manager_call("SetDefaultAuth", [scope, options(chapOptions(value))])
                .then(() => {
                    setSaved(true);
                    setTouched(false);
                    // Secrets are write-only: nothing of them stays on the page.
                    setValue(v => ({ ...v, password: "", reversePassword: "" }));
                })
                .catch(err => setError(err))
                .finally(() => setBusy(false));
    };

    return (
        <Card id={`auth-${scope}`}>
            <CardTitle component="h2">{s.title}</CardTitle>
            <CardBody>
                <Stack hasGutter>
                    <StackItem><p className="lunlink-muted">{s.help}</p></StackItem>
                    <StackItem><Current scope={scope} m={m} /></StackItem>
                    <StackItem>
                        <Form onSubmit={ev => { ev.preventDefault(); save() }} aria-label={cockpit.format(_("Change the $0 authentication"), s.title)}>
                            <ChapFields
                                idPrefix={`auth-${scope}`}
                                label={_("New setting")}
                                choices={[["none", _("None")], ["chap", _("CHAP")], ["mutual", _("Mutual CHAP")]]}
                                value={value}
                                onChange={v => { setValue(v); setSaved(false) }}
                            />
                            <ActionGroup>
                                <Flex alignItems={{ default: "alignItemsCenter" }}>
                                    <FlexItem>
                                        <Button id={`auth-${scope}-save`} variant="primary" type="submit" isDisabled={busy} isLoading={busy}>{_("Save")}</Button>
                                    </FlexItem>
                                    {touched && problem && (
                                        <FlexItem><HelperText><HelperTextItem variant="error">{problem}</HelperTextItem></HelperText></FlexItem>
                                    )}
                                    {saved && (
                                        <FlexItem><HelperText id={`auth-${scope}-saved`}><HelperTextItem variant="success" hasIcon>{_("Saved")}</HelperTextItem></HelperText></FlexItem>
                                    )}
                                </Flex>
                            </ActionGroup>
                            {error && <Alert variant="danger" isInline id={`auth-${scope}-error`} title={describe(error).title}>{describe(error).detail}</Alert>}
                        </Form>
                    </StackItem>
                </Stack>
            </CardBody>
        </Card>
    );
}

export function Authentication({ snap }) {
    return (
        <PageSection>
            <Stack hasGutter>
                <StackItem>
                    <Alert variant="info" isInline isPlain title={_("Secrets are write-only")}>
                        {_("lunlinkd keeps CHAP secrets readable by root only and never gives them back: this page shows only whether one is set. A node's own CHAP settings, or credentials given when connecting, take precedence over these defaults.")}
                    </Alert>
                </StackItem>
                <StackItem>
                    <Gallery hasGutter minWidths={{ default: "100%", xl: "40rem" }}>
                        {/* Mounted again once the Manager is read, to start from its values. */}
                        <ScopeCard key={`session-${!!snap.manager}`} scope="session" snap={snap} />
                        <ScopeCard key={`discovery-${!!snap.manager}`} scope="discovery" snap={snap} />
                    </Gallery>
                </StackItem>
            </Stack>
        </PageSection>
    );
}
