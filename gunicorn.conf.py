"""gunicorn's configuration for `make serve` and the webhook-intake bench (read from this folder).

gthread workers: each process serves WEB_THREADS requests at once in threads. A webhook
delivery spends most of its time waiting for the database to commit (an fsync), so threads
overlap those waits; Python runs one thread per process at a time, so WEB_CONCURRENCY
processes (default 2, one per core of the 2-core machine measured in the README) use the cores.
More threads than that only queue for the interpreter lock and stretch the slowest answers;
see README "Performance" for the measured choice.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", 2))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", 4))
# Pipedrive and Snov.io may reuse a connection between deliveries: keep it open a little.
keepalive = 5
timeout = 60
