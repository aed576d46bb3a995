"""Test doubles shared across the suite (public on purpose, like gpiozero's mock pins)."""
