/* global cockpit */
import "@patternfly/patternfly/patternfly.css";
import "./berth.css";
import React from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app.jsx";
import { locale } from "./l10n.js";

document.addEventListener("DOMContentLoaded", () => {
    document.documentElement.lang = locale;
    cockpit.translate();
    createRoot(document.getElementById("app")).render(<App />);
});
