"""The pure decision core of the Marathon stand-in: placement constraints, deployment plans, rolling restarts."""
