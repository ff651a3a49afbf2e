"""The model rate card: token counts x list prices, kept as data in ``defaults/rates.yaml``.

Token semantics (:class:`~oxi_core.agentic.types.Usage`): ``input_tokens`` counts every prompt
token, ``cached_tokens`` is the part of them read from (or written to) a prompt cache,
``output_tokens`` is the visible output and ``reasoning_tokens`` the reasoning output, on top of
it. So a run costs::

    (input - cached) x input + cached x cached_input + output x output + reasoning x reasoning

per million tokens. The file is parsed once per path (ruamel.yaml is imported only then) and
the result cached; ``OXI_RATE_CARD`` points at another copy of the file.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from oxi_core.agentic.types import Usage
from oxi_core.errors import ConfigError

DEFAULT_RATES_PATH = Path(__file__).resolve().parent.parent / "defaults" / "rates.yaml"
RATE_FIELDS = ("input", "cached_input", "output", "reasoning")
PER_TOKENS = 1_000_000

_CONTEXT_SUFFIX = re.compile(r"\[[^\]]*\]$")  # "claude-opus-4-8[1m]"
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")  # "-20250929", "-2025-08-07"


@attrs.frozen
class ModelRates:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float
    reasoning: float

    def cost_usd(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        dollars = (
            fresh * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
            + usage.reasoning_tokens * self.reasoning
        ) / PER_TOKENS
        return round(dollars, 8)


@attrs.frozen
class RateCard:
    models: Mapping[str, ModelRates]
    source: str = ""

    def lookup(self, model: str | None) -> ModelRates | None:
        """The rates for ``model``, or None when the card does not know it."""
        if not model:
            return None
        for name in model_name_candidates(model):
            exact = self.models.get(name)
            if exact is not None:
                return exact
        patterns = sorted((key for key in self.models if "*" in key), key=len, reverse=True)
        for name in model_name_candidates(model):
            for pattern in patterns:
                if fnmatch.fnmatchcase(name, pattern):
                    return self.models[pattern]
        return None

    def cost_usd(self, model: str | None, usage: Usage) -> float | None:
        rates = self.lookup(model)
        return None if rates is None else rates.cost_usd(usage)


def model_name_candidates(model: str) -> list[str]:
    """``model`` as written, then stripped of a context suffix, provider prefix, date suffix."""
    name = model.strip().lower()
    found = [name]
    name = _CONTEXT_SUFFIX.sub("", name)
    found.append(name)
    if "/" in name:
        name = name.rsplit("/", 1)[1]
        found.append(name)
    found.append(_DATE_SUFFIX.sub("", name))
    return list(dict.fromkeys(found))


def parse_rate_card(data: Any, source: str = "") -> RateCard:
    """Build a RateCard from the YAML document's data; errors name the model and the field."""
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise ConfigError("a rate card needs a `models` table", file=source or None)
    models: dict[str, ModelRates] = {}
    for name, entry in data["models"].items():
        if not isinstance(entry, Mapping):
            raise ConfigError(
                "expected a table of prices", file=source or None, table=f"models.{name}"
            )
        values: dict[str, float] = {}
        for field in RATE_FIELDS:
            value = entry.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"expected a price in USD per 1M tokens, got {value!r}",
                    file=source or None,
                    table=f"models.{name}",
                    key=field,
                )
            values[field] = float(value)
        unknown = sorted(set(entry) - set(RATE_FIELDS))
        if unknown:
            raise ConfigError(
                f"unknown key; expected {', '.join(RATE_FIELDS)}",
                file=source or None,
                table=f"models.{name}",
                key=unknown[0],
            )
        models[str(name).lower()] = ModelRates(**values)
    return RateCard(models, source)


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> RateCard:
    from ruamel.yaml import YAML  # imported only when a price is first needed

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the rate card: {error}", file=str(path)) from error
    return parse_rate_card(YAML(typ="safe").load(text), str(path))


def load_rate_card(path: Path | None = None) -> RateCard:
    """The rate card at ``path``, else ``$OXI_RATE_CARD``, else ``defaults/rates.yaml``."""
    if path is None:
        override = os.environ.get("OXI_RATE_CARD")
        path = Path(override) if override else DEFAULT_RATES_PATH
    return _load(path.resolve())


def cost_usd(model: str | None, usage: Usage, card: RateCard | None = None) -> float | None:
    """What ``usage`` of ``model`` costs by the rate card; None when the card lacks the model."""
    return (card or load_rate_card()).cost_usd(model, usage)
