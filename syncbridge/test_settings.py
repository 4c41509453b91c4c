"""Settings for the test suite: the production settings with the sandbox app installed.

The environment variable (not a setting) turns it on, so that subprocesses the tests start
(`manage.py sandbox` in the benchmarks) see the same.
"""

import os

os.environ.setdefault("SYNCBRIDGE_SANDBOX", "true")
# A demo running in this folder must not point the tests at its sandbox.
os.environ["SYNCBRIDGE_DEMO_ENV"] = ""

from syncbridge.settings import *  # noqa: E402,F403

# Django tests SQLite in memory, inside the test process: a benchmark that measures the
# process's memory can put the test database in a file instead (BENCH_SQLITE_TEST_FILE=path).
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and os.environ.get(  # noqa: F405
    "BENCH_SQLITE_TEST_FILE"
):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["BENCH_SQLITE_TEST_FILE"]}  # noqa: F405
