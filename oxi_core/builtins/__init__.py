"""Plugins that ship with oxi: local forge, exec agent, command critic, gates, notifiers."""
