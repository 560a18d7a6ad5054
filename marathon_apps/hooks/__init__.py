"""The git hooks of `wharf apps` (their commands: `marathon_apps.hooks.cli`)."""
