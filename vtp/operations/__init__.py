"""Operators' commands: looking into the running system and mending it."""
