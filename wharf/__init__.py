"""wharf: deploy, register, route and scale containers on Mesos from a git repository."""

__version__ = "0.1.0"
