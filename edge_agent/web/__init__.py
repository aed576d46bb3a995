"""The technician page: a small HTTP server inside the agent, off by default (docs/web.md).

``config`` (the ``web:`` section), ``auth`` (password hash, sessions, CSRF, login limits),
``draw`` (zones, lines and boxes on a picture), ``feed`` (the last events and alerts),
``edit`` (saving zones and rolling back), ``api`` (what each endpoint answers) and
``server`` (HTTP, routing, static files). Only ``config`` is imported by the agent's config;
the rest loads when the page is enabled.
"""
