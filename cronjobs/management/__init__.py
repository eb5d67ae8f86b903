"""Management commands of the scheduling engine."""
