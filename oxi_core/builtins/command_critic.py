"""The ``command`` critic: runs check commands (the repository's tests) on a PR's tree.

APPROVE if and only if every command exits 0; the verdict carries the failing output's tail.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from oxi_core.models import PullRequestSubject, Verdict, VerdictKind


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@attrs.define
class CommandCritic:
    # Check commands, each an argv list run in the pull request's tree; all must exit 0 to approve.
    commands: tuple[tuple[str, ...], ...]
    # Seconds each command may take.
    timeout_s: float = 900.0
    # Lines of a failing command's output kept as its finding.
    tail_lines: int = 30
    # Environment variables for the commands (values may be { env = ... }).
    env: Mapping[str, str] = attrs.field(factory=dict)
    # Variables passed through from oxi's environment (beyond PATH, HOME, ...).
    pass_env: tuple[str, ...] = ()

    def judge(self, subject: PullRequestSubject) -> Verdict:
        from oxi_core.agentic.runner import build_env  # asyncio: only when a review runs

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
        from oxi_core.agentic.scope import run_scoped

        try:
            # Its own session and scope: nothing a check started outlives it.
            return run_scoped(argv, cwd=subject.tree, env=env, timeout_s=self.timeout_s)
        except OSError as error:
            return 127, f"cannot run {argv[0]}: {error}"
