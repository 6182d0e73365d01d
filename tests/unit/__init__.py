"""Pure units: one module at a time, no socket and no server (h11 and tables of cases)."""
