"""The notifications service: tells every partner what concerns them, once, reliably."""
