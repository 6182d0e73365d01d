"""Real peers in front or behind: nginx, HAProxy (CI installs them), Flask and Django."""
