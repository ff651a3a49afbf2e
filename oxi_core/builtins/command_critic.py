"""The ``command`` critic: runs check commands (the repository's tests) on a PR's tree.

APPROVE if and only if every command exits 0; the verdict carries the failing output's tail.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

import attrs

from oxi_core.agentic.runner import build_env, group_alive, kill_group
from oxi_core.models import PullRequestSubject, Verdict, VerdictKind


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@attrs.define
class CommandCritic:
    commands: tuple[tuple[str, ...], ...]
    timeout_s: float = 900.0
    tail_lines: int = 30
    env: Mapping[str, str] = attrs.field(factory=dict)
    pass_env: tuple[str, ...] = ()

    def judge(self, subject: PullRequestSubject) -> Verdict:
        reasons: list[str] = []
        tails: list[str] = []
        env = build_env(dict(self.env), allow=self.pass_env)
        for argv in self.commands:
            label = " ".join(argv)
            code, output = self._run(list(argv), subject, env)
            if code != 0:
                what = "timed out" if code is None else f"exited {code}"
                tail = _tail(output, self.tail_lines)
                reasons.append(f"`{label}` {what}:\n{tail}")
                tails.append(tail)
        if reasons:
            return Verdict(VerdictKind.REJECT, tuple(reasons), "\n".join(tails))
        return Verdict(VerdictKind.APPROVE, (), "")

    def _run(
        self, argv: list[str], subject: PullRequestSubject, env: Mapping[str, str]
    ) -> tuple[int | None, str]:
        try:
            proc = subprocess.Popen(
                argv, cwd=subject.tree, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                start_new_session=True,
            )
        except OSError as error:
            return 127, f"cannot run {argv[0]}: {error}"
        try:
            output, _ = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            output, _ = proc.communicate()
            return None, output
        if group_alive(proc.pid):
            kill_group(proc.pid, grace_s=1.0)  # nothing a check started may outlive it
        return proc.returncode, output
