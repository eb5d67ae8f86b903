"""The GraphQL toolkit every app's schema builds on: errors, permissions, scalars, limits, view."""
