"""The MCP server (healthcare tools); every tool call runs the four-step rhythm."""
