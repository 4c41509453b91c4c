"""Settings for the test suite: the production settings with the sandbox app installed.

The environment variable (not a setting) turns it on, so that subprocesses the tests start
(`manage.py sandbox` in the benchmarks) see the same.
"""

import os

os.environ.setdefault("SYNCBRIDGE_SANDBOX", "true")
# A demo running in this folder must not point the tests at its sandbox.
os.environ["SYNCBRIDGE_DEMO_ENV"] = ""

from syncbridge.settings import *  # noqa: E402,F403
