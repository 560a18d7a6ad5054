"""The pure core of the dev cluster's Chronos stand-in: ISO 8601 schedules, jobs and their graph."""
