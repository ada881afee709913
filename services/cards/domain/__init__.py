"""The cards service's rules, free of I/O: lifecycle, eligibility, validation, access."""
