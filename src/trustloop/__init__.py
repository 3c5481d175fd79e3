"""trustloop: zero-trust AI agents for healthcare.

Every tool call runs the four-step rhythm (introspect, exchange, lease, query and
revoke); see docs/architecture.md and DESIGN.md for the map.
"""

__version__ = "0.1.0"
