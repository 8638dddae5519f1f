"""Helpers and fixtures shared by the test suites, imported as `tests.support.X` (never by bare name).

Fixture modules are registered once in tests/conftest.py (`pytest_plugins`); helper functions are imported
where they are used.
"""
