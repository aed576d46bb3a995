"""Signed updates with rollback for models, config and the agent (docs/updates.md).

``release`` verifies a release's signed metadata; ``transfer`` brings its archive onto
the device (MQTT chunks or a URL) and unpacks it; ``store`` installs releases beside
each other and switches them crash-safely; ``manager`` runs an update (defer while an
event is open, switch, health check, keep or roll back) for the command handler; ``host``
is the running agent's side of it. Nothing is imported here: the config imports
``update.config`` and must not pull in ``cryptography``.
"""
