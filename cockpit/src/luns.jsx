import React from "react";
import { Label, List, ListItem } from "@patternfly/react-core";
import { Table, Thead, Tbody, Tr, Th, Td } from "@patternfly/react-table";

import { formatBytes, usedByText } from "./util.js";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

/// Properties an older lunlinkd lacks are shown as a dash.
const DASH = "—";

function device(lun, sharedError) {
    if (lun.Device) return <code>{lun.Device}</code>;
    if (lun.DeviceError && lun.DeviceError === sharedError) return <span className="lunlink-device-error">{_("No device")}</span>;
    if (lun.DeviceError) return <span className="lunlink-device-error">{cockpit.format(_("No device: $0"), lun.DeviceError)}</span>;
    return DASH;
}

/// The reason when every LUN lacks a device for the same reason (e.g. ublk_drv not loaded):
/// said once above the table instead of in every row.
export function sharedDeviceError(luns) {
    const errors = new Set(luns.filter(l => !l.Device).map(l => l.DeviceError || ""));
    if (luns.length < 2 || errors.size !== 1 || luns.some(l => l.Device)) return null;
    const [e] = errors;
    return e || null;
}

function byPath(lun) {
    const ids = Array.isArray(lun.ById) ? lun.ById : lun.ById ? [lun.ById] : [];
    if (!lun.ByPath && !ids.length) return DASH;
    return (
        <>
            {lun.ByPath && <code className="lunlink-wrap">{lun.ByPath}</code>}
            {ids.map(id => <div key={id} className="lunlink-muted lunlink-wrap"><small>{id}</small></div>)}
        </>
    );
}

export function usedBy(lun) {
    const u = lun.UsedBy;
    if (u === undefined || !lun.Device) return DASH;
    if (!Array.isArray(u) || u.length === 0) return _("Not in use");
    return (
        <List isPlain>
            {u.map((e, i) => <ListItem key={i}>{usedByText(e)}</ListItem>)}
        </List>
    );
}

/// Identity of each LUN, for the session details: what the target reports about it.
export function LunIdentity({ luns, label }) {
    if (luns.length === 0) return null;
    return (
        <Table aria-label={label} variant="compact" className="lunlink-luns" id="lun-identity">
            <Thead>
                <Tr>
                    <Th modifier="wrap" width={10}>{_("LUN")}</Th>
                    <Th modifier="wrap">{_("WWID")}</Th>
                    <Th modifier="wrap">{_("Serial")}</Th>
                    <Th modifier="wrap" width={10}>{_("Revision")}</Th>
                    <Th modifier="wrap" width={10}>{_("Block size")}</Th>
                    <Th modifier="wrap" width={10}>{_("Access")}</Th>
                </Tr>
            </Thead>
            <Tbody>
                {luns.map(l => (
                    <Tr key={l.path}>
                        <Td dataLabel={_("LUN")}>{l.Lun}</Td>
                        <Td dataLabel={_("WWID")}><code className="lunlink-wrap">{l.Wwid || DASH}</code></Td>
                        <Td dataLabel={_("Serial")} className="lunlink-wrap">{l.Serial || DASH}</Td>
                        <Td dataLabel={_("Revision")}>{l.Revision || DASH}</Td>
                        <Td dataLabel={_("Block size")}>{l.BlockSize ? cockpit.format(_("$0 B"), l.BlockSize) : DASH}</Td>
                        <Td dataLabel={_("Access")}>{l.ReadOnly ? _("Read-only") : _("Read-write")}</Td>
                    </Tr>
                ))}
            </Tbody>
        </Table>
    );
}

export function LunTable({ luns, label, sharedError }) {
    if (luns.length === 0) return <p className="lunlink-muted">{_("No LUNs reported by the target.")}</p>;
    return (
        <Table aria-label={label} variant="compact" borders className="lunlink-luns">
            <Thead>
                <Tr>
                    <Th modifier="wrap" width={10}>{_("LUN")}</Th>
                    <Th modifier="wrap" width={10}>{_("Size")}</Th>
                    <Th modifier="wrap" width={15}>{_("Vendor / product")}</Th>
                    <Th modifier="wrap" width={30}>{_("Device")}</Th>
                    <Th modifier="wrap" width={20}>{_("By-path name")}</Th>
                    <Th modifier="wrap" width={15}>{_("Used by")}</Th>
                </Tr>
            </Thead>
            <Tbody>
                {luns.map(l => (
                    <Tr key={l.path} data-lun={l.Lun}>
                        <Td dataLabel={_("LUN")}>
                            {l.Lun}
                            {l.Offline && <> <Label color="red" isCompact>{_("Offline")}</Label></>}
                            {l.ReadOnly && <> <Label isCompact>{_("Read-only")}</Label></>}
                        </Td>
                        <Td dataLabel={_("Size")}>{formatBytes(l.Size)}</Td>
                        <Td dataLabel={_("Vendor / product")}>{[l.Vendor, l.Product].filter(Boolean).join(" ") || DASH}</Td>
                        <Td dataLabel={_("Device")} className="lunlink-device">{device(l, sharedError)}</Td>
                        <Td dataLabel={_("By-path name")}>{byPath(l)}</Td>
                        <Td dataLabel={_("Used by")}>{usedBy(l)}</Td>
                    </Tr>
                ))}
            </Tbody>
        </Table>
    );
}

/// "connected as /dev/ublkb0" words for a session's devices.
export function devicesText(luns) {
    const devs = luns.map(l => l.Device).filter(Boolean);
    if (devs.length) return cockpit.format(_("Connected as $0"), devs.join(", "));
    const why = luns.map(l => l.DeviceError).find(Boolean);
    if (why) return cockpit.format(_("Connected, no block device: $0"), why);
    return _("Connected");
}
