"""Contract compliance monitoring: schedules, provider returns, assessment and escalation."""

__version__ = "0.1.0"
