"""`vtp demo`: a demo municipality, simulated devices and a summary of what happened."""
