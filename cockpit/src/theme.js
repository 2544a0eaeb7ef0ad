// Light or dark, as Cockpit's shell chose. The shell keeps the choice in localStorage under
// "shell:style" ("auto", "light" or "dark"), tells its frames about a change with a
// "cockpit-style" event, and otherwise leaves it to the system (prefers-color-scheme). Our
// PatternFly 5 bundle styles its dark variant under the class pf-v5-theme-dark on <html>; the
// shell's own document may carry pf-theme-dark (PatternFly 4, Cockpit 287) or pf-v5-theme-dark,
// which we follow as well when the shell is reachable.
const DARK = "pf-v5-theme-dark";
const darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

function storedStyle() {
    try {
        return window.localStorage.getItem("shell:style");
    } catch {
        return null;
    }
}

function shellIsDark() {
    try {
        if (window.parent === window) return null;
        const cls = window.parent.document.documentElement.classList;
        if (cls.contains("pf-theme-dark") || cls.contains("pf-v5-theme-dark") || cls.contains("pf-v6-theme-dark")) return true;
        return null;
    } catch {
        return null; // another origin: rely on the stored style
    }
}

function apply(style) {
    const s = style || storedStyle() || "auto";
    const dark = s === "dark" || (s === "auto" && (shellIsDark() || Boolean(darkQuery && darkQuery.matches)));
    document.documentElement.classList.toggle(DARK, dark);
}

export function followCockpitTheme() {
    apply();
    window.addEventListener("storage", ev => {
        if (ev.key === "shell:style") apply();
    });
    window.addEventListener("cockpit-style", ev => apply(ev.detail && ev.detail.style));
    if (darkQuery) darkQuery.addEventListener("change", () => apply());
    try {
        if (window.parent !== window) {
            new MutationObserver(() => apply()).observe(window.parent.document.documentElement, {
                attributes: true,
                attributeFilter: ["class"],
            });
        }
    } catch {
        // another origin: nothing to observe
    }
}
