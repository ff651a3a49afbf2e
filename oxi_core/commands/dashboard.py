"""`oxi dashboard [--host H] [--port N] | --export DIR`: the ledger as a web page, read-only.

Imports only click here: the server, the queries and the renderer load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state

if TYPE_CHECKING:
    from oxi_core.dashboard.app import Dashboard

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_commands(cli: click.Group) -> None:
    @cli.command(name="dashboard")
    @click.option("--host", default=None, metavar="ADDRESS",
                  help=f"Address to listen on (default {DEFAULT_HOST}). Anything but a "
                       "loopback address lets other machines read the ledger: oxi warns.")
    @click.option("--port", type=click.IntRange(0, 65535), default=None,
                  help=f"Port to listen on (default {DEFAULT_PORT}; 0 picks a free one).")
    @click.option("--export", "export_dir", type=click.Path(path_type=Path), default=None,
                  metavar="DIR", help="Write the page as static files into DIR and exit.")
    @json_option
    @pass_state
    def dashboard_command(state: CliState, host: str | None, port: int | None,
                          export_dir: Path | None, as_json: bool) -> None:
        """Serve a live page over the ledger (tasks, cost, throughput, shadow runs,
        auto-improve, events): read-only, offline, on 127.0.0.1 unless --host says otherwise."""
        if export_dir is not None:
            if host is not None or port is not None:
                raise click.UsageError("--export writes files and serves nothing: drop "
                                       "--host and --port")
            _export(state, export_dir, as_json)
            return
        _serve(state, host, DEFAULT_PORT if port is None else port, as_json)


def open_dashboard(state: CliState) -> Dashboard:
    """The dashboard over the ledger oxi.toml's [adapter] names, opened read-only; settings
    (daily cap, auto-improve) from oxi.toml when it loads, else defaults and a note."""
    from oxi_core.dashboard.app import Dashboard
    from oxi_core.dashboard.queries import Settings
    from oxi_core.errors import OxiError
    from oxi_core.ledger import Ledger

    located = state.located()
    ledger = Ledger.open_read_only(located.paths.ledger)
    settings = Settings(located.paths, problem=str(located.problem) if located.problem else None)
    if located.problem is None:
        try:
            config = state.config(secrets=False)  # builds plugins; never opens the ledger
        except OxiError as error:
            settings = Settings(located.paths, problem=str(error))
        else:
            ai = config.auto_improve
            settings = Settings(located.paths, daily_cap_usd=config.policy.budget_per_day_usd,
                                auto_improve=ai, sources=tuple(
                                    ai.sources or sorted(config.instances["sources"])))
    return Dashboard(ledger, settings)


def _export(state: CliState, dest: Path, as_json: bool) -> None:
    from oxi_core.dashboard.export import export

    dashboard = open_dashboard(state)
    try:
        written = export(dashboard, dest)
    finally:
        dashboard.ledger.close()
    tasks = sum(1 for path in written if path.parent.name == "tasks")
    if as_json:
        emit_json("dashboard", {"url": None, "host": None, "port": None, "read_only": True,
                                "ledger": str(dashboard.ledger.path), "export": str(dest),
                                "files": len(written), "tasks": tasks})
        return
    click.echo(f"wrote {len(written)} files ({tasks} task pages) to {dest}; open "
               f"{dest / 'index.html'}")


def _serve(state: CliState, host: str | None, port: int, as_json: bool) -> None:
    import errno
    import signal

    from oxi_core.dashboard.server import DashboardServer, is_loopback
    from oxi_core.errors import OxiError

    address = host or DEFAULT_HOST
    dashboard = open_dashboard(state)
    try:
        server = DashboardServer(dashboard, address, port)
    except OSError as error:
        dashboard.ledger.close()
        if error.errno == errno.EADDRINUSE:
            raise OxiError(f"port {port} on {address} is in use",
                           hint="pass --port N (--port 0 picks a free one)") from error
        raise OxiError(f"cannot listen on {address}:{port}: {error.strerror or error}",
                       hint="pass --host with an address of this machine") from error
    # Read every panel once before saying where: the first page then opens as fast as the next
    # (the queries' modules are loaded), and a ledger that cannot be read fails here, loudly.
    from oxi_core.dashboard.queries import EventFilter
    from oxi_core.dashboard.render import Links

    dashboard.overview(Links(), EventFilter(), live=True)
    if not is_loopback(address):
        click.echo(f"oxi: warning: serving on {address}, which other machines can reach: "
                   "anyone who can connect reads the ledger (there is no login)", err=True)
    url = server.url()
    if as_json:
        emit_json("dashboard", {"url": url, "host": address, "port": server.port,
                                "read_only": True, "ledger": str(dashboard.ledger.path),
                                "export": None, "files": None, "tasks": None})
    else:
        click.echo(f"oxi dashboard: {url} (ledger {dashboard.ledger.path}, read-only); "
                   "Ctrl-C stops it")

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        dashboard.ledger.close()
