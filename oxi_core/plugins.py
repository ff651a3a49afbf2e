"""The plugin manager: oxi's built-in plugins plus entry points in group ``oxi``, loaded once.

``OXI_LOAD_PLUGINS=a,b`` loads only the named distributions (or entry point names); an empty
value loads none. Built-ins always load. A plugin that fails to import is recorded with its
distribution's name and the error, and every other plugin still loads.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any, NamedTuple

import pluggy

from oxi_core import hookspecs
from oxi_core.entrypoints import canonical, entry_points

ENTRY_POINT_GROUP = "oxi"
BUILTIN_PLUGINS = ("oxi_core.builtins.hooks",)
BUILTIN_DISTRIBUTION = "oxi-engine"


class PluginInfo(NamedTuple):
    """One loaded plugin: the distribution that ships it."""

    name: str
    distribution: str
    version: str
    builtin: bool


class PluginFailure(NamedTuple):
    name: str
    distribution: str
    version: str
    error: str


class LoadedPlugins:
    # Plain classes here: attrs costs ~50 ms of import, and `oxi --help` passes through.
    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.infos: dict[str, PluginInfo] = {}  # by pluggy plugin name
        self.failures: list[PluginFailure] = []

    def hooks_of(self, plugin_name: str) -> list[str]:
        plugin = self.manager.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])


_loaded: LoadedPlugins | None = None


_canonical = canonical


def _wanted(names: str | None) -> set[str] | None:
    if names is None:
        return None
    return {_canonical(name.strip()) for name in names.split(",") if name.strip()}


def load_plugins() -> LoadedPlugins:
    """The process-wide plugin manager, built on first use."""
    global _loaded
    if _loaded is None:
        _loaded = _build()
    return _loaded


def reset_plugins() -> None:
    """Forget the loaded plugins (tests install plugins on the fly, then reload)."""
    global _loaded
    _loaded = None
    from oxi_core import registry

    registry.reset_registry()


def _build() -> LoadedPlugins:
    manager = pluggy.PluginManager("oxi")
    manager.add_hookspecs(hookspecs)
    loaded = LoadedPlugins(manager)
    from oxi_core import __version__

    for module_name in BUILTIN_PLUGINS:
        manager.register(import_module(module_name), name=module_name)
        loaded.infos[module_name] = PluginInfo(
            module_name, BUILTIN_DISTRIBUTION, __version__, builtin=True
        )
    if os.environ.get("OXI_DISABLE_ENTRY_POINTS") == "1":  # keeps doc builds hermetic
        return loaded
    _load_entry_points(loaded, _wanted(os.environ.get("OXI_LOAD_PLUGINS")))
    return loaded


def _load_entry_points(loaded: LoadedPlugins, wanted: set[str] | None) -> None:
    for entry_point in entry_points(ENTRY_POINT_GROUP):
        dist_name = entry_point.distribution
        version = entry_point.version
        if wanted is not None and not ({_canonical(dist_name), _canonical(entry_point.name)}
                                       & wanted):
            continue
        taken = loaded.infos.get(entry_point.name)
        if taken is not None:
            # The same distribution twice on sys.path is harmless; another one is a clash.
            if _canonical(taken.distribution) != _canonical(dist_name):
                _record_failure(loaded, PluginFailure(
                    entry_point.name, dist_name, version,
                    f"the entry point name {entry_point.name!r} is already used by "
                    f"distribution {taken.distribution}",
                ))
            continue
        try:
            plugin = entry_point.load()
            loaded.manager.register(plugin, name=entry_point.name)
            loaded.manager.check_pending()
        except Exception as error:
            # One broken plugin must not take the others down: record it and go on.
            if loaded.manager.get_plugin(entry_point.name) is not None:
                loaded.manager.unregister(name=entry_point.name)
            _record_failure(loaded, PluginFailure(entry_point.name, dist_name, version,
                                                  f"{type(error).__name__}: {error}"))
            continue
        loaded.infos[entry_point.name] = PluginInfo(
            entry_point.name, dist_name, version, builtin=False
        )


def _record_failure(loaded: LoadedPlugins, failure: PluginFailure) -> None:
    loaded.failures.append(failure)
    print(
        f"oxi: plugin {failure.name!r} from distribution {failure.distribution} failed to "
        f"load ({failure.error}); the other plugins are loaded",
        file=sys.stderr,
    )


def plugin_listing(loaded: LoadedPlugins) -> dict[str, list[dict[str, Any]]]:
    """What `oxi plugins` shows: each plugin with its hooks and registered names, the
    repository adapters (entry point group ``oxi.adapters``), and the plugins that failed."""
    from oxi_core.config import ADAPTER_ENTRY_POINT_GROUP
    from oxi_core.registry import get_registry

    registry = get_registry()
    registry.load_all()  # a registered class that cannot be imported is a failure to list
    ordered = sorted(loaded.infos.items(), key=lambda item: (not item[1].builtin, item[0]))
    return {
        "plugins": [
            {"name": info.name, "distribution": info.distribution, "version": info.version,
             "builtin": info.builtin, "hooks": loaded.hooks_of(name),
             "registered": registry.by_plugin(name)}
            for name, info in ordered
        ],
        "adapters": [
            {"name": ep.name, "class": ep.value.replace(":", "."),
             "distribution": ep.distribution, "version": ep.version}
            for ep in sorted(entry_points(ADAPTER_ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        ],
        "failures": [
            {"name": f.name, "distribution": f.distribution, "version": f.version,
             "error": f.error}
            for f in registry.failures
        ],
    }
