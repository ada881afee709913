"""The claims service: check-ins become claims, ledger transfers and payment requests."""
