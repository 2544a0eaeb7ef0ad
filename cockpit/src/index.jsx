import React from "react";
import { createRoot } from "react-dom/client";

import "@patternfly/react-core/dist/styles/base.css";
import "./app.css";

import { followCockpitTheme } from "./theme.js";
import { Application } from "./app.jsx";

followCockpitTheme();

document.addEventListener("DOMContentLoaded", () => {
    createRoot(document.getElementById("app")).render(<Application />);
});
