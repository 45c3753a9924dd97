"""Interop tests: gVisor's real Go LISAFS client against a server.

A package so that this directory's conftest.py does not shadow tests/conftest.py
(both would otherwise be imported as the top-level module `conftest`).
"""
