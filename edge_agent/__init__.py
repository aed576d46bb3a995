"""edge_agent: turns a camera's video into compact, trustworthy MQTT events."""

__version__ = "0.1.0"
