"""oxi's GitHub plugin: the `github` forge (pull requests, auto-merge, checks) on GitHub or
GitHub Enterprise, over REST v3 and GraphQL v4."""
