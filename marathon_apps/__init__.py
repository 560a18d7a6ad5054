"""marathon_apps: a git push deploys apps to Marathon — render, validate, plan, deploy in dependency
order, wait, roll back."""
