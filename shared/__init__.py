"""Code the three services share: event contracts, delivery plumbing, logging, settings."""
