"""Runs the ``register_*`` hooks into ``{kind: {name: Registration}}``; duplicates fail.

A plugin may register a class, or where its class lives (``"package.module:Class"``): that
module is imported only when oxi.toml uses the name (or `oxi plugins`, `oxi config check` and
`oxi config schema` look at everything installed), so a command never pays for the plugins a
repository does not use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import attrs

from oxi_core.errors import PluginError
from oxi_core.hookspecs import KIND_HOOKS
from oxi_core.plugins import LoadedPlugins, PluginFailure, load_plugins


@attrs.define
class Registration:
    kind: str
    name: str
    # The class, or "package.module:Class" (imported when first used).
    target: type[Any] | str
    plugin: str
    distribution: str
    version: str = "unknown"
    _loaded: type[Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def loaded(self) -> bool:
        return not isinstance(self.target, str) or self._loaded is not None

    @property
    def cls(self) -> type[Any]:
        """The registered class (its module imported now if it was registered by name)."""
        if not isinstance(self.target, str):
            return self.target
        if self._loaded is None:
            self._loaded = self._import()
        return self._loaded

    def _import(self) -> type[Any]:
        assert isinstance(self.target, str)
        module_name, _, attr = self.target.partition(":")
        try:
            found: Any = import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except Exception as error:
            raise PluginError(
                f"the {_singular(self.kind)} type {self.name!r} from distribution "
                f"{self.distribution} cannot be loaded ({self.target}: "
                f"{type(error).__name__}: {error})",
                hint="reinstall that distribution, or uninstall it (`oxi plugins` lists them)",
            ) from error
        if not isinstance(found, type):
            raise PluginError(
                f"the {_singular(self.kind)} type {self.name!r} from distribution "
                f"{self.distribution} names {self.target}, which is not a class",
                hint="register a class, or a 'package.module:Class' string naming one")
        return found


def _singular(kind: str) -> str:
    return kind[:-1] if kind.endswith("s") else kind


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

    def load_all(self) -> None:
        """Import every class registered by name, so that one that cannot load is reported
        (in ``failures``) and left out, as a registration hook that raised is."""
        for registrations in self.kinds.values():
            for name, registration in list(registrations.items()):
                if registration.loaded:
                    continue
                try:
                    registration.cls  # noqa: B018  (imports it)
                except PluginError as error:
                    del registrations[name]
                    self.failures.append(PluginFailure(
                        registration.plugin, registration.distribution, registration.version,
                        str(error)))

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
                name: str, cls: type[Any] | str, *, _kind: str = kind,
                _plugin: str = impl.plugin_name, _dist: str = distribution, _version: str = version,
            ) -> None:
                existing = registry.kinds[_kind].get(name)
                if existing is not None:
                    raise PluginError(
                        f"two plugins register the {_singular(_kind)}"
                        f" {name!r}: distribution {existing.distribution} "
                        f"(plugin {existing.plugin}) and distribution {_dist} (plugin {_plugin})",
                        hint="uninstall one of them, or load only one with OXI_LOAD_PLUGINS",
                    )
                if not isinstance(cls, type) and not (
                    isinstance(cls, str) and ":" in cls and all(cls.partition(":"))
                ):
                    raise ValueError(f"register({name!r}, ...) takes a class or a "
                                     f"'package.module:Class' string, not {cls!r}")
                registry.kinds[_kind][name] = Registration(_kind, name, cls, _plugin, _dist,
                                                           _version)

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
