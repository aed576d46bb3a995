"""Signed updates with rollback for models, config and the agent (docs/updates.md).

``release`` verifies a release's signed metadata; ``transfer`` brings its archive onto
the device (MQTT chunks or a URL) and unpacks it; ``store`` installs releases beside
each other and switches them crash-safely; ``manager`` runs an update (defer while an
event is open, switch, health check, keep or roll back) for the command handler; ``host``
is the running agent's side of it. ``agent_env`` makes an agent release runnable (a venv
over the factory one, checked before the switch); ``launcher`` (the unit's ExecStart,
standard library only) runs it, and ``prestart`` (its ExecStartPre) repairs before. Nothing
is imported here: the config imports ``update.config`` and must not pull in
``cryptography``, and the launcher must import nothing of ours.
"""
