"""Test support: real components (testcontainers or embedded) and helpers to observe them."""
