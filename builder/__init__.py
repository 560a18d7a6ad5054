"""`wharf build`: from a code push to a running app.

A code tree's Dockerfile is built into `<registry>/<app path>:<short commit>` on the Docker engine
(`image`), pushed to the registry, and the new tag is written back to the config repository
(`configgit`, by the rule of `rule`), whose own hooks then deploy it. `build` runs the steps,
`hook` is the post-receive hook of a bare code repository, `cli` the commands.
"""
