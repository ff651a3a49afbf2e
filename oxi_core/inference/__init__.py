"""Non-agentic model calls: inference targets (a LiteLLM gateway, providers), routing.yaml,
and ``complete_for_role``, the one path every such call takes (budget check, ledger costing).

Modules are imported by what uses them; nothing here imports httpx or ruamel.yaml at import
time, so the command line stays fast.
"""
