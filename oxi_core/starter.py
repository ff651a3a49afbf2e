"""The commented oxi.toml that ``oxi init`` writes."""

STARTER_TOML = '''\
# oxi.toml: how oxi runs on this repository. `oxi config check` validates it.
# Paths are relative to this file. Secrets never go here: write { env = "NAME" } instead.

[adapter]
# Where the roadmap, the .oxi/ state folder and the worktrees live, and the default policy.
class = "oxi_adapter_self.SelfAdapter"
kwargs = { repo_root = "." }

[engine]
# Overrides of the adapter's policy (see docs/configuration.md for every key).
max_concurrent = 1
budget_per_day_usd = 20.0
# task_caps_usd = { opus = 2.0, sonnet = 0.5 }

# Agents: a name of your choosing -> a registered type (`oxi plugins` lists them) + kwargs.
# [agents.claude]
# type = "claude"
# kwargs = { model = "claude-sonnet-4-5", max_turns = 40 }
#
# [agents.codex]
# type = "codex"
# kwargs = { model = "gpt-5.5", pinned_version = "0.169.0" }

# A script as the agent: it gets the prompt in $OXI_PROMPT and in the file $OXI_PROMPT_FILE.
[agents.script]
type = "exec"
kwargs = { argv = ["./scripts/agent.sh"], timeout_s = 900 }

# The critic: approves a pull request when every check command passes on its tree.
[judges.tests]
type = "command"
kwargs = { commands = [["python", "-m", "pytest", "-q"]], timeout_s = 900 }

# The forge: `local` keeps pull requests in the ledger and merges into the `origin` remote.
[forges.local]
type = "local"

[roles]
worker = "script"
critic = "tests"
forge = "local"
# shadow = "codex"   # also run this agent on every dispatch, observed only

# Commands run in each new worktree (argv lists, with a timeout).
# [worktree.hooks]
# after_create = { argv = ["uv", "sync"], timeout_s = 600 }

# [notifiers.ops]
# type = "webhook"
# kwargs = { url = { env = "OXI_WEBHOOK_URL" } }
'''
