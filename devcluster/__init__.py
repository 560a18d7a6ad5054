"""The embedded single-machine dev cluster."""
