"""`oxi route explain` and `oxi route suggest`: routing.yaml, read and improved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig


def _find_task(config: OxiConfig, task_id: str) -> Any:
    """The roadmap item (else the ledger's task) named ``task_id``."""
    from oxi_core.errors import RoadmapError
    from oxi_core.roadmap import load_roadmap

    try:
        item = load_roadmap(config.paths.roadmap).get(task_id)
    except RoadmapError:
        item = None
    if item is not None:
        return item
    from oxi_core.ledger import Ledger

    if config.paths.ledger.exists():
        task = Ledger(config.paths.ledger).task(task_id)
        if task is not None:
            return task
    from oxi_core.errors import OxiError

    raise OxiError(f"{task_id} is neither in {config.paths.roadmap} nor in the ledger",
                   hint="`oxi roadmap list` shows the roadmap's items")


def explain_report(config: OxiConfig, role: str, task: Any) -> dict[str, Any]:
    from oxi_core.engine.routes import agent_model, route_worker
    from oxi_core.inference.routing import load_routing, task_fields

    routing = load_routing(config.config_dir)
    checks = routing.explain(role, task)
    chosen = next((c for c in checks if c.matched), None)
    tier, title, files = task_fields(task)
    report: dict[str, Any] = {
        "task": getattr(task, "id", None), "tier": tier, "title": title, "files": list(files),
        "role": role, "routing_files": list(routing.sources),
        "rules": [{"name": c.rule.name, "source": c.rule.choice.source, "matched": c.matched,
                   "chosen": c is chosen, "reason": c.reason,
                   "adapter": c.rule.choice.adapter_name, "model": c.rule.choice.model_id,
                   "fallback": [ref.label() for ref in c.rule.choice.fallback_chain]}
                  for c in checks],
        "dispatch": None,  # what runs, for the worker role
        "call": None,  # what is called, for the other roles
    }
    if role == "worker":
        route = route_worker(config, task, routing)
        report["dispatch"] = {
            "agent": route.agent, "model": agent_model(config, route.agent, route.model),
            "fallback": [ref.label() for ref in route.fallbacks], "rule": route.rule,
            "reason": route.reason}
    elif chosen is not None:
        targets = config.specs.get("inference", {})
        usable = [ref.label() for ref in chosen.rule.choice.chain if ref.adapter_name in targets]
        report["call"] = {"chain": usable, "configured": sorted(targets)}
    return report


def add_commands(cli: click.Group) -> None:
    @cli.group(name="route")
    def route_group() -> None:
        """routing.yaml: which adapter and model play each role."""

    @route_group.command(name="explain")
    @click.argument("task_id")
    @click.option("--role", default="worker", show_default=True,
                  help="worker, critic, heartbeat-triage, auto-improve-judge, "
                       "prompt-injection-screen or summary.")
    @json_option
    @pass_state
    def route_explain(state: CliState, task_id: str, role: str, as_json: bool) -> None:
        """Which rule routes TASK_ID, why, and what oxi would run."""
        config = state.config(secrets=False)
        report = explain_report(config, role, _find_task(config, task_id))
        if as_json:
            emit_json("route explain", report)
            return
        click.echo(f"{report['task']} (tier {report['tier']}): {report['title']}")
        click.echo(f"role {role}; rules from {' + '.join(report['routing_files'])}")
        reached = True
        for rule in report["rules"]:
            if not reached:
                click.echo(f"    {rule['name']}: not reached")
                continue
            mark = "->" if rule["chosen"] else "  "
            verdict = "matches" if rule["matched"] else "no match"
            click.echo(f" {mark} {rule['name']} ({rule['source']}): {verdict}: {rule['reason']}")
            reached = not rule["chosen"]
        if report["dispatch"]:
            run = report["dispatch"]
            fallback = ", ".join(run["fallback"]) or "none"
            click.echo(f"dispatch: agent {run['agent']}, model {run['model'] or '(its own)'}, "
                       f"fallback {fallback} [{run['reason']}]")
        elif report["call"]:
            call = report["call"]
            click.echo(f"calls: {', '.join(call['chain']) or 'nothing'} "
                       f"(configured inference targets: {', '.join(call['configured']) or 'none'})")

    @route_group.command(name="suggest")
    @click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.9,
                  show_default=True, help="Agreement a class needs to be promoted.")
    @click.option("--min-pairs", type=click.IntRange(min=1), default=10, show_default=True,
                  help="Shadow pairs a class needs to be promoted.")
    @click.option("--apply", "apply_", is_flag=True,
                  help="Write the change into routing.yaml beside oxi.toml (comments kept).")
    @json_option
    @pass_state
    def route_suggest(state: CliState, min_agreement: float, min_pairs: int, apply_: bool,
                      as_json: bool) -> None:
        """Promote task classes to the cheaper shadow agent, from the paired shadow runs."""
        from datetime import UTC, datetime

        from oxi_core.inference.routing import load_routing
        from oxi_core.inference.suggest import (
            apply_rules,
            class_evidence,
            read_pairs,
            rule_for,
            rule_yaml,
            suggestions,
        )
        from oxi_core.ledger import Ledger

        config = state.config(secrets=False)
        pairs = read_pairs(Ledger(config.paths.ledger))
        evidence = class_evidence(pairs)
        chosen = suggestions(evidence, load_routing(config.config_dir),
                             min_agreement=min_agreement, min_pairs=min_pairs)
        today = datetime.now(UTC).date()
        rules = [rule_for(item, today) for item in chosen]
        written = str(apply_rules(config.config_dir, rules)) if apply_ and rules else None
        if as_json:
            emit_json("route suggest", {
                "pairs": len(pairs), "classes": [c.as_json() for c in evidence],
                "suggested": [c.as_json() for c in chosen], "rules": rules, "written": written,
                "min_agreement": min_agreement, "min_pairs": min_pairs})
            return
        if not pairs:
            click.echo("no shadow pairs yet (set OXI_AGENTIC_SHADOW or [roles] shadow)")
            return
        click.echo(f"{len(pairs)} shadow pairs in {len(evidence)} task classes")
        click.echo(f"  {'class':<44} {'pairs':>5} {'agree':>6} {'cost delta/run':>15} "
                   f"{'merged':>7}")
        for item in evidence:
            click.echo(f"  {item.label + ' -> ' + item.shadow_agent:<44} {item.pairs:>5} "
                       f"{item.agreement:>6.0%} {item.cost_delta_usd:>+15.4f} "
                       f"{item.merge_rate:>7.0%}")
        if not rules:
            click.echo(f"no class qualifies (agreement >= {min_agreement:.0%} over >= "
                       f"{min_pairs} pairs, and cheaper); routing.yaml unchanged")
            return
        click.echo("routing.yaml change (under roles: worker:, before the catch-all rule):")
        for rule in rules:
            click.echo(rule_yaml(rule), nl=False)
        if written:
            click.echo(f"written to {written}")
        else:
            click.echo("run with --apply to write it")
