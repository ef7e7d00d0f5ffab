"""samtykke: event-driven consent propagation for telecom operators."""

__version__ = "0.1.0"
