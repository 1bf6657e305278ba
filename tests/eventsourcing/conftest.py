"""The eventsourcing library on pgstreams (``pgstreams.eventsourcing``).

``test_*_memory.py`` run on the in-memory store; ``pg/test_*_postgres.py`` the same cases on
PostgreSQL (their ``.pg.`` path is how CI counts them). What both share is in
``eventsourcing_cases.py`` beside this file: this directory has no ``__init__.py`` (a package
named ``eventsourcing`` under ``tests/`` would hide the library itself), so pytest puts it on
``sys.path`` for this conftest, and the test modules import their cases from there.
"""
