"""Helpers for the command line's tests (tests/test_cli.py, tests/pg/test_cli_pg.py)."""
