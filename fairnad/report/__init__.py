"""Reports and plots of runs (HTML, terminal)."""
