"""Test helpers for oxi and for plugin authors: scripted model servers, git repositories."""
