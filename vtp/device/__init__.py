"""The check-in device client: sign check-ins and send them to the broker."""
