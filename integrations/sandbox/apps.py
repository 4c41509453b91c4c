from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The Pipedrive and Snov.io simulators, with the `sandbox` and `demo` commands.

    Installed only when SYNCBRIDGE_SANDBOX=true (the demo, the tests): production never loads
    it, and its dependencies (the `sandbox` extra) need not be installed there.
    """

    name = "integrations.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox simulators"
