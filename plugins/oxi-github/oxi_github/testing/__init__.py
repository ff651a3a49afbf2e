"""A loopback GitHub for tests, here and in other plugins: a real bare repository over git's
smart HTTP plus the REST and GraphQL endpoints oxi uses. See :class:`LoopbackGitHub`."""

from oxi_github.testing.server import DEFAULT_TOKEN, LoopbackGitHub, RecordedRequest

__all__ = ["DEFAULT_TOKEN", "LoopbackGitHub", "RecordedRequest"]
