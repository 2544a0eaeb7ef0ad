import { createContext } from "react";

/// Whether this user may change anything (administrative access on). When false, the page shows
/// everything but offers no change.
export const AdminContext = createContext(true);
