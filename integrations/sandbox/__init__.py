"""The sandbox app: stateful simulators of the Pipedrive and Snov.io APIs (see core.py).

A Django app of its own, enabled with SYNCBRIDGE_SANDBOX=true; production code never imports it.
"""
