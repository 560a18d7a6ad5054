"""See the whole pipeline: `wharf trace` (one app through every link, or all apps)."""
