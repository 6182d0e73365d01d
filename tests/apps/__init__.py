"""WSGI apps used by the tests; importable as ``tests.apps.NAME:attr`` for CLI tests too."""
