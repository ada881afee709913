"""The cards service: referrers register people and issue cards; providers and devices."""
