"""Docker events to Consul: one registration per container port, owned, drained and reconciled.

`model` reads Docker's inspect data and Consul's agent listing into frozen values, `services`
derives the registrations a container should have, `reconcile` compares them with what is
registered and returns the fixes; `runner` and `daemon` are the thin loops around them.
"""
