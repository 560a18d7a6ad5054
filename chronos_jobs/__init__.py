"""Chronos jobs from the config repository: job spec -> Chronos job, dependency graph, plan, sync."""
