"""What the issuance desk does, whoever asks (HTTP routers, the CSV import, the daily job):
each operation changes state, enqueues its events and writes its audit line in one
transaction."""
