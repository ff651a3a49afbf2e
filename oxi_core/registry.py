"""Runs the ``register_*`` hooks into ``{kind: {name: Registration}}``; duplicates fail."""

from __future__ import annotations

from typing import Any

import attrs

from oxi_core.errors import PluginError
from oxi_core.hookspecs import KIND_HOOKS
from oxi_core.plugins import LoadedPlugins, PluginFailure, load_plugins


@attrs.frozen
class Registration:
    kind: str
    name: str
    cls: type[Any]
    plugin: str
    distribution: str


@attrs.define
class Registry:
    kinds: dict[str, dict[str, Registration]] = attrs.field(
        factory=lambda: {kind: {} for kind in KIND_HOOKS}
    )
    failures: list[PluginFailure] = attrs.field(factory=list)

    def get(self, kind: str, name: str) -> Registration | None:
        return self.kinds[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.kinds[kind])

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for kind, registrations in self.kinds.items():
            for name, registration in registrations.items():
                if registration.plugin == plugin:
                    found.setdefault(kind, []).append(name)
        return {kind: sorted(names) for kind, names in found.items()}


_registry: Registry | None = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = build_registry(load_plugins())
    return _registry


def reset_registry() -> None:
    global _registry
    _registry = None


def build_registry(loaded: LoadedPlugins) -> Registry:
    registry = Registry(failures=list(loaded.failures))
    for kind, hook_name in KIND_HOOKS.items():
        caller = getattr(loaded.manager.hook, hook_name)
        # Call each implementation on its own, so every name is traced to its distribution.
        for impl in reversed(caller.get_hookimpls()):
            info = loaded.infos.get(impl.plugin_name)
            distribution = info.distribution if info else impl.plugin_name
            version = info.version if info else "unknown"

            def register(
                name: str, cls: type[Any], *, _kind: str = kind, _plugin: str = impl.plugin_name,
                _dist: str = distribution,
            ) -> None:
                existing = registry.kinds[_kind].get(name)
                if existing is not None:
                    raise PluginError(
                        f"two plugins register the {_kind[:-1] if _kind.endswith('s') else _kind}"
                        f" {name!r}: distribution {existing.distribution} "
                        f"(plugin {existing.plugin}) and distribution {_dist} (plugin {_plugin})",
                        hint="uninstall one of them, or load only one with OXI_LOAD_PLUGINS",
                    )
                registry.kinds[_kind][name] = Registration(_kind, name, cls, _plugin, _dist)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as error:
                registry.failures.append(
                    PluginFailure(impl.plugin_name, distribution, version,
                                  f"{hook_name} raised {type(error).__name__}: {error}")
                )
    return registry
