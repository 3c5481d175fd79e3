"""The agent runtime: a fresh Strands agent per request on AgentCore's HTTP contract.

``trustloop.agent.runtime`` serves ``POST /invocations`` and ``GET /ping``;
``trustloop.agent.offline_model`` is the deterministic planner behind the ``offline``
model setting. Importing this package is cheap: Strands and the AgentCore SDK load only
when a submodule that needs them is imported.
"""
