"""`vtp chaos`: replay a seeded workload under injected faults and compare the system with an
independent reference model of the policy."""
