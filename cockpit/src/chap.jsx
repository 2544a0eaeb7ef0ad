import React from "react";
import { FormGroup, Radio, TextInput, FormHelperText, HelperText, HelperTextItem } from "@patternfly/react-core";

const cockpit = window.cockpit;
const _ = cockpit.gettext;

/// Radio buttons for an authentication choice, with CHAP fields when it asks for them.
/// `choices` is a list of [value, label]; "chap" and "mutual" show the fields.
export function ChapFields({ idPrefix, label, choices, value, onChange, disabled, hint }) {
    const set = (k, v) => onChange({ ...value, [k]: v });
    const method = value.method;
    const needSecret = method === "chap" || method === "mutual";
    return (
        <>
            <FormGroup role="radiogroup" fieldId={`${idPrefix}-method`} label={label}>
                <div className="lunlink-radios">
                    {choices.map(([v, l]) => (
                        <Radio
                            key={v}
                            id={`${idPrefix}-method-${v}`}
                            name={`${idPrefix}-method`}
                            label={l}
                            isChecked={method === v}
                            isDisabled={disabled}
                            onChange={() => set("method", v)}
                        />
                    ))}
                </div>
                {hint && <FormHelperText><HelperText><HelperTextItem>{hint}</HelperTextItem></HelperText></FormHelperText>}
            </FormGroup>
            {needSecret && (
                <>
                    <FormGroup label={_("CHAP username")} fieldId={`${idPrefix}-username`} isRequired>
                        <TextInput id={`${idPrefix}-username`} value={value.username} isDisabled={disabled} onChange={(_ev, v) => set("username", v)} autoComplete="off" />
                    </FormGroup>
                    <FormGroup label={_("CHAP secret")} fieldId={`${idPrefix}-password`} isRequired>
                        <TextInput id={`${idPrefix}-password`} type="password" value={value.password} isDisabled={disabled} onChange={(_ev, v) => set("password", v)} autoComplete="new-password" />
                        <FormHelperText><HelperText><HelperTextItem>{_("Most targets want 12 to 16 characters.")}</HelperTextItem></HelperText></FormHelperText>
                    </FormGroup>
                </>
            )}
            {method === "mutual" && (
                <>
                    <FormGroup label={_("Target's CHAP username")} fieldId={`${idPrefix}-reverse-username`} isRequired>
                        <TextInput id={`${idPrefix}-reverse-username`} value={value.reverseUsername} isDisabled={disabled} onChange={(_ev, v) => set("reverseUsername", v)} autoComplete="off" />
                    </FormGroup>
                    <FormGroup label={_("Target's CHAP secret")} fieldId={`${idPrefix}-reverse-password`} isRequired>
                        <TextInput id={`${idPrefix}-reverse-password`} type="password" value={value.reversePassword} isDisabled={disabled} onChange={(_ev, v) => set("reversePassword", v)} autoComplete="new-password" />
                        <FormHelperText><HelperText><HelperTextItem>{_("Mutual CHAP: the secret the target proves itself with; it must differ from yours.")}</HelperTextItem></HelperText></FormHelperText>
                    </FormGroup>
                </>
            )}
        </>
    );
}

export const NO_CHAP = { method: "default", username: "", password: "", reverseUsername: "", reversePassword: "" };

/// What is missing for a CHAP choice, or null.
export function chapProblem(value) {
    if (value.method !== "chap" && value.method !== "mutual") return null;
    if (!value.username.trim()) return _("Enter the CHAP username");
    if (!value.password) return _("Enter the CHAP secret");
    if (value.method === "mutual") {
        if (!value.reverseUsername.trim()) return _("Enter the target's CHAP username");
        if (!value.reversePassword) return _("Enter the target's CHAP secret");
        if (value.reversePassword === value.password) return _("The target's secret must differ from yours");
    }
    return null;
}

/// The CHAP part of an options dictionary, as plain values for client.options().
export function chapOptions(value) {
    if (value.method === "none") return { "auth-method": "none" };
    if (value.method !== "chap" && value.method !== "mutual") return {};
    const o = { "auth-method": "chap", username: value.username.trim(), password: value.password };
    if (value.method === "mutual") {
        o["reverse-username"] = value.reverseUsername.trim();
        o["reverse-password"] = value.reversePassword;
    }
    return o;
}
